"""The monitoring's part of a failover, on the real programs: the alert fires, then clears.

Production runs a postgres_exporter beside each database server; the ``postgres`` job of
conf/prometheus/prometheus.yml scrapes them, one target per server, labelled with the
server's role (``primary``, ``replica``). After a promotion the exporters stay where
they are, each watching its own server: what must move is the ``role`` label, as step 5
of the disaster-recovery page says. This drill plays it on local servers:

1. a primary, and a standby made by the page's ``create_standby.sh``, each with Debian's
   postgres_exporter beside it; a real Prometheus scrapes them with the ``postgres`` job
   of prometheus.yml (its labels, loopback addresses) and loads the alert-path drills'
   copy of conf/prometheus/alert_rules.yml: the same two changes, each in one place with
   its reason, ``PostgreSQLDown``'s ``for`` shortened
   (:data:`handbook.drills.pathreport.SHORTENED_FOR`) and the scrape and evaluation
   intervals (:data:`handbook.drills.alertpath.SHORTENED_INTERVALS`);
2. the primary crashes: ``PostgreSQLDown`` goes pending, stays pending for its (drill)
   ``for``, then fires for the primary's target; the page's ``monitoring_primary.sh``
   says so;
3. the old primary stays fenced, ``promote.sql`` promotes the standby, and step 5: the
   promoted server's target becomes ``role: primary``, the fenced server's target leaves
   the job, Prometheus reloads: ``PostgreSQLDown`` resolves, and ``ExporterSeriesAbsent``
   goes pending for ``role="replica"``, rightly: no replica is watched any more;
4. step 4: a new replica from the promoted server (``create_standby.sh`` again), its
   exporter's target labelled ``role: replica``, a reload: ``ExporterSeriesAbsent``
   clears before its ``for`` runs out, and ``monitoring_primary.sh`` shows both roles up.

Each state is read from Prometheus's ``/api/v1/alerts``, polled; nothing sleeps a fixed
time (the wait for firing is the drill copy's ``for``, which Prometheus's ``/api/v1/rules``
must show it loaded). ``ExporterSeriesAbsent`` keeps its real 5 minutes: the drill needs
it pending, never firing.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from handbook.drills import alertpath
from handbook.drills.common import DrillError, admin_sql, output, require_tool, wait_for
from handbook.drills.local import Instance, crash, local_pg
from handbook.paths import rel
from handbook.prometheus import alerts, exporters, monitoring
from handbook.prometheus.promql import parse_duration
from handbook.servers import scratch
from handbook.servers.base import Server
from handbook.servers.pool import ServerPool

# The only change to prometheus.yml's timing is the alert-path drills' (one place, with
# the reason): each state shows within seconds of its cause.
INTERVALS = alertpath.SHORTENED_INTERVALS
JOB = "postgres"
ALERT = "PostgreSQLDown"
ABSENT = "ExporterSeriesAbsent"
CHECK = "shell/dr/monitoring_primary.sh"  # the page's check after step 5
STANDBY_NAME = "erpgo_replica"
MARGIN = 90.0  # seconds a state may take beyond the rule's `for` before the drill fails


def config(path: Path, targets: dict[str, str], rules: Path) -> Path:
    """prometheus.yml for the drill: the ``postgres`` job of conf/prometheus/prometheus.yml,
    each of its role's targets replaced by ``targets[role]`` (a role missing from
    ``targets`` leaves the job, as a fenced server's target does), the drill's copy of
    the rules (``rules``), and INTERVALS."""
    conf = yaml.safe_load(monitoring.PROMETHEUS_CONF.read_text(encoding="utf-8"))
    job = next(j for j in conf["scrape_configs"] if j["job_name"] == JOB)
    statics = []
    for static in job["static_configs"]:
        role = static.get("labels", {}).get("role", "")
        if role in targets:
            statics.append({"targets": [targets[role]], "labels": static["labels"]})
    data = {
        "global": {**conf.get("global", {}), **INTERVALS},
        "rule_files": [str(rules)],  # alertpath.rules_copy: PostgreSQLDown's `for` shortened
        "scrape_configs": [{"job_name": JOB, "static_configs": statics}],
    }
    path.write_text(
        f"# Drill copy of {rel(monitoring.PROMETHEUS_CONF)}'s {JOB} job; see "
        f"{rel(Path(__file__))} INTERVALS\n" + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )
    return path


def active(prometheus: monitoring.Prometheus, name: str) -> list[dict]:
    """The pending and firing alerts ``name``, each with its ``labels`` and ``state``."""
    found = prometheus.api("/api/v1/alerts")["alerts"]  # type: ignore[index]
    return [a for a in found if a["labels"]["alertname"] == name]


def state(prometheus: monitoring.Prometheus, name: str, **labels: str) -> str:
    """``firing``, ``pending`` or ``inactive`` for the alert ``name`` with ``labels``."""
    states = {
        a["state"]
        for a in active(prometheus, name)
        if all(a["labels"].get(k) == v for k, v in labels.items())
    }
    return "firing" if "firing" in states else ("pending" if states else "inactive")


def targets(prometheus: monitoring.Prometheus) -> dict[str, str]:
    """The ``postgres`` job's active targets as Prometheus has them: instance -> role."""
    found = prometheus.api("/api/v1/targets?state=active")["activeTargets"]  # type: ignore[index]
    return {
        t["labels"]["instance"]: t["labels"].get("role", "")
        for t in found
        if t["labels"].get("job") == JOB
    }


def beside(server: Server, source: Server) -> Server:
    """``server`` (a drill's standby) with the accounts and features of ``source`` (the
    primary it was copied from: the same roles, the same TLS), on its own port."""
    port = {"PGPORT": str(server.port)}
    logins = {user: env | port for user, env in source.accounts.items()}
    return dataclasses.replace(server, accounts=logins, features=source.features)


@dataclass(kw_only=True)
class FailoverMonitoring:
    """What Prometheus said at each step, and how long each state took to show."""

    label: str
    server: str
    primary_target: str
    promoted_target: str
    replica_target: str
    checks: dict[str, str] = field(default_factory=dict)  # step -> monitoring_primary.sh
    measured: dict[str, float] = field(default_factory=dict)


def failover_monitoring(
    pool: ServerPool, label: str, work: Path | None = None
) -> FailoverMonitoring:
    """Crash a primary watched by a real Prometheus, promote its standby, follow the page's
    steps 5 and 4; DrillError naming the step when Prometheus does not say what it must."""
    # What it needs, before any server starts: ToolMissing or ExporterMissing say what
    # to install (a skip, a failure under CI=true).
    monitoring.find_prometheus()
    exporters.find("postgres_exporter")
    for program in ("curl", "jq"):  # monitoring_primary.sh's
        require_tool(program, program)
    waits = alertpath.drill_for(ALERT)  # the drill copy's `for` (SHORTENED_FOR)
    for_seconds = parse_duration(waits)
    own_work = work is None
    work = work or scratch.make("failover-monitoring")
    primary = pool.start_private(label, {"wal_level": "replica", "synchronous_commit": "on"})
    standby = Instance(local_pg(primary), primary, "standby")
    rebuilt = Instance(local_pg(primary), primary, "new replica")
    running: list[exporters.Running] = []
    prometheus = None
    try:
        standby.start(
            "shell/dr/create_standby.sh", primary,
            STANDBY_PGDATA=str(standby.datadir), STANDBY_NAME=STANDBY_NAME,
            STANDBY_PORT=str(standby.port),
        )  # fmt: skip
        standby.server = beside(standby.server, primary)
        running += [exporters.start("postgres_exporter", s) for s in (primary, standby.server)]
        old, new = (r.url.removeprefix("http://").removesuffix("/metrics") for r in running)
        rules = alertpath.rules_copy(work, (ALERT,))
        conf = config(work / "prometheus.yml", {"primary": old, "replica": new}, rules)
        prometheus = monitoring.boot_prometheus(conf)
        loaded = alertpath.loaded_for(prometheus, ALERT)
        if loaded != for_seconds:
            raise DrillError(
                f"{rel(rules)}: Prometheus loaded {ALERT} with a `for` of {loaded} s, the "
                f"drill waits {waits} (handbook/drills/pathreport.py SHORTENED_FOR)"
            )
        result = FailoverMonitoring(
            label=label, server=f"{primary.product} {primary.version}",
            primary_target=old, promoted_target=new, replica_target="",
        )  # fmt: skip

        def check(step: str) -> str:
            assert prometheus is not None
            env = {"PROMETHEUS_URL": f"http://127.0.0.1:{prometheus.port}"}
            result.checks[step] = output(CHECK, standby.server, standby.server.env("monitor") | env)
            return result.checks[step]

        def reload(wanted: dict[str, str]) -> None:
            """Step 5 or 4's change to the ``postgres`` job (``wanted``: role -> target),
            and a reload; returns once Prometheus scrapes exactly those targets. Until
            then the fenced primary's target may still be scraped: one scrape slower
            than the timeout marks its ``pg_up`` stale, so PostgreSQLDown looks resolved
            for a scrape and goes pending again on the next."""
            assert prometheus is not None
            config(conf, wanted, rules)
            prometheus.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
            expected = {target: role for role, target in wanted.items()}
            try:
                wait_for(lambda: targets(prometheus) == expected, "the reload", MARGIN)
            except DrillError:
                raise DrillError(
                    f"{rel(conf)}: after a reload Prometheus scrapes {targets(prometheus)} "
                    f"for the {JOB} job, not {expected}\n--- Prometheus log ---\n"
                    f"{prometheus.log()}"
                ) from None

        def reach(what: str, name: str, wanted: str, timeout: float, **labels: str) -> float:
            """Poll /api/v1/alerts until ``name`` is ``wanted``; the seconds it took."""
            assert prometheus is not None
            started = time.monotonic()
            try:
                wait_for(lambda: state(prometheus, name, **labels) == wanted, what, timeout)
            except DrillError as exc:
                raise DrillError(
                    f"{exc}: the failover procedure (docs/architecture/disaster-recovery.md, "
                    f"step 5) or {rel(alerts.RULES_FILE)} no longer does what the page says; "
                    f"/api/v1/alerts shows {active(prometheus, name)}\n--- Prometheus log ---\n"
                    f"{prometheus.log()}"
                ) from None
            return time.monotonic() - started

        both_up = 'pg_up{job="postgres"} == 1'
        wait_for(
            lambda: len(prometheus.api("/api/v1/query?query=" + _quote(both_up))["result"]) == 2,
            "both exporters scraped and reporting their server up",
        )
        if state(prometheus, ALERT) != "inactive":
            raise DrillError(f"{ALERT} is active before the fault: {active(prometheus, ALERT)}")

        crash(primary)  # the fault; the fenced primary never comes back (page, step 2)
        result.measured["pending_seconds"] = reach(
            f"{ALERT} pending for the crashed primary", ALERT, "pending", MARGIN,
            instance=old, role="primary",
        )  # fmt: skip
        result.measured["firing_seconds"] = result.measured["pending_seconds"] + reach(
            f"{ALERT} firing for the crashed primary after its for ({waits})", ALERT,
            "firing", for_seconds + MARGIN, instance=old, role="primary",
        )  # fmt: skip
        seen = time.time()
        fired = [a for a in active(prometheus, ALERT) if a["state"] == "firing"]
        pending_for = seen - min(_epoch(a["activeAt"]) for a in fired)
        if pending_for < for_seconds:
            raise DrillError(
                f"{ALERT} fired {pending_for:.1f} s after it went pending, before its for "
                f"({waits}): {rel(rules)} or Prometheus did not wait: {fired}"
            )
        check("firing")

        promoted = output("sql/dr/promote.sql", standby.server, standby.server.env("admin"))
        if admin_sql(standby.server, "SELECT pg_is_in_recovery()") != "f":
            raise DrillError(f"promote.sql did not promote the standby:\n{promoted}")
        # Step 5: the promoted server's target is the primary; the fenced one leaves.
        reload({"primary": new})
        result.measured["resolve_seconds"] = reach(
            f"{ALERT} resolving once the promoted server is labelled primary", ALERT,
            "inactive", MARGIN,
        )  # fmt: skip
        # The step's check reads pg_up: wait until the fenced primary's series has gone
        # stale too. Under load a scrape of it from before the reload can still land
        # after the alert first reads as resolved, and make it pending for a moment.
        fenced = _quote(f'pg_up{{job="{JOB}",instance="{old}"}}')
        wait_for(
            lambda: (
                not prometheus.api("/api/v1/query?query=" + fenced)["result"]
                and state(prometheus, ALERT) == "inactive"
            ),
            f"the fenced primary's pg_up gone and {ALERT} inactive after step 5",
            MARGIN,
        )
        reach(f"{ABSENT} pending for role=replica: no replica is watched", ABSENT, "pending",
              MARGIN, job=JOB, role="replica")  # fmt: skip
        check("promoted")

        # Step 4: a new replica of the promoted server, labelled replica.
        rebuilt.start(
            "shell/dr/create_standby.sh", standby.server,
            STANDBY_PGDATA=str(rebuilt.datadir), STANDBY_NAME=STANDBY_NAME,
            STANDBY_PORT=str(rebuilt.port),
        )  # fmt: skip
        rebuilt.server = beside(rebuilt.server, primary)
        running.append(exporters.start("postgres_exporter", rebuilt.server))
        result.replica_target = running[-1].url.removeprefix("http://").removesuffix("/metrics")
        reload({"primary": new, "replica": result.replica_target})
        reach(f"{ABSENT} clearing once the new replica is watched", ABSENT, "inactive", MARGIN,
              job=JOB, role="replica")  # fmt: skip
        if state(prometheus, ALERT) != "inactive":
            raise DrillError(f"{ALERT} came back after step 4: {active(prometheus, ALERT)}")
        check("rebuilt")
        return result
    finally:
        if prometheus is not None:
            prometheus.stop()
        for exporter in running:
            exporter.stop()
        rebuilt.stop()
        standby.stop()
        primary.stop()
        if own_work:
            scratch.remove(work)


def _epoch(stamp: str) -> float:
    """Epoch seconds of an RFC 3339 time as Prometheus writes it (``activeAt``)."""
    return alertpath.datetime.fromisoformat(stamp).timestamp()


def _quote(query: str) -> str:
    from urllib.parse import quote

    return quote(query, safe="")
