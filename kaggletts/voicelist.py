"""The voices a notebook accepts: every speaker, voice, language and variant, read from
the same lists its parameters are validated against (kaggletts.parameters)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from kaggletts.notebook import NotebookSpec, find_notebook
from kaggletts.parameters import allowed_values


@dataclass(frozen=True)
class VoiceChoice:
    """The values one parameter of a notebook accepts."""

    parameter: str
    help: str
    default: Any
    values: tuple[str, ...]
    # eSpeak NG's `voice+variant`: any of these may follow a value after a `+`.
    variants: tuple[str, ...] = ()
    ignore_case: bool = False
    # A line of the batch may set its own (in `utterances`), not only the whole batch.
    per_line: bool = False
    # The notebook reads the parameter only when these other parameters hold these values.
    only_when: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def voices(notebook: str | os.PathLike | NotebookSpec) -> list[VoiceChoice]:
    """What `notebook` (a shipped name such as "qwen", or a path) accepts from a fixed
    list, parameter by parameter: those a line may set for itself first (the voice,
    speaker or language), then those of the whole batch (a mode, a model variant)."""
    spec = notebook if isinstance(notebook, NotebookSpec) else find_notebook(notebook)
    found = []
    for parameter in spec.parameters.values():
        choices = allowed_values(spec, parameter.name)
        if choices is None:
            continue
        found.append(
            VoiceChoice(
                parameter=parameter.name,
                help=parameter.help,
                default=parameter.default,
                values=choices.names,
                variants=choices.variants,
                ignore_case=choices.ignore_case,
                per_line=parameter.name in spec.per_utterance,
                only_when=dict(spec.only_when.get(parameter.name, {})),
            )
        )
    return sorted(found, key=lambda choice: not choice.per_line)
