"""The qwen family's tier: the image (torch, numpy 2.x, a CPU-loadable torchaudio) plus what
qwen-tts needs, tiny checkpoints in a Hugging Face cache, and a Kaggle-shaped kernel."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest
from common import hf_snapshot, kaggle_kernel
from qwen_image import provide_qwen_image
from qwen_runs import BASE, CUSTOM_VOICE, SMALL_CUSTOM_VOICE, VOICE_DESIGN


@pytest.fixture(scope="session")
def qwen_environment() -> dict:
    """The image and qwen-tts as the notebook installs it (qwen_image): the tests need the
    package to build the tiny checkpoints before any notebook runs. Returns how long that
    took."""
    started = time.perf_counter()
    provide_qwen_image()
    return {"install_seconds": time.perf_counter() - started}


@pytest.fixture(scope="session")
def hf_home(qwen_environment, tmp_path_factory) -> Path:
    """Every model the tests name, tiny and random, in one Hugging Face cache."""
    from tiny_checkpoints import TinyModel, build

    home = tmp_path_factory.mktemp("hf-home")
    for model in (TinyModel(CUSTOM_VOICE), TinyModel(VOICE_DESIGN), TinyModel(BASE),
                  TinyModel(SMALL_CUSTOM_VOICE, overflows_in_float16=True)):
        hf_snapshot(home, model.model_id, partial(build, model))
    return home


@pytest.fixture(scope="session")
def kernel(hf_home, tmp_path_factory):
    """Kernels started during the session are Kaggle-shaped and read `hf_home`."""
    with pytest.MonkeyPatch.context() as mp:
        kaggle_kernel(mp, tmp_path_factory.mktemp("kernel"), hf_home)
        yield mp
