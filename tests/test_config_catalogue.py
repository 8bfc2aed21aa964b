"""The ERPGo options catalogue and the environment files checked against it.

The real files must pass; each broken copy (made in a temp dir) must fail with a message
naming the file, the line, the key and what to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handbook.confcheck import config_catalogue as cc
from handbook.paths import ROOT, rel

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.4")]

# The seed's table of documented options per category: the catalogue has at least these.
SEED_MINIMUM = {
    "application": 4,
    "database": 10,
    "cache": 7,
    "authentication": 7,
    "rate-limiting": 5,
    "monitoring": 5,
    "backup": 4,
}


def test_real_catalogue_and_environments_are_valid():
    catalogue, environments = cc.load_all()
    assert len(catalogue.options) >= 50, (
        f"{rel(cc.CATALOGUE)}: {len(catalogue.options)} options; the reference promises 50+"
    )
    for category, minimum in SEED_MINIMUM.items():
        found = len(catalogue.in_category(category))
        assert found >= minimum, (
            f"{rel(cc.CATALOGUE)}: category {category} has {found} options, the seed documents "
            f"{minimum}: add the missing ones"
        )
    assert sorted(environments) == sorted(cc.ENVIRONMENTS)
    assert catalogue.secrets(), "the catalogue declares no secret; the security page lists them"


def test_secrets_in_environment_files_are_only_references():
    catalogue, environments = cc.load_all()
    for env in environments.values():
        for option in catalogue.secrets():
            text = env.value_text(option)
            if text is not None:
                assert text.startswith(f"secret://erpgo-{env.name}/"), (
                    f"{rel(env.path)}:{env.settings[option.name].line}: {option.name} must be a "
                    "reference into this environment's secret store"
                )


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A private copy of conf/erpgo to break."""
    target = tmp_path / "erpgo"
    shutil.copytree(cc.CATALOGUE.parent, target)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (which must occur once) with ``new``; the 1-based line of the change."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"test setup: {old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1 + new[: len(new) - len(new.lstrip())].count("\n")


def catalogue_error(conf: Path) -> str:
    with pytest.raises(cc.ConfigError) as info:
        cc.load_catalogue(conf / "options.yml")
    return str(info.value)


def environment_error(conf: Path, name: str = "production") -> str:
    catalogue = cc.load_catalogue(conf / "options.yml")
    with pytest.raises(cc.ConfigError) as info:
        cc.load_environments(catalogue, [conf / f"{name}.env"])
    return str(info.value)


def where(conf: Path, file: str, line: int) -> str:
    return f"{rel(conf / file)}:{line}: "


# -- the catalogue ---------------------------------------------------------------------------


def test_secret_with_a_default_fails(conf: Path):
    line = edit(
        conf / "options.yml",
        "    secret: true\n    required: true\n    description: Password of ERPGO_DB_USER.",
        "    secret: true\n    required: true\n    default: changeme\n"
        "    description: Password of ERPGO_DB_USER.",
    )
    message = catalogue_error(conf)
    assert where(conf, "options.yml", line + 2) + "ERPGO_DB_PASSWORD is a secret" in message
    assert "remove 'default'" in message


def test_unknown_field_in_catalogue_fails(conf: Path):
    line = edit(conf / "options.yml", "    default: 5432\n", "    defaults: 5432\n")
    message = catalogue_error(conf)
    assert where(conf, "options.yml", line) + "ERPGO_DB_PORT: unknown field 'defaults'" in message
    assert "did you mean 'default'?" in message


def test_default_of_the_wrong_type_fails(conf: Path):
    line = edit(conf / "options.yml", "    default: 5432\n", '    default: "5432"\n')
    message = catalogue_error(conf)
    assert where(conf, "options.yml", line) + "ERPGO_DB_PORT: default '5432'" in message
    assert "expects an integer (unquoted)" in message


def test_default_outside_the_range_fails(conf: Path):
    line = edit(conf / "options.yml", "    default: 5432\n", "    default: 70000\n")
    message = catalogue_error(conf)
    assert where(conf, "options.yml", line) + "ERPGO_DB_PORT: default 70000" in message
    assert "must be at most 65535" in message


def test_unknown_type_and_category_fail(conf: Path):
    line = edit(
        conf / "options.yml",
        "  - name: ERPGO_DB_NAME\n    category: database\n    type: string\n",
        "  - name: ERPGO_DB_NAME\n    category: storage\n    type: text\n",
    )
    message = catalogue_error(conf)
    assert where(conf, "options.yml", line + 1) + "ERPGO_DB_NAME: unknown category" in message
    assert where(conf, "options.yml", line + 2) + "ERPGO_DB_NAME: unknown type 'text'" in message


def test_duplicate_option_fails(conf: Path):
    path = conf / "options.yml"
    path.write_text(
        path.read_text(encoding="utf-8")
        + "  - name: ERPGO_ENV\n    category: application\n    type: string\n"
        "    secret: false\n    description: again\n",
        encoding="utf-8",
    )
    line = path.read_text(encoding="utf-8").count("\n") - 4
    message = catalogue_error(conf)
    assert where(conf, "options.yml", line) + "ERPGO_ENV is listed twice" in message


# -- the environment files ------------------------------------------------------------------


def test_unknown_key_fails(conf: Path):
    line = edit(conf / "production.env", "ERPGO_DB_MAX_OPEN_CONNS=", "ERPGO_DB_MAX_OPEN_CONN=")
    message = environment_error(conf)
    assert where(conf, "production.env", line) + "unknown option ERPGO_DB_MAX_OPEN_CONN" in message
    assert "did you mean ERPGO_DB_MAX_OPEN_CONNS?" in message


def test_wrong_type_fails(conf: Path):
    line = edit(
        conf / "production.env", "ERPGO_DB_MAX_OPEN_CONNS=25", "ERPGO_DB_MAX_OPEN_CONNS=lots"
    )
    message = environment_error(conf)
    assert where(conf, "production.env", line) + "ERPGO_DB_MAX_OPEN_CONNS='lots'" in message
    assert "expects an integer" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("ERPGO_REDIS_TLS=true", "ERPGO_REDIS_TLS=yes", "expects true or false"),
        ("ERPGO_LOG_LEVEL=info", "ERPGO_LOG_LEVEL=verbose", "expects one of debug, info"),
        (
            "ERPGO_DB_STATEMENT_TIMEOUT=30s",
            "ERPGO_DB_STATEMENT_TIMEOUT=30",
            "a duration with a unit",
        ),
        ("ERPGO_TRACING_SAMPLE_RATE=0.05", "ERPGO_TRACING_SAMPLE_RATE=5", "must be at most 1"),
        ("ERPGO_PUBLIC_URL=https://api.erpgo.example.com", "ERPGO_PUBLIC_URL=api", "absolute URL"),
    ],
)
def test_each_type_is_checked(conf: Path, old: str, new: str, expected: str):
    line = edit(conf / "production.env", old, new)
    message = environment_error(conf)
    key = new.split("=")[0]
    assert where(conf, "production.env", line) + key in message
    assert expected in message


def test_secret_with_a_literal_value_fails(conf: Path):
    line = edit(
        conf / "production.env",
        "ERPGO_DB_PASSWORD=secret://erpgo-production/db-password",
        "ERPGO_DB_PASSWORD=hunter2",
    )
    message = environment_error(conf)
    assert (
        where(conf, "production.env", line)
        + "ERPGO_DB_PASSWORD is a secret but has a literal value"
    ) in message
    assert "secret://erpgo-production/db-password" in message
    assert "hunter2" not in message, "the message must not repeat the leaked value"


def test_secret_from_another_environment_fails(conf: Path):
    line = edit(
        conf / "production.env",
        "ERPGO_REDIS_PASSWORD=secret://erpgo-production/",
        "ERPGO_REDIS_PASSWORD=secret://erpgo-staging/",
    )
    message = environment_error(conf)
    assert (
        where(conf, "production.env", line) + "ERPGO_REDIS_PASSWORD refers to the store" in message
    )


def test_reference_on_a_plain_option_fails(conf: Path):
    line = edit(
        conf / "production.env",
        "ERPGO_DB_HOST=postgres-pooler.erpgo-production.svc",
        "ERPGO_DB_HOST=secret://erpgo-production/db-host",
    )
    message = environment_error(conf)
    assert where(conf, "production.env", line) + "ERPGO_DB_HOST is not a secret" in message


def test_missing_required_option_fails(conf: Path):
    edit(
        conf / "production.env",
        "ERPGO_JWT_SIGNING_KEY=secret://erpgo-production/jwt-signing-key\n",
        "",
    )
    message = environment_error(conf)
    assert where(conf, "production.env", 1) + "ERPGO_JWT_SIGNING_KEY is required" in message
    assert "add ERPGO_JWT_SIGNING_KEY= with a reference" in message


def test_required_if_follows_its_flag(conf: Path):
    edit(conf / "development.env", "ERPGO_BACKUP_ENABLED=false", "ERPGO_BACKUP_ENABLED=true")
    message = environment_error(conf, "development")
    assert "ERPGO_BACKUP_BUCKET is required when ERPGO_BACKUP_ENABLED=true" in message
    assert "ERPGO_BACKUP_ENCRYPTION_KEY is required when ERPGO_BACKUP_ENABLED=true" in message


def test_syntax_duplicates_and_environment_name_fail(conf: Path):
    path = conf / "staging.env"
    path.write_text(
        path.read_text(encoding="utf-8").replace("ERPGO_ENV=staging", "ERPGO_ENV=production")
        + "export ERPGO_LOG_LEVEL=debug\nERPGO_DB_MAX_OPEN_CONNS=30\n",
        encoding="utf-8",
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    message = environment_error(conf, "staging")
    env_line = lines.index("ERPGO_ENV=production") + 1
    assert (
        where(conf, "staging.env", env_line) + "ERPGO_ENV=production in the file of the staging"
        in message
    )
    assert where(conf, "staging.env", len(lines) - 1) + "expected KEY=value" in message
    assert (
        where(conf, "staging.env", len(lines)) + "ERPGO_DB_MAX_OPEN_CONNS is set twice" in message
    )


def test_validation_snippet_runs_from_a_checkout():
    """snippets/shell/config/validate_environments.sh is lint-only for the harness (it needs
    the checkout as working directory): run it here, from the project root."""
    snippet = ROOT / "snippets" / "shell" / "config" / "validate_environments.sh"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(snippet)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{rel(snippet)}: exited {result.returncode}: {result.stderr}"
    assert result.stdout.rstrip().endswith("valid"), result.stdout


# -- the rendered reference ------------------------------------------------------------------


def build_reference(project: Path) -> subprocess.CompletedProcess:
    """Build a throwaway site whose one page renders the reference from project/conf/erpgo."""
    docs = project / "docs"
    docs.mkdir(parents=True)
    (project / "snippets").mkdir()
    (docs / "conf.py").write_text('extensions = ["myst_parser", "handbook.sphinxext"]\n')
    (docs / "index.md").write_text(
        "# Options\n\n```{configuration-reference}\n```\n\n```{required-secrets}\n```\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(docs), str(project / "_build")],
        cwd=project, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_reference_renders_every_option_and_environment(tmp_path: Path):
    shutil.copytree(cc.CATALOGUE.parent, tmp_path / "conf" / "erpgo")
    result = build_reference(tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "_build" / "index.html").read_text(encoding="utf-8")
    catalogue, environments = cc.load_all()
    for option in catalogue.options.values():
        assert f">{option.name}<" in html, f"{option.name} missing from the rendered reference"
    production = environments["production"].settings["ERPGO_TRACING_SAMPLE_RATE"].text
    assert f">{production}<" in html, "production's own ERPGO_TRACING_SAMPLE_RATE is not shown"
    assert ">secret://erpgo-production/db-password<" in html


def test_reference_build_fails_on_a_broken_environment_file(tmp_path: Path):
    shutil.copytree(cc.CATALOGUE.parent, tmp_path / "conf" / "erpgo")
    line = edit(
        tmp_path / "conf" / "erpgo" / "production.env",
        "ERPGO_DB_PASSWORD=secret://erpgo-production/db-password",
        "ERPGO_DB_PASSWORD=hunter2",
    )
    result = build_reference(tmp_path)
    assert result.returncode != 0, "a literal secret must fail the docs build"
    assert f"production.env:{line}: ERPGO_DB_PASSWORD is a secret" in result.stderr, result.stderr
