"""Server images for the Docker provider, built here from Debian: no registry needed.

``python -m handbook.servers.images build`` makes, on the engine ``DOCKER_HOST`` names:

1. a base per Debian suite, ``handbook/debian:<suite>``: ``debootstrap --variant=minbase``
   from the mirror this machine's apt uses (``/etc/apt/sources.list.d/debian.sources``),
   finished by ``images/debian/finish.sh`` and loaded with ``docker import``;
2. one image per server in ``IMAGES``, from ``images/<server>/Dockerfile`` on that base
   (``docker build --network host``: the build reaches the Debian mirror from the host's
   network, no bridge is needed). Tags say what is inside: ``handbook/postgres:17-trixie``
   is Debian trixie's PostgreSQL 17, never a name that passes for an official image;
3. one image per program in ``PROGRAMS``: not a server the Docker provider maps, but a
   program a test runs in a container because this machine's Debian lacks a version
   that works (``handbook/pgbouncer-exporter:0.10-trixie``: trixie's Go pgbouncer_exporter,
   which reads PgBouncer 1.18's statistics; Debian 12's Python exporter cannot).

Each image carries the hash of what it was built from (``CONTENT_LABEL``: the build
context's files, the build arguments and the base image's id; for a base, the suite,
the mirror and ``finish.sh``). An image whose label matches is a cache hit and is not
rebuilt (the log says so); a changed Dockerfile or base rebuilds what depends on it. A
fresh build is checked to hold the version its tag names.

``python -m handbook.servers.images env`` prints the ``HANDBOOK_DOCKER_IMAGES`` value
that points the Docker provider (``docker.py``) at the server images instead of the
official ones (``PROGRAMS`` are not servers: their tests find them by tag). Only the
standard library and the ``docker`` and ``debootstrap`` programs are used, so
``.ci/run`` runs this with the system's ``python3`` before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import ROOT

IMAGES_DIR = ROOT / "images"
CONTENT_LABEL = "org.erpgo.handbook.content"
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# debootstrap writes a few hundred MB: somewhere on disk, not a small tmpfs.
WORK_DIR_VAR = "HANDBOOK_DOCKER_ROOT"
DEFAULT_WORK_DIR = Path("/var/tmp/handbook-docker")


@dataclass(frozen=True)
class Image:
    label: str  # the Docker provider's server label: "pg17", "redis8.0", "valkey8.1"
    tag: str  # "handbook/postgres:17-trixie"
    context: str  # the dir under images/ holding its Dockerfile
    suite: str  # the Debian suite of its base
    args: dict[str, str] = field(default_factory=dict)  # docker build --build-arg
    # the command that prints the server's version, and the version the tag promises
    version_command: tuple[str, ...] = ()
    version: str = ""

    @property
    def base(self) -> str:
        return base_tag(self.suite)


IMAGES = (
    Image("pg15", "handbook/postgres:15-bookworm", "postgres", "bookworm", {"PG_MAJOR": "15"},
          ("postgres", "--version"), "15"),
    Image("pg17", "handbook/postgres:17-trixie", "postgres", "trixie", {"PG_MAJOR": "17"},
          ("postgres", "--version"), "17"),
    Image("redis7.0", "handbook/redis:7.0-bookworm", "redis", "bookworm", {},
          ("redis-server", "--version"), "7.0"),
    Image("redis8.0", "handbook/redis:8.0-trixie", "redis", "trixie", {},
          ("redis-server", "--version"), "8.0"),
    Image("valkey8.1", "handbook/valkey:8.1-trixie", "valkey", "trixie", {},
          ("valkey-server", "--version"), "8.1"),
)  # fmt: skip

# prometheus-community's pgbouncer_exporter as Debian trixie packages it (the Dockerfile
# pins the package version); tests/test_pgbouncer.py runs it against a test pooler.
PGBOUNCER_EXPORTER = Image(
    "pgbouncer-exporter0.10", "handbook/pgbouncer-exporter:0.10-trixie", "pgbouncer-exporter",
    "trixie", {}, ("/usr/bin/prometheus-pgbouncer-exporter", "--version"), "0.10",
)  # fmt: skip
PROGRAMS = (PGBOUNCER_EXPORTER,)


class BuildError(RuntimeError):
    """A step of the build failed; the message names the step and what to do."""


def base_tag(suite: str) -> str:
    return f"handbook/debian:{suite}"


def log(message: str) -> None:
    print(f"images: {message}", flush=True)  # one call, one line: safe from two threads


# -- the Debian mirror this machine uses ---------------------------------------------


def mirrors(sources: Path = APT_SOURCES) -> tuple[str, str]:
    """(main mirror URI, security URI or "") from a deb822 sources file."""
    main, security = "", ""
    try:
        text = sources.read_text()
    except OSError:
        return DEFAULT_MIRROR, ""
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(
            (key.strip().lower(), value.strip())
            for key, _, value in (
                line.partition(":") for line in stanza.splitlines() if not line.startswith("#")
            )
            if value
        )
        uris, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
        if not uris or "deb" not in fields.get("types", "deb").split():
            continue
        if any(s.endswith("-security") for s in suites):
            security = security or uris[0]
        else:
            main = main or uris[0]
    return main or DEFAULT_MIRROR, security


# -- docker, run as a program --------------------------------------------------------


def docker_program() -> str:
    found = shutil.which("docker")
    if not found:
        raise BuildError(
            "no `docker` program: install Debian's docker.io (.ci/run does), "
            "then start an engine and point DOCKER_HOST at it"
        )
    return found


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the engine's own builder, on any CLI
    result = subprocess.run([docker_program(), *args], env=env, check=False, **kwargs)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()[-20:]
        raise BuildError(
            f"`docker {' '.join(args[:3])} ...` failed (exit {result.returncode}):\n"
            + "\n".join("    " + line for line in detail)
        )
    return result


def image_label(tag: str, label: str = CONTENT_LABEL) -> str | None:
    """The image's ``label`` value; None when there is no such image."""
    result = docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag, check=False)
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout or "null") or {}
    return labels.get(label, "")


def image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


# -- content hashes ------------------------------------------------------------------


def _hash(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def base_key(suite: str, mirror: str, security: str) -> str:
    finish = (IMAGES_DIR / "debian" / "finish.sh").read_bytes()
    return _hash([b"minbase", suite.encode(), mirror.encode(), security.encode(), finish])


def image_key(image: Image, base_id: str) -> str:
    context = IMAGES_DIR / image.context
    parts = [base_id.encode(), json.dumps(image.args, sort_keys=True).encode()]
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        parts += [path.relative_to(context).as_posix().encode(), path.read_bytes()]
        parts.append(b"x" if os.access(path, os.X_OK) else b"-")
    return _hash(parts)


# -- building ------------------------------------------------------------------------


def work_dir() -> Path:
    path = Path(os.environ.get(WORK_DIR_VAR) or DEFAULT_WORK_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_base(suite: str, mirror: str, security: str) -> bool:
    """``handbook/debian:<suite>``; True when it had to be built."""
    tag, key = base_tag(suite), base_key(suite, mirror, security)
    if image_label(tag) == key:
        log(f"{tag}: cache hit (content {key[:12]}), nothing built")
        return False
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").is_file() else None
    )
    if not debootstrap:
        raise BuildError("no `debootstrap`: apt-get install debootstrap (.ci/run does)")
    log(f"{tag}: building (content {key[:12]}): debootstrap --variant=minbase {suite} {mirror}")
    start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=f"rootfs-{suite}-", dir=work_dir()))
    try:
        rootfs = root / "rootfs"
        result = subprocess.run(
            [debootstrap, "--variant=minbase", suite, str(rootfs), mirror],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise BuildError(
                f"debootstrap {suite} from {mirror} failed (exit {result.returncode}):\n"
                + "\n".join("    " + line for line in tail)
            )
        shutil.copy2(IMAGES_DIR / "debian" / "finish.sh", rootfs / "finish.sh")
        result = subprocess.run(
            ["chroot", str(rootfs), "/bin/sh", "/finish.sh", suite, mirror, security],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise BuildError(
                f"images/debian/finish.sh failed in the {suite} root:\n{result.stderr}"
            )
        (rootfs / "finish.sh").unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            docker(
                "import",
                "--change", f"LABEL {CONTENT_LABEL}={key}",
                "--change", "ENV LANG=C.UTF-8",
                "--change", 'CMD ["bash"]',
                "-", tag,
                stdin=tar.stdout,
            )  # fmt: skip
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    log(f"{tag}: built in {time.monotonic() - start:.0f} s")
    return True


def check_version(image: Image) -> str:
    """The version the image's server reports; BuildError if the tag would lie."""
    done = docker("run", "--rm", "--network", "none", "--entrypoint", image.version_command[0],
                  image.tag, *image.version_command[1:])  # fmt: skip
    output = done.stdout + done.stderr  # Go programs print --version on stderr
    # "v=7.0.15" (Redis, Valkey), "(PostgreSQL) 17.6", "version 0.10.2" (Go programs)
    match = re.search(r"(?:v=|\(PostgreSQL\)\s+|\bversion\s+)(\d+(?:\.\d+)*)", output)
    found = match.group(1) if match else ""
    if found != image.version and not found.startswith(image.version + "."):
        raise BuildError(
            f"{image.tag} holds {output.strip()!r}, not version {image.version}: Debian "
            f"{image.suite} ships another version now; fix the tag and label in IMAGES "
            f"({__name__})"
        )
    return found


def build_image(image: Image) -> bool:
    """One server image; True when it had to be built."""
    key = image_key(image, image_id(image.base))
    if image_label(image.tag) == key:
        log(f"{image.tag}: cache hit (content {key[:12]}), nothing built")
        return False
    log(f"{image.tag}: building (content {key[:12]}) from images/{image.context}/Dockerfile")
    start = time.monotonic()
    args = [arg for k, v in {"SUITE": image.suite, **image.args}.items()
            for arg in ("--build-arg", f"{k}={v}")]  # fmt: skip
    docker(
        "build", "--network", "host", "--label", f"{CONTENT_LABEL}={key}",
        *args, "--tag", image.tag, str(IMAGES_DIR / image.context),
    )  # fmt: skip
    version = check_version(image)
    log(f"{image.tag}: built in {time.monotonic() - start:.0f} s, holds version {version}")
    return True


def select(labels: Sequence[str]) -> list[Image]:
    """The images of ``labels``, servers and programs alike; all of them by default."""
    if not labels:
        return [*IMAGES, *PROGRAMS]
    known = {image.label: image for image in (*IMAGES, *PROGRAMS)}
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise BuildError(f"no image for {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[label] for label in labels]


def build(labels: Sequence[str] = ()) -> int:
    """Build (or find cached) every image in ``labels`` (default: all); returns how many
    images, bases included, had to be built."""
    images = select(labels)
    start = time.monotonic()
    mirror, security = mirrors()

    def chain(suite: str) -> int:
        """One suite's base, then its images, in order."""
        done = build_base(suite, mirror, security)
        return done + sum(build_image(image) for image in images if image.suite == suite)

    # The suites' chains are independent and mostly wait on the mirror: side by side.
    suites = list(dict.fromkeys(image.suite for image in images))
    with ThreadPoolExecutor(max_workers=len(suites)) as chains:
        built = sum(chains.map(chain, suites))
    if built:
        # Images a rebuild replaced keep their layers until pruned.
        docker("image", "prune", "--force", "--filter", f"label={CONTENT_LABEL}", check=False)
    log(f"{built} image(s) built, {len(images) + len(set(i.suite for i in images)) - built} "
        f"cached, in {time.monotonic() - start:.0f} s")  # fmt: skip
    return built


def mapping(labels: Sequence[str] = ()) -> str:
    """The HANDBOOK_DOCKER_IMAGES value naming these images (servers only: the Docker
    provider maps server labels; ``PROGRAMS`` are found by their tag)."""
    return ",".join(f"{image.label}={image.tag}" for image in select(labels) if image in IMAGES)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.servers.images",
        description="Build the Docker provider's server images from Debian (no registry).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build what is missing or changed (cached by content)")
    build_cmd.add_argument(
        "labels", nargs="*", help="only these (pg15, redis8.0, pgbouncer-exporter0.10, ...)"
    )
    env_cmd = sub.add_parser("env", help="print the HANDBOOK_DOCKER_IMAGES value for the images")
    env_cmd.add_argument("labels", nargs="*")
    sub.add_parser("list", help="list the images: label, tag, Debian suite, kind")
    options = parser.parse_args(argv)
    try:
        if options.command == "build":
            build(options.labels)
        elif options.command == "env":
            print(mapping(options.labels))
        else:
            for image in (*IMAGES, *PROGRAMS):
                kind = "server" if image in IMAGES else "program"
                print(f"{image.label}\t{image.tag}\tDebian {image.suite}\t{kind}")
    except BuildError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
