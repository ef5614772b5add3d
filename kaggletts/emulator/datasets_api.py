"""Datasets enough to hold reference voices: blob uploads plus create, version, status and get."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .store import DatasetRecord
from .wire import ApiError, bad_request, optional_bool, optional_str, require_str, timestamp

if TYPE_CHECKING:
    from .emulator import Emulator

Body = dict[str, object]
CONTENT_RANGE = re.compile(r"^bytes (?:(?P<start>[0-9]+)-(?P<end>[0-9]+)|\*)/(?P<total>[0-9]+)$")
SAFE_NAME = re.compile(r"^[^/\\\x00]+$")
MIN_DATASET_SLUG = 6
MAX_DATASET_SLUG = 50


class BlobUploads:
    """A resumable upload endpoint in the style of Google Cloud Storage, keyed by token."""

    def __init__(self, root: Path, max_bytes: int):
        self._root = root
        self._max_bytes = max_bytes
        # One lock per upload: a slow or stalled body holds up only its own upload.
        self._lock = threading.Lock()
        self._token_locks: dict[str, threading.Lock] = {}
        root.mkdir(parents=True, exist_ok=True)

    def _token_lock(self, token: str) -> threading.Lock:
        with self._lock:
            return self._token_locks.setdefault(token, threading.Lock())

    def _meta_file(self, token: str) -> Path:
        return self._root / f"{token}.json"

    def data_file(self, token: str) -> Path:
        return self._root / f"{token}.data"

    def start(self, user: str, name: str, length: int) -> str:
        if not SAFE_NAME.match(name) or name in (".", ".."):
            raise bad_request(f"Invalid blob name '{name}'")
        if not 0 <= length <= self._max_bytes:
            raise ApiError(413, f"Blob of {length} bytes exceeds the {self._max_bytes} byte limit")
        token = secrets.token_urlsafe(24)
        meta = {"user": user, "name": name, "length": length}
        self._meta_file(token).write_text(json.dumps(meta), encoding="utf-8")
        self.data_file(token).write_bytes(b"")
        return token

    def blob(self, token: str) -> dict[str, object] | None:
        meta_file = self._meta_file(token)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", token) or not meta_file.exists():
            return None
        return json.loads(meta_file.read_text(encoding="utf-8"))

    def receive(
        self, token: str, read: Callable[[int], bytes], length: int, content_range: str | None
    ) -> tuple[int, dict[str, str]]:
        meta = self.blob(token)
        if meta is None:
            raise ApiError(404, "Upload not found or expired")
        total = int(meta["length"])  # type: ignore[call-overload]
        data = self.data_file(token)
        with self._token_lock(token):
            if not data.exists():
                raise ApiError(404, "Upload not found or expired")
            received = data.stat().st_size
            start = 0
            if content_range:
                match = CONTENT_RANGE.match(content_range.strip())
                if not match:
                    raise bad_request(f"Invalid Content-Range '{content_range}'")
                if match["start"] is None:
                    return self._progress(received, total)
                start = int(match["start"])
            if start > received or start + length > total:
                raise bad_request("Upload chunk does not continue the received bytes")
            with data.open("r+b") as sink:
                sink.seek(start)
                copied = 0
                while copied < length:
                    chunk = read(min(64 * 1024, length - copied))
                    if not chunk:
                        break
                    sink.write(chunk)
                    sink.flush()  # what has arrived is on disk, also for a later resume
                    copied += len(chunk)
                sink.truncate(start + copied)
            return self._progress(start + copied, total)

    @staticmethod
    def _progress(received: int, total: int) -> tuple[int, dict[str, str]]:
        if received >= total:
            return 200, {}
        # 308 "Resume Incomplete" with the bytes held so far, as the client's resume expects.
        return 308, ({"Range": f"bytes=0-{received - 1}"} if received else {})

    def claim(self, user: str, token: str) -> tuple[str, Path]:
        meta = self.blob(token)
        if meta is None or meta["user"] != user:
            raise bad_request(f"Unknown upload token '{token}'")
        data = self.data_file(token)
        if data.stat().st_size != meta["length"]:
            raise bad_request(f"Upload '{meta['name']}' is incomplete")
        return str(meta["name"]), data

    def discard(self, token: str) -> None:
        with self._token_lock(token):
            self._meta_file(token).unlink(missing_ok=True)
            self.data_file(token).unlink(missing_ok=True)
        with self._lock:
            self._token_locks.pop(token, None)


class DatasetsService:
    def __init__(self, app: Emulator):
        self._app = app

    def start_blob_upload(self, user: str, body: Body) -> Body:
        name = require_str(body, "name")
        length = body.get("contentLength", 0)
        if not isinstance(length, int):
            raise bad_request("'contentLength' must be an integer")
        token = self._app.uploads.start(user, name, length)
        return {
            "token": token,
            "createUrl": f"{self._app.request_base_url()}/_emulator/uploads/{token}",
        }

    def create_dataset(self, user: str, body: Body) -> Body:
        owner = optional_str(body, "ownerSlug") or user
        slug = require_str(body, "slug")
        if owner != user:
            raise ApiError(403, "Permission 'datasets.create' was denied")
        _check_dataset_slug(slug)
        title = optional_str(body, "title") or slug
        tokens = _file_tokens(body.get("files"))
        with self._app.store.lock:
            if f"{owner}/{slug}" in self._app.store.datasets:
                return {
                    "status": "error",
                    "error": f'The requested slug "{slug}" is already in use',
                }
            files = [self._app.uploads.claim(user, token) for token in tokens]
            record = self._app.add_dataset_record(
                owner, slug, title, optional_bool(body, "isPrivate", True)
            )
            self._replace_files(owner, slug, files, tokens)
        return self._created(record)

    def create_dataset_version(self, user: str, body: Body) -> Body:
        owner = require_str(body, "ownerSlug")
        slug = require_str(body, "datasetSlug")
        return self._new_version(user, self._app.store.datasets.get(f"{owner}/{slug}"), body)

    def create_dataset_version_by_id(self, user: str, body: Body) -> Body:
        dataset_id = body.get("id")
        with self._app.store.lock:
            record = next(
                (d for d in self._app.store.datasets.values() if d.dataset_id == dataset_id),
                None,
            )
        return self._new_version(user, record, body)

    def _new_version(self, user: str, record: DatasetRecord | None, body: Body) -> Body:
        if record is None or record.owner != user:
            raise ApiError(403, "Permission 'datasets.update' was denied")
        request_body = body.get("body") or {}
        if not isinstance(request_body, dict):
            raise bad_request("'body' must be an object")
        tokens = _file_tokens(request_body.get("files"))
        with self._app.store.lock:
            files = [self._app.uploads.claim(user, token) for token in tokens]
            self._replace_files(record.owner, record.slug, files, tokens)
            record.version_number += 1
            self._app.store.save()
        return self._created(record)

    def _replace_files(
        self, owner: str, slug: str, files: list[tuple[str, Path]], tokens: list[str]
    ) -> None:
        target = self._app.store.dataset_dir(owner, slug)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for (name, data), token in zip(files, tokens, strict=True):
            shutil.move(str(data), target / name)
            self._app.uploads.discard(token)

    def _created(self, record: DatasetRecord) -> Body:
        return {
            "ref": record.ref,
            "url": f"{self._app.web_url}/datasets/{record.ref}",
            "status": "ok",
        }

    def _visible(self, user: str, body: Body) -> DatasetRecord:
        owner = require_str(body, "ownerSlug")
        slug = require_str(body, "datasetSlug")
        record = self._app.store.datasets.get(f"{owner}/{slug}")
        if record is None or (record.is_private and record.owner != user):
            raise ApiError(404, f"Dataset {owner}/{slug} not found")
        return record

    def get_dataset_status(self, user: str, body: Body) -> Body:
        self._visible(user, body)
        return {"status": "READY"}

    def get_dataset(self, user: str, body: Body) -> Body:
        record = self._visible(user, body)
        files = self._app.store.dataset_dir(record.owner, record.slug)
        listing = sorted(path for path in files.rglob("*") if path.is_file())
        return {
            "id": record.dataset_id,
            "ref": record.ref,
            "title": record.title,
            "url": f"{self._app.web_url}/datasets/{record.ref}",
            "isPrivate": record.is_private,
            "ownerName": record.owner,
            "ownerRef": record.owner,
            "creatorName": record.owner,
            "lastUpdated": timestamp(record.created_at),
            "currentVersionNumber": record.version_number,
            "totalBytes": sum(path.stat().st_size for path in listing),
            "files": [
                {
                    "ref": path.relative_to(files).as_posix(),
                    "datasetRef": record.ref,
                    "name": path.relative_to(files).as_posix(),
                    "totalBytes": path.stat().st_size,
                }
                for path in listing
            ],
        }


def _check_dataset_slug(slug: str) -> None:
    if not MIN_DATASET_SLUG <= len(slug) <= MAX_DATASET_SLUG:
        raise bad_request("The dataset slug must be between 6 and 50 characters")
    if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", slug):
        raise bad_request("The dataset slug may hold only lowercase letters, digits and hyphens")


def _file_tokens(files: object) -> list[str]:
    if files is None:
        return []
    if not isinstance(files, list):
        raise bad_request("'files' must be a list")
    tokens = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("token"), str):
            raise bad_request("Each file needs an upload 'token'")
        tokens.append(item["token"])
    return tokens
