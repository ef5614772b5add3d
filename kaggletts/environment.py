"""The one reader of kaggletts' own environment variables (KAGGLETTS_*), so that each is
read in one place. The settings' variables (KAGGLETTS_BACKEND, KAGGLETTS_OUTPUT,
KAGGLETTS_KAGGLE_*; settings.KEYS names them) are read here as text and typed by the
settings; the others are switches of their own, named below."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PREFIX = "KAGGLETTS_"
# Any value: an internal error shows its traceback rather than one line.
DEBUG = "KAGGLETTS_DEBUG"
# Where the line cache keeps its clips instead of the user's cache folder.
CACHE_DIR = "KAGGLETTS_CACHE_DIR"
# The folder that stands in for Kaggle's /kaggle/input in local and emulated runs (the
# kernel's support code reads it too, in the kernel's own process).
INPUT_ROOT = "KAGGLETTS_INPUT_ROOT"


def text(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the variable `name` (of `environ`, by default this process's),
    stripped; None when it is unset or blank."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def debug() -> bool:
    return text(DEBUG) is not None


def cache_dir() -> Path | None:
    found = text(CACHE_DIR)
    return Path(found) if found else None


def input_root() -> Path | None:
    found = text(INPUT_ROOT)
    return Path(found) if found else None
