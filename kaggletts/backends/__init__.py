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

    def run(self, job: Job, *, force: bool = False) -> Result: ...


BACKENDS = {
    "local": "kaggletts.backends.local:LocalBackend",
    "kaggle": "kaggletts.backends.kaggle:KaggleBackend",
}


def get_backend(name: str, **options: Any) -> Backend:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)
