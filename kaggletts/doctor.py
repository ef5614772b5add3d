"""`kaggletts doctor`: whether this machine and Kaggle account are ready, found out in
seconds instead of after minutes of waiting for a first GPU run.

Each check gives one verdict and, when it fails, what to do. Checks run in order and
later ones use what earlier ones learned (the credentials, the reply to an authenticated
call); a check whose prerequisite failed is skipped, so the first failure is the cause."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import nbformat
import requests

from kaggletts.api import prepare, run_job
from kaggletts.backends.kaggle import KaggleBackend
from kaggletts.backends.kaggle.credentials import find_credentials
from kaggletts.backends.kaggle.remote import PRODUCTION
from kaggletts.backends.local import LocalBackend
from kaggletts.errors import Interrupted, KaggleTTSError
from kaggletts.notebook import data_dir, find_notebook, notebook_names
from kaggletts.settings import Settings, from_environment, load_settings

log = logging.getLogger("kaggletts")

PROBE_TIMEOUT_SECONDS = 10
LOCAL_LINE = "kaggletts doctor, speaking locally."
ROUND_TRIP_LINE = "kaggletts doctor, speaking on Kaggle."


class Verdict(StrEnum):
    PASS = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


class Check(StrEnum):
    SETTINGS = "settings"
    CREDENTIALS = "credentials"
    PERMISSIONS = "permissions"
    ENDPOINT = "endpoint"
    LOGIN = "login"
    GPU_QUOTA = "gpu-quota"
    NOTEBOOKS = "notebooks"
    LOCAL_ESPEAK = "local-espeak"
    ROUND_TRIP = "round-trip"


@dataclass(frozen=True)
class Finding:
    check: Check
    verdict: Verdict
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.check.value,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def examine(
    *,
    endpoint: str | None = None,
    round_trip: bool = False,
    backend_options: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Every check, in order. `endpoint` overrides the settings' one; `backend_options`
    are further KaggleBackend fields (tests use them to scale waits)."""
    return Examination(endpoint, round_trip, dict(backend_options or {})).run()


def passed(findings: list[Finding]) -> bool:
    return all(finding.verdict is not Verdict.FAIL for finding in findings)


@dataclass
class Examination:
    """One run of the checks and what they learned along the way."""

    endpoint_given: str | None
    round_trip: bool
    backend_options: dict[str, Any]
    settings: Settings = field(default_factory=Settings)
    credentials: Any = None
    backend: Any = None
    quota: Any = None
    reachable: bool = False
    logged_in: bool = False

    def run(self) -> list[Finding]:
        checks: list[Callable[[], Finding]] = [
            self.check_settings,
            self.check_credentials,
            self.check_permissions,
            self.check_endpoint,
            self.check_login,
            self.check_gpu_quota,
            self.check_notebooks,
            self.check_local_espeak,
            self.check_round_trip,
        ]
        return [check() for check in checks]

    # -- this machine ----------------------------------------------------------------

    def check_settings(self) -> Finding:
        failure = None
        try:
            settings = load_settings()
            settings.check_notebook_defaults()
        except KaggleTTSError as error:
            failure = Finding(
                Check.SETTINGS,
                Verdict.FAIL,
                str(error),
                "correct the named line or variable; `kaggletts config` shows them all",
            )
            # The other checks go on with what the environment alone sets, if it can.
            settings = Settings()
            with contextlib.suppress(KaggleTTSError):
                settings = from_environment()
        self.settings = settings.overridden({"kaggle.endpoint": self.endpoint_given}, "--endpoint")
        if failure:
            return failure
        places = sorted({origin.rsplit(":", 1)[0] for origin in self.settings.origins.values()})
        count = len(self.settings.origins) + sum(len(d.values) for d in settings.notebooks.values())
        if not count:
            return Finding(Check.SETTINGS, Verdict.PASS, "none set; the defaults apply")
        return Finding(Check.SETTINGS, Verdict.PASS, f"{count} set, from {', '.join(places)}")

    def check_credentials(self) -> Finding:
        try:
            self.credentials = find_credentials()
        except KaggleTTSError as error:
            # The client's own message says where credentials go, after its first sentence.
            problem, _, where_to_put_them = str(error).partition(". ")
            return Finding(
                Check.CREDENTIALS,
                Verdict.FAIL,
                problem,
                where_to_put_them or "create an API token at https://www.kaggle.com/settings",
            )
        user = f" for {self.credentials.username}" if self.credentials.username else ""
        kind = "a username and key" if self.credentials.key else "an access token"
        return Finding(
            Check.CREDENTIALS, Verdict.PASS, f"{kind}{user}, from {self.credentials.source}"
        )

    def check_permissions(self) -> Finding:
        if self.credentials is None:
            return Finding(Check.PERMISSIONS, Verdict.SKIP, "no credentials found")
        path = self.credentials.file
        if path is None:
            return Finding(Check.PERMISSIONS, Verdict.PASS, "from the environment; no file")
        if os.name == "nt":
            return Finding(Check.PERMISSIONS, Verdict.SKIP, f"{path}: Windows has no mode bits")
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            return Finding(
                Check.PERMISSIONS,
                Verdict.FAIL,
                f"{path} is readable by other users of this machine",
                f"chmod 600 {path}",
            )
        return Finding(Check.PERMISSIONS, Verdict.PASS, f"{path} is private to you")

    # -- Kaggle --------------------------------------------------------------------------

    def endpoint(self) -> str:
        return (self.settings.kaggle.endpoint or PRODUCTION).rstrip("/")

    def check_endpoint(self) -> Finding:
        endpoint = self.endpoint()
        origin = self.settings.origins.get("kaggle.endpoint", "the default")
        try:
            self.settings.refuse_project_endpoint()
        except KaggleTTSError as error:
            return Finding(
                Check.ENDPOINT,
                Verdict.FAIL,
                str(error),
                "name the endpoint yourself if you trust it, or run outside the project",
            )
        started = time.monotonic()
        try:
            requests.get(endpoint, timeout=PROBE_TIMEOUT_SECONDS, allow_redirects=False)
        except requests.RequestException as error:
            return Finding(
                Check.ENDPOINT,
                Verdict.FAIL,
                f"{endpoint} did not answer ({type(error).__name__})",
                f"check the network, or the endpoint (set by {origin})",
            )
        self.reachable = True
        return Finding(
            Check.ENDPOINT,
            Verdict.PASS,
            f"{endpoint} answered in {time.monotonic() - started:.2f} s",
        )

    def check_login(self) -> Finding:
        """A cheap authenticated call (the quota): whether Kaggle accepts the credentials."""
        if self.credentials is None or not self.reachable:
            return Finding(Check.LOGIN, Verdict.SKIP, "needs credentials and the endpoint")
        options = {**self.settings.backend_options("kaggle"), **self.backend_options}
        self.backend = KaggleBackend(credentials=self.credentials, **options)
        try:
            remote = self.backend.remote()
            self.quota = remote.quota()
        except KaggleTTSError as error:
            return Finding(
                Check.LOGIN,
                Verdict.FAIL,
                str(error),
                "create a new API token at https://www.kaggle.com/settings and "
                "save it where the kaggle client looks (see the credentials line)",
            )
        self.logged_in = True
        return Finding(
            Check.LOGIN, Verdict.PASS, f"{remote.endpoint} accepts them as {remote.username}"
        )

    def check_gpu_quota(self) -> Finding:
        if self.quota is None:
            return Finding(Check.GPU_QUOTA, Verdict.SKIP, "needs a login")
        hours = self.quota.remaining_seconds / 3600
        allowed = self.quota.allowed_seconds / 3600
        refresh = f" (refreshes {self.quota.refresh_time})" if self.quota.refresh_time else ""
        if not self.quota.allowed_seconds:
            return Finding(
                Check.GPU_QUOTA,
                Verdict.FAIL,
                "this account has no weekly GPU quota",
                "Kaggle gives GPU time to phone-verified accounts: verify at "
                "https://www.kaggle.com/settings; CPU notebooks (espeak) still run",
            )
        if not self.quota.remaining_seconds:
            return Finding(
                Check.GPU_QUOTA,
                Verdict.FAIL,
                f"all {allowed:.1f} GPU hours of this week are used{refresh}",
                "wait for the refresh; CPU notebooks (espeak) still run",
            )
        return Finding(
            Check.GPU_QUOTA,
            Verdict.PASS,
            f"{hours:.1f} of {allowed:.1f} GPU hours left this week{refresh}",
        )

    # -- the notebooks -------------------------------------------------------------------

    def check_notebooks(self) -> Finding:
        names = notebook_names()
        problems = [problem for name in names for problem in _kaggle_problems(name)]
        if problems:
            return Finding(
                Check.NOTEBOOKS,
                Verdict.FAIL,
                "; ".join(problems),
                "reinstall kaggletts (the shipped notebooks are damaged)",
            )
        return Finding(
            Check.NOTEBOOKS,
            Verdict.PASS,
            f"{', '.join(names)}: valid nbformat, python3 kernelspec, unique cell ids",
        )

    def check_local_espeak(self) -> Finding:
        try:
            seconds, audio = _speak_once(LOCAL_LINE, "local", LocalBackend())
        except KaggleTTSError as error:
            return Finding(
                Check.LOCAL_ESPEAK,
                Verdict.FAIL,
                str(error).splitlines()[0],
                "reinstall kaggletts with its dependencies (espeakng-loader, "
                "ipykernel); `kaggletts -v run espeak --text hi` shows the kernel log",
            )
        return Finding(
            Check.LOCAL_ESPEAK,
            Verdict.PASS,
            f"one line, {audio:.1f} s of audio, in {seconds:.1f} s",
        )

    def check_round_trip(self) -> Finding:
        if not self.round_trip:
            return Finding(
                Check.ROUND_TRIP,
                Verdict.SKIP,
                "not asked for; --run pushes a tiny CPU notebook (one short session, no GPU quota)",
            )
        if not self.logged_in:
            return Finding(Check.ROUND_TRIP, Verdict.SKIP, "needs a login")
        try:
            seconds, audio = _speak_once(ROUND_TRIP_LINE, "kaggle", self.backend)
        except Interrupted:
            raise
        except KaggleTTSError as error:
            return Finding(
                Check.ROUND_TRIP,
                Verdict.FAIL,
                str(error).splitlines()[0],
                "`kaggletts -v run espeak --text hi --backend kaggle` shows more",
            )
        return Finding(
            Check.ROUND_TRIP,
            Verdict.PASS,
            f"pushed, ran and downloaded {audio:.1f} s of audio in {seconds:.1f} s",
        )


def _kaggle_problems(name: str) -> list[str]:
    """What in the shipped notebook `name` Kaggle's import would reject or misrun: invalid
    nbformat, no python kernelspec, missing or repeated cell ids, no parameters cell."""
    path = data_dir("notebooks") / f"{name}.ipynb"
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        find_notebook(name)
    except (OSError, ValueError, nbformat.ValidationError, KaggleTTSError) as error:
        return [f"{name}: {str(error).splitlines()[0]}"]
    problems = []
    kernelspec = nb.metadata.get("kernelspec", {})
    if kernelspec.get("language") != "python" or not kernelspec.get("name"):
        problems.append(f"{name}: no python kernelspec")
    ids = [cell.get("id") for cell in nb.cells]
    if None in ids or len(set(ids)) != len(ids):
        problems.append(f"{name}: cell ids missing or repeated")
    return problems


def _speak_once(text: str, backend_name: str, backend: Any) -> tuple[float, float]:
    """Speak one espeak line on `backend` in a throwaway folder; (seconds taken, seconds
    of audio). The line is spoken again each time (force): the check is the run."""
    started = time.monotonic()
    with _quiet(), tempfile.TemporaryDirectory(prefix="kaggletts-doctor-") as folder:
        job = prepare("espeak", {"text": text}, backend_name, folder, backend.identity())
        result = run_job(job, backend, force=True)
        audio = result.audio_seconds
        if not result.audio or not audio:
            raise KaggleTTSError(f"the {backend_name} run made no audio")
    return time.monotonic() - started, audio


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """A run's progress lines stay off the doctor's report unless -v asked for them."""
    level = log.level
    if not log.isEnabledFor(logging.DEBUG):
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
