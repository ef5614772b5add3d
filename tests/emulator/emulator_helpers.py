"""Helpers for the emulator tests: raw API calls, tiny notebooks, kernel folders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import requests

from kaggletts.emulator import Emulator

KEYS = {"alice": "alice-key", "bob": "bob-key"}
KERNELS = "kernels.KernelsApiService"


def call(
    emulator: Emulator,
    method: str,
    body: dict[str, Any] | None = None,
    user: str | None = "alice",
    service: str = KERNELS,
) -> requests.Response:
    auth = (user, KEYS[user]) if user else None
    return requests.post(
        f"{emulator.url}/api/v1/{service}/{method}", json=body or {}, auth=auth, timeout=30
    )


def notebook_text(*cells: str) -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nbformat.writes(notebook)


def push(
    emulator: Emulator,
    slug: str,
    *cells: str,
    user: str = "alice",
    title: str | None = None,
    **fields: Any,
) -> requests.Response:
    body = {
        "slug": f"{user}/{slug}",
        "newTitle": title or slug.replace("-", " ").title(),
        "text": notebook_text(*cells) if cells else notebook_text("print('hi')"),
        "language": "python",
        "kernelType": "notebook",
        "isPrivate": True,
        "enableInternet": False,
        **fields,
    }
    return call(emulator, "SaveKernel", body, user=user)


def status(emulator: Emulator, slug: str, user: str = "alice", version: int | None = None) -> dict:
    body: dict[str, Any] = {"userName": "alice", "kernelSlug": slug}
    if version:
        body["versionLabel"] = f"v{version}"
    reply = call(emulator, "GetKernelSessionStatus", body, user=user)
    reply.raise_for_status()
    return reply.json()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def outputs(emulator: Emulator, slug: str, version: int | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {"userName": "alice", "kernelSlug": slug, **extra}
    if version:
        body["versionLabel"] = f"v{version}"
    reply = call(emulator, "ListKernelSessionOutput", body)
    reply.raise_for_status()
    return reply.json()


def write_kernel_folder(folder: Path, slug: str, title: str, *cells: str, **meta: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notebook.ipynb").write_text(notebook_text(*cells), encoding="utf-8")
    metadata = {
        "id": f"alice/{slug}",
        "title": title,
        "code_file": "notebook.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": False,
        "enable_internet": False,
        **meta,
    }
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder
