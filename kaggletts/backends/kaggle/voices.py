"""Reference voices for cloning: local files named in the parameters are uploaded once
as a private Kaggle dataset, named by their content so a changed file makes a new one,
and the parameters are pointed at the copy the kernel sees under its inputs."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from kaggletts.backends.kaggle.remote import KaggleRemote
from kaggletts.errors import RunFailed, UsageError
from kaggletts.notebook import NotebookSpec
from kaggletts.result import sha256_of

log = logging.getLogger("kaggletts")
READY_WAIT_SECONDS = 300


def local_inputs(spec: NotebookSpec, params: dict[str, Any]) -> dict[str, Path]:
    """The values of the notebook's input-file parameters that name files on this machine."""
    values = [params.get(name) for name in spec.input_files]
    for item in params.get("utterances", []):
        if isinstance(item, dict):
            values += [item.get(name) for name in spec.input_files]
    found = {}
    for value in values:
        if value and Path(value).expanduser().is_file():
            found[value] = Path(value).expanduser().resolve()
    return found


def attach_voices(
    spec: NotebookSpec, params: dict[str, Any], remote: KaggleRemote
) -> tuple[dict[str, Any], list[str]]:
    """The parameters with local reference files replaced by their dataset copies, and
    the dataset sources to attach; unchanged when no local file is named."""
    files = local_inputs(spec, params)
    if not files:
        return params, []
    names = {path.name for path in files.values()}
    if len(names) != len(set(files.values())):
        raise UsageError(
            "reference files must have distinct file names: "
            + ", ".join(sorted(str(p) for p in files.values()))
        )
    digest = hashlib.sha256()
    for path in sorted(set(files.values())):
        digest.update(f"{path.name}:{sha256_of(path)}\n".encode())
    slug = f"kaggletts-voices-{digest.hexdigest()[:12]}"
    if remote.dataset_status(slug) is None:
        log.info("uploading %d reference file(s) as private dataset %s", len(names), slug)
        tokens = [remote.upload_blob(path) for path in sorted(set(files.values()))]
        remote.create_private_dataset(slug, f"kaggletts voices {digest.hexdigest()[:12]}", tokens)
    _wait_until_ready(remote, slug)
    mapping = {value: f"{slug}/{path.name}" for value, path in files.items()}
    return _replace(spec, params, mapping), [f"{remote.username}/{slug}"]


def _replace(spec: NotebookSpec, params: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    def swap(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: mapping.get(v, v) if k in spec.input_files else v for k, v in entry.items()}

    replaced = swap(params)
    if "utterances" in params:
        replaced["utterances"] = [
            swap(u) if isinstance(u, dict) else u for u in params["utterances"]
        ]
    return replaced


def _wait_until_ready(remote: KaggleRemote, slug: str) -> None:
    give_up = time.monotonic() + READY_WAIT_SECONDS
    while (status := remote.dataset_status(slug)) != "READY":
        if status == "FAILED" or time.monotonic() > give_up:
            raise RunFailed(f"dataset {slug} did not become ready on Kaggle ({status})")
        time.sleep(2)
