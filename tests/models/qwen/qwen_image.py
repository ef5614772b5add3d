"""Kaggle's image as the qwen notebook meets it, for the tier's fixtures and for
benchmarks/throughput.py: a CPU-loadable torchaudio, then qwen-tts installed by the notebook's
own setup code (its install helper and its list of what qwen-tts imports), run in this
process with torch and numpy already imported, as in a Kaggle kernel."""

from __future__ import annotations

import subprocess
import sys

from common import notebook_code, provide_cpu_torchaudio

import kaggletts

NOTEBOOK = kaggletts.find_notebook("qwen").path
TORCHAUDIO = "2.11.0"  # the newest on the registry; its C extension does not load here


def installed(distribution: str) -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "show", "--quiet", distribution],
                          capture_output=True).returncode == 0


def provide_qwen_image() -> None:
    provide_cpu_torchaudio(TORCHAUDIO)
    if installed("qwen-tts"):
        return
    import numpy  # noqa: F401 - imported first, as the image's kernel has them
    import torch  # noqa: F401

    install = notebook_code(NOTEBOOK, "support")
    setup = notebook_code(NOTEBOOK, "setup", names=("QWEN_TTS", "QWEN_TTS_NEEDS"))
    install["install_package"](setup["QWEN_TTS"], setup["QWEN_TTS_NEEDS"])
