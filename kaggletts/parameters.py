"""Parameter sets: read from dicts, YAML files and `-p NAME VALUE` pairs, then checked
against a notebook's `parameters` cell before anything runs.

Every error names where the bad value came from (the YAML file and line, or the
command-line pair) so a user with a batch of hundreds of lines can find it."""

from __future__ import annotations

import difflib
import keyword
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kaggletts.errors import UsageError
from kaggletts.notebook import NotebookSpec

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_STRING_CHARS = 20_000
MAX_UTTERANCES = 5_000
MAX_NODES = 200_000
MAX_DEPTH = 8
ALWAYS_PER_UTTERANCE = {"text": "str", "name": "str"}

Location = tuple[str | int, ...]


@dataclass
class ParameterSet:
    """Parameter values plus where each came from, for error messages."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[Location, str] = field(default_factory=dict)
    cli_raw: dict[str, str] = field(default_factory=dict)

    def where(self, location: Location) -> str:
        """The most precise known origin of a value: its own line, else its parent's."""
        while location:
            if location in self.origins:
                return self.origins[location]
            location = location[:-1]
        return self.origins.get((), "parameters")

    def update(self, other: ParameterSet) -> None:
        if not other.values:
            return
        for name in other.values:
            self.cli_raw.pop(name, None)
            for location in [loc for loc in self.origins if loc and loc[0] == name]:
                del self.origins[location]
        mine = self.origins.get(())
        self.origins.update(other.origins)
        if self.values and mine:
            self.origins[()] = f"{mine} + {other.origins[()]}"
        self.values.update(other.values)
        self.cli_raw.update(other.cli_raw)


def from_mapping(values: Mapping[str, Any], origin: str = "parameters") -> ParameterSet:
    if not isinstance(values, Mapping):
        raise UsageError(f"{origin}: parameters must be a mapping of names to values")
    return ParameterSet(dict(values), {(): origin})


def from_yaml_file(path: str | os.PathLike) -> ParameterSet:
    """A YAML parameter file: defaults at the top, usually a list of `utterances`."""
    import yaml

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise UsageError(f"{path}: cannot read parameter file ({error.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise UsageError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise UsageError(f"{path}: cannot read parameter file ({error.strerror})") from None
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
    finally:
        loader.dispose()
    if not isinstance(values, dict):
        raise UsageError(f"{path}:1: expected a mapping of parameter names to values")
    return ParameterSet(values, origins)


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
) -> None:
    """Map each value's location to its file and line; aliases count every time they
    are used, so a small file that expands enormously is refused here."""
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise UsageError(f"{path}: over {MAX_NODES} values once YAML aliases are expanded")
    if location:
        origins.setdefault(location, f"{path}:{node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise UsageError(f"{path}:{key.start_mark.line + 1}: keys must be plain names")
            name = loader.construct_object(key)
            if name in seen:
                raise UsageError(f"{path}:{key.start_mark.line + 1}: {name!r} is given twice")
            seen.add(name)
            origins[(*location, name)] = f"{path}:{key.start_mark.line + 1}"
            _record_lines(loader, value, (*location, name), path, origins, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(loader, item, (*location, index), path, origins, budget)


def from_cli_pairs(pairs: list[tuple[str, str]]) -> ParameterSet:
    """`-p NAME VALUE` pairs; values read as YAML scalars (`3`, `true`, `[a, b]`)."""
    import yaml

    result = ParameterSet(origins={(): "-p"})
    for name, raw in pairs:
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        result.values[name] = value
        result.origins[(name,)] = f"-p {name}"
        result.cli_raw[name] = raw
    return result


def load(*sources: Mapping[str, Any] | str | os.PathLike | ParameterSet) -> ParameterSet:
    """Merge parameter sources in order; later ones win name by name."""
    merged = ParameterSet(origins={(): "parameters"})
    for source in sources:
        if isinstance(source, ParameterSet):
            merged.update(source)
        elif isinstance(source, Mapping):
            merged.update(from_mapping(source))
        else:
            merged.update(from_yaml_file(source))
    return merged


def validate(spec: NotebookSpec, params: ParameterSet) -> dict[str, Any]:
    """The values to inject, or a UsageError naming the first problem and where it is."""
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
        if declared == "str" and name in params.cli_raw and not isinstance(value, str):
            value = values[name] = params.cli_raw[name]
        _check_value(spec, name, value, declared, where)
    if "utterances" in values:
        _check_utterances(spec, values["utterances"], params)
    if "text" in values and not str(values["text"]).strip():
        raise UsageError(f"{params.where(('text',))}: `text` is empty")
    _check_rules(spec, values, params)
    speaks = {"text", "utterances"} <= spec.parameters.keys()
    if speaks and not values.get("text") and not values.get("utterances"):
        raise UsageError(f"{params.where(())}: nothing to speak: give `text` or `utterances`")
    return values


def _check_rules(spec: NotebookSpec, values: dict[str, Any], params: ParameterSet) -> None:
    """The notebook's own consistency rules (its metadata `kaggletts.rules`), checked here
    so that a mismatch costs no GPU session: `{"when": {name: value}, "contains":
    {other: substring}}` means that when `name` is `value`, `other` must contain it."""

    def effective(name: str) -> Any:
        return values.get(name, spec.parameters[name].default)

    for rule in spec.rules:
        if all(effective(name) == value for name, value in rule["when"].items()):
            for name, part in rule["contains"].items():
                if part not in str(effective(name)):
                    condition = ", ".join(f"{k} {v!r}" for k, v in rule["when"].items())
                    given = name if name in values else next(iter(rule["when"]))
                    raise UsageError(
                        f"{params.where((given,))}: {name} {effective(name)!r} does not fit "
                        f"{condition}: it must contain {part!r}"
                    )


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
    if name in spec.choices and value not in spec.choices[name]:
        raise UsageError(
            f"{where}: {name} {value!r} is not one of "
            f"{', '.join(spec.choices[name])}{_suggest(str(value), spec.choices[name])}"
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


def _suggest(word: str, candidates) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _article(type_name: str) -> str:
    return f"{'an' if type_name[0] in 'aeiou' else 'a'} {type_name}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
