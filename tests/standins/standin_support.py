"""What the stand-in model packages share: the call log and the synthetic tone. Not a
stand-in itself; it sits beside them on the kernel's PYTHONPATH."""

from __future__ import annotations

import json
import math
import os

import numpy as np

SAMPLE_RATE = 24000


def plain(value):
    """Call arguments as JSON: dtypes and other objects by their str()."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def record_call(module: str, method: str, **arguments) -> None:
    """Append one call as a JSON line to the file KAGGLETTS_STANDIN_CALLS names, if any."""
    calls = os.environ.get("KAGGLETTS_STANDIN_CALLS")
    if calls:
        line = json.dumps({"module": module, "method": method, **plain(arguments)},
                          ensure_ascii=False)
        with open(calls, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def tone(text: str, pitch_seed: str) -> np.ndarray:
    """A float32 sine tone: 0.2 s plus 50 ms per character, its pitch chosen by `pitch_seed`."""
    seconds = 0.2 + 0.05 * len(text)
    frequency = 180.0 + (sum(map(ord, pitch_seed)) % 200)
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    return (0.3 * np.sin(2 * math.pi * frequency * t)).astype(np.float32)
