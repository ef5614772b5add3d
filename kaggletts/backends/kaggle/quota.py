"""The week's GPU quota, asked before every GPU push: when it is used up the run stops
cleanly (QuotaExhausted, exit 3) instead of pushing sessions Kaggle would refuse or cut.

Only the quota call (GetAcceleratorQuotaStatistics: used, allowed, refresh time) decides.
What Kaggle answers a GPU push past the quota is not known, so the wording of a refusal is
never read: a refused push counts as the quota's doing only when the quota call then says
it is used up. When the quota call cannot be had, pushes go on unguarded and a refusal is
reported as Kaggle worded it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kaggletts.backends.kaggle.remote import KaggleRemote, Quota
from kaggletts.errors import KaggleTTSError, PushRejected, QuotaExhausted

log = logging.getLogger("kaggletts")
# A session spends about two minutes installing and loading before its first line (pip
# about 79 s, model load about 35 s on a real run, kaggle.md): with less quota left than
# this, a push would pay for nothing.
MIN_QUOTA_SECONDS = 180.0


def refresh_moment(refresh_time: str) -> datetime | None:
    """Kaggle's refresh time as an aware datetime: kagglesdk drops the `Z` of the UTC time
    it reads (DateTimeSerializer), so a naive one is UTC."""
    try:
        moment = datetime.fromisoformat(refresh_time)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class QuotaGate:
    """What one run has learned of the GPU quota, shared by its shards: once one finds the
    quota used up the others push nothing, and a quota call that failed is not asked
    again (the run goes on without it)."""

    used_up: Quota | None = None
    unreadable: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before_push(self, remote: KaggleRemote) -> None:
        """Raise QuotaExhausted when the quota left cannot pay for a session."""
        with self._lock:
            if self.used_up is None and self.unreadable is None:
                self.used_up = self._verdict(remote)
            if self.used_up is not None:
                raise exhausted(self.used_up)

    def after_refusal(
        self, remote: KaggleRemote, refusal: PushRejected
    ) -> PushRejected | QuotaExhausted:
        """What a refused GPU push means: QuotaExhausted if the quota call now says it is
        used up, else the refusal as Kaggle worded it (saying when the quota is unknown)."""
        with self._lock:
            if self.unreadable is None:
                self.used_up = self._verdict(remote)
            if self.used_up is not None:
                return exhausted(self.used_up)
            if self.unreadable is None:
                return refusal
            said = PushRejected(
                f"{refusal}\n  (GPU quota unknown: {self.unreadable}; if this week's is used "
                "up, the same request continues once it refreshes, speaking only the lines "
                "left)"
            )
            said.__dict__.update(refusal.__dict__)
            return said

    def _verdict(self, remote: KaggleRemote) -> Quota | None:
        try:
            quota = remote.quota()
        except KaggleTTSError as error:
            self.unreadable = str(error)
            log.info("GPU quota unknown (%s); pushing without checking it", error)
            return None
        if not quota.allowed_seconds or quota.remaining_seconds >= MIN_QUOTA_SECONDS:
            return None
        return quota


def exhausted(quota: Quota) -> QuotaExhausted:
    from kaggletts.cost import duration_text

    allowed = duration_text(quota.allowed_seconds)
    left = (
        f"{duration_text(quota.remaining_seconds)} left of {allowed}, too little for a "
        "session to start"
        if quota.remaining_seconds
        else f"all {allowed} used"
    )
    moment = refresh_moment(quota.refresh_time)
    if moment is not None:
        when = f"it refreshes {moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    elif quota.refresh_time:
        when = f"it refreshes {quota.refresh_time}"
    else:
        when = "Kaggle did not say when it refreshes"
    return QuotaExhausted(
        f"this week's GPU quota on Kaggle is used up ({left}; {when})",
        refreshes=moment.isoformat() if moment else quota.refresh_time or None,
    )
