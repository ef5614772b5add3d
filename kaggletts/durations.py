"""Durations as people write them: `90` (seconds), `90s`, `10m`, `2h`, `1h30m`."""

from __future__ import annotations

import re

from kaggletts.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(value: float | int | str, what: str = "duration") -> float:
    """Seconds, from a number or a text such as `10m`; a clear UsageError otherwise."""
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a number of seconds or a text like 10m, not {value}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        parts = list(_PART.finditer(text))
        if not parts or "".join(p.group(0) for p in parts).replace(" ", "") != text.replace(
            " ", ""
        ):
            raise UsageError(f"{what} {value!r} is not a duration; write 90, 90s, 10m or 2h")
        seconds = sum(
            float(number) * _UNIT_SECONDS[unit] for number, unit in (p.groups() for p in parts)
        )
    if not seconds > 0:
        raise UsageError(f"{what} must be more than 0 seconds, not {value!r}")
    return seconds
