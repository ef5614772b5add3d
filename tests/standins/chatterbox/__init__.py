"""Stand-in for chatterbox (chatterbox-tts) used by tests; no model, synthetic audio.

It follows the real API of `chatterbox-tts` 0.1.7 as written down in
/work/shared/models.md: `ChatterboxTTS` (chatterbox.tts), `ChatterboxMultilingualTTS`
(chatterbox.mtl_tts) and `ChatterboxTurboTTS` (chatterbox.tts_turbo), each with
`from_pretrained(device)`, `.sr == 24000` and `.generate(text, ...)` with the real keyword
arguments and defaults, returning a float32 torch tensor shaped (1, N). The audio is a tone
whose length grows with the text and whose pitch tells the voice: like the real models,
`prepare_conditionals(wav_fpath)` (which `generate(audio_prompt_path=...)` calls) replaces
`conds` for good, and a line without a prompt speaks with whatever `conds` holds.

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

from standin_support import SAMPLE_RATE, record_call, tone

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


class StandinModel:
    """What the three stand-in models share: loading, `sr` and the voice in `conds`."""

    sr = SAMPLE_RATE
    module = ""  # the real module's name, for the call log

    def __init__(self, device):
        self.device = device
        self.conds = "builtin"  # the real one is a Conditionals object made from conds.pt

    @classmethod
    def from_pretrained(cls, device):
        record_call(cls.module, "from_pretrained", args=(), kwargs={"device": device})
        return cls(device)

    def prepare_conditionals(self, wav_fpath, exaggeration=0.5):
        record_call(self.module, "prepare_conditionals", args=(wav_fpath,),
                    kwargs={"exaggeration": exaggeration})
        prompt_seconds(wav_fpath)
        self.conds = f"prompt:{wav_fpath}"

    def _voice_for(self, audio_prompt_path):
        """The voice of a line, as the real generate() chooses it."""
        if audio_prompt_path:
            self.prepare_conditionals(audio_prompt_path)
        assert self.conds is not None, \
            "Please `prepare_conditionals` first or specify `audio_prompt_path`"
        return self.conds


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
