"""Run notebooks on Kaggle: push once, wait, download only what is needed, verify.

The modules follow the flow: `records` (the typed job record and its state machine),
`kernel` (the pushed folder), `push`, `wait`, `outputs` (+ `download`), tied together by
`backend`; `remote` is the one place that speaks to Kaggle's API."""

from kaggletts.backends.kaggle.backend import KaggleBackend
from kaggletts.backends.kaggle.kernel import KernelOptions

__all__ = ["KaggleBackend", "KernelOptions"]
