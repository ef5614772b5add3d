"""What the models tier shares between families: the Kaggle-shaped kernel, the Hugging Face
cache the notebooks' unchanged `from_pretrained` calls read, and the image's packages.

The notebook kernel is a subprocess papermill starts from this environment: everything is set
through environment variables and files, never through this process's sys.path."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

# Kaggle's image has torch and numpy imported before a notebook's first cell runs (the
# kernel's own start-up imports them), so an install must not replace them on disk.
IMAGE_PREIMPORTS = ("numpy", "torch")


def kaggle_kernel(mp: pytest.MonkeyPatch, root: Path, hf_home: Path) -> None:
    """Make every kernel started from now on look like Kaggle's: torch and numpy already
    imported (an IPython start-up file in IPYTHONDIR), the Hugging Face cache at `hf_home`,
    and no hub (HF_HUB_OFFLINE: what is not in the cache fails, as a download would here)."""
    startup = root / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-kaggle-image.py").write_text(
        "".join(f"import {name}\n" for name in IMAGE_PREIMPORTS), encoding="utf-8")
    mp.setenv("IPYTHONDIR", str(root / "ipython"))
    mp.setenv("HF_HOME", str(hf_home))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")


def hf_snapshot(hf_home: Path, repo_id: str, build: Callable[[Path], object]) -> Path:
    """Lay out `repo_id` in the cache as the hub client does
    (`hub/models--ORG--NAME/refs/main` naming a revision, the files under
    `snapshots/<revision>/`) and let `build` write the files; returns the snapshot folder."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / revision
    build(snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def pip_install(*args: str) -> None:
    """pip into the environment this process and the kernels run in."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=True)
    importlib.invalidate_caches()


def provide_cpu_torchaudio(version: str) -> None:
    """The image's torchaudio. Kaggle's matches its torch; the registry only has CUDA builds
    whose C extension will not load next to this CPU torch, so install one without its
    dependencies and drop the extension: the pure-Python parts (resampling, kaldi) work."""
    installed = subprocess.run([sys.executable, "-m", "pip", "show", "torchaudio"],
                               capture_output=True, text=True).stdout
    if f"Version: {version}" not in installed:
        pip_install("--no-deps", f"torchaudio=={version}")
    extension = Path(sysconfig.get_paths()["purelib"]) / "torchaudio" / "lib"
    for library in extension.glob("*.so"):
        library.unlink()


def notebook_code(notebook: Path, cell_id: str, names: tuple[str, ...] = ()) -> dict:
    """Run a notebook cell's own code in this process and return what it defined: the
    whole cell, or only its assignments to `names` (a setup cell's constants, say)."""
    import ast
    import json

    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    source = "".join(next(c["source"] for c in cells if c.get("id") == cell_id))
    tree = ast.parse(source)
    if names:
        tree.body = [
            node for node in tree.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id in names for t in node.targets)
        ]
    defined: dict = {}
    exec(compile(tree, f"{Path(notebook).name}:{cell_id}", "exec"), defined)
    return defined
