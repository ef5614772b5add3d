"""Kaggle's kernel API through the official client library (kagglesdk, on which the
`kaggle` CLI is built), with every call wrapped in a retry policy.

kagglesdk is used directly rather than `kaggle.KaggleApi` because importing `kaggle`
authenticates against the production service at import time, and KaggleApi cannot be
pointed at another endpoint. This module is the one place that reaches into the
client's internals: the endpoint, and a default timeout it does not set itself."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.retry import RetryPolicy, is_transient, status_of
from kaggletts.errors import (
    KaggleTTSError,
    KaggleUnreachable,
    ListingCutShort,
    PushRejected,
    RunFailed,
    SessionCapFull,
    UsageError,
)

log = logging.getLogger("kaggletts")

PRODUCTION = "https://api.kaggle.com"
REQUEST_TIMEOUT = (10, 120)
# Real Kaggle is not known to send a session id anywhere; where a reply url carries one
# (the emulator can be told to), it is what makes a remote cancel possible.
_SESSION_ID_IN_URL = re.compile(r"[?&]scriptVersionId=(\d+)")
# Kaggle caps concurrent batch sessions per account, GPU and CPU apart, with this wording.
_SESSION_CAP = re.compile(r"Maximum batch \w+ session count")
# Bounds on an output listing, whatever the server sends: pages of 200, so 10,000 files.
MAX_OUTPUT_PAGES = 50
LOG_END = "END_OF_LOG"


@dataclass(frozen=True)
class PushReply:
    version: int
    url: str
    # The kernel's slug as the reply's url names it (None if the url names none).
    slug: str | None
    session_id: int | None
    invalid_sources: list[str]


@dataclass(frozen=True)
class OutputFile:
    name: str
    url: str


@dataclass(frozen=True)
class Quota:
    used_seconds: float
    allowed_seconds: float
    refresh_time: str

    @property
    def remaining_seconds(self) -> float:
        return max(self.allowed_seconds - self.used_seconds, 0.0)


class KernelState(StrEnum):
    """A session's state: kagglesdk's KernelWorkerStatus by name, and UNKNOWN for a name
    the client does not know (new states appear over time), which as far as kaggletts can
    tell is a session still going."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    ERROR = "ERROR"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCEL_ACKNOWLEDGED = "CANCEL_ACKNOWLEDGED"
    # What a push with quick save (no run) starts as.
    NEW_SCRIPT = "NEW_SCRIPT"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def named(cls, name: str) -> KernelState:
        try:
            return cls(name)
        except ValueError:
            return cls.UNKNOWN


# States after which a session does no more work.
ENDED_STATES = frozenset(
    {
        KernelState.COMPLETE,
        KernelState.ERROR,
        KernelState.CANCEL_REQUESTED,
        KernelState.CANCEL_ACKNOWLEDGED,
    }
)


@dataclass(frozen=True)
class RemoteStatus:
    """A session's state, and `name`, what Kaggle called it (the name of an UNKNOWN one)."""

    state: KernelState
    name: str
    failure_message: str | None = None

    @classmethod
    def named(cls, name: str, failure_message: str | None = None) -> RemoteStatus:
        return cls(KernelState.named(name), name, failure_message)

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


def explain(error: Exception, endpoint: str, what: str) -> KaggleTTSError:
    """A remote failure that retries could not get past, as an error for the user. Only
    the server's own message is quoted: requests' text would show URLs, signed ones too."""
    status = status_of(error)
    said = _server_message(error)
    if status in (401, 403):
        return UsageError(
            f"Kaggle at {endpoint} refused these credentials or this kernel "
            f"(HTTP {status}{said}); check the username and key or token"
        )
    if is_transient(error):
        reason = f"HTTP {status}{said}" if status is not None else type(error).__name__
        return KaggleUnreachable(f"Kaggle at {endpoint} did not answer {what}: {reason}")
    if status is not None:
        return RunFailed(f"Kaggle at {endpoint} answered {what} with HTTP {status}{said}")
    return RunFailed(
        f"Kaggle at {endpoint} sent a reply to {what} that kaggletts cannot read "
        f"({type(error).__name__})"
    )


def _server_message(error: Exception) -> str:
    response = getattr(error, "response", None)
    try:
        message = response.json().get("message") if response is not None else None
    except ValueError:
        message = None
    return f": {str(message)[:200]}" if message else ""


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """kagglesdk sends without a timeout; a hung connection must not hang a run."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        timeout = REQUEST_TIMEOUT if timeout is None else timeout
        return super().send(request, stream, timeout, verify, cert, proxies)


class KaggleRemote:
    """The calls a kernel run needs, each retried per `policy`."""

    def __init__(
        self,
        credentials: Credentials,
        endpoint: str | None = None,
        policy: RetryPolicy | None = None,
    ):
        from kagglesdk import KaggleClient, KaggleEnv

        self.endpoint = (endpoint or PRODUCTION).rstrip("/")
        self.policy = policy or RetryPolicy()
        production = self.endpoint == PRODUCTION
        self._client = KaggleClient(
            env=KaggleEnv.PROD if production else KaggleEnv.LOCAL,
            username=credentials.username,
            password=credentials.key,
            api_token=credentials.token,
            user_agent="kaggletts",
        )
        http = self._client._http_client
        http._endpoint = self.endpoint
        http._init_session()
        http._session.mount("http://", _TimeoutAdapter())
        http._session.mount("https://", _TimeoutAdapter())
        self._kernels = self._client.kernels.kernels_api_client
        self.credentials = self._authenticate(credentials)
        self.username = self.credentials.username or ""

    def _authenticate(self, credentials: Credentials) -> Credentials:
        """The credentials the official client would end up using, with the username
        known: a token is introspected (as `kaggle` does), and one Kaggle calls inactive
        gives way to the next source found, as it does there."""
        session = self._client._http_client._session
        if credentials.oauth_file is not None:
            credentials = self._oauth_token(credentials)
        # kagglesdk falls back to a token from the environment when given none; the
        # credentials chosen here must be the ones used.
        session.auth = (
            self._client._http_client.BearerAuth(credentials.token)
            if credentials.token
            else (credentials.username, credentials.key)
        )
        if not credentials.token:
            return credentials
        username = self._introspect_username(credentials)
        if username:
            return replace(credentials, username=username)
        if credentials.fallback is not None:
            log.info(
                "the access token from %s is not active; trying %s",
                credentials.source,
                credentials.fallback.source,
            )
            return self._authenticate(credentials.fallback)
        raise UsageError(f"the Kaggle access token from {credentials.source} is not active")

    def _oauth_token(self, credentials: Credentials) -> Credentials:
        """An access token from `kaggle auth login`'s file, refreshed through kagglesdk's
        own KaggleCredentials when it has expired (which rewrites the file, as the
        client does)."""
        from kagglesdk.kaggle_creds import KaggleCredentials

        stored = KaggleCredentials.load(self._client, str(credentials.oauth_file))
        try:
            token = stored.get_access_token() if stored else None
        except (requests.RequestException, ValueError) as error:
            raise explain(
                error, self.endpoint, f"refresh of the token in {credentials.source}"
            ) from None
        if not token:
            raise UsageError(f"{credentials.source} holds no usable token; run `kaggle auth login`")
        return replace(credentials, token=token, username=stored.get_username() or None)

    def _call(self, what: str, method: Any, request: Any, *, missing_ok: bool = False) -> Any:
        """`method(request)` under the retry policy; None for a missing resource when
        `missing_ok` (Kaggle answers 403, not 404, for what does not exist yet)."""
        try:
            return self.policy.retrying(what)(method, request)
        except (requests.RequestException, ValueError, TypeError, KeyError) as error:
            if missing_ok and status_of(error) in (403, 404):
                return None
            raise explain(error, self.endpoint, what) from None

    def _introspect_username(self, credentials: Credentials) -> str | None:
        """The token's user, or None when Kaggle calls the token inactive or refuses it."""
        from kagglesdk.security.types.oauth_service import IntrospectTokenRequest

        request = IntrospectTokenRequest()
        request.token = credentials.token
        try:
            reply = self._call(
                "introspect token", self._client.security.oauth_client.introspect_token, request
            )
        except UsageError:
            return None
        return reply.username if reply.active and reply.username else None

    def push(self, folder: Path) -> PushReply:
        """Push the kernel folder once. Not retried here: a lost reply may hide a push
        that landed, so the caller finds out before it pushes again."""
        from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelRequest

        meta = json.loads((folder / "kernel-metadata.json").read_text(encoding="utf-8"))
        request = ApiSaveKernelRequest()
        request.slug = meta["id"]
        request.new_title = meta["title"]
        request.text = (folder / meta["code_file"]).read_text(encoding="utf-8")
        request.language = meta["language"]
        request.kernel_type = meta["kernel_type"]
        request.is_private = meta["is_private"]
        request.enable_gpu = meta["enable_gpu"]
        request.enable_internet = meta["enable_internet"]
        request.dataset_data_sources = meta.get("dataset_sources", [])
        request.category_ids = meta.get("keywords", [])
        request.machine_shape = meta.get("machine_shape")
        request.session_timeout_seconds = meta.get("session_timeout_seconds")
        reply = self._kernels.save_kernel(request)
        if reply.error:
            rejection = SessionCapFull if _SESSION_CAP.search(reply.error) else PushRejected
            raise rejection(f"Kaggle refused to run {meta['id']}: {reply.error}")
        match = _SESSION_ID_IN_URL.search(reply.url or "")
        return PushReply(
            version=int(reply.version_number or 1),
            url=reply.url,
            slug=_kernel_slug_in(reply.url or "", self.username),
            session_id=int(match.group(1)) if match else None,
            invalid_sources=list(reply.invalid_dataset_sources or []),
        )

    def kernel_exists(self, slug: str) -> bool:
        """Whether this account has a kernel `slug`: what tells a landed push from one
        that never arrived, since every push goes to a slug of its own."""
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

        request = ApiGetKernelRequest()
        request.user_name, request.kernel_slug = self.username, slug
        reply = self._call(f"get kernel {slug}", self._kernels.get_kernel, request, missing_ok=True)
        return reply is not None

    def status(self, slug: str) -> RemoteStatus | None:
        """The state of the kernel's newest session, or None while Kaggle knows no such
        kernel. Never pinned to a version: each push has a slug of its own, so the newest
        session is the one pushed (and a version label's form is not documented)."""
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

        request = ApiGetKernelSessionStatusRequest()
        request.user_name, request.kernel_slug = self.username, slug
        try:
            reply = self._call(
                f"status of {slug}",
                self._kernels.get_kernel_session_status,
                request,
                missing_ok=True,
            )
        except RunFailed as error:
            # kagglesdk's enum parser raises KeyError(name) for a state it does not know.
            unknown = _unknown_enum_name(error.__context__)
            if unknown is None:
                raise
            return RemoteStatus.named(unknown)
        if reply is None:
            return None
        return RemoteStatus.named(reply.status.name, reply.failure_message or None)

    def outputs(self, slug: str) -> tuple[list[OutputFile], str]:
        """Every output file of the kernel's newest session and its log, following the
        pages up to a bound (ListingCutShort past it) and stopping where the server
        repeats a page token."""
        from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

        files: list[OutputFile] = []
        log_text = ""
        token, seen = None, set()
        for _ in range(MAX_OUTPUT_PAGES):
            request = ApiListKernelSessionOutputRequest()
            request.user_name, request.kernel_slug = self.username, slug
            request.page_size = 200
            request.page_token = token
            reply = self._call(
                f"outputs of {slug}", self._kernels.list_kernel_session_output, request
            )
            files += [OutputFile(f.file_name, f.url) for f in reply.files or [] if f.file_name]
            log_text = reply.log or log_text
            token = reply.next_page_token
            if not token or token in seen:
                break
            seen.add(token)
        else:
            raise ListingCutShort(
                f"{slug} lists more than {MAX_OUTPUT_PAGES} pages of outputs "
                f"({len(files)} files so far); kaggletts does not collect a part of them"
            )
        return files, log_text

    def log_lines(self, slug: str, wait_for_start: int = 60) -> Iterator[str]:
        """The session's log, line by line, as it grows: Server-Sent Events while the
        session runs (until END_OF_LOG), the persisted JSON log once it has ended, as
        kagglesdk's GetKernelSessionLogsStream describes it. Not retried: a caller that
        follows a log for show tries again when it likes."""
        http = self._client._http_client
        # The path the kaggle CLI's `kernels logs --follow` uses (kaggle_api_extended.py).
        base = self.endpoint if self.endpoint == PRODUCTION else f"{self.endpoint}/api"
        url = f"{base}/v1/kernels/logs/stream/{self.username}/{slug}"
        headers = {**http._session.headers, "Accept": "text/event-stream, */*"}
        headers.pop("Content-Type", None)
        params = {"waitForLogsUrlSeconds": str(wait_for_start)}
        with http._session.get(
            url, stream=True, headers=headers, params=params, timeout=(10, 600)
        ) as response:
            response.raise_for_status()
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                for raw in response.iter_lines(decode_unicode=True):
                    if not raw or not raw.startswith("data:"):
                        continue
                    payload = raw[len("data:") :].strip()
                    if payload == LOG_END:
                        return
                    yield from _event_lines(_parsed(payload))
            else:
                yield from _log_text_lines(response.text)

    def cancel(self, session_id: int) -> str | None:
        from kagglesdk.kernels.types.kernels_api_service import ApiCancelKernelSessionRequest

        request = ApiCancelKernelSessionRequest()
        request.kernel_session_id = session_id
        reply = self._call(
            f"cancel session {session_id}", self._kernels.cancel_kernel_session, request
        )
        return reply.error_message or None

    def delete_kernel(self, slug: str) -> None:
        from kagglesdk.kernels.types.kernels_api_service import ApiDeleteKernelRequest

        request = ApiDeleteKernelRequest()
        request.user_name, request.kernel_slug = self.username, slug
        reply = self._call(f"delete kernel {slug}", self._kernels.delete_kernel, request)
        if reply is not None and reply.error_message:
            raise RunFailed(f"Kaggle did not delete kernel {slug}: {reply.error_message}")

    def quota(self) -> Quota:
        from kagglesdk.kernels.types.kernels_api_service import (
            ApiGetAcceleratorQuotaStatisticsRequest,
        )

        reply = self._call(
            "GPU quota",
            self._kernels.get_accelerator_quota_statistics,
            ApiGetAcceleratorQuotaStatisticsRequest(),
        )
        gpu = reply.gpu_quota

        def seconds(value: timedelta | None) -> float:
            return value.total_seconds() if value else 0.0

        return Quota(
            seconds(gpu.time_used) if gpu else 0.0,
            seconds(gpu.total_time_allowed) if gpu else 0.0,
            reply.quota_refresh_time.isoformat() if reply.quota_refresh_time else "",
        )

    # -- datasets (reference voices) ----------------------------------------------

    def dataset_status(self, slug: str) -> str | None:
        """`READY`, another processing state, or None if the dataset does not exist."""
        from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetStatusRequest

        request = ApiGetDatasetStatusRequest()
        request.owner_slug, request.dataset_slug = self.username, slug
        reply = self._call(
            f"status of dataset {slug}",
            self._client.datasets.dataset_api_client.get_dataset_status,
            request,
            missing_ok=True,
        )
        return reply.status.name if reply else None

    def upload_blob(self, path: Path) -> str:
        """Upload one file for a new dataset; returns the token that names it."""
        from kagglesdk.blobs.types.blob_api_service import ApiBlobType, ApiStartBlobUploadRequest

        request = ApiStartBlobUploadRequest()
        request.type = ApiBlobType.DATASET
        request.name = path.name
        request.content_length = path.stat().st_size
        request.last_modified_epoch_seconds = int(path.stat().st_mtime)
        start = self._call(
            f"start upload of {path.name}",
            self._client.blobs.blob_api_client.start_blob_upload,
            request,
        )

        def put() -> None:
            with path.open("rb") as body:
                requests.put(
                    start.create_url, data=body, timeout=REQUEST_TIMEOUT
                ).raise_for_status()

        self.policy.retrying(f"upload {path.name}")(put)
        return start.token

    def create_private_dataset(self, slug: str, title: str, tokens: list[str]) -> None:
        from kagglesdk.datasets.types.dataset_api_service import (
            ApiCreateDatasetRequest,
            ApiDatasetNewFile,
        )

        request = ApiCreateDatasetRequest()
        request.owner_slug, request.slug, request.title = self.username, slug, title
        request.license_name = "unknown"
        request.is_private = True
        request.files = []
        for token in tokens:
            new_file = ApiDatasetNewFile()
            new_file.token = token
            request.files.append(new_file)
        reply = self._call(
            f"create dataset {slug}",
            self._client.datasets.dataset_api_client.create_dataset,
            request,
        )
        if reply.error:
            raise PushRejected(f"Kaggle refused dataset {slug}: {reply.error}")


def _kernel_slug_in(url: str, owner: str) -> str | None:
    """The slug in a kernel url, `.../code/<owner>/<slug>` (as real push logs print it)."""
    parts = urlsplit(url).path.strip("/").split("/")
    if len(parts) >= 3 and parts[-3] == "code" and parts[-2].lower() == owner.lower():
        return parts[-1]
    return None


def _unknown_enum_name(error: BaseException | None) -> str | None:
    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
        return error.args[0]
    return None


def _event_lines(entry: Any) -> Iterator[str]:
    """The text lines of one log entry: a `{stream_name, time, data}` object, or text."""
    data = entry.get("data", "") if isinstance(entry, dict) else entry
    yield from str(data).splitlines()


def _parsed(payload: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def _log_text_lines(body: str) -> Iterator[str]:
    """The lines of a persisted log: a JSON list of entries, or plain text."""
    entries = _parsed(body)
    if not isinstance(entries, list):
        yield from body.splitlines()
        return
    for entry in entries:
        yield from _event_lines(entry)
