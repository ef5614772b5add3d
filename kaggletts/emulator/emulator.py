"""`Emulator`: the store, sessions, auth, faults and HTTP server wired together."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .auth import Authenticator, UrlSigner
from .config import (
    DEFAULT_KEY,
    DEFAULT_USER,
    Assumption,
    EmulatorConfig,
    Faults,
    Latency,
    Limits,
    Quirks,
    parse_assumptions,
)
from .datasets_api import BlobUploads, DatasetsService
from .faults import FaultInjector
from .kernels_api import KernelsService, quote_path
from .server import EmulatorHTTPServer
from .sessions import SessionManager
from .store import DatasetRecord, KernelRecord, Store, VersionRecord

if TYPE_CHECKING:
    import filelock

Handler = Callable[[str, dict[str, object]], dict[str, object]]


STATE_LOCK = ".emulator.lock"


class StateInUse(RuntimeError):
    """Another emulator serves from the same state folder."""


class CannotListen(RuntimeError):
    """The emulator's address cannot be listened on."""


def _hold_state(root: Path) -> filelock.BaseFileLock:
    """The state folder, held while this emulator lives: a second emulator on it would
    take the first one's running sessions for a crash's leftovers and stop them."""
    import filelock

    root.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(root / STATE_LOCK)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise StateInUse(
            f"{root} is the state folder of another running emulator; stop that one, or "
            "give this one another --state"
        ) from None
    return lock


class Emulator:
    """A local Kaggle kernels API. Start it, point a client at `url`, stop it."""

    def __init__(
        self,
        state_dir: str | Path | None = None,
        users: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        gpu_sessions: int = 2,
        cpu_sessions: int = 5,
        assume: Iterable[str] = (),
        seed: int | None = None,
        latency: Latency | None = None,
        faults: Faults | None = None,
        quirks: Quirks | None = None,
        limits: Limits | None = None,
        image_paths: Iterable[str | Path] = (),
        python: str | None = None,
        kernel_env: Mapping[str, str] | None = None,
    ):
        """`assume` names the `Assumption`s to act on (none by default: the emulator then
        answers the least real Kaggle is known to answer); an unknown name raises ValueError.
        `kernel_env` models the variables and secrets the Kaggle image gives every kernel;
        of the host's own environment a kernel sees only an allow-list (see docs)."""
        self._temporary_state = state_dir is None
        # Absolute, because sessions run with their own working directory and must still
        # find their sources under the state folder.
        root = (
            Path(tempfile.mkdtemp(prefix="kaggle-emulator-"))
            if state_dir is None
            else Path(state_dir).resolve()
        )
        self.config = EmulatorConfig(
            state_dir=root,
            users=dict(users) if users else {DEFAULT_USER: DEFAULT_KEY},
            host=host,
            port=port,
            gpu_sessions=gpu_sessions,
            cpu_sessions=cpu_sessions,
            assume=parse_assumptions(assume),
            seed=seed,
            latency=latency or Latency(),
            faults=faults or Faults(rate=0.0),
            quirks=quirks or Quirks(),
            limits=limits or Limits(),
            image_paths=tuple(Path(path).resolve() for path in image_paths),
            python=python,
            kernel_env=dict(kernel_env or {}),
        )
        self.gpu_sessions = gpu_sessions
        self.cpu_sessions = cpu_sessions
        self._assume = self.config.assume
        self.latency = self.config.latency
        self.quirks = self.config.quirks
        self.calls: Counter[str] = Counter()
        self.calls_by_user: Counter[tuple[str, str]] = Counter()
        self.faults_injected: Counter[tuple[str, str]] = Counter()
        self._counter_lock = threading.Lock()
        self._request = threading.local()

        # Before the store looks for sessions a crashed emulator left: it stops them.
        self._state_lock = _hold_state(root)
        self.store = Store(root)
        self.auth = Authenticator(self.config.users)
        self.signer = UrlSigner(root / "secret", self.config.limits.url_ttl_seconds)
        self.injector = FaultInjector(self.config.faults, seed)
        self.uploads = BlobUploads(root / "uploads", self.config.limits.max_upload_bytes)
        self.sessions = SessionManager(
            self.store,
            self.config.limits,
            self.config.image_paths,
            lambda: self.latency,
            python,
            self.config.kernel_env,
        )
        kernels = KernelsService(self)
        datasets = DatasetsService(self)
        self.kernels = kernels
        self._handlers: dict[tuple[str, str], Handler] = {
            ("kernels.KernelsApiService", "SaveKernel"): kernels.save_kernel,
            (
                "kernels.KernelsApiService",
                "GetKernelSessionStatus",
            ): kernels.get_kernel_session_status,
            (
                "kernels.KernelsApiService",
                "ListKernelSessionOutput",
            ): kernels.list_kernel_session_output,
            ("kernels.KernelsApiService", "GetKernel"): kernels.get_kernel,
            ("kernels.KernelsApiService", "CancelKernelSession"): kernels.cancel_kernel_session,
            ("kernels.KernelsApiService", "DeleteKernel"): kernels.delete_kernel,
            (
                "kernels.KernelsApiService",
                "GetAcceleratorQuotaStatistics",
            ): kernels.get_accelerator_quota_statistics,
            ("security.OAuthService", "IntrospectToken"): self._introspect_token,
            ("blobs.BlobApiService", "StartBlobUpload"): datasets.start_blob_upload,
            ("datasets.DatasetApiService", "CreateDataset"): datasets.create_dataset,
            ("datasets.DatasetApiService", "CreateDatasetVersion"): datasets.create_dataset_version,
            (
                "datasets.DatasetApiService",
                "CreateDatasetVersionById",
            ): datasets.create_dataset_version_by_id,
            ("datasets.DatasetApiService", "GetDatasetStatus"): datasets.get_dataset_status,
            ("datasets.DatasetApiService", "GetDataset"): datasets.get_dataset,
        }
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Serve; CannotListen when the address cannot be had (a port in use, say)."""
        if self._server is not None:
            return self
        address = (self.config.host, self.config.port)
        try:
            self._server = EmulatorHTTPServer(address, self)
        except (OSError, OverflowError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise CannotListen(f"cannot listen on {address[0]}:{address[1]}: {reason}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kaggle-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, then stop every running session (they end CANCEL_ACKNOWLEDGED)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.sessions.stop_all()
        if self._temporary_state:
            shutil.rmtree(self.config.state_dir, ignore_errors=True)
        self._state_lock.release()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    # Runtime knobs ---------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self.injector.faults = faults

    @property
    def assume(self) -> frozenset[Assumption]:
        return self._assume

    @assume.setter
    def assume(self, names: Iterable[str]) -> None:
        self._assume = parse_assumptions(names)

    def assumes(self, assumption: Assumption) -> bool:
        return assumption in self._assume

    def fail_next(self, method: str, kind: str, times: int = 1) -> None:
        """Force `kind` on the next `times` requests of `method` (an API method name such as
        "SaveKernel", or "download", "upload", "LogsStream")."""
        self.injector.force(method, kind, times)

    def add_user(self, name: str, key: str) -> None:
        self.config.users[name] = key
        self.auth.set_users(self.config.users)

    def issue_token(self, user: str) -> str:
        return self.auth.issue_token(user)

    def refresh_gpu_quota(self) -> None:
        """Refresh every user's GPU quota now, as the start of a new quota week does: GPU
        session time before this moment no longer counts."""
        self.kernels.refresh_gpu_quota()

    # Counters and inspection -----------------------------------------------------------

    def record_call(self, method: str, user: str) -> None:
        with self._counter_lock:
            self.calls[method] += 1
            if user:
                self.calls_by_user[(method, user)] += 1

    def record_fault(self, method: str, kind: str) -> None:
        with self._counter_lock:
            self.faults_injected[(method, kind)] += 1

    def push_count(self, owner: str, slug: str) -> int:
        """Versions actually created for `owner/slug` (a push whose reply was lost counts)."""
        kernel = self.store.kernels.get(f"{owner}/{slug}")
        return len(kernel.versions) if kernel else 0

    def version(self, owner: str, slug: str, number: int | None = None) -> VersionRecord:
        kernel = self.store.kernels[f"{owner}/{slug}"]
        found = kernel.version(number) if number else kernel.latest
        if found is None:
            raise KeyError(f"{owner}/{slug} v{number}")
        return found

    def status(self, owner: str, slug: str, number: int | None = None) -> str:
        return self.version(owner, slug, number).status

    def session_id(self, owner: str, slug: str, number: int | None = None) -> int:
        """The id `CancelKernelSession` takes; Kaggle shows it only in its web UI."""
        return self.version(owner, slug, number).session_id

    def wait_for(
        self,
        owner: str,
        slug: str,
        number: int | None = None,
        statuses: Iterable[str] = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"),
        timeout: float = 120.0,
    ) -> VersionRecord:
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while True:
            version = self.version(owner, slug, number)
            if version.status in wanted:
                return version
            if time.monotonic() > deadline:
                raise TimeoutError(f"{owner}/{slug} is still {version.status}")
            time.sleep(0.05)

    def output_dir(self, owner: str, slug: str, number: int) -> Path:
        return self.store.version_dir(self.store.kernels[f"{owner}/{slug}"], number) / "output"

    # Datasets from Python --------------------------------------------------------------

    def create_dataset(
        self,
        owner: str,
        slug: str,
        files: str | Path | Iterable[str | Path],
        *,
        title: str | None = None,
        is_private: bool = True,
    ) -> DatasetRecord:
        """Create (or replace the files of) a dataset from a folder or a list of files."""
        sources = _expand_sources(files)
        with self.store.lock:
            record = self.store.datasets.get(f"{owner}/{slug}")
            if record is None:
                record = self.add_dataset_record(owner, slug, title or slug, is_private)
            else:
                record.version_number += 1
            target = self.store.dataset_dir(owner, slug)
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for relative, source in sources:
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)
            self.store.save()
        return record

    def add_dataset_record(
        self, owner: str, slug: str, title: str, is_private: bool
    ) -> DatasetRecord:
        with self.store.lock:
            record = DatasetRecord(
                dataset_id=self.store.new_id(),
                owner=owner,
                slug=slug,
                title=title,
                is_private=is_private,
                created_at=time.time(),
            )
            self.store.datasets[record.ref] = record
            self.store.save()
        return record

    # Used by the services --------------------------------------------------------------

    def api_handler(self, service: str, method: str) -> Handler | None:
        if self.quirks.no_quota_call and method == "GetAcceleratorQuotaStatistics":
            return None
        return self._handlers.get((service, method))

    def set_request_base_url(self, base_url: str | None) -> None:
        self._request.base_url = base_url

    def request_base_url(self) -> str:
        """The address the current request reached us by, so URLs we hand out work for it."""
        return getattr(self._request, "base_url", None) or self.url

    @property
    def web_url(self) -> str:
        return self.request_base_url()

    def signed_output_url(self, kernel: KernelRecord, version: VersionRecord, name: str) -> str:
        resource = f"{kernel.owner}/{kernel.slug}/{version.number}/{name}"
        expires, signature = self.signer.sign(resource)
        return (
            f"{self.request_base_url()}/_emulator/outputs/{quote_path(resource)}"
            f"?expires={expires}&sig={signature}"
        )

    def _introspect_token(self, _: str, body: dict[str, object]) -> dict[str, object]:
        token = body.get("token")
        user = self.auth.user_for_token(token) if isinstance(token, str) else None
        if user is None:
            return {"active": False}
        return {
            "active": True,
            "username": user,
            "clientId": "kaggle-emulator",
            "scope": "resources.admin:*",
            "exp": int(time.time()) + 86400,
        }


def _expand_sources(files: str | Path | Iterable[str | Path]) -> list[tuple[Path, Path]]:
    if isinstance(files, str | Path):
        root = Path(files)
        if root.is_dir():
            return [
                (path.relative_to(root), path) for path in sorted(root.rglob("*")) if path.is_file()
            ]
        return [(Path(root.name), root)]
    return [(Path(Path(path).name), Path(path)) for path in files]
