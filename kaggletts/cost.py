"""What a run costs in Kaggle GPU quota, read from the figures each notebook records in its
`run` scrap, and an estimate for a batch before it is pushed, from the runs of the same
notebook, mode (or variant) and model stored under the output folder.

Kaggle charges a session's whole time against the weekly GPU quota, however many of its
GPUs work: seconds of session per minute of audio is therefore the figure that matters.
A notebook knows its own time only; each session's queueing and start-up before its first
cell are not in it, so every figure here is a lower bound."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kaggletts.errors import UsageError
from kaggletts.jobs import list_jobs
from kaggletts.notebook import find_notebook
from kaggletts.records import RunRecord
from kaggletts.result import Result
from kaggletts.words import counted


@dataclass(frozen=True)
class RunKind:
    """What makes runs comparable: the notebook, its mode or variant, its model."""

    notebook: str
    mode: str
    model: str

    def __str__(self) -> str:
        return ", ".join(part for part in (self.notebook, self.mode, self.model) if part)

    def includes(self, recorded: RunKind) -> bool:
        """Whether a recorded run is of this kind. A notebook without a `model_id` parameter
        (espeak, chatterbox) records a model name of its own, which a batch cannot give:
        a kind without a model takes any."""
        return (recorded.notebook, recorded.mode) == (self.notebook, self.mode) and (
            self.model in ("", recorded.model)
        )


@dataclass(frozen=True)
class RunCost:
    """One notebook session's figures: its own time, the part spent speaking (the rest is
    installing and loading), and what it spoke."""

    kind: RunKind
    session_seconds: float
    synthesis_seconds: float
    characters: int
    audio_seconds: float

    @classmethod
    def from_run(cls, notebook: str, run: RunRecord) -> RunCost | None:
        """None for a run recorded before these figures existed, or with nothing spoken."""
        if (
            run.total_seconds is None
            or run.synthesis_seconds is None
            or not run.characters
            or not run.audio_seconds
        ):
            return None
        return cls(
            RunKind(notebook, run.mode or run.variant or "", run.model_id or ""),
            run.total_seconds,
            run.synthesis_seconds,
            run.characters,
            run.audio_seconds,
        )

    @property
    def startup_seconds(self) -> float:
        return max(self.session_seconds - self.synthesis_seconds, 0.0)


def run_costs(result: Result) -> list[RunCost]:
    """Every session of a result (one per shard) that recorded its figures."""
    costs = (RunCost.from_run(result.notebook_name, run) for run in result.runs)
    return [cost for cost in costs if cost is not None]


def rate(result: Result) -> str | None:
    """Session seconds per minute of audio, over every session that recorded its figures."""
    costs = run_costs(result)
    if not costs:
        return None
    session = sum(cost.session_seconds for cost in costs)
    audio = sum(cost.audio_seconds for cost in costs)
    return f"{session * 60 / audio:.1f} s of session per minute of audio"


def summary(result: Result) -> str | None:
    """What a Kaggle run cost, in one line for the end of `kaggletts run`: its rate, and
    the GPU quota it took. None for a run on this machine, which costs nothing to count."""
    per_minute = rate(result)
    if per_minute is None or result.backend != "kaggle":
        return None
    if not _uses_gpu(result.notebook_name):
        return f"{per_minute} on Kaggle's CPUs (no GPU quota used)"
    costs = run_costs(result)
    session = sum(cost.session_seconds for cost in costs)
    sessions = counted(len(costs), "session")
    return (f"{per_minute}; this run used at least {session / 60:.1f} min of GPU quota in "
            f"{sessions} (plus each session's start-up)")


def _uses_gpu(notebook: str) -> bool:
    try:
        return find_notebook(notebook).kernel.enable_gpu
    except UsageError:
        return True  # a notebook no longer found: say what a GPU run would cost


@dataclass(frozen=True)
class Estimate:
    """A batch's expected session time: the median start-up of the recorded runs plus their
    pooled speaking time per character times the batch's characters."""

    kind: RunKind
    characters: int
    runs: int
    startup_seconds: float
    seconds_per_character: float

    @property
    def session_seconds(self) -> float:
        return self.startup_seconds + self.seconds_per_character * self.characters


def estimate(kind: RunKind, characters: int, history: Iterable[RunCost]) -> Estimate | None:
    """None when no recorded run is of this kind."""
    alike = [cost for cost in history if kind.includes(cost.kind)]
    if not alike:
        return None
    return Estimate(
        kind,
        characters,
        len(alike),
        statistics.median(cost.startup_seconds for cost in alike),
        sum(cost.synthesis_seconds for cost in alike) / sum(cost.characters for cost in alike),
    )


def kind_of(notebook: str, values: dict[str, Any], defaults: dict[str, Any]) -> RunKind:
    """The kind a run with these parameters will record (the notebook's defaults under them)."""
    merged = {**defaults, **values}
    return RunKind(notebook, str(merged.get("mode") or merged.get("variant") or ""),
                   str(merged.get("model_id") or ""))


def kaggle_history(output_dir: str | os.PathLike | None) -> list[RunCost]:
    """The figures of every finished Kaggle job stored under the output folder."""
    costs = []
    for job in list_jobs(output_dir):
        result = Result.load(job.directory)
        if result is not None and result.backend == "kaggle":
            costs += run_costs(result)
    return costs


# Where no finished run of the user's own is stored: the one measured real run (a P100,
# Qwen3-TTS 1.7B in float16; benchmarks/RESULTS.md gives its figures and source).
MEASURED_STARTUP_SECONDS = 114.0
MEASURED_SECONDS_PER_LINE = 26.0
MEASURED_SOURCE = (
    "a measured P100 run of Qwen3-TTS 1.7B fp16: 79 s pip + 35 s model load, a 10 s clip in "
    "about 26 s (benchmarks/RESULTS.md)"
)
# A notebook nothing was measured for: kaggletts' own guesses, said to be guesses.
GUESSED_STARTUP_SECONDS = 180.0


@dataclass(frozen=True)
class SessionFigures:
    """What one session of a batch is estimated from, and where the figures come from."""

    startup_seconds: float
    seconds_per_line: float
    seconds_per_character: float
    source: str

    def session_seconds(self, lines: int, characters: int) -> float:
        return (
            self.startup_seconds
            + self.seconds_per_line * lines
            + self.seconds_per_character * characters
        )


def session_figures(
    kind: RunKind, history: Iterable[RunCost], guessed_seconds_per_line: float
) -> SessionFigures:
    """The user's own finished runs of this kind when there are any, else the measured
    run for Qwen (per model: the 0.6B model was not measured, so it gets 1.7B's figure,
    an overestimate), else the notebook's own guess."""
    found = estimate(kind, 0, history)
    if found is not None:
        return SessionFigures(
            found.startup_seconds, 0.0, found.seconds_per_character,
            f"from {counted(found.runs, 'finished Kaggle session')} of yours of {kind}",
        )
    if kind.notebook == "qwen":
        measured_for = "" if "1.7B" in kind.model or not kind.model else (
            f"; {kind.model} not measured, 1.7B's figure used"
        )
        return SessionFigures(MEASURED_STARTUP_SECONDS, MEASURED_SECONDS_PER_LINE, 0.0,
                              MEASURED_SOURCE + measured_for)
    return SessionFigures(
        GUESSED_STARTUP_SECONDS, guessed_seconds_per_line, 0.0,
        f"kaggletts' guess for {kind}: {GUESSED_STARTUP_SECONDS:.0f} s to start, "
        f"{guessed_seconds_per_line:g} s per line (nothing measured)",
    )


def duration_text(seconds: float) -> str:
    """Seconds as a person reads them: 40 s, 3 min, 2.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
