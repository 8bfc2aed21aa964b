"""ERPGo's configuration options: the catalogue and the per-environment files checked against it.

``conf/erpgo/options.yml`` lists every option (environment variable) ERPGo reads, with
its type, default, whether it is a secret and what it does. ``conf/erpgo/<env>.env``
(``KEY=value`` lines, ``#`` comments) sets the values of one environment. Rules:

- the catalogue: known fields only, a known type and category, a default that fits the
  type, and no default for a secret;
- an environment file: known options only, each once, values that parse as the option's
  type, secrets only as a reference ``secret://erpgo-<env>/<name>`` (never a value), and
  every ``required`` option set (``required_if``: when the named boolean is true).

Every problem reads ``file:line: what is wrong; what to do``. ``python -m
handbook.confcheck.config_catalogue`` checks the project's files.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from handbook import yamlfile
from handbook.paths import CONF, rel

CATALOGUE = CONF / "erpgo" / "options.yml"
ENVIRONMENTS = ("development", "staging", "production")
TYPES = ("string", "integer", "number", "boolean", "duration", "enum", "url", "list")
FIELDS = {
    "name", "category", "type", "default", "secret", "required", "required_if",
    "allowed", "min", "max", "unit", "description",
}  # fmt: skip
NEEDED = ("name", "category", "type", "secret", "description")
NAME = re.compile(r"^ERPGO_[A-Z][A-Z0-9_]*$")
# Go's time.ParseDuration syntax: 1h30m, 500ms, 30s (a unit is required).
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
BOOLEANS = {"true": True, "false": False}
REFERENCE = re.compile(r"^secret://(?P<store>[a-z0-9][a-z0-9-]*)/(?P<key>[a-z0-9][a-z0-9._-]*)$")
ENV_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


class ConfigError(ValueError):
    """The catalogue or an environment file breaks the rules; one ``file:line: ...`` a line."""


@dataclass(frozen=True)
class Option:
    name: str
    category: str
    type: str
    description: str
    secret: bool = False
    required: bool = False
    required_if: str | None = None
    default: object = None  # None: no default (unset unless an environment sets it)
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    line: int = 0

    @property
    def has_default(self) -> bool:
        return self.default is not None

    def default_text(self) -> str:
        """The default as it would be written in an environment file."""
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return "" if self.default is None else str(self.default)

    def parse(self, text: str) -> object:
        """The value ``text`` stands for; ``ValueError`` saying what is accepted."""
        kind = self.type
        if kind == "string":
            return text
        if kind == "list":
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind == "boolean":
            if text not in BOOLEANS:
                raise ValueError("expects true or false")
            return BOOLEANS[text]
        if kind == "enum":
            if text not in self.allowed:
                raise ValueError(f"expects one of {', '.join(self.allowed)}")
            return text
        if kind == "duration":
            if not DURATION.match(text):
                raise ValueError("expects a duration with a unit, such as 500ms, 30s, 5m or 1h30m")
            return text
        if kind == "url":
            parts = urlsplit(text)
            if not (parts.scheme and parts.netloc) or " " in text:
                raise ValueError("expects an absolute URL such as https://host/path")
            return text
        try:
            number = int(text) if kind == "integer" else float(text)
        except ValueError:
            raise ValueError(
                "expects an integer" if kind == "integer" else "expects a number"
            ) from None
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"must be at least {_num(self.minimum)}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"must be at most {_num(self.maximum)}")
        return number

    def accepts(self) -> str:
        """What values are accepted, for the reference table."""
        if self.type == "enum":
            return " | ".join(self.allowed)
        if self.minimum is not None or self.maximum is not None:
            low = _num(self.minimum) if self.minimum is not None else ""
            high = _num(self.maximum) if self.maximum is not None else ""
            return f"{low}..{high}"
        return ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class Catalogue:
    path: Path
    categories: dict[str, str]  # key -> title, in page order
    options: dict[str, Option]

    def in_category(self, category: str) -> list[Option]:
        return [o for o in self.options.values() if o.category == category]

    def secrets(self) -> list[Option]:
        return [o for o in self.options.values() if o.secret]


@dataclass(frozen=True)
class Setting:
    key: str
    text: str
    line: int


@dataclass
class Environment:
    name: str  # "production", from the file name
    path: Path
    settings: dict[str, Setting] = field(default_factory=dict)

    def value_text(self, option: Option) -> str | None:
        """The text this environment sets for ``option``, or None when it keeps the default."""
        setting = self.settings.get(option.name)
        return setting.text if setting else None


# -- the catalogue -------------------------------------------------------------------------


def _problem(path: Path, line: int, message: str) -> str:
    return f"{rel(path)}:{line or 1}: {message}"


def _check_default(option: Option, raw: object) -> str | None:
    """Why ``raw`` (as YAML loaded it) is no default for ``option``, or None."""
    kind = option.type
    if kind == "boolean" and not isinstance(raw, bool):
        return "expects true or false (unquoted)"
    if kind == "integer" and (isinstance(raw, bool) or not isinstance(raw, int)):
        return "expects an integer (unquoted)"
    if kind == "number" and (isinstance(raw, bool) or not isinstance(raw, int | float)):
        return "expects a number (unquoted)"
    if kind in ("string", "duration", "enum", "url", "list") and not isinstance(raw, str):
        return "expects a string (quote it)"
    try:
        option.parse(option.default_text())
    except ValueError as exc:
        return str(exc)
    return None


def _option(
    path: Path, raw: object, categories: dict[str, str], problems: list[str]
) -> Option | None:
    line = yamlfile.line(raw)
    if not isinstance(raw, dict):
        problems.append(_problem(path, line, "each entry of 'options' must be a mapping"))
        return None
    name = raw.get("name")
    label = name if isinstance(name, str) else "an option"
    for key in raw:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"known fields: {', '.join(sorted(FIELDS))}"
            )
            problems.append(
                _problem(path, yamlfile.line(raw, key), f"{label}: unknown field {key!r}: {hint}")
            )
    missing = [key for key in NEEDED if key not in raw]
    if missing:
        problems.append(
            _problem(
                path,
                line,
                f"{label}: missing {', '.join(missing)}: every option needs {', '.join(NEEDED)}",
            )
        )
        return None
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(
            _problem(
                path,
                yamlfile.line(raw, "name"),
                f"option name {name!r}: use the environment "
                "variable's name, ERPGO_ followed by capitals, digits and underscores",
            )
        )
        return None
    where = {key: yamlfile.line(raw, key) for key in raw}
    category, kind = raw["category"], raw["type"]
    if category not in categories:
        problems.append(
            _problem(
                path,
                where["category"],
                f"{name}: unknown category {category!r}: use one of "
                f"{', '.join(categories)} (or add it under 'categories')",
            )
        )
    if kind not in TYPES:
        problems.append(
            _problem(
                path, where["type"], f"{name}: unknown type {kind!r}: use one of {', '.join(TYPES)}"
            )
        )
        return None
    for flag in ("secret", "required"):
        if flag in raw and not isinstance(raw[flag], bool):
            problems.append(_problem(path, where[flag], f"{name}: {flag} must be true or false"))
    allowed = raw.get("allowed") or []
    if kind == "enum" and (not isinstance(allowed, list) or not allowed):
        problems.append(
            _problem(
                path,
                where.get("allowed", line),
                f"{name}: an enum needs 'allowed': the list of values",
            )
        )
        allowed = []
    if kind != "enum" and "allowed" in raw:
        problems.append(
            _problem(
                path, where["allowed"], f"{name}: 'allowed' is for enums; use type enum or drop it"
            )
        )
    for bound in ("min", "max"):
        if bound in raw and (
            kind not in ("integer", "number")
            or isinstance(raw[bound], bool)
            or not isinstance(raw[bound], int | float)
        ):
            problems.append(
                _problem(
                    path,
                    where[bound],
                    f"{name}: {bound} must be a number, on an integer or number option",
                )
            )
    option = Option(
        name=name,
        category=str(category),
        type=kind,
        description=str(raw["description"]).strip(),
        secret=raw.get("secret") is True,
        required=raw.get("required") is True,
        required_if=raw.get("required_if"),
        default=raw.get("default"),
        allowed=tuple(str(a) for a in allowed) if isinstance(allowed, list) else (),
        minimum=raw.get("min") if isinstance(raw.get("min"), int | float) else None,
        maximum=raw.get("max") if isinstance(raw.get("max"), int | float) else None,
        unit=str(raw.get("unit") or ""),
        line=line,
    )
    if option.secret and "default" in raw:
        problems.append(
            _problem(
                path,
                where["default"],
                f"{name} is a secret and has a default value: remove "
                "'default' (a secret's value lives only in the secret store)",
            )
        )
    elif option.has_default:
        why = _check_default(option, option.default)
        if why:
            problems.append(
                _problem(
                    path,
                    where["default"],
                    f"{name}: default {option.default!r} is not a valid {kind}: {why}",
                )
            )
    if option.secret and option.type != "string":
        problems.append(
            _problem(path, where["type"], f"{name}: a secret is a string; set type: string")
        )
    return option


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    """The catalogue at ``path``; ``ConfigError`` listing every problem found."""
    data = yamlfile.load(path)  # raises yamlfile.ConfigError with file:line
    problems: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("options"), list):
        raise ConfigError(
            _problem(path, 1, "expected a mapping with 'categories' and an 'options' list")
        )
    raw_categories = data.get("categories")
    if not isinstance(raw_categories, dict) or not raw_categories:
        problems.append(
            _problem(
                path, yamlfile.line(data, "categories"), "'categories' must map keys to titles"
            )
        )
        raw_categories = {}
    categories = {str(k): str(v) for k, v in raw_categories.items()}
    unknown = sorted(set(data) - {"categories", "options"})
    for key in unknown:
        problems.append(
            _problem(
                path,
                yamlfile.line(data, key),
                f"unknown top-level key {key!r}: only categories and options",
            )
        )
    options: dict[str, Option] = {}
    for raw in data["options"]:
        option = _option(path, raw, categories, problems)
        if option is None:
            continue
        if option.name in options:
            first = options[option.name].line
            problems.append(
                _problem(
                    path,
                    option.line,
                    f"{option.name} is listed twice (first at line {first}): keep one entry",
                )
            )
            continue
        options[option.name] = option
    for option in options.values():
        flag = option.required_if
        if flag is not None and (flag not in options or options[flag].type != "boolean"):
            problems.append(
                _problem(
                    path,
                    option.line,
                    f"{option.name}: required_if names {flag!r}, "
                    "which is not a boolean option of this catalogue",
                )
            )
    if problems:
        raise ConfigError("\n".join(problems))
    return Catalogue(path, categories, options)


# -- environment files ---------------------------------------------------------------------


def read_environment(path: Path) -> tuple[Environment, list[str]]:
    """The ``KEY=value`` lines of ``path`` and the syntax problems found in it."""
    env = Environment(name=path.stem, path=path)
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return env, [_problem(path, 1, "file not found")]
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if not match:
            problems.append(
                _problem(
                    path,
                    number,
                    "expected KEY=value (no spaces around '=', no "
                    "'export'), a '#' comment or a blank line",
                )
            )
            continue
        key, value = match["key"], match["value"]
        if key in env.settings:
            first = env.settings[key].line
            problems.append(
                _problem(path, number, f"{key} is set twice (first at line {first}): keep one")
            )
            continue
        env.settings[key] = Setting(key, value, number)
    return env, problems


def check_environment(env: Environment, catalogue: Catalogue) -> list[str]:
    """Every way ``env`` breaks the catalogue's rules (empty when it follows them)."""
    problems: list[str] = []
    path = env.path
    values: dict[str, object] = {}
    for key, setting in env.settings.items():
        option = catalogue.options.get(key)
        if option is None:
            close = difflib.get_close_matches(key, catalogue.options, n=1)
            hint = (
                f"did you mean {close[0]}?" if close else f"add it to {rel(catalogue.path)} first"
            )
            problems.append(_problem(path, setting.line, f"unknown option {key}: {hint}"))
            continue
        reference = REFERENCE.match(setting.text)
        if option.secret:
            store = f"erpgo-{env.name}"
            example = (
                f"secret://{store}/{option.name.removeprefix('ERPGO_').lower().replace('_', '-')}"
            )
            if not reference:
                problems.append(
                    _problem(
                        path,
                        setting.line,
                        f"{key} is a secret but has a literal value: "
                        "remove the value from this file (and rotate it, since it has "
                        f"been committed), store it in the secret store and write a "
                        f"reference such as {example}",
                    )
                )
            elif reference["store"] != store:
                problems.append(
                    _problem(
                        path,
                        setting.line,
                        f"{key} refers to the store "
                        f"{reference['store']!r}; the {env.name} environment reads "
                        f"only its own store: use {example}",
                    )
                )
            continue
        if reference:
            problems.append(
                _problem(
                    path,
                    setting.line,
                    f"{key} is not a secret, but its value is a "
                    "secret reference: write the value itself, or mark the option "
                    f"secret: true in {rel(catalogue.path)}",
                )
            )
            continue
        try:
            values[key] = option.parse(setting.text)
        except ValueError as exc:
            problems.append(
                _problem(
                    path,
                    setting.line,
                    f"{key}={setting.text!r} is not a valid {option.type}: {exc}",
                )
            )
    declared = env.settings.get("ERPGO_ENV")
    if declared and declared.text in ENVIRONMENTS and declared.text != env.name:
        problems.append(
            _problem(
                path,
                declared.line,
                f"ERPGO_ENV={declared.text} in the file of the "
                f"{env.name} environment: set ERPGO_ENV={env.name}",
            )
        )
    for option in catalogue.options.values():
        if option.name in env.settings:
            continue
        needed = option.required
        if option.required_if:
            flag = catalogue.options[option.required_if]
            on = values.get(flag.name, flag.default)
            needed = needed or on is True
        if needed and not option.has_default:
            why = "required" if option.required else f"required when {option.required_if}=true"
            what = "a reference secret://erpgo-" + env.name + "/..." if option.secret else "a value"
            problems.append(
                _problem(
                    path, 1, f"{option.name} is {why} but not set: add {option.name}= with {what}"
                )
            )
    return problems


def environment_files(directory: Path | None = None) -> list[Path]:
    directory = directory or CATALOGUE.parent
    return [directory / f"{name}.env" for name in ENVIRONMENTS]


def load_environments(
    catalogue: Catalogue, paths: Iterable[Path] | None = None
) -> dict[str, Environment]:
    """The environment files, checked; ``ConfigError`` listing every problem in them."""
    paths = list(paths) if paths is not None else environment_files(catalogue.path.parent)
    problems: list[str] = []
    environments: dict[str, Environment] = {}
    for path in paths:
        env, syntax = read_environment(path)
        problems += syntax
        if path.exists():
            problems += check_environment(env, catalogue)
        environments[env.name] = env
    if problems:
        raise ConfigError("\n".join(problems))
    return environments


def load_all(path: Path = CATALOGUE) -> tuple[Catalogue, dict[str, Environment]]:
    """The catalogue at ``path`` and the environment files beside it, all checked."""
    catalogue = load_catalogue(path)
    return catalogue, load_environments(catalogue)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    try:
        catalogue = load_catalogue()
        environments = load_environments(catalogue, paths or None)
    except (ConfigError, yamlfile.ConfigError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{rel(catalogue.path)}: {len(catalogue.options)} options; "
        f"{', '.join(rel(e.path) for e in environments.values())}: valid"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
