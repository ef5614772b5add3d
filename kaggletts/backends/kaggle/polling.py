"""How often to ask for a run's status: quickly at first, so short runs are noticed
within a second or two, then in proportion to the time already waited, so long runs
cost few calls; capped so a finished run is never missed for long."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PollSchedule:
    first: float = 1.5
    fraction: float = 0.15
    cap: float = 60.0

    def interval(self, elapsed: float) -> float:
        return min(max(self.first, self.fraction * elapsed), self.cap)

    def scaled(self, factor: float) -> PollSchedule:
        return PollSchedule(self.first * factor, self.fraction, self.cap * factor)
