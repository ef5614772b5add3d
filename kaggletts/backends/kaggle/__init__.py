"""Run notebooks on Kaggle: push once, wait, download only what is needed, verify.

The modules follow the flow: `records` (the typed job record and its state machine),
`kernel` (the pushed folder), `push`, `wait`, `outputs` (+ `download`), tied together by
`backend`; `remote` is the one place that speaks to Kaggle's API. `options` (what a user
chooses) is plain, so the settings read it without loading the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kaggletts.backends.kaggle.options import KaggleOptions, KernelOptions

if TYPE_CHECKING:
    from kaggletts.backends.kaggle.backend import KaggleBackend

__all__ = ["KaggleBackend", "KaggleOptions", "KernelOptions"]


def __getattr__(name: str) -> Any:
    # Every command reads the settings, which import `options` above; the backend itself
    # (kagglesdk, requests, the result and job machinery) loads when first asked for.
    if name == "KaggleBackend":
        from kaggletts.backends.kaggle.backend import KaggleBackend

        return KaggleBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
