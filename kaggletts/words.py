"""Counts as people write them: "1 clip", "2 clips"."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`number` and `noun`, the noun in the plural (`plural`, else with an s) unless one."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
