"""Tiny, randomly initialised Qwen3-TTS checkpoints built with qwen-tts's own classes, laid
out like the real ones (config, weights, text tokenizer, processor, `speech_tokenizer/`,
`generation_config.json`), so the notebook's unchanged `from_pretrained(model_id)` loads them.

Sizes are shrunk (4 codebooks instead of 16), not the structure: the 12 Hz codec keeps its
1920-sample frames, so a clip is exactly `codec tokens x 0.08 s`. Two choices make runs predictable:
- the talker's end-of-speech id lies outside its vocabulary, so no line stops early: every
  line runs to `max_new_tokens`, and a test sets a clip's length with it;
- a "loud" variant scales the talker's embeddings past float16's range (about 1e5, where
  float32 is fine), so float16 sampling meets inf/NaN probabilities: what Qwen3-TTS 0.6B does
  on a T4 (QwenLM/Qwen3-TTS issue 43), a device-side assert there, a RuntimeError on CPU.

Run in the tier's environment only: it imports torch, transformers and qwen_tts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 24000
SAMPLES_PER_TOKEN = 1920  # the 12 Hz codec: 24000 / 1920 = 12.5 tokens a second
SPEAKERS = ("vivian", "serena", "uncle_fu", "dylan", "eric", "ryan", "aiden", "ono_anna", "sohee")
LANGUAGES = ("chinese", "english", "japanese", "korean", "german", "french", "russian",
             "portuguese", "spanish", "italian")
TEXT_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|tts_pad|>", "<|tts_bos|>",
                 "<|tts_eos|>")
CODEBOOKS = 4  # residual codebooks per frame (16 in the real codec)
CODEBOOK = 64  # codes per codebook; the talker's vocabulary is this plus 1024 special ids
HIDDEN = 32
KINDS = {"CustomVoice": "custom_voice", "VoiceDesign": "voice_design", "Base": "base"}


@dataclass(frozen=True)
class TinyModel:
    """What to build: the model id the notebook asks for, and whether float16 overflows."""

    model_id: str
    overflows_in_float16: bool = False

    @property
    def kind(self) -> str:
        return KINDS[self.model_id.rsplit("-", 1)[1]]

    @property
    def size(self) -> str:
        return "0b6" if "-0.6B-" in self.model_id else "1b7"


def build(model: TinyModel, folder: Path, seed: int = 0) -> Path:
    """Write `model` into `folder` (created) and return it."""
    import torch
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    token_ids = _save_text_tokenizer(folder)
    config = Qwen3TTSConfig(
        talker_config=_talker_config(token_ids), speaker_encoder_config=_speaker_encoder_config(),
        tokenizer_type="qwen3_tts_tokenizer_12hz", tts_model_size=model.size,
        tts_model_type=model.kind, im_start_token_id=token_ids["<|im_start|>"],
        im_end_token_id=token_ids["<|im_end|>"], tts_pad_token_id=token_ids["<|tts_pad|>"],
        tts_bos_token_id=token_ids["<|tts_bos|>"], tts_eos_token_id=token_ids["<|tts_eos|>"],
    )
    network = Qwen3TTSForConditionalGeneration(config)
    if model.overflows_in_float16:
        with torch.no_grad():
            for embedding in (network.talker.model.codec_embedding,
                              network.talker.model.text_embedding):
                embedding.weight.mul_(1e7)
    network.save_pretrained(folder)
    # The speaker encoder's config skips PretrainedConfig.__init__, so the generic fields
    # save_pretrained adds to its sub-dict would not load back: keep only its own fields.
    saved = json.loads((folder / "config.json").read_text())
    own = _speaker_encoder_config()
    saved["speaker_encoder_config"] = {k: v for k, v in saved["speaker_encoder_config"].items()
                                       if k in own}
    (folder / "config.json").write_text(json.dumps(saved, indent=1))
    (folder / "generation_config.json").write_text(json.dumps({
        "do_sample": True, "top_k": 50, "top_p": 1.0, "temperature": 0.9,
        "repetition_penalty": 1.05, "subtalker_dosample": True, "subtalker_top_k": 50,
        "subtalker_top_p": 1.0, "subtalker_temperature": 0.9, "max_new_tokens": 2048,
    }))
    _save_speech_tokenizer(folder / "speech_tokenizer")
    return folder


def _save_text_tokenizer(folder: Path) -> dict[str, int]:
    """A byte-level BPE over the 256 byte symbols (no merges) plus Qwen's special tokens."""
    from qwen_tts.core.models import Qwen3TTSProcessor
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: number for number, symbol in enumerate(sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = Qwen2TokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token=None,
                                   bos_token=None)
    tokenizer.add_special_tokens({"additional_special_tokens": list(TEXT_SPECIALS[1:])})
    Qwen3TTSProcessor(tokenizer=tokenizer).save_pretrained(folder)
    return {token: tokenizer.convert_tokens_to_ids(token) for token in TEXT_SPECIALS}


def _talker_config(token_ids: dict[str, int]) -> dict:
    special = CODEBOOK  # the first id past the codebook; all special codec ids follow it
    ids = {name: special + offset for offset, name in enumerate(
        ("codec_pad_id", "codec_bos_id", "codec_think_id", "codec_nothink_id",
         "codec_think_bos_id", "codec_think_eos_id"))}
    next_id = special + len(ids)
    speakers = {name: next_id + n for n, name in enumerate(SPEAKERS)}
    next_id += len(SPEAKERS)
    languages = {name: next_id + n for n, name in enumerate(LANGUAGES)}
    vocab_size = CODEBOOK + 1024
    head_dim = 8
    return {
        **ids,
        # Outside the vocabulary: never sampled, so every line runs to max_new_tokens.
        "codec_eos_token_id": vocab_size + 1,
        "vocab_size": vocab_size, "hidden_size": HIDDEN, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": head_dim, "num_code_groups": CODEBOOKS,
        "text_hidden_size": HIDDEN, "text_vocab_size": max(token_ids.values()) + 1,
        "spk_id": speakers, "spk_is_dialect": {name: False for name in SPEAKERS},
        "codec_language_id": languages,
        # Multimodal rope: its sections add up to head_dim / 2.
        "rope_scaling": {"rope_type": "default", "mrope_section": [2, 1, 1],
                         "interleaved": True},
        "code_predictor_config": {
            "vocab_size": CODEBOOK, "hidden_size": HIDDEN, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": head_dim, "num_code_groups": CODEBOOKS,
        },
    }


def _speaker_encoder_config() -> dict:
    return {"mel_dim": 128, "enc_dim": HIDDEN, "enc_channels": [16, 16, 16, 16, 48],
            "enc_kernel_sizes": [5, 3, 3, 3, 1], "enc_dilations": [1, 2, 3, 4, 1],
            "enc_attention_channels": 8, "enc_res2net_scale": 8, "enc_se_channels": 8,
            "sample_rate": SAMPLE_RATE}


def _save_speech_tokenizer(folder: Path) -> None:
    """The 12 Hz codec, tiny, with codebooks and convolutions that make audible output."""
    import torch
    from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
    from transformers import EncodecFeatureExtractor

    config = Qwen3TTSTokenizerV2Config(
        encoder_valid_num_quantizers=CODEBOOKS,
        encoder_config={
            "hidden_size": 16, "num_filters": 4, "num_hidden_layers": 1,
            "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2,
            "codebook_size": CODEBOOK, "codebook_dim": 16, "num_quantizers": CODEBOOKS,
            "vector_quantization_hidden_dimension": 16, "upsample_groups": 16,
        },
        decoder_config={
            "codebook_size": CODEBOOK, "codebook_dim": 16, "hidden_size": 16, "latent_dim": 16,
            "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_quantizers": CODEBOOKS, "decoder_dim": 16,
        },
    )
    codec = Qwen3TTSTokenizerV2Model(config)
    with torch.no_grad():
        # Codebooks start at zero (silence) and the default init leaves the output near 1e-9.
        for name, parameter in codec.decoder.named_parameters():
            if name.endswith("embedding_sum"):
                parameter.normal_(0.0, 1.0)
        for module in codec.decoder.modules():
            if isinstance(module, torch.nn.Conv1d | torch.nn.ConvTranspose1d):
                module.reset_parameters()
    codec.save_pretrained(folder)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE).save_pretrained(folder)
