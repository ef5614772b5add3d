"""Backends run a parameterized notebook somewhere and return a Result.

Like papermill's engines they sit behind a small registry, imported only when used,
so adding one is a new module and a line here."""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Protocol

from kaggletts.errors import UsageError
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
    """The backend `name` with `options`; an option it does not take is a UsageError that
    says which backend takes it, or what was probably meant."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    backend_class = _backend_class(name)
    accepted = _option_names(backend_class)
    for option in options:
        if option in accepted:
            continue
        elsewhere = [other for other in BACKENDS if option in _option_names(_backend_class(other))]
        if elsewhere:
            raise UsageError(f"{option!r} only applies to backend {elsewhere[0]!r}, not {name!r}")
        close = difflib.get_close_matches(option, accepted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown option {option!r} for backend {name!r}{hint}")
    return backend_class(**options)


def _backend_class(name: str) -> type:
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def _option_names(backend_class: type) -> list[str]:
    return [
        parameter.name
        for parameter in inspect.signature(backend_class).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        or parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
