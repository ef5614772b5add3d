"""Stand-in for qwen_tts (Qwen3-TTS) used by tests; no model, synthetic audio.

It follows the real API of `qwen-tts` 0.1.1 (the models tier compares the signatures with the
real package's): `Qwen3TTSModel.from_pretrained(model_id, **kwargs)` (kwargs go on to
transformers: `device_map`, `dtype`, ...) and the three `generate_*` methods, each returning
`([1-D float32 numpy array, ...], 24000)`; `model.model.talker` and
`model.model.speech_tokenizer.model` carry a `dtype`, and `.to(dtype)` changes it.
The model kind comes from the model id (CustomVoice, VoiceDesign or Base) and a method of
another kind raises ValueError, as the real one does. The audio is a tone whose length
grows with the text.

Test switches, read from the environment when called:
- KAGGLETTS_STANDIN_CALLS: a file; every call is appended to it as one JSON line.
- KAGGLETTS_STANDIN_FAULT: `nan-once` gives NaN audio for the first float16 generation
  only (every item of it); `silence` gives zeros for every generation; `oom-over-N` raises
  an out-of-memory error, as torch does on a GPU, for a call with more than N texts;
  `fail-batches` raises RuntimeError for any call with more than one text; `fail-text-X`
  raises RuntimeError for any call with a text containing X; `exit-text-X` ends the whole
  process at once (a killed kernel) on such a call; `sleep-S` makes every call take S more
  seconds (several of these may be given, separated by `;`: `sleep-0.5;fail-text-X`);
  `cuda-lost-in-fork` makes `from_pretrained` in a forked worker process raise torch's
  error for a process forked after CUDA was initialised.

Texts, speakers, languages and instructs may be lists, one item each (the model batches
them); `create_voice_clone_prompt` builds prompt items that `generate_voice_clone` reuses.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from standin_support import SAMPLE_RATE, record_call, tone

STANDIN = True
SPEAKERS = ("vivian", "serena", "uncle_fu", "dylan", "eric", "ryan", "aiden", "ono_anna", "sohee")
LANGUAGES = ("chinese", "english", "japanese", "korean", "german", "french", "russian",
             "portuguese", "spanish", "italian", "auto")
_state = {"nan_given": False}


def _recorded(method):
    """Record each call exactly as made (positional `args`, keyword `kwargs`, and the model's
    id and dtype), then run it; inspect.signature still shows the real signature."""

    @functools.wraps(method)
    def call(self_or_cls, *args, **kwargs):
        model = {}
        if isinstance(self_or_cls, Qwen3TTSModel):
            model = {"model_id": self_or_cls.model_id, "dtype": self_or_cls.dtype}
        record_call("qwen_tts", method.__name__, **model, args=args, kwargs=kwargs)
        return method(self_or_cls, *args, **kwargs)

    return call


def _check_language(language):
    names = language if isinstance(language, list) else [language]
    for name in names:
        if name is not None and str(name).lower() not in LANGUAGES:
            raise ValueError(f"Unsupported languages: {[name]}. Supported: {list(LANGUAGES)}")


class OutOfMemoryError(RuntimeError):
    """What torch.cuda.OutOfMemoryError looks like from outside: its name and message."""


@dataclass(frozen=True)
class VoiceClonePromptItem:
    """Stand-in for qwen_tts' prompt item: the real one holds the reference's speech codes
    and speaker embedding; this one what the tone needs."""

    ref_audio: str
    ref_text: str | None
    x_vector_only_mode: bool


class _Module:
    """What the notebook reads of a torch module: its dtype, changed by `.to(dtype)`."""

    def __init__(self, dtype):
        self.dtype = dtype

    def to(self, dtype):
        self.dtype = dtype
        return self


class _Network:
    """Stand-in for `Qwen3TTSForConditionalGeneration`: the talker and the speech tokenizer,
    both loaded in the `dtype` given to from_pretrained, as the real one does."""

    def __init__(self, dtype):
        self.talker = _Module(dtype)
        self.speech_tokenizer = SimpleNamespace(model=_Module(dtype))


class Qwen3TTSModel:
    """Stand-in for `qwen_tts.Qwen3TTSModel`."""

    def __init__(self, model_id: str, device, dtype, kwargs: dict):
        self.model_id = model_id
        self.device = device
        self.model = _Network(dtype)
        self.kwargs = kwargs
        if "CustomVoice" in model_id:
            self.tts_model_type = "custom_voice"
        elif "VoiceDesign" in model_id:
            self.tts_model_type = "voice_design"
        elif model_id.endswith("-Base"):
            self.tts_model_type = "base"
        else:
            raise OSError(f"{model_id} is not a Qwen3-TTS model id (stand-in knows "
                          "CustomVoice, VoiceDesign and Base)")

    @property
    def dtype(self):
        return self.model.talker.dtype

    @classmethod
    @_recorded
    def from_pretrained(cls, pretrained_model_name_or_path: str, **kwargs) -> Qwen3TTSModel:
        if kwargs.get("attn_implementation") == "flash_attention_2":
            raise ImportError("FlashAttention2 has been toggled on, but it cannot be used due "
                              "to the following error: the package flash_attn seems to be not "
                              "installed.")
        if (os.environ.get("KAGGLETTS_STANDIN_FAULT") == "cuda-lost-in-fork"
                and multiprocessing.parent_process() is not None):
            raise RuntimeError("Cannot re-initialize CUDA in forked subprocess. To use CUDA "
                               "with multiprocessing, you must use the 'spawn' start method")
        return cls(pretrained_model_name_or_path, kwargs.get("device_map"), kwargs.get("dtype"),
                   kwargs)

    def get_supported_speakers(self) -> list[str]:
        return list(SPEAKERS)

    def get_supported_languages(self) -> list[str]:
        return list(LANGUAGES)

    def _require(self, kind: str, method: str) -> None:
        if self.tts_model_type != kind:
            raise ValueError(f"model with tts_model_type: {self.tts_model_type} does not "
                             f"support {method}, please check the model card ({self.model_id})")

    def _audio(self, texts, pitch_seed: str):
        texts = [texts] if isinstance(texts, str) else texts
        faults = os.environ.get("KAGGLETTS_STANDIN_FAULT", "").split(";")
        for fault in faults:
            if (fault.startswith("oom-over-")
                    and len(texts) > int(fault.removeprefix("oom-over-"))):
                raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (stand-in)")
            if fault == "fail-batches" and len(texts) > 1:
                raise RuntimeError(f"stand-in: a call with {len(texts)} texts failed")
            if fault.startswith("fail-text-") and any(fault[10:] in t for t in texts):
                raise RuntimeError(f"stand-in: a call with {fault[10:]!r} in its text failed")
            if fault.startswith("exit-text-") and any(fault[10:] in t for t in texts):
                os._exit(1)
            if fault.startswith("sleep-"):
                time.sleep(float(fault.removeprefix("sleep-")))
        wavs = [tone(t, pitch_seed) for t in texts]
        if "silence" in faults:
            wavs = [np.zeros_like(w) for w in wavs]
        elif ("nan-once" in faults and "float16" in str(self.dtype)
              and not _state["nan_given"]):
            _state["nan_given"] = True
            wavs = [np.full_like(w, np.nan) for w in wavs]
        return wavs, SAMPLE_RATE

    @_recorded
    def generate_custom_voice(self, text, speaker, language=None, instruct=None,
                              non_streaming_mode=True, **kwargs):
        self._require("custom_voice", "generate_custom_voice")
        _check_language(language)
        for name in speaker if isinstance(speaker, list) else [speaker]:
            if str(name).lower() not in SPEAKERS:
                raise ValueError(f"Unsupported speakers: {[name]}. Supported: {list(SPEAKERS)}")
        return self._audio(text, str(speaker))

    @_recorded
    def generate_voice_design(self, text, instruct, language=None, non_streaming_mode=True,
                              **kwargs):
        self._require("voice_design", "generate_voice_design")
        _check_language(language)
        return self._audio(text, str(instruct))

    @_recorded
    def create_voice_clone_prompt(self, ref_audio, ref_text=None,
                                  x_vector_only_mode=False) -> list[VoiceClonePromptItem]:
        self._require("base", "create_voice_clone_prompt")
        audios = ref_audio if isinstance(ref_audio, list) else [ref_audio]
        texts = ref_text if isinstance(ref_text, list) else [ref_text] * len(audios)
        items = []
        for audio, transcript in zip(audios, texts, strict=True):
            local = isinstance(audio, str) and not audio.startswith(("http://", "https://"))
            if local and not Path(audio).is_file():
                raise FileNotFoundError(audio)
            if not x_vector_only_mode and not transcript:
                raise ValueError("ref_text is required when x_vector_only_mode=False (ICL mode)")
            items.append(VoiceClonePromptItem(str(audio), transcript, bool(x_vector_only_mode)))
        return items

    @_recorded
    def generate_voice_clone(self, text, language=None, ref_audio=None, ref_text=None,
                             x_vector_only_mode: bool = False, voice_clone_prompt=None,
                             non_streaming_mode: bool = False, **kwargs):
        self._require("base", "generate_voice_clone")
        _check_language(language)
        if voice_clone_prompt is None:
            if ref_audio is None:
                raise ValueError("Either `voice_clone_prompt` or `ref_audio` must be provided.")
            voice_clone_prompt = self.create_voice_clone_prompt(ref_audio, ref_text,
                                                                x_vector_only_mode)
        texts = text if isinstance(text, list) else [text]
        if len(voice_clone_prompt) == 1:
            voice_clone_prompt = voice_clone_prompt * len(texts)
        if len(voice_clone_prompt) != len(texts):
            raise ValueError(f"Batch size mismatch: prompt={len(voice_clone_prompt)}, "
                             f"text={len(texts)}")
        return self._audio(texts, str(voice_clone_prompt[0].ref_audio))
