"""The chatterbox family's tier: the image (torch, numpy 2.x, a CPU-loadable torchaudio,
setuptools below 82), chatterbox-tts installed by the notebook itself, tiny checkpoints for
every variant in a Hugging Face cache, and a Kaggle-shaped kernel that shrinks chatterbox's
sizes at start-up (kernel_site/sitecustomize.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from chatterbox_runs import Run, installed, run_notebook
from common import hf_snapshot, kaggle_kernel, pip_install, provide_cpu_torchaudio

KERNEL_SITE = Path(__file__).resolve().parent / "kernel_site"
sys.path.insert(0, str(KERNEL_SITE))
TORCHAUDIO = "2.11.0"  # the newest on the registry; its C extension does not load here
# Kaggle's (its Dockerfile pins setuptools>=70,<82); a test moves it to 82 to see the notebook
# cope, so each session starts from the image's again.
IMAGE_SETUPTOOLS = "81.0.0"


@pytest.fixture(scope="session")
def kernel(tmp_path_factory):
    """Kernels started during the session are Kaggle-shaped, shrink chatterbox at start-up,
    run one torch thread (the test machine's two cores are shared) and read `hf_home`."""
    provide_cpu_torchaudio(TORCHAUDIO)
    if not installed(f"setuptools=={IMAGE_SETUPTOOLS}"):
        pip_install(f"setuptools=={IMAGE_SETUPTOOLS}")
    home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as mp:
        kaggle_kernel(mp, tmp_path_factory.mktemp("kernel"), home)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(KERNEL_SITE),
                                                                os.environ.get("PYTHONPATH")])))
        mp.setenv("OMP_NUM_THREADS", "1")
        yield home


@pytest.fixture(scope="session")
def first_install(kernel, tmp_path_factory) -> Run | None:
    """On a fresh environment the notebook installs chatterbox-tts itself; with no
    checkpoints in the cache yet, that first run stops at loading the model."""
    if installed("chatterbox-tts"):
        return None
    return run_notebook(tmp_path_factory.mktemp("first-install"), {"text": "Hello."})


@pytest.fixture(scope="session")
def hf_home(kernel, first_install, tmp_path_factory) -> Path:
    """Every variant's tiny checkpoint, built by the real chatterbox-tts code."""
    import tiny_chatterbox

    clip = tiny_chatterbox.reference_clip(tmp_path_factory.mktemp("builtin") / "voice.wav",
                                          seconds=6.0, pitch=120.0)
    hf_snapshot(kernel, "ResembleAI/chatterbox",
                lambda folder: tiny_chatterbox.build_english_and_multilingual(folder, clip))
    hf_snapshot(kernel, "ResembleAI/chatterbox-turbo",
                lambda folder: tiny_chatterbox.build_turbo(folder, clip))
    return kernel


@pytest.fixture(scope="session")
def inputs(hf_home, tmp_path_factory) -> Path:
    """Reference clips as a mounted Kaggle dataset: a short one and one over turbo's 5 s."""
    import tiny_chatterbox

    root = tmp_path_factory.mktemp("kaggle-input")
    tiny_chatterbox.reference_clip(root / "voices-ds" / "voices" / "narrator.wav",
                                   seconds=3.0, pitch=220.0)
    tiny_chatterbox.reference_clip(root / "voices-ds" / "voices" / "long.wav",
                                   seconds=6.5, pitch=180.0)
    return root
