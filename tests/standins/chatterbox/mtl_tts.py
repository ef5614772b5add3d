"""Stand-in for chatterbox.mtl_tts (multilingual Chatterbox) used by tests; no model,
synthetic audio."""

from __future__ import annotations

from chatterbox import StandinModel, recorded, synthetic_wav

SUPPORTED_LANGUAGES = {
    "ar": "Arabic", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "ms": "Malay", "nl": "Dutch",
    "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish",
    "sw": "Swahili", "tr": "Turkish", "zh": "Chinese",
}


class ChatterboxMultilingualTTS(StandinModel):
    """Stand-in for `chatterbox.mtl_tts.ChatterboxMultilingualTTS`."""

    module = "chatterbox.mtl_tts"

    @classmethod
    def get_supported_languages(cls) -> dict[str, str]:
        return dict(SUPPORTED_LANGUAGES)

    @recorded("chatterbox.mtl_tts")
    def generate(self, text, language_id, audio_prompt_path=None, exaggeration=0.5,
                 cfg_weight=0.5, temperature=0.8, repetition_penalty=2.0, min_p=0.05,
                 top_p=1.0):
        if language_id and language_id.lower() not in SUPPORTED_LANGUAGES:
            supported = ", ".join(sorted(SUPPORTED_LANGUAGES))
            raise ValueError(f"Unsupported language_id '{language_id}'. "
                             f"Supported languages: {supported}")
        return synthetic_wav(text, self._voice_for(audio_prompt_path) + language_id)
