-- Commits, rollbacks and deadlocks per database over the next 3 seconds
-- page: runbooks/high-error-rate.md
-- mode: read-only
-- requires: pg>=14
-- user: erpgo_monitor
-- Two samples of pg_stat_database, :window seconds apart (default 3, under the
-- monitoring role's 5 s statement_timeout; not under 2: sessions report their
-- counters about once a second); no server log needed. A deadlock victim and a
-- serialization failure (SQLSTATE 40P01, 40001) both end in a rollback; only
-- deadlocks have their own counter. sessions_fatal and sessions_killed
-- (PostgreSQL 14+) count sessions ended by errors and by pg_terminate_backend.
\if :{?window}
\else
  \set window 3
\endif
SELECT json_object_agg(datname, json_build_array(xact_commit, xact_rollback, deadlocks,
                                                 sessions_fatal, sessions_killed))
           AS before
  FROM pg_stat_database
 WHERE datname IN (SELECT datname FROM pg_database WHERE NOT datistemplate) \gset
-- Wait, then drop the statistics snapshot this session has cached (when run with -1).
SELECT pg_sleep(:window) AS waited, pg_stat_clear_snapshot() AS cleared \gset
SELECT d.datname AS database,
       d.xact_commit - (b.value ->> 0)::bigint AS commits,
       d.xact_rollback - (b.value ->> 1)::bigint AS rollbacks,
       round(100.0 * (d.xact_rollback - (b.value ->> 1)::bigint)
             / nullif(d.xact_commit - (b.value ->> 0)::bigint
                      + d.xact_rollback - (b.value ->> 1)::bigint, 0), 1)
           AS rollback_pct,
       d.deadlocks - (b.value ->> 2)::bigint AS deadlocks,
       d.sessions_fatal - (b.value ->> 3)::bigint AS sessions_fatal,
       d.sessions_killed - (b.value ->> 4)::bigint AS sessions_killed,
       d.deadlocks AS deadlocks_since_reset,
       date_trunc('second', d.stats_reset) AS since
  FROM pg_stat_database AS d
  JOIN json_each(:'before') AS b ON b.key = d.datname
 ORDER BY rollbacks DESC, database;
