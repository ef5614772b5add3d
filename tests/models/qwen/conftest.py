"""The qwen family's tier: the image (torch, numpy 2.x, a CPU-loadable torchaudio) plus what
qwen-tts needs, tiny checkpoints in a Hugging Face cache, and a Kaggle-shaped kernel."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from common import hf_snapshot, kaggle_kernel, notebook_code, provide_cpu_torchaudio

import kaggletts

NOTEBOOK = kaggletts.find_notebook("qwen").path
TORCHAUDIO = "2.11.0"  # the newest on the registry; its C extension does not load here
CUSTOM_VOICE = "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"
VOICE_DESIGN = "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign"
BASE = "Qwen/Qwen3-TTS-12Hz-1.7B-Base"
SMALL_CUSTOM_VOICE = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"


def installed(distribution: str) -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "show", "--quiet", distribution],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def qwen_environment() -> dict:
    """The image's torchaudio, then qwen-tts installed by the notebook's own setup code (its
    install helper and its list of what qwen-tts imports) in this process, with torch and
    numpy already imported as in a Kaggle kernel: the tests need the package to build the
    tiny checkpoints before any notebook runs. Returns how long that took."""
    started = time.perf_counter()
    provide_cpu_torchaudio(TORCHAUDIO)
    if not installed("qwen-tts"):
        import numpy  # noqa: F401 - imported first, as the image's kernel has them
        import torch  # noqa: F401

        install = notebook_code(NOTEBOOK, "support")
        setup = notebook_code(NOTEBOOK, "setup", names=("QWEN_TTS", "QWEN_TTS_NEEDS"))
        install["install_package"](setup["QWEN_TTS"], setup["QWEN_TTS_NEEDS"])
    return {"install_seconds": time.perf_counter() - started}


@pytest.fixture(scope="session")
def hf_home(qwen_environment, tmp_path_factory) -> Path:
    """Every model the tests name, tiny and random, in one Hugging Face cache."""
    from tiny_checkpoints import TinyModel, build

    home = tmp_path_factory.mktemp("hf-home")
    for model in (TinyModel(CUSTOM_VOICE), TinyModel(VOICE_DESIGN), TinyModel(BASE),
                  TinyModel(SMALL_CUSTOM_VOICE, overflows_in_float16=True)):
        hf_snapshot(home, model.model_id, lambda folder, model=model: build(model, folder))
    return home


@pytest.fixture(scope="session")
def kernel(hf_home, tmp_path_factory):
    """Kernels started during the session are Kaggle-shaped and read `hf_home`."""
    with pytest.MonkeyPatch.context() as mp:
        kaggle_kernel(mp, tmp_path_factory.mktemp("kernel"), hf_home)
        yield mp
