"""Tiny, randomly initialised Chatterbox checkpoints for the models tier, built on disk in
seconds and loaded by the real chatterbox-tts code.

chatterbox-tts hard-codes its sizes (a 520M Llama, 512-wide S3Gen parts, a fixed Perceiver),
so `shrink()` makes the size tables and constructors small before anything is built. The same
shrink must be in force wherever the checkpoints are loaded: in the test process before
building, and in the notebook's kernel from interpreter start (see sitecustomize.py beside
this file, which calls `shrink_when_imported()`). Only sizes change here, plus the two things a
test machine cannot do offline (see `shrink`); every code path stays the package's own.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path

WIDTH = 32  # every hidden size; heads of 16 wide
# Generation runs to a cap with random weights (they rarely sample the stop token): a smaller
# cap is a size knob like the others, so each line makes 2 seconds of audio, not 40.
SPEECH_TOKEN_CAP = 50
# The multilingual model watches attention heads up to layer 13, head 15, to tell when
# speech is done (alignment_stream_analyzer.LLAMA_ALIGNED_HEADS).
LLAMA_LAYERS, LLAMA_HEADS = 14, 16
SAMPLE_RATE = 24000
SPEECH_VOCABULARY = 6563  # 6561 speech tokens, then start and stop


def _force_keywords(cls, **forced) -> None:
    """Make every construction of `cls` use `forced` for these keyword arguments."""
    original = cls.__init__

    @functools.wraps(original)
    def init(self, *args, **given):
        original(self, *args, **{**given, **forced})

    cls.__init__ = init


def _set_after_init(cls, **values) -> None:
    """Set attributes on every new `cls` once its own __init__ has run."""
    original = cls.__init__

    @functools.wraps(original)
    def init(self, *args, **given):
        original(self, *args, **given)
        vars(self).update(values)

    cls.__init__ = init


def _cap_keyword(cls, method: str, keyword: str, cap: int) -> None:
    """Clamp one keyword argument of `cls.method` (given or defaulted) to `cap`."""
    original = getattr(cls, method)

    @functools.wraps(original)
    def capped(self, *args, **given):
        given[keyword] = min(given.get(keyword) or cap, cap)
        return original(self, *args, **given)

    setattr(cls, method, capped)


def shrink() -> None:
    """Shrink chatterbox-tts's hard-coded sizes (idempotent)."""
    from chatterbox.models.t3 import llama_configs

    if getattr(llama_configs, "_kaggletts_tiny", False):
        return
    llama_configs._kaggletts_tiny = True
    llama_configs.LLAMA_CONFIGS["Llama_520M"].update(
        hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=LLAMA_LAYERS,
        num_attention_heads=LLAMA_HEADS, num_key_value_heads=2, head_dim=8)
    llama_configs.LLAMA_CONFIGS["GPT2_medium"].update(
        n_embd=WIDTH, hidden_size=WIDTH, n_head=2, n_layer=2)

    from chatterbox.models.s3gen.decoder import ConditionalDecoder
    from chatterbox.models.s3gen.f0_predictor import ConvRNNF0Predictor
    from chatterbox.models.s3gen.flow import CausalMaskedDiffWithXvec
    from chatterbox.models.s3gen.hifigan import HiFTGenerator
    from chatterbox.models.s3gen.transformer.upsample_encoder import (
        PreLookaheadLayer,
        Upsample1D,
        UpsampleConformerEncoder,
    )
    from chatterbox.models.s3gen.xvector import CAMPPlus
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.perceiver import Perceiver
    from chatterbox.models.t3.modules.t3_config import T3Config
    from s3tokenizer.model_v2 import ModelConfig, S3TokenizerV2

    # The speech vocabulary ends at the stop token, as turbo's does: random weights then
    # cannot sample the unused ids above it, which a trained model never emits and which the
    # multilingual model passes on to S3Gen unfiltered.
    _set_after_init(T3Config, speech_tokens_dict_size=SPEECH_VOCABULARY)
    _force_keywords(Perceiver, pre_attention_query_size=WIDTH, embedding_dim=WIDTH,
                    num_attn_heads=2)
    # Its rotary embedding is fixed at 64 per head.
    _force_keywords(S3TokenizerV2, config=ModelConfig(n_audio_state=64, n_audio_head=1,
                                                      n_audio_layer=1))
    # The x-vector stays 192 wide: the flow's speaker projection expects that.
    _force_keywords(CAMPPlus, growth_rate=8, init_channels=16)
    _force_keywords(UpsampleConformerEncoder, input_size=WIDTH, output_size=WIDTH,
                    attention_heads=2, linear_units=2 * WIDTH, num_blocks=1)
    _force_keywords(PreLookaheadLayer, channels=WIDTH)
    _force_keywords(Upsample1D, channels=WIDTH, out_channels=WIDTH)
    _force_keywords(CausalMaskedDiffWithXvec, input_size=WIDTH)
    _force_keywords(ConditionalDecoder, channels=[WIDTH], attention_head_dim=WIDTH // 2,
                    n_blocks=1, num_mid_blocks=1, num_heads=2)
    _force_keywords(HiFTGenerator, base_channels=WIDTH)
    _force_keywords(ConvRNNF0Predictor, cond_channels=WIDTH)
    _cap_keyword(T3, "inference", "max_new_tokens", SPEECH_TOKEN_CAP)
    _cap_keyword(T3, "inference_turbo", "max_gen_len", SPEECH_TOKEN_CAP)

    # Offline: the multilingual tokenizer fetches a Chinese word-segmentation model from the
    # internet when it is built. Take the library's own path for "pkuseg not available".
    from chatterbox.models.tokenizers import tokenizer

    def no_segmenter(converter):
        converter.segmenter = None
        # Which process built a segmenter (and its parent), for the tests to see who fetched.
        record = os.environ.get("KAGGLETTS_SEGMENTER_LOG")
        if record:
            with open(record, "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()} {os.getppid()}\n")

    tokenizer.ChineseCangjieConverter._init_segmenter = no_segmenter


class _ShrinkAfterImport(importlib.abc.MetaPathFinder):
    """Runs `shrink()` right after the `chatterbox` package has been imported, so a kernel
    that installs chatterbox-tts mid-session still builds tiny models."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "chatterbox":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_shrink(module):
            exec_module(module)
            shrink()

        # This one loader's method, wrapped on purpose: mypy flags any method assignment.
        spec.loader.exec_module = exec_then_shrink  # type: ignore[method-assign]
        return spec


def shrink_when_imported() -> None:
    if "chatterbox" in sys.modules:
        shrink()
    elif not any(isinstance(finder, _ShrinkAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ShrinkAfterImport())


# --- Building the checkpoints ---------------------------------------------------------------

def _char_tokenizer(path: Path, extra_tokens: list[str]) -> None:
    """A `tokenizers` JSON with chatterbox's specials ([STOP] 0, [START] 255), one token per
    printable ASCII character, and `extra_tokens` (language tags) as added tokens."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    specials = ["[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]"]
    tokens = specials + [chr(code) for code in range(33, 127)]
    tokens += [f"[unused{number}]" for number in range(len(tokens), 255)]
    tokens += ["[START]", *extra_tokens]
    vocab = {token: number for number, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    tokenizer.add_special_tokens(["[START]", *specials, *extra_tokens])
    tokenizer.save(str(path))


def _save_safetensors(module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))


def reference_clip(path: Path, seconds: float, pitch: float) -> Path:
    """A voiced-sounding 16-bit clip (a gliding `pitch` with harmonics): something for the
    real conditioning code to embed and tokenise."""
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    gliding = pitch + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(gliding) / SAMPLE_RATE
    wav = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), (0.2 * wav).astype("float32"), SAMPLE_RATE, subtype="PCM_16")
    return path


def _builtin_voice(model_class, folder: Path, clip: Path, **options) -> None:
    """conds.pt, made the way the real one is: prepare_conditionals on a clip, then save."""
    model = model_class.from_local(folder, "cpu")
    model.prepare_conditionals(str(clip), **options)
    model.conds.save(folder / "conds.pt")


def build_english_and_multilingual(folder: Path, clip: Path) -> None:
    """Both file sets of ResembleAI/chatterbox, which share one repository."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.mtl_tts import SUPPORTED_LANGUAGES, ChatterboxMultilingualTTS
    from chatterbox.tts import ChatterboxTTS

    shrink()
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    voice_encoder, s3gen = VoiceEncoder(), S3Gen()
    _save_safetensors(voice_encoder, folder / "ve.safetensors")
    _save_safetensors(T3(), folder / "t3_cfg.safetensors")
    _save_safetensors(s3gen, folder / "s3gen.safetensors")
    _char_tokenizer(folder / "tokenizer.json", [])
    torch.save(voice_encoder.state_dict(), folder / "ve.pt")
    torch.save(s3gen.state_dict(), folder / "s3gen.pt")
    _save_safetensors(T3(T3Config.multilingual()), folder / "t3_mtl23ls_v2.safetensors")
    _char_tokenizer(folder / "grapheme_mtl_merged_expanded_v1.json",
                    [f"[{language}]" for language in SUPPORTED_LANGUAGES])
    _builtin_voice(ChatterboxTTS, folder, clip)
    # One conds.pt serves both: the multilingual loader reads the same file.
    ChatterboxMultilingualTTS.from_local(folder, "cpu")


def build_turbo(folder: Path, clip: Path) -> None:
    """ResembleAI/chatterbox-turbo: a GPT-2 T3, a meanflow S3Gen, a Hugging Face tokenizer."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts_turbo import ChatterboxTurboTTS
    from transformers import PreTrainedTokenizerFast

    shrink()
    torch.manual_seed(1)
    folder.mkdir(parents=True, exist_ok=True)
    _save_safetensors(VoiceEncoder(), folder / "ve.safetensors")
    # The hyper-parameters ChatterboxTurboTTS.from_local sets before loading.
    hp = T3Config(text_tokens_dict_size=50276)
    hp.llama_config_name = "GPT2_medium"
    hp.speech_tokens_dict_size = 6563
    hp.input_pos_emb = None
    hp.speech_cond_prompt_len = 375
    hp.use_perceiver_resampler = False
    hp.emotion_adv = False
    _save_safetensors(T3(hp), folder / "t3_turbo_v1.safetensors")
    _save_safetensors(S3Gen(meanflow=True), folder / "s3gen_meanflow.safetensors")
    _char_tokenizer(folder / "char-tokenizer.json", [])
    PreTrainedTokenizerFast(tokenizer_file=str(folder / "char-tokenizer.json"),
                            eos_token="[STOP]", unk_token="[UNK]").save_pretrained(folder)
    (folder / "char-tokenizer.json").unlink()
    # Turbo's loudness step hands float64 samples on under numpy 2, which its tokenizer
    # rejects (the notebook works around it for reference clips); the built-in voice skips it.
    _builtin_voice(ChatterboxTurboTTS, folder, clip, norm_loudness=False)
