"""The kernel folder `kaggle kernels push -p DIR` would read: the parameterized notebook
and kernel-metadata.json, with the settings spelled out rather than left to defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kaggletts.backends.kaggle.options import KernelOptions
from kaggletts.notebook import NotebookSpec

CODE_FILE = "notebook.ipynb"
# Kaggle's limit is 12 hours and kagglesdk says the timeout "must be lower than" it.
MAX_SESSION_SECONDS = 12 * 3600 - 60


def slug_stem(notebook: str, job_id: str, shard: int) -> str:
    """Every push goes to a kernel of its own, `<stem>-<attempt>`: the job id ties the
    kernel to exactly one request, so whether a push landed is whether it exists. The
    notebook's name is slugified as Kaggle slugifies titles, so the title made of the
    slug slugifies back to it whatever the name."""
    from slugify import slugify

    name = slugify(notebook, max_length=20, word_boundary=False) or "notebook"
    return f"kaggletts-{name}-{job_id[:10]}-{shard}"


def slug_of(title: str) -> str:
    """The slug Kaggle derives from a kernel's title: kagglesdk's ApiSaveKernelRequest says
    the slug must be the title lowercased with dashes for spaces, and the official
    client checks a push's title against its id with python-slugify (kernels_push)."""
    from slugify import slugify

    return slugify(title)


def title_for(slug: str) -> str:
    """A title that slugifies back to the slug: a mismatch files the kernel at the
    title's address (a public CI report), where status calls for the slug do not reach."""
    return slug.replace("-", " ")


def push_text(nb: Any) -> str:
    """The notebook as Kaggle takes it: outputs stripped, each cell's source one string."""
    import nbformat

    data = json.loads(nbformat.writes(nb))
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    return json.dumps(data, ensure_ascii=False)


def write_kernel_folder(
    folder: Path,
    owner: str,
    slug: str,
    nb: Any,
    spec: NotebookSpec,
    options: KernelOptions,
    session_timeout: int,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CODE_FILE).write_text(push_text(nb), encoding="utf-8")
    enable_internet = (
        spec.kernel.enable_internet if options.enable_internet is None else options.enable_internet
    )
    shape = options.machine_shape or spec.kernel.machine_shape
    metadata = {
        "id": f"{owner}/{slug}",
        "title": title_for(slug),
        "code_file": CODE_FILE,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": options.is_private,
        "enable_gpu": bool(shape) and spec.kernel.enable_gpu,
        "enable_internet": enable_internet,
        "dataset_sources": list(options.dataset_sources),
        "machine_shape": shape if spec.kernel.enable_gpu else None,
        "keywords": [],
        "session_timeout_seconds": min(session_timeout, MAX_SESSION_SECONDS),
    }
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return folder
