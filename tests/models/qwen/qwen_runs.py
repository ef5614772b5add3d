"""What the qwen tier's test modules share: the models the tests name, and the notebook
run through kaggletts' local backend with its result checked."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import pytest
from tiny_checkpoints import SAMPLE_RATE, SAMPLES_PER_TOKEN

import kaggletts

CUSTOM_VOICE = "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"
VOICE_DESIGN = "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign"
BASE = "Qwen/Qwen3-TTS-12Hz-1.7B-Base"
SMALL_CUSTOM_VOICE = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"

# A notebook file to run instead of the shipped one (to show a test failing before a fix).
NOTEBOOK = os.environ.get("KAGGLETTS_QWEN_NOTEBOOK", "qwen")
TOKENS = 24
CLIP_SECONDS = (TOKENS - 1) * SAMPLES_PER_TOKEN / SAMPLE_RATE


def run(tmp: Path, params: dict, input_root: Path | None = None, mp=None):
    """The notebook through kaggletts' local backend; the result, or the RunFailed."""
    if input_root is not None:
        mp.setenv("KAGGLETTS_INPUT_ROOT", str(input_root))
    try:
        return kaggletts.execute(NOTEBOOK, {"max_new_tokens": TOKENS, **params},
                                 backend="local", output_dir=tmp / "out")
    except kaggletts.RunFailed as failure:
        return failure


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as clip:
        assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) == (
            1, 2, SAMPLE_RATE)
        return clip.getnframes() / SAMPLE_RATE


def check_result(result, texts: list[str]) -> None:
    assert isinstance(result, kaggletts.Result), result
    assert [clip.text for clip in result.clips] == texts
    for path, clip in zip(result.audio, result.clips, strict=True):
        assert path.name == clip.file and clip.sample_rate == SAMPLE_RATE
        assert clip.duration == pytest.approx(seconds(path), abs=1e-9)
        assert (clip.rms or 0) > 0.001
    run_scrap = result.scraps["run"]
    assert (run_scrap["stopped_at_deadline"], run_scrap["lines_done"],
            run_scrap["lines_total"]) == (False, len(texts), len(texts))
    assert run_scrap["packages"]["qwen-tts"] == "0.1.1"
