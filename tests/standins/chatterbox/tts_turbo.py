"""Stand-in for chatterbox.tts_turbo (Chatterbox Turbo) used by tests; no model, synthetic
audio. Like the real one it ignores cfg_weight, exaggeration and min_p (with a warning) and
needs a reference clip over 5 seconds."""

from __future__ import annotations

import logging

from standin_support import SAMPLE_RATE

from chatterbox import prompt_seconds, recorded, synthetic_wav

log = logging.getLogger(__name__)


class ChatterboxTurboTTS:
    """Stand-in for `chatterbox.tts_turbo.ChatterboxTurboTTS`."""

    sr = SAMPLE_RATE

    def __init__(self, device):
        self.device = device

    @classmethod
    @recorded("chatterbox.tts_turbo")
    def from_pretrained(cls, device) -> ChatterboxTurboTTS:
        return cls(device)

    @recorded("chatterbox.tts_turbo")
    def generate(self, text, repetition_penalty=1.2, min_p=0.00, top_p=0.95,
                 audio_prompt_path=None, exaggeration=0.0, cfg_weight=0.0, temperature=0.8,
                 top_k=1000, norm_loudness=True):
        if cfg_weight > 0.0 or exaggeration > 0.0 or min_p > 0.0:
            log.warning("CFG, min_p and exaggeration are not supported by Turbo version "
                        "and will be ignored.")
        if audio_prompt_path:
            seconds = prompt_seconds(audio_prompt_path)
            assert seconds > 5.0, "Audio prompt must be longer than 5 seconds!"
        return synthetic_wav(text, audio_prompt_path or "builtin")
