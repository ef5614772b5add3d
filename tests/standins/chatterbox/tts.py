"""Stand-in for chatterbox.tts (English Chatterbox) used by tests; no model, synthetic audio."""

from __future__ import annotations

from chatterbox import StandinModel, recorded, synthetic_wav


class ChatterboxTTS(StandinModel):
    """Stand-in for `chatterbox.tts.ChatterboxTTS`."""

    module = "chatterbox.tts"

    @recorded("chatterbox.tts")
    def generate(self, text, repetition_penalty=1.2, min_p=0.05, top_p=1.0,
                 audio_prompt_path=None, exaggeration=0.5, cfg_weight=0.5, temperature=0.8):
        return synthetic_wav(text, self._voice_for(audio_prompt_path))
