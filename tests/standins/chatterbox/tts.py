"""Stand-in for chatterbox.tts (English Chatterbox) used by tests; no model, synthetic audio."""

from __future__ import annotations

from standin_support import SAMPLE_RATE

from chatterbox import prompt_seconds, recorded, synthetic_wav


class ChatterboxTTS:
    """Stand-in for `chatterbox.tts.ChatterboxTTS`."""

    sr = SAMPLE_RATE

    def __init__(self, device):
        self.device = device

    @classmethod
    @recorded("chatterbox.tts")
    def from_pretrained(cls, device) -> ChatterboxTTS:
        return cls(device)

    @recorded("chatterbox.tts")
    def generate(self, text, repetition_penalty=1.2, min_p=0.05, top_p=1.0,
                 audio_prompt_path=None, exaggeration=0.5, cfg_weight=0.5, temperature=0.8):
        if audio_prompt_path:
            prompt_seconds(audio_prompt_path)
        return synthetic_wav(text, audio_prompt_path or "builtin")
