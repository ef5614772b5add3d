"""Backends run a parameterized notebook somewhere and return a Result.

Like papermill's engines they sit behind a small registry, imported only when used,
so adding one is a new module and a line here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

from kaggletts.errors import UsageError

if TYPE_CHECKING:
    from kaggletts.jobs import Job
    from kaggletts.result import Result


class Backend(Protocol):
    name: str

    def identity(self) -> dict[str, Any]:
        """What, besides notebook and parameters, makes a run on this backend what it is
        (for Kaggle: endpoint, account, kernel options); part of the job id."""
        ...

    def run(self, job: Job, *, force: bool = False, attach: bool = False) -> Result:
        """Run the job, or pick it up where it stopped. `attach` only collects: it never
        starts a run that ended badly again."""
        ...


BACKENDS = {
    "local": "kaggletts.backends.local:LocalBackend",
    "kaggle": "kaggletts.backends.kaggle:KaggleBackend",
}


def get_backend(name: str, **options: Any) -> Backend:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)
