"""Which metric names exist: ERPGo's own catalogue and the exporters' known names.

``conf/metrics/erpgo.yml`` declares every metric ERPGo exposes (type, labels,
meaning). ``conf/metrics/exporters.yml`` lists the names the handbook uses from
the real postgres_exporter, redis_exporter, pgbouncer_exporter and Alertmanager, and
the series Prometheus writes itself (``ALERTS``, ``up``); tests/test_exporters.py
(and, for the pooler's and Alertmanager's, tests/test_pgbouncer.py and
tests/test_meta_monitoring.py) prove those names against the real programs. An alert
rule or PromQL snippet may name nothing else: :func:`check_metrics` holds the alert
rules to that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from handbook.paths import CONF, rel
from handbook.prometheus.alerts import Alert
from handbook.prometheus.promql import label_names, metric_names
from handbook.yamlfile import ConfigError, Finding
from handbook.yamlfile import line as line_of
from handbook.yamlfile import load as load_yaml

METRIC_CATALOGUE = CONF / "metrics" / "erpgo.yml"
EXPORTER_NAMES = CONF / "metrics" / "exporters.yml"
# Metrics that are not ERPGo's own come from these exporters, under their real names.
EXPORTER_PREFIXES = {
    "pg_": "postgres_exporter",
    "redis_": "redis_exporter",
    # Alertmanager's own /metrics (job alertmanager): tests/test_meta_monitoring.py
    # scrapes a real Alertmanager for these names.
    "alertmanager_": "alertmanager",
    # PgBouncer's exporter, the pooler pod's sidecar: tests/test_pgbouncer.py runs the real
    # pgbouncer_exporter against a real pooler for these names.
    "pgbouncer_": "pgbouncer_exporter",
}
# Labels Prometheus attaches to every scraped series, exporters' included.
SCRAPE_LABELS = frozenset({"job", "instance"})
METRIC_TYPES = ("counter", "gauge", "histogram", "summary")


@dataclass
class Metric:
    name: str
    type: str
    help: str
    labels: dict[str, str]
    line: int
    unit: str = ""
    buckets: tuple[float, ...] = ()

    def series_names(self) -> set[str]:
        """The names Prometheus scrapes: a histogram's ``_bucket``, ``_sum`` and ``_count``."""
        if self.type == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        if self.type == "summary":
            return {self.name, f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}


@dataclass
class MetricCatalogue:
    path: Path
    metrics: dict[str, Metric]
    target_labels: dict[str, str]
    common_labels: dict[str, str]

    def lookup(self, series_name: str) -> Metric | None:
        """The metric a scraped name belongs to (``x_bucket`` -> histogram ``x``)."""
        for metric in self.metrics.values():
            if series_name in metric.series_names():
                return metric
        return None

    def series_names(self) -> set[str]:
        return {name for metric in self.metrics.values() for name in metric.series_names()}

    def labels_of(self, series_name: str) -> set[str]:
        """Every label a scraped series of that name has (``le`` on a ``_bucket``)."""
        metric = self.lookup(series_name)
        if metric is None:
            return set()
        labels = set(metric.labels) | set(self.common_labels) | set(self.target_labels)
        if series_name.endswith("_bucket") and metric.type == "histogram":
            labels.add("le")
        if metric.type == "summary" and series_name == metric.name:
            labels.add("quantile")
        return labels


def load_metric_catalogue(path: Path | str = METRIC_CATALOGUE) -> MetricCatalogue:
    """ERPGo's own metrics; ConfigError naming file:line for an entry that breaks the rules."""
    path = Path(path)
    data = load_yaml(path)
    where = rel(path)
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ConfigError(f"{where}:1: the catalogue is a mapping with a 'metrics' mapping")
    metrics = {}
    for name, entry in data["metrics"].items():
        line = line_of(data["metrics"], name)
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}:{line}: {name}: give type, help and labels")
        if not re.fullmatch(r"erpgo_[a-z0-9_]+", name):
            raise ConfigError(
                f"{where}:{line}: {name}: only ERPGo's own metrics belong here, named erpgo_*"
            )
        kind = entry.get("type")
        if kind not in METRIC_TYPES:
            raise ConfigError(f"{where}:{line}: {name}: type must be one of {METRIC_TYPES}")
        if kind == "counter" and not name.endswith("_total"):
            raise ConfigError(f"{where}:{line}: {name}: a counter is exposed as <name>_total")
        if kind != "counter" and name.endswith("_total"):
            raise ConfigError(f"{where}:{line}: {name}: only counters end in _total")
        if not str(entry.get("help") or "").strip():
            raise ConfigError(f"{where}:{line}: {name}: say what it measures in 'help'")
        labels = entry.get("labels") or {}
        if not isinstance(labels, dict):
            raise ConfigError(f"{where}:{line}: {name}: labels maps each label to its meaning")
        buckets = tuple(float(b) for b in entry.get("buckets") or ())
        if kind == "histogram" and (not buckets or list(buckets) != sorted(set(buckets))):
            raise ConfigError(f"{where}:{line}: {name}: a histogram lists its increasing buckets")
        metrics[name] = Metric(
            name=name,
            type=kind,
            help=" ".join(str(entry["help"]).split()),
            labels={str(k): " ".join(str(v).split()) for k, v in labels.items()},
            line=line,
            unit=str(entry.get("unit") or ""),
            buckets=buckets,
        )
    return MetricCatalogue(
        path=path,
        metrics=metrics,
        target_labels=dict(data.get("target_labels") or {}),
        common_labels=dict(data.get("common_labels") or {}),
    )


@dataclass
class KnownNames:
    """``conf/metrics/exporters.yml``: exporter metric names and Prometheus' own series."""

    path: Path
    exporters: dict[str, dict[str, int]]  # exporter -> {metric name: line}
    versions: dict[str, str]  # exporter -> the version its names were checked against
    prometheus: dict[str, int]  # ALERTS, up, ...: {name: line}

    def names(self) -> set[str]:
        return {n for names in self.exporters.values() for n in names} | set(self.prometheus)

    def exporter_of(self, name: str) -> str | None:
        for exporter, names in self.exporters.items():
            if name in names:
                return exporter
        return None


def load_known_names(path: Path | str = EXPORTER_NAMES) -> KnownNames:
    """The exporters' names; ConfigError naming file:line when an entry breaks the rules."""
    path = Path(path)
    data = load_yaml(path)
    where = rel(path)
    if not isinstance(data, dict) or not isinstance(data.get("exporters"), dict):
        raise ConfigError(f"{where}:1: a mapping with 'exporters' (and 'prometheus') is expected")
    exporters, versions = {}, {}
    prefixes = {exporter: prefix for prefix, exporter in EXPORTER_PREFIXES.items()}
    for exporter, entry in data["exporters"].items():
        line = line_of(data["exporters"], exporter)
        if exporter not in prefixes:
            raise ConfigError(
                f"{where}:{line}: unknown exporter {exporter!r}: use {', '.join(prefixes)}"
            )
        metrics = entry.get("metrics") if isinstance(entry, dict) else None
        if not isinstance(metrics, dict) or not metrics:
            raise ConfigError(f"{where}:{line}: {exporter}: list its metrics under 'metrics'")
        names = {}
        for name, meaning in metrics.items():
            at = line_of(metrics, name)
            if not str(name).startswith(prefixes[exporter]):
                raise ConfigError(
                    f"{where}:{at}: {name} is not a {exporter} name ({prefixes[exporter]}*)"
                )
            if not str(meaning or "").strip():
                raise ConfigError(f"{where}:{at}: {name}: say what it measures")
            names[str(name)] = at
        exporters[exporter] = names
        versions[exporter] = str(entry.get("version") or "")
    own = data.get("prometheus") or {}
    if not isinstance(own, dict):
        raise ConfigError(f"{where}:{line_of(data, 'prometheus')}: 'prometheus' maps names")
    prometheus = {str(name): line_of(own, name) for name in own}
    return KnownNames(path, exporters, versions, prometheus)


def check_metrics(
    alerts: list[Alert], catalogue: MetricCatalogue, exporters: KnownNames | None = None
) -> list[Finding]:
    """Each metric an alert uses is ERPGo's (in the catalogue) or a name the real exporters
    export (conf/metrics/exporters.yml); each label it names exists on those metrics."""
    findings = []
    known = catalogue.series_names()
    exporters = exporters or load_known_names()
    for alert in alerts:
        names = metric_names(alert.expr)
        available: set[str] = set()
        for name in sorted(names):
            if name in known:
                available |= catalogue.labels_of(name)
            elif name in exporters.names():
                available |= SCRAPE_LABELS
            else:
                findings.append(
                    Finding(
                        rel(alert.source),
                        alert.expr_line,
                        f"alert {alert.name} uses {name}, which is neither in "
                        f"{rel(catalogue.path)} nor a known exporter metric "
                        f"({rel(exporters.path)}): declare it in one of them",
                    )
                )
        exporter_only = all(n.startswith(tuple(EXPORTER_PREFIXES)) for n in names)
        for label in sorted(label_names(alert.expr) - available):
            if exporter_only and label not in SCRAPE_LABELS:
                continue  # exporter labels are checked against the real exporters
            findings.append(
                Finding(
                    rel(alert.source),
                    alert.expr_line,
                    f"alert {alert.name} names label {label!r}, which none of its metrics "
                    f"({', '.join(sorted(names))}) has according to {rel(catalogue.path)}",
                )
            )
    return findings
