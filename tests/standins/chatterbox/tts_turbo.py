"""Stand-in for chatterbox.tts_turbo (Chatterbox Turbo) used by tests; no model, synthetic
audio. Like the real one it ignores cfg_weight, exaggeration and min_p (with a warning) and
needs a reference clip over 5 seconds."""

from __future__ import annotations

import logging

import numpy as np
from standin_support import record_call

from chatterbox import StandinModel, prompt_seconds, recorded, synthetic_wav

log = logging.getLogger(__name__)


class ChatterboxTurboTTS(StandinModel):
    """Stand-in for `chatterbox.tts_turbo.ChatterboxTurboTTS`."""

    module = "chatterbox.tts_turbo"

    def norm_loudness(self, wav, sr, target_lufs=-27):
        return wav

    def prepare_conditionals(self, wav_fpath, exaggeration=0.5, norm_loudness=True):
        record_call(self.module, "prepare_conditionals", args=(wav_fpath,),
                    kwargs={"exaggeration": exaggeration, "norm_loudness": norm_loudness})
        assert prompt_seconds(wav_fpath) > 5.0, "Audio prompt must be longer than 5 seconds!"
        if norm_loudness:  # the real one normalises the clip's samples, a numpy array
            self.norm_loudness(np.zeros(self.sr, np.float32), self.sr)
        self.conds = f"prompt:{wav_fpath}"

    @recorded("chatterbox.tts_turbo")
    def generate(self, text, repetition_penalty=1.2, min_p=0.00, top_p=0.95,
                 audio_prompt_path=None, exaggeration=0.0, cfg_weight=0.0, temperature=0.8,
                 top_k=1000, norm_loudness=True):
        if audio_prompt_path:
            self.prepare_conditionals(audio_prompt_path, exaggeration=exaggeration,
                                      norm_loudness=norm_loudness)
        if cfg_weight > 0.0 or exaggeration > 0.0 or min_p > 0.0:
            log.warning("CFG, min_p and exaggeration are not supported by Turbo version "
                        "and will be ignored.")
        return synthetic_wav(text, self._voice_for(None))
