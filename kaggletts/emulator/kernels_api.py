"""`kernels.KernelsApiService`: push, status, outputs, pull, cancel and quota."""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import nbformat

from .config import Assumption
from .pulled_source import pulled_source
from .sessions import LOG_FILE, NOTEBOOK_NAME, OUTPUT_DIR, SCRIPT_NAME, LiveLog, is_utf8_name
from .store import FINAL_STATUSES, KernelRecord, VersionRecord, requests_gpu
from .wire import (
    MIN_TITLE_LENGTH,
    SHORT_TITLE_MESSAGE,
    ApiError,
    bad_request,
    check_slug,
    duration,
    optional_bool,
    optional_int,
    optional_str,
    parse_version_label,
    permission_denied,
    require_str,
    split_ref,
    str_list,
    timestamp,
    title_slug,
)

if TYPE_CHECKING:
    from .emulator import Emulator

Body = dict[str, object]
DEFAULT_PAGE_SIZE = 20
TPU_WEEKLY_SECONDS = 20 * 3600
# DeleteKernel of a kernel with live sessions waits this long for them to stop.
DELETE_WAIT_SECONDS = 30.0
# GetKernelSessionLogsStream waits this long for a queued session to start (kagglesdk 0.1.38,
# ApiGetKernelSessionLogsStreamRequest.wait_for_logs_url_seconds: default 60, capped to 300).
LOG_STREAM_DEFAULT_WAIT_SECONDS = 60
LOG_STREAM_MAX_WAIT_SECONDS = 300
LOG_STREAM_POLL_SECONDS = 0.1


def _now() -> float:
    return time.time()


class KernelsService:
    def __init__(self, app: Emulator):
        self._app = app
        self._quota_origin = _now()
        self._quota_refreshed_at = 0.0

    # Lookups ---------------------------------------------------------------------------

    def _visible_kernel(self, user: str, body: Body) -> KernelRecord:
        owner = require_str(body, "userName")
        slug = require_str(body, "kernelSlug")
        kernel = self._app.store.kernels.get(f"{owner}/{slug}")
        if kernel is None or (kernel.is_private and kernel.owner != user):
            raise permission_denied("kernels.get")
        return kernel

    @staticmethod
    def _pinned_version(kernel: KernelRecord, body: Body) -> VersionRecord | None:
        number = parse_version_label(optional_str(body, "versionLabel"))
        if number is None:
            return None
        version = kernel.version(number)
        if version is None:
            raise ApiError(404, f"Version v{number} of {kernel.ref} not found")
        return version

    def _version(self, kernel: KernelRecord, body: Body) -> VersionRecord:
        version = self._pinned_version(kernel, body) or kernel.latest
        if version is None:
            raise ApiError(404, f"{kernel.ref} has no versions")
        return version

    # SaveKernel ------------------------------------------------------------------------

    def save_kernel(self, user: str, body: Body) -> Body:
        limits = self._app.config.limits
        kernel_id = optional_int(body, "id")
        ref = optional_str(body, "slug")
        if not ref and kernel_id:
            existing = self._app.store.kernel_by_id(kernel_id)
            if existing is None or existing.owner != user:
                return {"error": "Notebook not found"}
            ref = existing.ref
        if not ref:
            raise bad_request("Either 'slug' or 'id' is required")
        owner, slug = split_ref(ref)
        if owner != user:
            raise permission_denied("kernels.create")
        title = optional_str(body, "newTitle")
        if title is not None:
            if len(title) < MIN_TITLE_LENGTH:
                raise bad_request(SHORT_TITLE_MESSAGE)
            slug = self._filed_slug(owner, slug, title)
        language = optional_str(body, "language") or ""
        if language != "python":
            raise bad_request(f"Unsupported language '{language}': only python is supported")
        kernel_type = optional_str(body, "kernelType") or ""
        if kernel_type not in ("notebook", "script"):
            raise bad_request(f"Invalid kernel type '{kernel_type}': use notebook or script")
        text = require_str(body, "text")
        if kernel_type == "notebook":
            _validate_notebook(text)
        machine_shape = optional_str(body, "machineShape")
        enable_gpu = optional_bool(body, "enableGpu", False)
        timeout = optional_int(body, "sessionTimeoutSeconds") or limits.max_session_seconds
        if timeout <= 0:
            raise bad_request("'sessionTimeoutSeconds' must be positive")
        if self._app.quirks.ignored_time_limit:
            timeout = limits.max_session_seconds
        datasets, invalid_datasets = self._split_dataset_sources(user, body)
        quick_save = body.get("kernelExecutionType") in (
            "QUICK_SAVE",
            "KERNEL_EXECUTION_TYPE_QUICK_SAVE",
        )

        store = self._app.store
        with store.lock:
            kernel = store.kernels.get(f"{owner}/{slug}")
            kernel_cap, version_cap = limits.max_kernels_per_user, limits.max_versions_per_kernel
            if (
                kernel is None
                and kernel_cap is not None
                and len(store.owned_by(owner)) >= kernel_cap
            ):
                raise ApiError(429, f"Too many notebooks: the limit is {kernel_cap}")
            if (
                kernel is not None
                and version_cap is not None
                and len(kernel.versions) >= version_cap
            ):
                raise ApiError(429, f"Too many versions: the limit is {version_cap}")
            uses_gpu = requests_gpu(enable_gpu, machine_shape)
            kind, cap = (
                ("GPU", self._app.gpu_sessions) if uses_gpu else ("CPU", self._app.cpu_sessions)
            )
            if not quick_save and store.active_sessions(owner, uses_gpu=uses_gpu) >= cap:
                return {"error": f"Maximum batch {kind} session count of {cap} reached"}
            if uses_gpu and not quick_save and self.gpu_seconds_left(owner) <= 0:
                return {"error": "You have used all of your weekly GPU quota"}
            if kernel is None:
                kernel = self._new_kernel(owner, slug, title, body)
            else:
                kernel.title = title or kernel.title
                kernel.is_private = optional_bool(body, "isPrivate", kernel.is_private)
            kernel.category_ids = str_list(body, "categoryIds")
            version = VersionRecord(
                number=len(kernel.versions) + 1,
                session_id=store.new_id(),
                created_at=_now(),
                kernel_type=kernel_type,
                language=language,
                enable_gpu=enable_gpu,
                enable_internet=optional_bool(body, "enableInternet", False),
                machine_shape=machine_shape,
                timeout_seconds=timeout,
                dataset_sources=datasets,
                status="NEW_SCRIPT" if quick_save else "QUEUED",
            )
            kernel.versions.append(version)
            store.save()
            self._save_source(kernel, version, text)
            if not quick_save:
                self._app.sessions.start(kernel, version, text)
        url = f"{self._app.web_url}/code/{owner}/{slug}"
        if self._app.assumes(Assumption.SESSION_ID_IN_URL):
            url += f"?scriptVersionId={version.session_id}"
        return {
            "ref": f"/code/{owner}/{slug}",
            "url": url,
            "versionNumber": version.number,
            "invalidDatasetSources": invalid_datasets,
            "invalidKernelSources": str_list(body, "kernelDataSources"),
            "invalidCompetitionSources": str_list(body, "competitionDataSources"),
            "invalidModelSources": str_list(body, "modelDataSources"),
            "kernelId": kernel.kernel_id,
        }

    def save_kernel_without_code(self, user: str, body: Body) -> None:
        """What a push that failed half-way leaves (kaggle-api #122: SaveKernel answered
        500, and the kernel appeared with its title but without the code): the kernel,
        no version, no session."""
        ref = optional_str(body, "slug")
        if not ref:
            return
        owner, slug = split_ref(ref)
        title = optional_str(body, "newTitle")
        if owner != user:
            return
        if title and len(title) >= MIN_TITLE_LENGTH:
            slug = self._filed_slug(owner, slug, title)
        store = self._app.store
        with store.lock:
            if f"{owner}/{slug}" not in store.kernels:
                self._new_kernel(owner, slug, title, body)
                store.save()

    def _new_kernel(self, owner: str, slug: str, title: str | None, body: Body) -> KernelRecord:
        """A kernel of `owner`'s, added to the store (its lock held by the caller)."""
        store = self._app.store
        kernel = KernelRecord(
            kernel_id=store.new_id(),
            owner=owner,
            slug=slug,
            title=title or slug,
            is_private=optional_bool(body, "isPrivate", True),
            created_at=_now(),
        )
        store.kernels[kernel.ref] = kernel
        return kernel

    def _filed_slug(self, owner: str, slug: str, title: str) -> str:
        """Where a push is filed: an existing kernel keeps its slug; a new one whose title
        slugifies to another slug goes to the title's address (a public CI report), or is
        refused with 409 under the title-conflict assumption."""
        derived = title_slug(title)
        if derived == slug or f"{owner}/{slug}" in self._app.store.kernels:
            return slug
        if self._app.assumes(Assumption.TITLE_CONFLICT):
            raise ApiError(
                409,
                f"Conflict: the title '{title}' resolves to the slug '{derived}', not '{slug}'",
            )
        try:
            check_slug(derived)
        except ApiError:
            return slug
        return derived

    def _save_source(self, kernel: KernelRecord, version: VersionRecord, text: str) -> None:
        source_dir = self._app.store.version_dir(kernel, version.number) / "source"
        source_dir.mkdir(parents=True, exist_ok=True)
        name = NOTEBOOK_NAME if version.kernel_type == "notebook" else SCRIPT_NAME
        (source_dir / ("pushed-" + name)).write_text(text, encoding="utf-8")

    def _split_dataset_sources(self, user: str, body: Body) -> tuple[list[str], list[str]]:
        valid: list[str] = []
        invalid: list[str] = []
        for ref in str_list(body, "datasetDataSources"):
            # A pinned dataset version ("owner/slug/3") mounts the current files.
            base = "/".join(ref.split("/")[:2])
            dataset = self._app.store.datasets.get(base)
            if dataset is None or (dataset.is_private and dataset.owner != user):
                invalid.append(ref)
            elif base not in valid:
                valid.append(base)
        return valid, invalid

    # Status, outputs, pull, cancel -----------------------------------------------------

    def get_kernel_session_status(self, user: str, body: Body) -> Body:
        kernel = self._visible_kernel(user, body)
        version = self._pinned_version(kernel, body) or self._unpinned_status_version(kernel)
        if version is None:
            raise ApiError(404, f"{kernel.ref} has no versions")
        quirks = self._app.quirks
        if quirks.unknown_status and _now() - version.created_at < quirks.unknown_status_seconds:
            return {"status": quirks.unknown_status}
        reply: Body = {"status": version.status}
        if version.failure_message:
            reply["failureMessage"] = version.failure_message
        return reply

    def _unpinned_status_version(self, kernel: KernelRecord) -> VersionRecord | None:
        latest = kernel.latest
        stale_for = self._app.quirks.stale_status_seconds
        if latest is not None and latest.number > 1 and _now() - latest.created_at < stale_for:
            return kernel.version(latest.number - 1)
        return latest

    def list_kernel_session_output(self, user: str, body: Body) -> Body:
        kernel = self._visible_kernel(user, body)
        version = self._version(kernel, body)
        version_dir = self._app.store.version_dir(kernel, version.number)
        live = self._app.sessions.live_log(version.session_id)
        if version.status == "RUNNING" and self._app.assumes(Assumption.RUNNING_OUTPUTS):
            # Files move to output/ as the session ends, so a listing taken now can be stale.
            names = _relative_files(self._app.store.working_dir(kernel, version.number))
            log = json.dumps(live.snapshot()) if live else None
        elif self.outputs_ready(version):
            names = self._listed_outputs(version, version_dir / OUTPUT_DIR)
            log_file = version_dir / LOG_FILE
            log = log_file.read_text(encoding="utf-8") if log_file.exists() else None
        else:
            # While a session runs its log is not available (kaggle-cli issue 653).
            return {"files": []}
        page_size = optional_int(body, "pageSize") or DEFAULT_PAGE_SIZE
        page_size = max(1, min(page_size, self._app.config.limits.outputs_page_size))
        offset = _decode_page_token(optional_str(body, "pageToken"), version.session_id)
        page = names[offset : offset + page_size]
        reply: Body = {
            "files": [
                {"fileName": name, "url": self._app.signed_output_url(kernel, version, name)}
                for name in page
            ]
        }
        if log is not None:
            reply["log"] = log
        if offset + page_size < len(names):
            reply["nextPageToken"] = _encode_page_token(version.session_id, offset + page_size)
        return reply

    def _listed_outputs(self, version: VersionRecord, output_dir: Path) -> list[str]:
        """What a finished version's listing names: nothing of a version that failed unless
        that is assumed, never the executed notebook under the quirk, and only the first
        files by name (Kaggle's known cap)."""
        if version.status != "COMPLETE" and not self._app.assumes(Assumption.FAILED_OUTPUTS):
            return []
        names = _relative_files(output_dir)
        if self._app.quirks.unlisted_notebook:
            names = [name for name in names if name != NOTEBOOK_NAME]
        return names[: self._app.config.limits.listed_outputs]

    def outputs_ready(self, version: VersionRecord) -> bool:
        if version.status not in FINAL_STATUSES or version.finished_at is None:
            return False
        return _now() >= version.finished_at + self._app.quirks.late_outputs_seconds

    def get_kernel(self, user: str, body: Body) -> Body:
        kernel = self._visible_kernel(user, body)
        # Without the version-source assumption the label is ignored: the newest is known.
        pinned = (
            self._pinned_version(kernel, body)
            if self._app.assumes(Assumption.VERSION_SOURCE)
            else None
        )
        version = pinned or kernel.latest
        if version is None:
            # A kernel made by a push that failed half-way: its title, no code (kaggle-api #122).
            return {
                "metadata": {
                    "id": kernel.kernel_id,
                    "ref": kernel.ref,
                    "title": kernel.title,
                    "author": kernel.owner,
                    "slug": kernel.slug,
                    "isPrivate": kernel.is_private,
                },
                "blob": {"source": "", "slug": kernel.slug},
            }
        source_dir = self._app.store.version_dir(kernel, version.number) / "source"
        name = NOTEBOOK_NAME if version.kernel_type == "notebook" else SCRIPT_NAME
        pushed = (source_dir / ("pushed-" + name)).read_text(encoding="utf-8")
        source = pulled_source(
            pushed, version, keep_metadata=self._app.assumes(Assumption.METADATA_KEPT)
        )
        metadata: Body = {
            "id": kernel.kernel_id,
            "ref": kernel.ref,
            "title": kernel.title,
            "author": kernel.owner,
            "slug": kernel.slug,
            "lastRunTime": timestamp(version.started_at or version.created_at),
            "language": version.language,
            "kernelType": version.kernel_type,
            "isPrivate": kernel.is_private,
            "enableGpu": version.enable_gpu,
            "enableInternet": version.enable_internet,
            "categoryIds": kernel.category_ids,
            "datasetDataSources": version.dataset_sources,
        }
        current = self._current_version_number(kernel)
        if current is not None:
            metadata["currentVersionNumber"] = current
        if version.machine_shape:
            metadata["machineShape"] = version.machine_shape
        blob = {
            "source": source,
            "language": version.language,
            "kernelType": version.kernel_type,
            "slug": kernel.slug,
        }
        return {"metadata": metadata, "blob": blob}

    def _current_version_number(self, kernel: KernelRecord) -> int | None:
        """The newest version that has left the queue (every version under the
        queued-version-counted assumption); None while none has."""
        if self._app.assumes(Assumption.QUEUED_VERSION_COUNTED):
            return len(kernel.versions) or None
        return max(
            (version.number for version in kernel.versions if version.has_left_queue),
            default=None,
        )

    def cancel_kernel_session(self, user: str, body: Body) -> Body:
        session_id = optional_int(body, "kernelSessionId")
        found = self._app.store.session(session_id) if session_id else None
        if found is None or found[0].owner != user:
            raise ApiError(404, f"Kernel session {session_id} not found")
        _, version = found
        with self._app.store.lock:
            if not version.is_active:
                return {"errorMessage": f"Kernel session {session_id} is not running"}
            version.status = "CANCEL_REQUESTED"
            self._app.store.save()
        self._app.sessions.cancel(version.session_id)
        return {}

    # Log stream ------------------------------------------------------------------------

    def open_log_stream(self, user: str, body: Body) -> LiveLog | bytes:
        """What GetKernelSessionLogsStream answers: the growing log of a running session,
        or the persisted log (JSON bytes) of one that has ended. A queued session is waited
        for up to `waitForLogsUrlSeconds`; if it is still queued then, 504."""
        session_id = optional_int(body, "kernelSessionId")
        if session_id:
            found = self._app.store.session(session_id)
            if found is None or found[0].owner != user:
                raise ApiError(404, f"Kernel session {session_id} not found")
            kernel, version = found
        else:
            kernel = self._visible_kernel(user, body)
            version = self._version(kernel, body)
        wait = optional_int(body, "waitForLogsUrlSeconds") or LOG_STREAM_DEFAULT_WAIT_SECONDS
        deadline = time.monotonic() + max(0, min(wait, LOG_STREAM_MAX_WAIT_SECONDS))
        while not version.has_left_queue:
            if time.monotonic() >= deadline:
                raise ApiError(
                    504, f"The log stream of {kernel.ref} v{version.number} is not available yet"
                )
            time.sleep(LOG_STREAM_POLL_SECONDS)
        live = self._app.sessions.live_log(version.session_id)
        if live is not None and not live.finished.is_set():
            return live
        log_file = self._app.store.version_dir(kernel, version.number) / LOG_FILE
        return log_file.read_bytes() if log_file.exists() else b"[]"

    def delete_kernel(self, user: str, body: Body) -> Body:
        owner = require_str(body, "userName")
        slug = require_str(body, "kernelSlug")
        store = self._app.store
        with store.lock:
            kernel = store.kernels.get(f"{owner}/{slug}")
            # Someone else's kernel and a missing one look alike, as for kernels.get.
            if kernel is None or kernel.owner != user:
                raise permission_denied("kernels.delete")
            live = [version for version in kernel.versions if version.is_active]
            # What Kaggle does with a live session is not known: by default the session
            # ends with its kernel (a client cannot count on it running on); refusing is
            # an opt-in assumption.
            if live and self._app.assumes(Assumption.DELETE_REFUSED_WHILE_RUNNING):
                return {"errorMessage": f"{kernel.ref} has a session queued or running"}
            for version in live:
                version.status = "CANCEL_REQUESTED"
            store.save()
        for version in live:
            self._app.sessions.cancel(version.session_id)
        ends = time.monotonic() + DELETE_WAIT_SECONDS
        while any(version.is_active for version in live) and time.monotonic() < ends:
            time.sleep(LOG_STREAM_POLL_SECONDS)
        with store.lock:
            store.kernels.pop(kernel.ref, None)
            store.save()
            shutil.rmtree(store.kernel_dir(kernel), ignore_errors=True)
        return {}

    # Quota -----------------------------------------------------------------------------

    def quota_period(self) -> tuple[float, float]:
        """When the current GPU quota period started, and when it refreshes."""
        now = _now()
        period = self._app.config.limits.gpu_quota_period
        if period:
            start = self._quota_origin + (now - self._quota_origin) // period * period
        else:
            start, period = _week_start(), timedelta(days=7).total_seconds()
        return max(start, self._quota_refreshed_at), start + period

    def refresh_gpu_quota(self) -> None:
        self._quota_refreshed_at = _now()

    def gpu_seconds_used(self, owner: str) -> float:
        period_start, _ = self.quota_period()
        now = _now()
        used = 0.0
        for kernel in self._app.store.owned_by(owner):
            for version in kernel.versions:
                if not version.uses_gpu or version.started_at is None:
                    continue
                start = max(version.started_at, period_start)
                end = version.finished_at or now
                used += max(0.0, end - start)
        return used * self._app.config.limits.gpu_quota_scale

    def gpu_seconds_left(self, owner: str) -> float:
        return self._app.config.limits.weekly_gpu_seconds - self.gpu_seconds_used(owner)

    def get_accelerator_quota_statistics(self, user: str, body: Body) -> Body:
        used = self.gpu_seconds_used(user)
        has_run = any(
            version.uses_gpu
            for kernel in self._app.store.owned_by(user)
            for version in kernel.versions
        )
        gpu: Body = {
            "timeUsed": duration(used),
            "timeReserved": duration(0),
            "totalTimeAllowed": duration(self._app.config.limits.weekly_gpu_seconds),
            "minimumTimeAllowed": duration(self._app.config.limits.weekly_gpu_seconds),
            "hasEverRun": has_run,
        }
        tpu: Body = {
            "timeUsed": duration(0),
            "timeReserved": duration(0),
            "totalTimeAllowed": duration(TPU_WEEKLY_SECONDS),
            "minimumTimeAllowed": duration(TPU_WEEKLY_SECONDS),
        }
        _, refresh = self.quota_period()
        return {"quotaRefreshTime": timestamp(refresh), "gpuQuota": gpu, "tpuQuota": tpu}


def _week_start() -> float:
    """Kaggle's quota week is modelled as starting on Saturday 00:00 UTC."""
    now = datetime.now(tz=UTC)
    days_since_saturday = (now.weekday() - 5) % 7
    start = (now - timedelta(days=days_since_saturday)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return start.timestamp()


def _validate_notebook(text: str) -> None:
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # nbformat raises many types on malformed input
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise bad_request(f"The notebook is not valid: {first_line}") from error
    for cell in notebook.cells:
        language = cell.get("metadata", {}).get("vscode", {}).get("languageId")
        if cell.cell_type == "code" and language not in (None, "python"):
            raise bad_request(f"Cell {cell.get('id', '?')} is in {language}, not python")


def _relative_files(root: Path) -> list[str]:
    """Output files by relative name; a name that is not UTF-8 (it cannot go into a JSON
    reply or a URL) is left out, and the session's log says so."""
    if not root.is_dir():
        return []
    return sorted(
        name
        for name in (
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and not path.is_symlink()
        )
        if is_utf8_name(name)
    )


def _encode_page_token(session_id: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{session_id}:{offset}".encode()).decode()


def _decode_page_token(token: str | None, session_id: int) -> int:
    if not token:
        return 0
    try:
        owner_session, offset = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if int(owner_session) == session_id and int(offset) >= 0:
            return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise bad_request("Invalid page token")


def quote_path(name: str) -> str:
    return quote(name, safe="/")
