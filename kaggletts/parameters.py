"""Parameter sets: read from dicts, YAML files and `-p NAME VALUE` pairs, then checked
against a notebook's `parameters` cell before anything runs.

Every error names where the bad value came from (the YAML file and line, or the
command-line pair) so a user with a batch of hundreds of lines can find it."""

from __future__ import annotations

import difflib
import enum
import functools
import keyword
import math
import os
import posixpath
import re
import stat
import sys
import wave
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kaggletts import environment
from kaggletts.errors import UsageError
from kaggletts.kernel import support
from kaggletts.layout import RESERVED_NAMES
from kaggletts.notebook import NotebookSpec, data_dir
from kaggletts.result import is_output_name

if TYPE_CHECKING:
    from kaggletts.backends.kaggle.kernel import KernelOptions

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_STRING_CHARS = 20_000
MAX_UTTERANCES = 5_000
MAX_NODES = 200_000
MAX_DEPTH = 8
MERGE_TAG = "tag:yaml.org,2002:merge"
# Control characters no text means to hold (NUL, escape, C1 controls...): refused, not
# dropped, since dropping one glues the words on either side together, and a model given
# one stops there (eSpeak NG at a NUL) or reads noise, while the clip records it all.
# Tabs and line breaks are spacing every model reads as such: they stay as given.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
ALWAYS_PER_UTTERANCE = {"text": "str", "name": "str"}
# Where Kaggle mounts attached datasets; a path under it names a file in a dataset the
# user attaches to the kernel, which cannot be checked from this machine.
KAGGLE_INPUT_MOUNT = PurePosixPath("/kaggle/input")
# Choice lists longer than this are described in messages rather than listed.
MAX_LISTED_CHOICES = 30

Location = tuple[str | int, ...]


@dataclass
class ParameterSet:
    """Parameter values plus where each came from, for error messages."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[Location, str] = field(default_factory=dict)
    cli_raw: dict[str, str] = field(default_factory=dict)
    # The folder of the YAML file each top-level value came from: relative file paths
    # in a YAML file are read from there, so an example file works from any folder.
    folders: dict[str, Path] = field(default_factory=dict)

    def where(self, location: Location) -> str:
        """The most precise known origin of a value: its own line, else its parent's."""
        while location:
            if location in self.origins:
                return self.origins[location]
            location = location[:-1]
        return self.origins.get((), "parameters")

    def folder_of(self, location: Location) -> Path | None:
        """The folder of the YAML file the value at `location` came from, if any."""
        return self.folders.get(str(location[0])) if location else None

    def update(self, other: ParameterSet) -> None:
        if not other.values:
            return
        for name in other.values:
            self.cli_raw.pop(name, None)
            self.folders.pop(name, None)
            for location in [loc for loc in self.origins if loc and loc[0] == name]:
                del self.origins[location]
        mine = self.origins.get(())
        self.origins.update(other.origins)
        if self.values and mine:
            self.origins[()] = f"{mine} + {other.origins[()]}"
        self.values.update(other.values)
        self.cli_raw.update(other.cli_raw)
        self.folders.update(other.folders)


def from_mapping(values: Mapping[str, Any], origin: str = "parameters") -> ParameterSet:
    if not isinstance(values, Mapping):
        raise UsageError(f"{origin}: parameters must be a mapping of names to values")
    return ParameterSet(dict(values), {(): origin})


def from_yaml_file(path: str | os.PathLike) -> ParameterSet:
    """A YAML parameter file: defaults at the top, usually a list of `utterances`."""
    import yaml

    path = Path(path)
    text = _read_bounded(path)
    loader = yaml.SafeLoader(text)
    origins: dict[Location, str] = {(): str(path)}
    try:
        root = loader.get_single_node()
        if root is not None:
            _record_lines(loader, root, (), str(path), origins, [MAX_NODES])
        values = loader.construct_document(root) if root is not None else {}
    except yaml.MarkedYAMLError as error:
        raise UsageError(f"{path}:{_describe_yaml_error(error)}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: invalid YAML: {error}") from None
    except RecursionError:
        # The YAML parser itself recurses per level, before any value can be looked at.
        raise UsageError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    if not isinstance(values, dict):
        raise UsageError(f"{path}:1: expected a mapping of parameter names to values")
    folder = path.parent.resolve()
    return ParameterSet(values, origins, folders={name: folder for name in values})


def _describe_yaml_error(error: Any) -> str:
    """`LINE: invalid YAML: problem`, naming where an unclosed construct began too."""
    problem, context = error.problem_mark, error.context_mark
    line = (problem or context).line + 1 if (problem or context) else 1
    message = f"{line}: invalid YAML: {error.problem or error.context}"
    if context and problem and context.line != problem.line:
        message = (
            f"{context.line + 1}: invalid YAML: {error.context} "
            f"(line {context.line + 1}); {error.problem} (line {problem.line + 1})"
        )
    return message


def _record_lines(
    loader: Any,
    node: Any,
    location: Location,
    path: str,
    origins: dict[Location, str],
    budget: list[int],
    enclosing: tuple[Any, ...] = (),
) -> None:
    """Map each value's location to its file and line; aliases count every time they
    are used, so a small file that expands enormously is refused here, and an alias
    inside the value it names (`&x [*x]`) too."""
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise UsageError(f"{path}: over {MAX_NODES} values once YAML aliases are expanded")
    line = node.start_mark.line + 1
    if any(node is outer for outer in enclosing):
        raise UsageError(f"{path}:{line}: a YAML alias is used inside the value it names")
    if len(location) > MAX_DEPTH:
        raise UsageError(f"{path}:{line}: nested deeper than {MAX_DEPTH} levels")
    if location:
        origins.setdefault(location, f"{path}:{line}")
    enclosing = (*enclosing, node)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != MERGE_TAG:
                name = loader.construct_object(key)
                if name in seen:
                    raise UsageError(f"{path}:{key.start_mark.line + 1}: {name!r} is given twice")
                seen.add(name)
        # Merge keys (`<<: *defaults`) become the keys they bring, as the constructor
        # makes them: the mapping's own keys come last and win.
        loader.flatten_mapping(node)
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise UsageError(f"{path}:{key.start_mark.line + 1}: keys must be plain names")
            name = loader.construct_object(key)
            origins[(*location, name)] = f"{path}:{key.start_mark.line + 1}"
            _record_lines(loader, value, (*location, name), path, origins, budget, enclosing)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(loader, item, (*location, index), path, origins, budget, enclosing)


def from_cli_pairs(pairs: list[tuple[str, str]]) -> ParameterSet:
    """`-p NAME VALUE` pairs; values read as YAML scalars (`3`, `true`, `[a, b]`)."""
    import yaml

    result = ParameterSet(origins={(): "-p"})
    for name, raw in pairs:
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        if not isinstance(value, str | int | float | bool | list | dict | None):
            value = raw  # a date, say: as text it may still be a `str` parameter
        result.values[name] = value
        result.origins[(name,)] = f"-p {name}"
        result.cli_raw[name] = raw
    return result


def from_text(text: str, origin: str) -> ParameterSet:
    """Plain text, as `tts --text` and piper's stdin take it: one utterance per non-empty
    line, verbatim (a `#`, `:` or leading `-` is text, not syntax). A byte-order mark
    (Windows editors start UTF-8 files with one) is not text."""
    utterances: list[str] = []
    origins: dict[Location, str] = {(): origin, ("utterances",): origin}
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        if line.strip():
            origins[("utterances", len(utterances))] = f"{origin}:{number}"
            utterances.append(line)
    return ParameterSet({"utterances": utterances}, origins)


def from_file(source: str | os.PathLike) -> ParameterSet:
    """A parameter file by path: `-` is plain text on stdin, `*.txt` plain text, anything
    else YAML; a name that is no file here may be one of the shipped examples
    (`espeak-demo` or `espeak-demo.yaml`)."""
    name = os.fspath(source)
    if name == "-":
        text = sys.stdin.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise UsageError(f"<stdin>: over the {MAX_FILE_BYTES}-byte limit")
        return from_text(text, "<stdin>")
    path = Path(name)
    if not path.exists():
        shipped = data_dir("params") / (
            name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
        )
        if "/" not in name and shipped.is_file():
            path = shipped
    if path.suffix.lower() == ".txt":
        return from_text(_read_bounded(path), str(path))
    return from_yaml_file(path)


def _read_bounded(path: Path) -> str:
    """The file's text, reading no more than the limit whatever size it reports: a pipe
    or a device (`<(yes)`, /dev/zero) says 0 bytes. A named pipe nobody writes to reads as
    empty instead of waiting for a writer forever."""
    try:
        pipe = stat.S_ISFIFO(path.stat().st_mode)
        descriptor = os.open(path, os.O_RDONLY | (os.O_NONBLOCK if pipe else 0))
        if pipe:
            os.set_blocking(descriptor, True)
        with open(descriptor, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise UsageError(f"{path}: cannot read parameter file ({error.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{path}: the file is over the {MAX_FILE_BYTES}-byte limit")
    return data.decode("utf-8", errors="replace")


def load(*sources: Mapping[str, Any] | str | os.PathLike | ParameterSet) -> ParameterSet:
    """Merge parameter sources in order; later ones win name by name."""
    merged = ParameterSet(origins={(): "parameters"})
    for source in sources:
        if isinstance(source, ParameterSet):
            merged.update(source)
        elif isinstance(source, Mapping):
            merged.update(from_mapping(source))
        else:
            merged.update(from_file(source))
    return merged


def validate(spec: NotebookSpec, params: ParameterSet) -> dict[str, Any]:
    """The values to inject, or a UsageError naming the first problem and where it is.

    Local reference files come back as absolute paths: the notebook runs in the job's
    folder, and relative ones are read from the YAML file's folder (or this one)."""
    _check_plain(params)
    values = dict(params.values)
    for name, value in params.values.items():
        where = params.where((name,))
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"{where}: {name!r} is not a valid parameter name")
        if name not in spec.parameters:
            raise UsageError(
                f"{where}: unknown parameter {name!r} for notebook "
                f"{spec.name!r}{_suggest(name, spec.parameters)}"
            )
        declared = spec.parameters[name].type_name
        # A `str` given with -p is the argument as typed: YAML would eat a `#` comment,
        # quotes, an `&anchor` or a `!!tag`, and turn a date into a date.
        if declared == "str" and name in params.cli_raw:
            value = values[name] = params.cli_raw[name]
        _check_value(spec, name, value, declared, where)
    if "utterances" in values:
        _check_utterances(spec, values["utterances"], params)
        # Copies, so that resolving file paths below leaves the caller's data alone.
        values["utterances"] = [
            dict(item) if isinstance(item, dict) else item for item in values["utterances"]
        ]
    if "text" in values and not str(values["text"]).strip():
        raise UsageError(f"{params.where(('text',))}: `text` is empty")
    _check_spoken(values, params)
    _check_rules(spec, values, params)
    _check_lines_have(spec, values, params)
    _check_choices(spec, values, params)
    _check_input_files(spec, values, params)
    speaks = {"text", "utterances"} <= spec.parameters.keys()
    if speaks and not values.get("text") and not values.get("utterances"):
        raise UsageError(f"{params.where(())}: nothing to speak: give `text` or `utterances`")
    return values


def _check_spoken(values: dict[str, Any], params: ParameterSet) -> None:
    """Each line to speak has something a voice can say: a line of only punctuation or
    invisible characters would pass as text, then fail the batch as silent audio."""
    if values.get("text"):
        _check_speakable(values["text"], params.where(("text",)), "`text`")
    for index, item in enumerate(values.get("utterances", [])):
        label = f"utterance {index + 1}"
        if isinstance(item, str):
            _check_speakable(item, params.where(("utterances", index)), label)
        else:
            _check_speakable(item["text"], params.where(("utterances", index, "text")), label)


def _check_speakable(text: str, where: str, label: str) -> None:
    if not any(character.isalnum() for character in text):
        raise UsageError(
            f"{where}: {label} has nothing to speak: {_short(text)} has no letter or digit"
        )


def _effective(spec: NotebookSpec, values: dict[str, Any], name: str) -> Any:
    """A top-level value as the notebook will see it: given, else its default."""
    return values.get(name, spec.parameters[name].default)


def _holds(spec: NotebookSpec, values: dict[str, Any], condition: dict[str, Any]) -> bool:
    return all(_effective(spec, values, name) == value for name, value in condition.items())


def _describe(condition: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value!r}" for name, value in condition.items())


def _check_rules(spec: NotebookSpec, values: dict[str, Any], params: ParameterSet) -> None:
    """The notebook's own consistency rules (its metadata `kaggletts.rules`), checked here
    so that a mismatch costs no GPU session: `{"when": {name: value}, "contains":
    {other: substring}}` means that when `name` is `value`, `other` must contain it.
    (`wav_longer_than` rules are about files: see _check_input_files.)"""
    for rule in spec.rules:
        if not _holds(spec, values, rule["when"]):
            continue
        for name, part in rule.get("contains", {}).items():
            if part not in str(_effective(spec, values, name)):
                given = name if name in values else next(iter(rule["when"]))
                raise UsageError(
                    f"{params.where((given,))}: {name} {_effective(spec, values, name)!r} "
                    f"does not fit {_describe(rule['when'])}: it must contain {part!r}"
                )


def _check_lines_have(spec: NotebookSpec, values: dict[str, Any], params: ParameterSet) -> None:
    """Rules `{"when": {...}, "each_line_has": [names]}`: under that condition every line
    needs a non-empty value of each name, its own or the top-level one, which the notebook
    would otherwise refuse only in the kernel, after its install and model load."""
    lines = support.batch_items(values.get("text"), values.get("utterances", []))
    for rule in spec.rules:
        if "each_line_has" not in rule or not _holds(spec, values, rule["when"]):
            continue
        for name in rule["each_line_has"]:
            for index, line in enumerate(lines):
                own = isinstance(line, dict) and name in line
                if own and line[name] or not own and _effective(spec, values, name):
                    continue
                first = 1 if values.get("text") else 0
                location: Location = (
                    ("text",) if index < first
                    else ("utterances", index - first, name) if own
                    else ("utterances", index - first)
                )
                raise UsageError(
                    f"{params.where(location)}: line {index + 1} has no {name}, which "
                    f"{_describe(rule['when'])} needs"
                )


def _settings(values: dict[str, Any], name: str) -> Iterator[tuple[Location, str, Any]]:
    """Each place `name` is set: the top level, then every utterance that sets its own,
    as (location, label for messages, value)."""
    if name in values:
        yield (name,), "", values[name]
    for index, item in enumerate(values.get("utterances", [])):
        if isinstance(item, dict) and name in item:
            yield ("utterances", index, name), f"utterance {index + 1}: ", item[name]


def _applies(spec: NotebookSpec, values: dict[str, Any], name: str) -> bool:
    """False when the notebook ignores `name` under these settings (metadata `only_when`),
    so a value it would never read is not refused."""
    return _holds(spec, values, spec.only_when.get(name, {}))


def _check_value(spec: NotebookSpec, name: str, value: Any, declared: str, where: str) -> None:
    if not _has_type(value, declared):
        raise UsageError(
            f"{where}: {name} must be {_article(declared)}, "
            f"not {type(value).__name__} {_short(value)}"
        )
    if name in spec.ranges and not spec.ranges[name][0] <= value <= spec.ranges[name][1]:
        low, high = spec.ranges[name]
        raise UsageError(f"{where}: {name} {value} is out of range {low:g} to {high:g}")
    if name in spec.relative_paths and (
        PurePosixPath(value).is_absolute() or ".." in PurePosixPath(value).parts
    ):
        raise UsageError(f"{where}: {name} must be a folder inside the job's output, not {value!r}")
    folder = posixpath.normpath(value) if name in spec.relative_paths and value else "."
    if folder != "." and not is_output_name(folder):
        raise UsageError(
            f"{where}: {name} {value!r} is a folder kaggletts would not collect clips from: "
            "no part may start with `.` or hold `\\`, and the first may not be shard-N or "
            f"one of kaggletts' own names ({', '.join(sorted(RESERVED_NAMES))})"
        )


# --- Allowed values -------------------------------------------------------------------------


@dataclass(frozen=True)
class Choices:
    """The values one parameter accepts, and how to say so when a value is not one."""

    names: tuple[str, ...]
    ignore_case: bool = False
    # eSpeak NG's `voice+variant`: a known name, then optionally one of these. Matched
    # exactly: the engine opens the variant as a file and ignores one it cannot find.
    variants: tuple[str, ...] = ()
    # How a list too long to print is named in messages, e.g. "eSpeak NG voices".
    kind: str = "choices"

    def refusal(self, value: str) -> str | None:
        """Why `value` is not accepted, with a close match; None when it is accepted."""
        base, plus, variant = value.partition("+") if self.variants else (value, "", "")
        if self._match(base) is None:
            listed = _listed(self.names, f"the {len(self.names)} {self.kind}")
            return f"is not one of {listed}{_suggest(base, self.names, self.ignore_case)}"
        if plus and variant not in self.variants:
            listed = _listed(self.variants, f"the {len(self.variants)} variants")
            return (
                f"has an unknown variant {variant!r}, not one of {listed} "
                f"(case-sensitive){_suggest(variant, self.variants, ignore_case=True)}"
            )
        return None

    def _match(self, value: str) -> str | None:
        if not self.ignore_case:
            return value if value in self.names else None
        folded = value.casefold()
        return next((name for name in self.names if name.casefold() == folded), None)


def _listed(names: tuple[str, ...], described: str) -> str:
    return ", ".join(names) if len(names) <= MAX_LISTED_CHOICES else described


def espeak_ng_voices() -> Choices:
    """The voice names the eSpeak NG notebook accepts, read from the voice data that the
    installed `espeakng-loader` wheel ships (so the list follows the engine's version).

    The notebook calls espeak_SetVoiceByName, which matches case-insensitively a voice
    file's `name` line, its path under voices/ or lang/, or the last part of that path,
    and then espeak_SetVoiceByProperties with the value as a language tag (a file's
    `language` lines). `+variant` picks a file under voices/!v by its exact name; a
    digit N means the variant mN."""
    try:
        import espeakng_loader
    except ImportError:
        raise UsageError("cannot list eSpeak NG voices: espeakng-loader is not installed") from None
    data = Path(espeakng_loader.get_data_path())
    names: dict[str, str] = {}
    variants: list[str] = []
    for folder in ("voices", "lang"):
        root = data / folder
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            declared = _espeak_voice_file(path)
            if "variant" in declared.get("language", []):
                variants.append(path.name)
                continue
            identifier = path.relative_to(root).as_posix()
            for name in (
                identifier,
                path.name,
                *declared.get("name", []),
                *declared.get("language", []),
            ):
                # One spelling per name; lower case where the data has it ("en-us", as
                # users write it, over the file name "en-US").
                if name.casefold() not in names or name == name.lower():
                    names[name.casefold()] = name
    variants += [v[1:] for v in variants if re.fullmatch(r"m\d+", v)]
    return Choices(
        tuple(sorted(names.values(), key=str.casefold)),
        ignore_case=True,
        variants=tuple(variants),
        kind="eSpeak NG voices",
    )


def _espeak_voice_file(path: Path) -> dict[str, list[str]]:
    """A voice file's `name` and `language` tags, only in the forms the engine matches.

    The engine cuts `//` comments off a line but keeps the spaces before one, so a
    commented name cannot be typed and is left out; and it lower-cases a requested
    language before comparing it with the tags as written, so a tag with capitals
    (chr-US-Qaaa-x-west) never matches. tests/test_parameters.py checks the whole list
    against the real engine."""
    fields: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, rest = line.split("//")[0].lstrip().partition(" ")
        rest = rest.lstrip()
        if key == "name" and rest and rest == rest.rstrip():
            fields.setdefault(key, []).append(rest)
        elif key == "language" and rest.split() and rest.split()[0].islower():
            fields.setdefault(key, []).append(rest.split()[0])
    return fields


# Lists of allowed values that a notebook names in its metadata `choices_from` instead of
# spelling them out, because they come from data installed with a package.
CHOICE_SOURCES: dict[str, Callable[[], Choices]] = {
    "espeak-ng-voices": functools.cache(espeak_ng_voices),
}


def allowed_values(spec: NotebookSpec, name: str) -> Choices | None:
    """The values parameter `name` accepts, where the notebook names a list of them."""
    if name in spec.choices_from:
        source = CHOICE_SOURCES.get(spec.choices_from[name])
        if source is None:
            raise UsageError(
                f"{spec.path}: choices for {name} come from an unknown source "
                f"{spec.choices_from[name]!r}; known sources: {', '.join(CHOICE_SOURCES)}"
            )
        return source()
    if name in spec.choices:
        return Choices(spec.choices[name], ignore_case=name in spec.choices_ignore_case)
    return None


def _check_choices(spec: NotebookSpec, values: dict[str, Any], params: ParameterSet) -> None:
    for name in spec.parameters:
        choices = allowed_values(spec, name)
        if choices is None or not _applies(spec, values, name):
            continue
        for location, label, value in _settings(values, name):
            if (refusal := choices.refusal(value)) is not None:
                raise UsageError(f"{params.where(location)}: {label}{name} {value!r} {refusal}")


# --- Reference files ------------------------------------------------------------------------


class InputKind(enum.Enum):
    LOCAL = "a file on this machine"
    MOUNTED = "a file under the inputs the notebook searches"
    KAGGLE = "a file in a dataset the user attaches to the Kaggle kernel"


@dataclass(frozen=True)
class InputFile:
    kind: InputKind
    path: Path | None  # where it is on this machine; None when it is only on Kaggle


def _inputs_root() -> Path:
    """Where the notebooks' find_input looks for a relative path: Kaggle's mounts, or the
    folder KAGGLETTS_INPUT_ROOT names for local and emulated runs."""
    return environment.input_root() or Path(KAGGLE_INPUT_MOUNT)


def _locate(value: str, folder: Path | None) -> InputFile | None:
    """Where a reference file named in the parameters is, or None when it is nowhere.

    A local file wins (the Kaggle backend uploads it as a private dataset); else a path
    under /kaggle/input is taken on trust; else a relative path is looked for under the
    inputs root the way the notebooks' find_input does."""
    local = Path(value).expanduser()
    if not local.is_absolute():
        local = (folder or Path.cwd()) / local
    if local.is_file():
        return InputFile(InputKind.LOCAL, local.resolve())
    given = PurePosixPath(value)
    if given.is_relative_to(KAGGLE_INPUT_MOUNT):
        return InputFile(InputKind.KAGGLE, None)
    mounted = support.find_under(_inputs_root(), given)
    return None if mounted is None else InputFile(InputKind.MOUNTED, mounted)


def _check_input_files(spec: NotebookSpec, values: dict[str, Any], params: ParameterSet) -> None:
    """Every reference file (metadata `input_files`) exists before anything is pushed or
    run, and fits the notebook's `wav_longer_than` rules; local ones are made absolute."""
    for name in spec.input_files:
        if not _applies(spec, values, name):
            continue
        length_rules = [
            (rule["when"], rule["wav_longer_than"][name])
            for rule in spec.rules
            if name in rule.get("wav_longer_than", {}) and _holds(spec, values, rule["when"])
        ]
        for location, label, value in list(_settings(values, name)):
            if not value:
                continue
            where = f"{params.where(location)}: {label}{name} {value!r}"
            found = _locate(value, params.folder_of(location))
            if found is None:
                raise UsageError(
                    f"{where} is not a file: not at {_looked_at(value, params, location)}"
                    f" nor under {_inputs_root()}; a file in a Kaggle dataset you attach "
                    f"yourself is written {KAGGLE_INPUT_MOUNT}/<dataset>/<file>"
                )
            for condition, seconds in length_rules:
                if found.path is not None:
                    _check_wav_length(found.path, seconds, condition, where)
            if found.kind is InputKind.LOCAL:
                _set(values, location, str(found.path))


def _looked_at(value: str, params: ParameterSet, location: Location) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (params.folder_of(location) or Path.cwd()) / path


def _set(values: dict[str, Any], location: Location, value: Any) -> None:
    target: Any = values  # a mapping or, under `utterances`, a list
    for key in location[:-1]:
        target = target[key]
    target[location[-1]] = value


def _check_wav_length(path: Path, seconds: float, condition: dict[str, Any], where: str) -> None:
    """A reference the model asserts on only after install and download, checked now."""
    try:
        with wave.open(str(path), "rb") as clip:
            if clip.getframerate() <= 0:
                raise wave.Error("its sample rate is 0")
            duration = clip.getnframes() / clip.getframerate()
    except (wave.Error, EOFError, OSError) as error:
        raise UsageError(
            f"{where}: {_describe(condition)} needs a WAV file over {seconds:g} s, and this "
            f"one cannot be read as WAV ({error}); give a 16-bit PCM WAV"
        ) from None
    if duration <= seconds:
        raise UsageError(
            f"{where} is {duration:.2f} s long; {_describe(condition)} needs a reference "
            f"over {seconds:g} s"
        )


def _check_utterances(spec: NotebookSpec, utterances: list, params: ParameterSet) -> None:
    if len(utterances) > MAX_UTTERANCES:
        raise UsageError(
            f"{params.where(('utterances',))}: {len(utterances)} utterances "
            f"is over the limit of {MAX_UTTERANCES}"
        )
    allowed = {
        **ALWAYS_PER_UTTERANCE,
        **{n: spec.parameters[n].type_name for n in spec.per_utterance},
    }
    for index, item in enumerate(utterances):
        where = params.where(("utterances", index))
        label = f"utterance {index + 1}"
        if isinstance(item, str):
            if not item.strip():
                raise UsageError(f"{where}: {label} is empty")
            continue
        if not isinstance(item, dict):
            raise UsageError(
                f"{where}: {label} must be a string or a mapping with `text`, "
                f"not {type(item).__name__}"
            )
        for key, value in item.items():
            key_where = params.where(("utterances", index, key))
            if key not in allowed:
                raise UsageError(
                    f"{key_where}: {label}: {key!r} cannot be set per utterance"
                    f"{_suggest(str(key), allowed)}; per-utterance settings are: "
                    f"{', '.join(sorted(allowed))}"
                )
            _check_value(spec, key, value, allowed[key], key_where)
        if not str(item.get("text", "")).strip():
            raise UsageError(f"{where}: {label} has no `text`")


def _has_type(value: Any, declared: str) -> bool:
    base, _, inner = declared.partition("[")
    inner = inner.rstrip("]").strip()
    match base:
        case "str":
            return isinstance(value, str)
        case "bool":
            return isinstance(value, bool)
        case "int":
            return isinstance(value, int) and not isinstance(value, bool)
        case "float":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "list":
            return isinstance(value, list) and (
                not inner or all(_has_type(v, inner) for v in value)
            )
        case "dict":
            return isinstance(value, dict)
        case _:
            return True


def _check_plain(params: ParameterSet) -> None:
    """Only JSON's types, finite, bounded in size, depth and string length."""
    budget = [MAX_NODES]

    def walk(value: Any, location: Location) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise UsageError(
                f"{params.where(())}: the parameters are too large (over {MAX_NODES} values)"
            )
        if len(location) > MAX_DEPTH:
            raise UsageError(f"{params.where(location)}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            if not _is_text(value):
                raise UsageError(f"{params.where(location)}: not valid Unicode text")
            if (found := CONTROL_CHARACTER.search(value)) is not None:
                raise UsageError(
                    f"{params.where(location)}: control character "
                    f"U+{ord(found.group()):04X} at character {found.start() + 1}; "
                    "remove it (a model stops at a NUL, or reads the rest as noise)"
                )
            if len(value) > MAX_STRING_CHARS:
                raise UsageError(
                    f"{params.where(location)}: a string of {len(value)} characters "
                    f"is over the limit of {MAX_STRING_CHARS}"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise UsageError(f"{params.where(location)}: {value} is not a finite number")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*location, index))
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise UsageError(f"{params.where(location)}: key {key!r} is not a string")
                walk(item, (*location, key))
        elif value is not None and not isinstance(value, bool | int):
            raise UsageError(
                f"{params.where(location)}: {type(value).__name__} values are not "
                "allowed; use strings, numbers, booleans, lists and mappings"
            )

    for name, value in params.values.items():
        walk(value, (name,))


def _is_text(value: str) -> bool:
    """False for strings with lone surrogates (undecodable bytes from the command line)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _suggest(word: str, candidates, ignore_case: bool = False) -> str:
    if not ignore_case:
        match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
        return f"; did you mean {match[0]!r}?" if match else ""
    spelled = {candidate.casefold(): candidate for candidate in candidates}
    match = difflib.get_close_matches(word.casefold(), list(spelled), n=1, cutoff=0.6)
    return f"; did you mean {spelled[match[0]]!r}?" if match else ""


def _article(type_name: str) -> str:
    return f"{'an' if type_name[0] in 'aeiou' else 'a'} {type_name}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- What a Kaggle kernel can run -----------------------------------------------------------

# The GPU a Kaggle push can ask for and the GPU notebooks run on: kaggle 2.2.5's cli.py names
# it "GPU T4 x2"; no shape for one T4 is documented.
T4_SHAPE = "NvidiaTeslaT4"
# Shapes Kaggle no longer gives, refused for any notebook: asked for, they would give
# another machine than the one named.
RETIRED_SHAPES = {
    "NvidiaTeslaP100": "Kaggle has retired the P100 (kaggle 2.2.5 warns that such a session "
    "runs on the default NvidiaTeslaT4 instead), and current PyTorch builds have no kernels "
    "for it (sm_60)",
}


def check_kaggle_kernel(
    spec: NotebookSpec, values: dict[str, Any], options: KernelOptions
) -> None:
    """Refuse, before anything is pushed, a Kaggle kernel the notebook cannot run in, which
    would otherwise be found only after its install and download: a GPU notebook on any
    machine but a T4, without the internet its install and weights need, or with settings
    a T4 runs badly; a machine shape for a notebook that uses no GPU; for any notebook, a
    shape Kaggle has retired."""
    name = f"notebook {spec.name!r}"
    retired = RETIRED_SHAPES.get(str(options.machine_shape))
    if retired is not None:
        raise UsageError(
            f"{name}: machine shape {options.machine_shape}: {retired}; ask for {T4_SHAPE}"
        )
    if spec.plain:
        return  # a plain notebook's machine is whatever the options name
    if not spec.kernel.enable_gpu:
        if options.machine_shape:
            raise UsageError(
                f"{name} uses no GPU: machine shape {options.machine_shape} (--machine-shape "
                "or kaggle.machine_shape) would spend GPU quota on it for nothing; leave it unset"
            )
    else:
        shape = options.machine_shape or spec.kernel.machine_shape
        if shape != T4_SHAPE:
            raise UsageError(
                f"{name} runs only on Kaggle's T4s (machine shape {T4_SHAPE}), "
                f"not {shape or 'a kernel without one'}: a GPU of compute capability 7.0 or "
                "more is needed"
            )
        for rule in spec.kernel.t4_refuses:
            if _holds(spec, values, rule["when"]):
                raise UsageError(f"{name}: {_describe(rule['when'])} on a T4: {rule['why']}")
    if spec.kernel.enable_internet and options.enable_internet is False:
        raise UsageError(
            f"{name} pip-installs its packages and downloads its model in the kernel: it "
            "cannot run with enable_internet false (installing them from attached datasets "
            "is not supported yet)"
        )
