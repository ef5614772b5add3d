"""Stand-in for chatterbox (chatterbox-tts) used by tests; no model, synthetic audio.

It follows the real API of `chatterbox-tts` 0.1.7 as written down in
/work/shared/models.md: `ChatterboxTTS` (chatterbox.tts), `ChatterboxMultilingualTTS`
(chatterbox.mtl_tts) and `ChatterboxTurboTTS` (chatterbox.tts_turbo), each with
`from_pretrained(device)`, `.sr == 24000` and `.generate(text, ...)` with the real keyword
arguments and defaults, returning a float32 torch tensor shaped (1, N). The audio is a tone
whose length grows with the text.

Test switches, read from the environment when called:
- KAGGLETTS_STANDIN_CALLS: a file; every call is appended to it as one JSON line.
- KAGGLETTS_STANDIN_FAULT: `nan-once` gives NaN audio for the first generation only;
  `silence` gives zeros for every generation.

This module holds the helpers the three model modules share.
"""

from __future__ import annotations

import functools
import os
import wave
from pathlib import Path

from standin_support import record_call, tone

STANDIN = True
_state = {"nan_given": False}


def recorded(module: str):
    """Record each call exactly as made (positional `args`, keyword `kwargs`), then run it.
    The wrapped method keeps its real signature (inspect.signature follows __wrapped__)."""

    def decorate(method):
        @functools.wraps(method)
        def call(self_or_cls, *args, **kwargs):
            record_call(module, method.__name__, args=args, kwargs=kwargs)
            return method(self_or_cls, *args, **kwargs)

        return call

    return decorate


def prompt_seconds(audio_prompt_path: str) -> float:
    """The length of a reference WAV; a missing file raises like the real loader."""
    path = Path(audio_prompt_path)
    if not path.is_file():
        raise FileNotFoundError(f"audio prompt not found: {audio_prompt_path}")
    with wave.open(str(path), "rb") as clip:
        return clip.getnframes() / clip.getframerate()


def synthetic_wav(text: str, pitch_seed: str = ""):
    """A (1, N) float32 tone: 0.2 s plus 50 ms per character, or the fault asked for."""
    import torch

    wav = torch.from_numpy(tone(text, pitch_seed)).unsqueeze(0)
    fault = os.environ.get("KAGGLETTS_STANDIN_FAULT", "")
    if fault == "silence":
        wav = torch.zeros_like(wav)
    elif fault == "nan-once" and not _state["nan_given"]:
        _state["nan_given"] = True
        wav = torch.full_like(wav, float("nan"))
    return wav
