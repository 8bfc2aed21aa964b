"""Kubernetes manifests under ``conf/kubernetes/``, checked the way the API server would.

Every YAML document is validated against the JSON schema of its ``apiVersion``/``kind``
for one pinned Kubernetes version (:data:`VERSION`), using the schemas that the
``kubernetes-validate`` wheel ships (no network). The strict schemas are used, so a
misspelt field is an error, as ``kubectl apply --validate=strict`` makes it.
Beyond the schemas, the handbook's own rules:

* every container image carries a pinned tag or a digest, never ``latest``;
* a Service selects the pods of a workload in the same directory (a selector that matches
  nothing sends traffic nowhere, the classic blue-green mistake).

Each problem is one line: ``file:line: document N (Kind/name): field: what is wrong``,
followed by what to do.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handbook.paths import CONF, rel

MANIFESTS = CONF / "kubernetes"
VERSION = "1.33.0"  # the cluster version the manifests target; schemas come from the wheel
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Documents that configure tools rather than the API server: no cluster schema exists.
TOOL_KINDS = {("kustomize.config.k8s.io/v1beta1", "Kustomization")}


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    document: int  # 0-based index of the YAML document in its file
    what: str  # "Deployment/erpgo-api" or "" when unknown
    field: str  # dotted path, "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{rel(self.path)}:{self.line}: document {self.document}"
        if self.what:
            where += f" ({self.what})"
        at = f"{self.field}: " if self.field else ""
        return f"{where}: {at}{self.message}"


@dataclass
class Document:
    path: Path
    index: int
    data: Any
    node: yaml.Node

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

    @property
    def what(self) -> str:
        return f"{self.kind}/{self.name}" if self.kind else ""

    def line(self, path: Iterable[Any] = ()) -> int:
        """1-based line of the node at ``path`` (the deepest existing ancestor)."""
        node = self.node
        for key in path:
            child = _child(node, key)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1

    def problem(self, path: list[Any], message: str) -> Problem:
        dotted = ".".join(str(p) for p in path)
        return Problem(self.path, self.line(path), self.index, self.what, dotted, message)


@dataclass
class Result:
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.problems

    def report(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def _child(node: yaml.Node, key: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == str(key):
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def manifest_files(directory: Path = MANIFESTS) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` file under ``directory``, recursively, sorted."""
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load(path: Path) -> tuple[list[Document], list[Problem]]:
    """The non-empty YAML documents of a file (with their nodes, for line numbers)."""
    text = path.read_text(encoding="utf-8")
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        values = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        return [], [Problem(path, line, 0, "", "", f"not valid YAML: {exc}")]
    documents = [
        Document(path, index, data, node)
        for index, (data, node) in enumerate(zip(values, nodes, strict=True))
        if data is not None
    ]
    return documents, []


# -- schema validation --------------------------------------------------------------------------


@functools.cache
def _validator(api_version: str, kind: str):
    """A jsonschema validator for the kind in :data:`VERSION`'s strict schemas, or None."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    directory = f"kubernetes-json-schema/v{VERSION}-local-strict"
    try:
        schema = utils.schema_contents(f"{directory}/{kind.lower()}-{group_version}.json", VERSION)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{directory}/_definitions.json", VERSION)
    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _schema_problems(doc: Document) -> Iterator[Problem]:
    if not isinstance(doc.data, dict):
        yield doc.problem([], "not a mapping: a Kubernetes object has apiVersion, kind, metadata")
        return
    missing = [key for key in ("apiVersion", "kind") if not doc.data.get(key)]
    if missing:
        yield doc.problem([], f"no {' or '.join(missing)}: every object names both")
        return
    api_version, kind = str(doc.data["apiVersion"]), str(doc.data["kind"])
    if (api_version, kind) in TOOL_KINDS:
        yield from _kustomization_problems(doc)
        return
    validator = _validator(api_version, kind)
    if validator is None:
        yield doc.problem(
            ["apiVersion"],
            f"Kubernetes {VERSION} has no {kind} in {api_version}: check the spelling of kind "
            "and apiVersion (kubectl api-resources lists them)",
        )
        return
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.path)))
    for error in errors:
        path = list(error.path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - known):
                yield doc.problem(
                    [*path, extra],
                    f"{extra!r} is not a field of this object in the Kubernetes {VERSION} "
                    "schema: a typo, or a field from another kind or version?",
                )
            continue
        yield doc.problem(path, f"{error.message} [Kubernetes {VERSION} schema]")


def _kustomization_problems(doc: Document) -> Iterator[Problem]:
    for index, entry in enumerate(doc.data.get("resources") or []):
        target = doc.path.parent / str(entry)
        if not target.exists():
            yield doc.problem(["resources", index], f"{entry}: no such file or directory")


# -- the handbook's rules -----------------------------------------------------------------------


def _pod_spec_path(doc: Document) -> list[Any] | None:
    if doc.kind in WORKLOADS:
        return ["spec", "template", "spec"]
    if doc.kind == "CronJob":
        return ["spec", "jobTemplate", "spec", "template", "spec"]
    if doc.kind == "Pod":
        return ["spec"]
    return None


def _get(data: Any, path: list[Any]) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


IMAGE_TAG = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>\S+))?$")


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None."""
    match = IMAGE_TAG.match(image)
    if not match:
        return f"cannot read image reference {image!r}"
    if match["digest"]:
        return None
    if not match["tag"] or "/" in match["tag"]:
        return f"image {image!r} has no tag: pin a version (e.g. {image}:1.4.2) or a digest"
    if match["tag"] == "latest":
        return f"image {image!r} uses 'latest': pin the release's version tag or a digest"
    return None


def _image_problems(doc: Document) -> Iterator[Problem]:
    spec_path = _pod_spec_path(doc)
    if spec_path is None:
        return
    for group in ("initContainers", "containers"):
        for index, container in enumerate(_get(doc.data, [*spec_path, group]) or []):
            image = container.get("image") if isinstance(container, dict) else None
            if isinstance(image, str) and (message := image_problem(image)):
                yield doc.problem([*spec_path, group, index, "image"], message)


def pod_labels(doc: Document) -> dict[str, str] | None:
    if doc.kind == "Pod":
        return _get(doc.data, ["metadata", "labels"]) or {}
    if doc.kind in WORKLOADS:
        return _get(doc.data, ["spec", "template", "metadata", "labels"]) or {}
    return None


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _service_problems(documents: list[Document]) -> Iterator[Problem]:
    by_directory: dict[Path, list[Document]] = {}
    for doc in documents:
        by_directory.setdefault(doc.path.parent, []).append(doc)
    for docs in by_directory.values():
        pods = [(d, labels) for d in docs if (labels := pod_labels(d)) is not None]
        for doc in docs:
            if doc.kind != "Service":
                continue
            selector = _get(doc.data, ["spec", "selector"])
            if not isinstance(selector, dict) or not selector:
                continue  # headless or externally managed endpoints
            if not any(selects(selector, labels) for _, labels in pods):
                names = ", ".join(d.what for d, _ in pods) or "no workload"
                yield doc.problem(
                    ["spec", "selector"],
                    f"selects no pod template in {rel(doc.path.parent)} ({names}): a Service "
                    "whose selector matches nothing drops every request; fix the labels",
                )


def validate(paths: Iterable[Path]) -> Result:
    """Validate every document of every file; cross-document rules apply per directory."""
    result = Result()
    for path in paths:
        documents, problems = load(path)
        result.problems.extend(problems)
        for doc in documents:
            result.documents.append(doc)
            result.problems.extend(_schema_problems(doc))
            result.problems.extend(_image_problems(doc))
    result.problems.extend(_service_problems(result.documents))
    return result


def main() -> int:
    result = validate(manifest_files())
    for problem in result.problems:
        print(problem)
    print(f"{len(result.documents)} documents, {len(result.problems)} problems "
          f"(Kubernetes {VERSION} schemas)")  # fmt: skip
    return 1 if result.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
