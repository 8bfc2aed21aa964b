"""The Docker provider on a real engine: images built here, servers on loopback, no leftovers.

The engine tests need a Docker engine (``DOCKER_HOST``; ``.ci/run`` starts a private one
with ``images/engine.sh start``) holding the images ``python -m handbook.servers.images
build`` makes, named in ``HANDBOOK_DOCKER_IMAGES`` (``python -m handbook.servers.images
env`` prints the value). Without them they skip saying what is missing; under
``CI=true`` that is a failure. The mapping and the image recipes are tested without one.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import childrun
import docker as docker_sdk
import pytest

from handbook.paths import ROOT
from handbook.pytest_plugin import unavailable
from handbook.servers import ServerConfigError, ServerPool, dockerengine, images, production
from handbook.servers import docker as provider

ENGINE = dockerengine.engine_available()
MAPPED = provider.images() if os.environ.get(provider.IMAGES_VAR, "").strip() else {}
IMAGE_LABELS = [image.label for image in images.IMAGES]


def need_engine() -> docker_sdk.DockerClient:
    """A client of the engine holding the mapped images, or skip (fail under CI) saying why."""
    if not ENGINE:
        unavailable(
            "no Docker engine answers (DOCKER_HOST): start one (as root: "
            "`images/engine.sh start`, as .ci/run does) and export the DOCKER_HOST it prints"
        )
    if not MAPPED:
        unavailable(
            f"{provider.IMAGES_VAR} is not set: build the images (`python -m "
            "handbook.servers.images build`) and export "
            f"{provider.IMAGES_VAR}=$(python -m handbook.servers.images env)"
        )
    client = docker_sdk.from_env()
    missing = []
    for image in MAPPED.values():
        try:
            client.images.get(image)
        except docker_sdk.errors.ImageNotFound:
            missing.append(image)
    if missing:
        client.close()
        unavailable(
            f"the engine lacks {', '.join(missing)}: `python -m handbook.servers.images build`"
        )
    return client


@pytest.fixture(scope="module")
def engine():
    client = need_engine()
    yield client
    client.close()


@pytest.fixture(scope="module")
def pool(engine):
    pool = ServerPool(pg="docker", redis="docker", reap=False)
    yield pool
    pool.stop_all()


def ours(client: docker_sdk.DockerClient, ids: list[str]) -> list[str]:
    """Those of the container ``ids`` the engine still has (running or not)."""
    found = client.containers.list(all=True, filters={"label": dockerengine.RUN_LABEL})
    return [c.id for c in found if c.id in ids]


# -- the mapping and the recipes: no engine needed --------------------------------------


def test_the_mapping_replaces_the_official_tags_and_errors_name_the_variable():
    assert provider.images({}) == provider.DEFAULT_IMAGES
    for image in provider.DEFAULT_IMAGES.values():
        assert re.fullmatch(r"[a-z/]+:\d+\.\d+(\.\d+)?", image), "exact tags, never latest"
    value = "pg17=handbook/postgres:17-trixie, valkey8.1=handbook/valkey:8.1-trixie"
    environ = {provider.IMAGES_VAR: value}
    assert provider.images(environ) == {
        "pg17": "handbook/postgres:17-trixie",
        "valkey8.1": "handbook/valkey:8.1-trixie",
    }
    (pg,) = provider.pg_candidates(environ=environ)
    (valkey,) = provider.redis_candidates(environ=environ)
    assert (pg.base_label, pg.origin, pg.provider) == (
        "pg17",
        "handbook/postgres:17-trixie",
        "docker",
    )
    assert (valkey.base_label, valkey.product) == ("valkey8.1", "Valkey")
    # An official tag's own version wins when it is on the label's line.
    (official,) = provider.pg_candidates(environ={provider.IMAGES_VAR: "pg15=postgres:15.20"})
    assert official.version == "15.20"
    for bad, why in [
        ("pg17", "names no image"),
        ("postgres17=handbook/postgres:17-trixie", "is not a server label"),
        ("pg17=a:17,pg17=b:17", "named twice"),
        ("pg17=a:17,,redis7.0=b:7.0", "empty entry"),
    ]:
        with pytest.raises(ServerConfigError, match=why) as err:
            provider.images({provider.IMAGES_VAR: bad})
        assert provider.IMAGES_VAR in str(err.value) and "label=image" in str(err.value)


def test_image_tags_say_what_is_inside():
    assert len(set(IMAGE_LABELS)) == len(IMAGE_LABELS)
    for image in images.IMAGES:
        name, _, tag = image.tag.partition(":")
        assert name == f"handbook/{image.context}", "never a name that passes for an official image"
        assert tag == f"{image.version}-{image.suite}", image.tag
        assert image.label.endswith(image.version), image.label
        assert (images.IMAGES_DIR / image.context / "Dockerfile").is_file()
    mapped = provider.images({provider.IMAGES_VAR: images.mapping()})
    assert mapped == {image.label: image.tag for image in images.IMAGES}
    # The matrix the issue asks for, beside the local PostgreSQL and Redis.
    assert {"pg15", "pg17", "redis7.0", "redis8.0", "valkey8.1"} <= set(mapped)


def test_the_cache_key_follows_everything_an_image_is_built_from(tmp_path, monkeypatch):
    copy = tmp_path / "images"
    shutil.copytree(images.IMAGES_DIR, copy)
    monkeypatch.setattr(images, "IMAGES_DIR", copy)
    pg17 = next(image for image in images.IMAGES if image.label == "pg17")
    key = images.image_key(pg17, "sha256:base")
    assert images.image_key(pg17, "sha256:base") == key, "the same content, the same key"
    assert images.image_key(pg17, "sha256:another-base") != key
    pg15 = next(image for image in images.IMAGES if image.label == "pg15")
    assert images.image_key(pg15, "sha256:base") != key, "build arguments count"
    entrypoint = copy / "postgres" / "docker-entrypoint.sh"
    entrypoint.write_text(entrypoint.read_text() + "# changed\n")
    assert images.image_key(pg17, "sha256:base") != key
    base = images.base_key("trixie", "http://deb.debian.org/debian", "")
    assert images.base_key("bookworm", "http://deb.debian.org/debian", "") != base
    (copy / "debian" / "finish.sh").write_text("#!/bin/sh\n")
    assert images.base_key("trixie", "http://deb.debian.org/debian", "") != base


def test_the_image_builder_needs_only_the_standard_library():
    # .ci/run builds the images with the system's python3, before any virtualenv exists:
    # -S leaves site-packages out, so a third-party import anywhere on the way fails.
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import handbook.servers.images"
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, (
        "handbook/servers/images.py (or a module it imports) needs a package outside the "
        f"standard library; keep those imports inside functions:\n{result.stderr}"
    )


def test_the_mirror_comes_from_the_machines_apt_sources(tmp_path):
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm "
        "bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/"
        "debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert images.mirrors(sources) == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )
    assert images.mirrors(tmp_path / "none") == (images.DEFAULT_MIRROR, "")


# -- on the engine -------------------------------------------------------------------


def test_a_second_build_builds_nothing(engine):
    result = subprocess.run(
        [sys.executable, "-m", "handbook.servers.images", "build", *MAPPED],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for image in images.select(list(MAPPED)):
        assert f"images: {image.tag}: cache hit" in result.stdout, result.stdout
    assert "images: 0 image(s) built" in result.stdout, result.stdout


def test_auto_runs_each_version_line_once_and_a_list_runs_the_twins(engine):
    auto = ServerPool(pg="auto", redis="auto", reap=False)
    local = ServerPool(pg="local", redis="local", reap=False)
    both = ServerPool(pg="local,docker", redis="local,docker", reap=False)
    for kind in ("pg", "redis"):
        local_labels = local.labels(kind, required=False)
        mapped = [label for label in MAPPED if (label.startswith("pg")) == (kind == "pg")]
        # auto: the local servers, and Docker only for the version lines they lack
        labels = auto.labels(kind)
        assert sorted(labels) == sorted(set(local_labels) | set(mapped)), labels
        docker_labels = [c.label for c in auto.candidates(kind) if c.provider == "docker"]
        assert set(docker_labels) == set(mapped) - set(local_labels), docker_labels
        twins = set(mapped) & set(local_labels)
        for label in twins:
            assert any(label in note and "not used" in note for note in auto.notes), auto.notes
        # local,docker: every image runs, the twin of a local one as LABEL-docker
        docker_labels = [c.label for c in both.candidates(kind) if c.provider == "docker"]
        expected = {label if label not in twins else f"{label}-docker" for label in mapped}
        assert set(docker_labels) == expected, both.labels(kind)


@pytest.mark.parametrize("label", IMAGE_LABELS)
def test_a_docker_server_listens_on_loopback_and_is_labelled_with_the_run(pool, label):
    if label not in MAPPED:
        unavailable(f"{provider.IMAGES_VAR} maps no image to {label}")
    server = pool.get(label)
    assert server.provider == "docker" and server.origin == MAPPED[label]
    version = next(image.version for image in images.IMAGES if image.label == label)
    assert server.version.startswith(version + "."), f"{server.origin} holds {server.version}"
    container = server.handle.get_wrapped_container()
    container.reload()
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    labels = container.labels
    assert labels[dockerengine.RUN_LABEL] == dockerengine.RUN_ID
    assert labels[dockerengine.PID_LABEL] == str(os.getpid())
    assert labels[dockerengine.SERVER_LABEL] == label
    env = server.env("admin")
    if server.kind == "pg":
        assert env["PGHOST"] == "127.0.0.1"
        shown = subprocess.run(
            ["psql", "-X", "-At", "-c", "SHOW listen_addresses"],
            env=env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert shown.strip() == "127.0.0.1"
        # The data directory is a host directory at the same path, as on a database host.
        datadir = subprocess.run(
            ["psql", "-X", "-At", "-c", "SHOW data_directory"],
            env=env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        assert Path(datadir).is_dir() and Path(datadir).parent == server.scratch, datadir
        # pg_dump, pg_basebackup, pg_verifybackup...: the server's own major version.
        for program in provider.VERSION_BOUND:
            shown = subprocess.run(
                [program, "--version"], env=env, capture_output=True, text=True, timeout=60,
                check=True,
            ).stdout  # fmt: skip
            assert f"(PostgreSQL) {server.major[0]}." in shown, (program, shown, server.bindir)
    else:
        shown = subprocess.run(
            ["redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], "CONFIG", "GET", "bind"],
            env=env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert shown.split()[1:] == ["127.0.0.1"], shown
    # Booted from conf/ as production runs, like the local servers.
    if server.kind == "pg":
        query = ["psql", "-X", "-At", "-c", "SHOW random_page_cost"]  # 4 by default
        expected = next(s.value for s in production.parse() if s.key == "random_page_cost")
    else:
        query = ["redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], "CONFIG", "GET",
                 "maxmemory-policy"]  # fmt: skip
        expected = next(
            " ".join(args)
            for key, args, _ in production.redis_directives(production.REDIS_CONF.read_text())
            if key == "maxmemory-policy"
        )
    shown = subprocess.run(
        query, env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()[-1]
    assert shown == expected, (query, shown, expected)


@pytest.mark.parametrize("kind", ["pg", "redis"])
def test_a_port_taken_before_the_server_binds_it_is_retried_on_another(engine, kind, monkeypatch):
    """Another program takes the free port chosen for a container: a fresh port, not a failure."""
    if not provider.host_network():
        pytest.skip("only on the host's network does the provider choose the port")
    label = next((label for label in MAPPED if label.startswith(kind)), None)
    if label is None:
        unavailable(f"{provider.IMAGES_VAR} maps no {kind} image")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real = provider.free_port
        monkeypatch.setattr(provider, "free_port", lambda: next(ports, None) or real())
        pool = ServerPool(pg="docker", redis="docker", reap=False)
        try:
            server = pool.get(label)
            assert server.port != busy
            assert server.env("admin"), "the retried server answers"
        finally:
            pool.stop_all()


SNIPPET = """\
    -- Checkpoint counters: in pg_stat_bgwriter up to 16, moved out in 17
    -- page: x.md
    SELECT checkpoints_timed FROM pg_stat_bgwriter;
    """


def test_a_snippet_failing_on_one_version_fails_naming_it(engine, pytester, monkeypatch):
    pg = {label: image for label, image in MAPPED.items() if label in ("pg15", "pg17")}
    if len(pg) < 2:
        unavailable(f"{provider.IMAGES_VAR} must map pg15 and pg17 for this test")
    pytester.makeconftest('pytest_plugins = ["handbook.pytest_plugin"]\n')
    path = pytester.path / "snippets" / "sql" / "checkpoints.sql"
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent(SNIPPET))
    mapping = ",".join(f"{label}={image}" for label, image in pg.items())
    monkeypatch.setenv(provider.IMAGES_VAR, mapping)
    result = childrun.run_pytester(pytester, "-rA", "--pg", "docker")
    out = result.stdout.str()
    assert result.parseoutcomes().get("passed") == 1, out
    assert result.parseoutcomes().get("failed") == 1, out
    assert re.search(r"PASSED snippets/sql/checkpoints.sql::pg15\b", out), out
    assert re.search(r"FAILED snippets/sql/checkpoints.sql::pg17\b", out), out
    assert re.search(
        r'snippets/sql/checkpoints.sql:3: ERROR: column "checkpoints_timed" does not exist '
        r"\(PostgreSQL 17\.\d+, docker\)",
        out,
    ), out


# -- nothing survives --------------------------------------------------------------------

CHILD_TEST = """
import json, os, time
from pathlib import Path
from handbook.servers import ServerPool

def test_start_containers_then_fail():
    pool = ServerPool(pg="docker", redis="docker")
    labels = os.environ["CHILD_LABELS"].split(",")
    servers = [pool.get(label) for label in labels]
    ids = [s.handle.get_wrapped_container().id for s in servers]
    Path(os.environ["CHILD_REPORT"]).write_text(json.dumps(ids))
    if os.environ.get("CHILD_WAIT"):
        time.sleep(120)
    assert False, "this test fails on purpose"
"""

NEXT_RUN = """
from handbook.servers import ServerPool

def test_list_the_docker_servers():
    assert ServerPool(pg="docker", redis="docker").labels("pg")
"""


def _child(tmp_path: Path, labels: list[str], wait: bool) -> tuple[subprocess.Popen, Path]:
    report = tmp_path / "report.json"
    proc = childrun.start_pytest(
        tmp_path, "test_child.py", CHILD_TEST,
        CHILD_LABELS=",".join(labels), CHILD_REPORT=str(report), CHILD_WAIT="1" if wait else "",
    )  # fmt: skip
    return proc, report


def _wait_for(report: Path, proc: subprocess.Popen) -> list[str]:
    return childrun.wait_for_report(report, proc, 120, "the child never started its containers")


def _first(kind: str) -> str:
    labels = [label for label in MAPPED if label.startswith("pg") == (kind == "pg")]
    if not labels:
        unavailable(f"{provider.IMAGES_VAR} maps no {kind} image")
    return labels[0]


def test_a_failing_run_leaves_no_container(engine, tmp_path):
    proc, report = _child(tmp_path, [_first("redis")], wait=False)
    output = childrun.finish(proc, 180, "a run whose test fails")
    assert proc.returncode == 1, output
    assert "this test fails on purpose" in output and "could not clean up" not in output
    ids = json.loads(report.read_text())
    assert len(ids) == 1 and ours(engine, ids) == [], output


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGINT, 2), (signal.SIGTERM, -signal.SIGTERM)],
    ids=["ctrl-c", "sigterm"],
)
def test_an_interrupted_run_leaves_no_container(engine, tmp_path, signum, exit_code):
    proc, report = _child(tmp_path, [_first("redis")], wait=True)
    ids = _wait_for(report, proc)
    os.killpg(proc.pid, signum)  # Ctrl-C in a terminal signals the whole process group
    output = childrun.finish(proc, 120, f"a run sent {signum.name}")
    assert proc.returncode == exit_code, output
    assert ours(engine, ids) == [], f"left behind after {signum.name}:\n{output}"


def test_a_killed_run_leaves_containers_that_the_next_run_removes(engine, tmp_path):
    proc, report = _child(tmp_path, [_first("pg"), _first("redis")], wait=True)
    ids = _wait_for(report, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # nothing runs after SIGKILL: no atexit, no handler
    childrun.finish(proc, 60, "a run sent SIGKILL")
    assert sorted(ours(engine, ids)) == sorted(ids), "SIGKILL should have left both behind"
    following = childrun.start_pytest(tmp_path, "test_next.py", NEXT_RUN)
    output = childrun.finish(following, 180, "the run after the killed one")
    assert following.returncode == 0, output
    assert ours(engine, ids) == [], "the next run did not remove what the killed one left"


def test_only_the_engines_not_found_answer_means_an_image_is_missing(engine, monkeypatch):
    """An image the engine has, one it lacks, and an engine that does not answer: only the
    second is "the Docker engine has no ..." (a loaded engine's timeout once was)."""
    have = next(iter(MAPPED.values()))
    assert not provider._built_here_missing(have), f"{have} is built here but reported missing"
    assert provider._built_here_missing("handbook/postgres:0-never-built")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with warnings.catch_warnings():
        # docker-py's unix transport leaves a socket that failed to connect to the GC
        warnings.simplefilter("ignore", ResourceWarning)
        unanswered = provider._built_here_missing("handbook/postgres:0-never-built")
        gc.collect()
    assert not unanswered, (
        "an engine that does not answer is not an engine without the image: the start must "
        "fail with the engine's own error (handbook/servers/docker.py _built_here_missing)"
    )


def test_a_pool_told_there_is_no_engine_offers_no_docker_server(engine):
    """An xdist worker takes the controller's answer (pytest_configure_node's
    ``handbook_docker``) instead of asking the engine again: with an engine that answers,
    a pool told "no engine" offers only local servers, as the controller's would."""
    told = ServerPool(pg="auto", redis="auto", reap=False)
    told.assume_docker(False)
    asked = ServerPool(pg="auto", redis="auto", reap=False)
    assert "docker" in asked.providers("pg"), "this engine answers: auto should use it"
    assert "docker" not in told.providers("pg") + told.providers("redis")
