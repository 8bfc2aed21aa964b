"""Every manifest under conf/kubernetes/ passes the pinned Kubernetes schemas and our rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from handbook.confcheck import kubernetes as k8s
from handbook.paths import rel
from handbook.pytest_plugin import unavailable

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.3"), pytest.mark.covers("20.4")]

FILES = k8s.manifest_files()


def _require_validator() -> None:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        reason = (
            "kubernetes-validate is not installed: install the tests dependency group "
            "(pip install -e . --group tests)"
        )
        unavailable(reason)


def test_there_are_manifests_to_validate():
    assert FILES, f"no YAML under {rel(k8s.MANIFESTS)}: the deployment pages include them"


@pytest.mark.parametrize("path", FILES, ids=lambda p: rel(p, k8s.MANIFESTS))
def test_manifest(path: Path):
    _require_validator()
    # Cross-document rules (a Service selects a workload) look at the whole directory.
    siblings = [p for p in FILES if p.parent == path.parent]
    result = k8s.validate(siblings)
    mine = [p for p in result.problems if p.path == path]
    assert not mine, "\n".join(map(str, mine)) + "\nFix the manifest (the line is shown)."
    assert any(d.path == path for d in result.documents), f"{rel(path)}: no YAML document"


# -- the validator catches what it promises ---------------------------------------------------

GOOD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:1.2.3
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
"""


def _check(tmp_path: Path, text: str) -> list[str]:
    _require_validator()
    path = tmp_path / "manifest.yaml"
    path.write_text(textwrap.dedent(text))
    return [str(p) for p in k8s.validate([path]).problems]


def test_a_good_manifest_passes(tmp_path: Path):
    assert _check(tmp_path, GOOD) == []


def test_a_misspelt_field_names_file_line_document_and_field(tmp_path: Path):
    typo = GOOD.replace("spec:\n  selector:", "spec:\n  replica: 3\n  selector:", 1)
    problems = _check(tmp_path, typo)
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"{tmp_path}/manifest.yaml:6: document 0 (Deployment/web): "
        "spec.replica: 'replica' is not a field"
    ), problems[0]
    assert "a typo" in problems[0]


def test_a_wrong_type_names_the_nested_field(tmp_path: Path):
    problems = _check(tmp_path, GOOD.replace("    - port: 80", "    - port: eighty"))
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"{tmp_path}/manifest.yaml:23: document 1 (Service/web): spec.ports.0.port: "
    ), problems[0]


def test_an_unknown_kind_is_an_error_not_a_warning(tmp_path: Path):
    problems = _check(tmp_path, GOOD.replace("kind: Service", "kind: Frobnicator"))
    assert any("has no Frobnicator in v1" in p for p in problems), problems


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.example.com/web:latest", "uses 'latest'"),
        ("registry.example.com/web", "has no tag"),
        ("registry.example.com:5000/web", "has no tag"),
    ],
)
def test_unpinned_images_are_refused(tmp_path: Path, image: str, expected: str):
    problems = _check(tmp_path, GOOD.replace("registry.example.com/web:1.2.3", image))
    assert len(problems) == 1 and expected in problems[0], problems
    assert "spec.template.spec.containers.0.image" in problems[0]


def test_a_digest_pins_an_image():
    assert k8s.image_problem("registry.example.com/web@sha256:" + "a" * 64) is None
    assert k8s.image_problem("registry.example.com:5000/web:1.2.3") is None


def test_a_service_selecting_nothing_is_refused(tmp_path: Path):
    problems = _check(tmp_path, GOOD.replace("  selector: {app: web}", "  selector: {app: wbe}"))
    assert len(problems) == 1 and "selects no pod template" in problems[0], problems
    assert "document 1 (Service/web): spec.selector:" in problems[0]


def test_invalid_yaml_names_the_line(tmp_path: Path):
    problems = _check(tmp_path, GOOD.replace("  name: web\nspec:\n  selector", "  name: [web\n"
                      "spec:\n  selector", 1))  # fmt: skip
    assert len(problems) == 1 and "not valid YAML" in problems[0], problems


# -- blue-green and canary: the switch the procedure performs lands on real pods -------------


def _docs(directory: str) -> list[k8s.Document]:
    files = [p for p in FILES if p.parent == k8s.MANIFESTS / directory]
    return k8s.validate(files).documents


def _by_name(docs: list[k8s.Document], kind: str, name: str) -> k8s.Document:
    found = [d for d in docs if d.kind == kind and d.name == name]
    assert found, f"conf/kubernetes: no {kind}/{name}"
    return found[0]


def test_blue_green_switch_moves_the_service_from_blue_to_green_pods():
    docs = _docs("blue-green")
    service = _by_name(docs, "Service", "erpgo-api").data["spec"]["selector"]
    blue = k8s.pod_labels(_by_name(docs, "Deployment", "erpgo-api-blue"))
    green = k8s.pod_labels(_by_name(docs, "Deployment", "erpgo-api-green"))
    assert k8s.selects(service, blue) and not k8s.selects(service, green)
    switched = {**service, "slot": "green"}  # what blue_green_switch.sh patches in
    assert k8s.selects(switched, green) and not k8s.selects(switched, blue)
    preview = _by_name(docs, "Service", "erpgo-api-preview").data["spec"]["selector"]
    assert k8s.selects(preview, green) and not k8s.selects(preview, blue)


def test_canary_ingress_sends_a_weighted_share_to_the_canary_service_only():
    docs = _docs("canary")
    canary = _by_name(docs, "Ingress", "erpgo-api-canary").data
    annotations = canary["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    assert 0 < int(annotations["nginx.ingress.kubernetes.io/canary-weight"]) <= 25
    backend = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    service = _by_name(docs, "Service", backend).data["spec"]["selector"]
    canary_pods = k8s.pod_labels(_by_name(docs, "Deployment", "erpgo-api-canary"))
    stable_pods = k8s.pod_labels(_by_name(docs, "Deployment", "erpgo-api-stable"))
    assert k8s.selects(service, canary_pods) and not k8s.selects(service, stable_pods)
    main = _by_name(docs, "Ingress", "erpgo-api").data
    assert main["spec"]["rules"][0]["host"] == canary["spec"]["rules"][0]["host"]
