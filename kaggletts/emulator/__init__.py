"""A local server speaking Kaggle's kernel HTTP API, running pushed notebooks with papermill.

Like LocalStack for AWS: the unchanged `kaggle` client and kaggletts' Kaggle backend push,
poll and download against it, offline. See docs/emulator.md.
"""

from .config import (
    ASSUMPTION_EVIDENCE,
    DEFAULT_KEY,
    DEFAULT_USER,
    FAULT_KINDS,
    Assumption,
    Faults,
    Latency,
    Limits,
    Quirks,
)
from .emulator import Emulator

__all__ = [
    "ASSUMPTION_EVIDENCE",
    "Assumption",
    "DEFAULT_KEY",
    "DEFAULT_USER",
    "FAULT_KINDS",
    "Emulator",
    "Faults",
    "Latency",
    "Limits",
    "Quirks",
]
