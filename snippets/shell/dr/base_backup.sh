# Take a base backup (with the WAL it needs to start) and check it against its manifest
# page: architecture/disaster-recovery.md
# needs: pg
# mode: writes
# changes: the disk: a new backup directory (the server is only read)
# user: replicator
set -euo pipefail
# BACKUP_DIR: where the backup goes (a new directory); default: erpgo-base-<UTC time>
# here.
backup_dir="${BACKUP_DIR:-erpgo-base-$(date -u +%Y%m%dT%H%M%SZ)}"
pg_basebackup --pgdata="$backup_dir" --format=plain --wal-method=stream \
    --checkpoint=fast --manifest-checksums=SHA256 --no-sync \
    --label="erpgo base $(date -u +%FT%TZ)"
# Every file's checksum against backup_manifest, and the WAL from start to end of the
# backup.
pg_verifybackup --quiet "$backup_dir"
echo "base backup verified: $(du -sh "$backup_dir" | cut -f1) in $backup_dir"
