"""Settings that stick: the backend, output folder, Kaggle options and per-notebook parameter
defaults, read from where Python users keep them, each value remembering where it came from.

Lowest to highest: `[tool.kaggletts]` in the nearest pyproject.toml, the user file
(`config.toml` in the platform's config folder, e.g. ~/.config/kaggletts on Linux), then
KAGGLETTS_* environment variables; explicit command-line and API arguments win over all.
Per-notebook defaults (`[tool.kaggletts.notebooks.qwen]`) go under the parameter files.
Credentials are never read here: they stay where the `kaggle` client keeps them."""

from __future__ import annotations

import difflib
import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from kaggletts import environment, parameters
from kaggletts.backends.kaggle.options import KERNEL_OPTIONS, KaggleOptions, KernelOptions
from kaggletts.durations import parse_duration
from kaggletts.errors import UsageError

TOOL_TABLE = ("tool", "kaggletts")
USER_FILE_NAME = "config.toml"
# Keys that would hold a secret: refused with a word on where credentials belong.
SECRET_KEYS = {"username", "key", "token", "api_token", "access_token", "password", "secret"}
# Parameters that are a batch, not a default: they belong in a parameter file.
BATCH_PARAMETERS = ("text", "utterances")
# The shapes kagglesdk documents for ApiSaveKernelRequest.machine_shape.
MACHINE_SHAPES = ("NvidiaTeslaT4", "NvidiaTeslaP100", "Tpu1VmV38")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Kind(enum.Enum):
    TEXT = "a string"
    WHOLE = "an integer"
    NUMBER = "a number"
    FLAG = "a boolean"
    DURATION = "seconds or a duration such as 10m"
    TEXT_LIST = "a list of strings"


@dataclass(frozen=True)
class Key:
    """One setting: its dotted name (`kaggle.shards`, a KaggleOptions or KernelOptions field
    for `kaggle.*`), type, bounds and environment variable."""

    name: str
    kind: Kind
    help: str
    env: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    # What happens when nobody sets it and the backend has no plain default value to show.
    unset: str = "none"

    @property
    def variable(self) -> str:
        return self.env or environment.PREFIX + self.name.replace(".", "_").upper()

    def parse(self, value: Any, where: str) -> Any:
        """`value` as this key's typed value (a duration in seconds, a list as a tuple), or a
        UsageError naming `where`, the key and what is wrong."""
        if not _has_kind(value, self.kind):
            self.refuse(where, f"must be {self.kind.value}, not {type(value).__name__} {value!r}")
        if self.kind is Kind.DURATION:
            value = parse_duration(value, f"{where}: {self.name}")
        if self.kind is Kind.TEXT_LIST:
            value = tuple(value)
        if self.low is not None and value < self.low:
            self.refuse(where, f"{value} is below the minimum {self.low:g}")
        if self.high is not None and value > self.high:
            self.refuse(where, f"{value} is over the maximum {self.high:g}")
        if self.choices and value not in self.choices:
            suggestion = _suggest(value, self.choices)
            self.refuse(where, f"{value!r} is not one of {', '.join(self.choices)}{suggestion}")
        if self.name == "kaggle.endpoint" and not re.match(r"https?://[^/\s]+", value):
            self.refuse(where, f"{value!r} is not an http(s) URL")
        return value

    def refuse(self, where: str, why: str) -> NoReturn:
        raise UsageError(f"{where}: {self.name} {why}")


KEYS: tuple[Key, ...] = (
    Key(
        "backend",
        Kind.TEXT,
        "where notebooks run",
        choices=("local", "kaggle"),
        unset="kaggle for GPU notebooks, else local",
    ),
    Key(
        "output_dir",
        Kind.TEXT,
        "the folder job folders go under",
        env="KAGGLETTS_OUTPUT",
        unset="./kaggletts-output",
    ),
    Key("kaggle.endpoint", Kind.TEXT, "Kaggle API endpoint", unset="https://api.kaggle.com"),
    Key(
        "kaggle.machine_shape",
        Kind.TEXT,
        "accelerator of GPU notebooks",
        choices=MACHINE_SHAPES,
        unset="the notebook's own: NvidiaTeslaT4 for GPU notebooks",
    ),
    Key(
        "kaggle.enable_internet",
        Kind.FLAG,
        "internet in the kernel",
        unset="the notebook's own: on for GPU notebooks",
    ),
    Key("kaggle.is_private", Kind.FLAG, "push kernels as private"),
    Key("kaggle.dataset_sources", Kind.TEXT_LIST, "datasets attached to every kernel"),
    Key(
        "kaggle.shards",
        Kind.WHOLE,
        "sessions a batch is split over",
        low=1,
        high=64,
        unset="one per 500 lines",
    ),
    Key(
        "kaggle.timeout",
        Kind.DURATION,
        "a run's time budget",
        low=1,
        unset="estimated from the batch",
    ),
    Key("kaggle.keep_kernels", Kind.FLAG, "keep kernels on Kaggle after download"),
    Key(
        "kaggle.ask_above",
        Kind.DURATION,
        "estimated GPU time above which a push asks first",
        low=0,
        unset="1h",
    ),
    Key("kaggle.gpu_sessions", Kind.WHOLE, "sessions run at once", low=1, high=64),
)
KEY_BY_NAME = {key.name: key for key in KEYS}


@dataclass(frozen=True)
class Settings:
    """The effective settings. `origins` says where each set value came from: a file and
    line, an environment variable, or the command line."""

    backend: str | None = None
    output_dir: str | None = None
    # The Kaggle backend's options: the defaults under the values set.
    kaggle: KaggleOptions = field(default_factory=KaggleOptions)
    # Parameter defaults per notebook name, carrying their file and line for messages.
    notebooks: Mapping[str, parameters.ParameterSet] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)
    # The settings whose value is a project's pyproject.toml's: a project someone else
    # wrote may choose how a run goes, but not where the user's credentials are sent.
    from_project: frozenset[str] = frozenset()

    def value(self, name: str) -> Any:
        """A setting by its dotted name (`kaggle.shards`); its default when not set (which
        `origins` tells)."""
        if not name.startswith("kaggle."):
            return getattr(self, name)
        option = name.removeprefix("kaggle.")
        return getattr(self.kaggle.kernel if option in KERNEL_OPTIONS else self.kaggle, option)

    def overridden(self, values: Mapping[str, Any], origin: str) -> Settings:
        """These settings under explicit values (dotted names; None means not given)."""
        layer = {
            name: _checked(name, value, origin)
            for name, value in values.items()
            if value is not None
        }
        merged = {
            name: (self.value(name), self.origins[name])
            for name in self.origins
            if name in KEY_BY_NAME
        }
        merged.update({name: (value, origin) for name, value in layer.items()})
        return _build(merged, self.notebooks, self.from_project.difference(layer))

    def notebook_defaults(self, notebook: str) -> parameters.ParameterSet:
        return self.notebooks.get(notebook, parameters.ParameterSet())

    def backend_options(self, backend: str) -> dict[str, Any]:
        """Keyword arguments for `get_backend(backend, ...)`: the backend's options. The
        local backend has none: Kaggle settings in a file do not apply to it."""
        if backend != "kaggle":
            return {}
        self.refuse_project_endpoint()
        return self.kaggle.arguments()

    def refuse_project_endpoint(self) -> None:
        """Credentials go only to an endpoint the user named (the command line, the user
        file, the environment): a cloned project's pyproject.toml naming one is refused."""
        if "kaggle.endpoint" in self.from_project:
            raise UsageError(
                f"{self.origins['kaggle.endpoint']}: the project sets the Kaggle endpoint "
                f"{self.kaggle.endpoint!r}; kaggletts sends your credentials only to an "
                "endpoint you name yourself: --endpoint, $KAGGLETTS_KAGGLE_ENDPOINT or "
                f"{user_file()}"
            )

    def check_notebook_defaults(self) -> None:
        """Validate each notebook's defaults as parameters now (a run validates them anyway,
        merged with its parameters): a bad one names its file and line."""
        from kaggletts.notebook import find_notebook

        for name, defaults in self.notebooks.items():
            # A stand-in line, because a parameter set must speak something to be valid.
            probe = parameters.ParameterSet({"text": "settings check"}, {(): "settings check"})
            parameters.validate(find_notebook(name), parameters.load(defaults, probe))


# --- Reading ---------------------------------------------------------------------------------


def user_file() -> Path:
    """The user's settings file, in the platform's config folder."""
    import platformdirs

    return platformdirs.user_config_path("kaggletts", appauthor=False) / USER_FILE_NAME


def nearest_pyproject(start: Path) -> Path | None:
    """The pyproject.toml of the project `start` is in: the nearest one up the tree."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def load_settings(
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    user_path: Path | None = None,
) -> Settings:
    """The settings in effect here: pyproject.toml, then the user file, then environment
    (`environ`, by default this process's)."""
    merged: dict[str, tuple[Any, str]] = {}
    notebooks: dict[str, parameters.ParameterSet] = {}
    project = nearest_pyproject((cwd or Path.cwd()).resolve())
    project_values: dict[str, tuple[Any, str]] = {}
    for path, table in ((project, TOOL_TABLE), (user_path or user_file(), ())):
        if path is not None and path.is_file():
            values, defaults = _read_file(path, table)
            merged.update(values)
            if path == project:
                project_values = values
            for name, given in defaults.items():
                notebooks.setdefault(name, parameters.ParameterSet()).update(given)
    merged.update(_read_environment(environ))
    from_project = {name for name, given in project_values.items() if merged[name] is given}
    return _build(merged, notebooks, frozenset(from_project))


def from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of KAGGLETTS_* variables alone, without any file."""
    return _build(_read_environment(environ), {})


# Options every backend takes, with the meaning (and the check) of Kaggle's setting.
EVERY_BACKEND_TAKES = ("timeout",)


def checked_options(backend: str, options: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Options given to a backend in Python (`kaggletts.execute(timeout="2h")`), each that
    is also a setting typed and checked as the setting is; the others (credentials, waits)
    as they are, for the backend to take or refuse."""
    checked = {}
    for name, value in options.items():
        key = f"{backend}.{name}" if name not in EVERY_BACKEND_TAKES else f"kaggle.{name}"
        checked[name] = value if value is None or key not in KEY_BY_NAME else _checked(
            key, value, origin
        )
    return checked


def _build(
    merged: Mapping[str, tuple[Any, str]],
    notebooks: Mapping[str, parameters.ParameterSet],
    from_project: frozenset[str] = frozenset(),
) -> Settings:
    kaggle: dict[str, Any] = {}
    kernel: dict[str, Any] = {}
    for name, (value, _) in merged.items():
        if name.startswith("kaggle."):
            option = name.removeprefix("kaggle.")
            (kernel if option in KERNEL_OPTIONS else kaggle)[option] = value
    return Settings(
        backend=merged.get("backend", (None, ""))[0],
        output_dir=merged.get("output_dir", (None, ""))[0],
        kaggle=KaggleOptions(**kaggle, kernel=KernelOptions(**kernel)),
        notebooks=dict(notebooks),
        origins={name: origin for name, (_, origin) in merged.items()},
        from_project=from_project,
    )


def _read_environment(environ: Mapping[str, str] | None) -> dict[str, tuple[Any, str]]:
    found = {}
    for key in KEYS:
        raw = environment.text(key.variable, environ)
        if raw is not None:
            origin = f"${key.variable}"
            found[key.name] = (_checked(key.name, _from_text(key, raw, origin), origin), origin)
    return found


def _from_text(key: Key, raw: str, origin: str) -> Any:
    try:
        match key.kind:
            case Kind.WHOLE:
                return int(raw)
            case Kind.NUMBER:
                return float(raw)
            case Kind.FLAG if raw.lower() in _TRUE | _FALSE:
                return raw.lower() in _TRUE
            case Kind.FLAG:
                raise ValueError
            case Kind.TEXT_LIST:
                return [part.strip() for part in raw.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{origin}: {key.name} must be {key.kind.value}, not {raw!r}") from None
    return raw


def _read_file(
    path: Path, table: tuple[str, ...]
) -> tuple[dict[str, tuple[Any, str]], dict[str, parameters.ParameterSet]]:
    """The settings and notebook defaults in `table` of one TOML file, each with its line."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as error:
        raise UsageError(f"{path}: cannot read settings ({error.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"\(at line (\d+), column \d+\)$", str(error))
        message = re.sub(r"\s*\(at line .*\)$", "", str(error))
        raise UsageError(
            f"{path}:{found.group(1) if found else 1}: invalid TOML: {message}"
        ) from None
    for part in table:
        data = data.get(part, {})
        if not isinstance(data, dict):
            return {}, {}
    lines = TomlLines(path, text)
    settings: dict[str, tuple[Any, str]] = {}
    notebooks: dict[str, parameters.ParameterSet] = {}
    for name, value in data.items():
        if name == "notebooks":
            notebooks = _read_notebooks(value, lines, (*table, name))
        elif name == "kaggle" and isinstance(value, dict):
            for option, given in value.items():
                where = lines.where((*table, name), option)
                settings[f"kaggle.{option}"] = (_checked(f"kaggle.{option}", given, where), where)
                if option == "endpoint" and table and not _https_or_loopback(given):
                    raise UsageError(
                        f"{where}: kaggle.endpoint {given!r} in a project file must be https "
                        "or on this machine (127.0.0.1, ::1, localhost)"
                    )
        else:
            where = lines.where(table, name)
            value = _checked(name, value, where)
            if name == "output_dir":
                # Relative to the file that names it, wherever the command runs.
                value = str((path.parent / Path(value).expanduser()).resolve())
            settings[name] = (value, where)
    return settings, notebooks


def _read_notebooks(
    tables: Any, lines: TomlLines, table: tuple[str, ...]
) -> dict[str, parameters.ParameterSet]:
    from kaggletts.notebook import notebook_names

    if not isinstance(tables, dict):
        raise UsageError(f"{lines.where(table[:-1], table[-1])}: expected a table per notebook")
    known = notebook_names()
    notebooks = {}
    for notebook, values in tables.items():
        where = lines.where(table, notebook)
        if notebook not in known:
            raise UsageError(
                f"{where}: unknown notebook {notebook!r}{_suggest(notebook, known)}; "
                f"known notebooks: {', '.join(known)}"
            )
        if not isinstance(values, dict):
            raise UsageError(f"{where}: expected a table of parameter defaults")
        for name in values:
            if name in BATCH_PARAMETERS:
                raise UsageError(
                    f"{lines.where((*table, notebook), name)}: {name!r} is a batch, not a "
                    "default; give it in a parameter file or with -p"
                )
        defaults = parameters.ParameterSet(
            dict(values),
            {(): where, **{(name,): lines.where((*table, notebook), name) for name in values}},
            # Relative reference files are read from the settings file's folder.
            folders={name: lines.path.parent.resolve() for name in values},
        )
        notebooks[notebook] = defaults
    return notebooks


def _https_or_loopback(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked(name: str, value: Any, where: str) -> Any:
    key = KEY_BY_NAME.get(name)
    if key is None:
        short = name.rpartition(".")[2]
        if short.lower() in SECRET_KEYS:
            raise UsageError(
                f"{where}: {name!r}: credentials are never read from settings; keep them where "
                "the kaggle client does (~/.kaggle/kaggle.json, ~/.kaggle/access_token, or "
                "KAGGLE_USERNAME and KAGGLE_KEY)"
            )
        known = [*KEY_BY_NAME, "notebooks"]
        raise UsageError(f"{where}: unknown setting {name!r}{_suggest(name, known)}")
    return key.parse(value, where)


class TomlLines:
    """Lines of TOML keys and tables, found by scanning the text (tomllib gives none): a
    `[table]` header or `key =` line, dotted keys included. Simple by design: a key it
    cannot place (inside an inline table, say) is reported at its table's line."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.entries: list[tuple[tuple[str, ...], int]] = []
        current: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if header := re.fullmatch(r"\[\[?([^\[\]]+)\]\]?\s*(#.*)?", stripped):
                current = _dotted(header.group(1))
                self.entries.append((current, number))
            elif assignment := re.match(r"([A-Za-z0-9_\-.\"' ]+?)\s*=", stripped):
                self.entries.append(((*current, *_dotted(assignment.group(1))), number))

    def where(self, table: tuple[str, ...], key: str) -> str:
        """`path:line` of `key` in `table`, else of the table, else of the file."""
        for target in ((*table, key), table):
            for path, number in self.entries:
                if path[: len(target)] == target:
                    return f"{self.path}:{number}"
        return str(self.path)


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def _has_kind(value: Any, kind: Kind) -> bool:
    match kind:
        case Kind.TEXT:
            return isinstance(value, str) and bool(value.strip())
        case Kind.WHOLE:
            return isinstance(value, int) and not isinstance(value, bool)
        case Kind.NUMBER:
            return isinstance(value, int | float) and not isinstance(value, bool)
        case Kind.DURATION:
            return isinstance(value, int | float | str) and not isinstance(value, bool)
        case Kind.FLAG:
            return isinstance(value, bool)
        case Kind.TEXT_LIST:
            return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _suggest(word: str, candidates: Any) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def default_text(key: Key) -> str:
    """What applies when `key` is not set: the backend's own default value where it has a
    plain one, else the key's words for it."""
    if key.name.startswith("kaggle."):
        option = key.name.removeprefix("kaggle.")
        owner = KernelOptions if option in KERNEL_OPTIONS else KaggleOptions
        [default] = [f.default for f in fields(owner) if f.name == option]
        if default not in (None, (), MISSING):
            return repr(default)
    return key.unset
