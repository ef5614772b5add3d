"""A local server speaking Kaggle's kernel HTTP API, running pushed notebooks with papermill.

Like LocalStack for AWS: the unchanged `kaggle` client and kaggletts' Kaggle backend push,
poll and download against it, offline. See docs/emulator.md.
"""

from .config import DEFAULT_KEY, DEFAULT_USER, FAULT_KINDS, Faults, Latency, Limits, Quirks
from .emulator import Emulator

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_USER",
    "FAULT_KINDS",
    "Emulator",
    "Faults",
    "Latency",
    "Limits",
    "Quirks",
]
