-- Age of the newest backup whose restore test passed, as the backup job records it
-- page: procedures/deployment.md
-- user: erpgo_monitor
SELECT max(verified_at) AS last_verified_backup,
       date_trunc('second', now() - max(verified_at)) AS age,
       CASE
           WHEN max(verified_at) IS NULL
               THEN 'STOP: no verified backup in ops.backup_runs'
           WHEN now() - max(verified_at) > interval '26 hours'
               THEN 'STOP: the newest verified backup is older than 26 hours'
           ELSE 'ok'
       END AS verdict
  FROM ops.backup_runs
 WHERE verified_at IS NOT NULL;
