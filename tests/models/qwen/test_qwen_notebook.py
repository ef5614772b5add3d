"""notebooks/qwen.ipynb, unchanged, under papermill against the real qwen-tts 0.1.1 on CPU
with tiny random checkpoints: every mode, what each clip's record says, what holds between
lines, and the fixes for what the real package does on a T4.

Random weights say nothing about voice quality; the tiny talker never stops early, so a clip
lasts exactly `(max_new_tokens - 1)` codec frames of 0.08 s, which the tests rely on."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest
from qwen_runs import (
    BASE,
    CLIP_SECONDS,
    CUSTOM_VOICE,
    SMALL_CUSTOM_VOICE,
    VOICE_DESIGN,
    check_result,
    run,
)

import kaggletts

LONG_LINE = "One two three. Four five six, seven eight."
LONG_LINE_PIECES = ["One two three.", "Four five six,", "seven eight."]


@pytest.fixture(scope="module")
def custom_voice(kernel, tmp_path_factory):
    return run(tmp_path_factory.mktemp("cv"), {
        "mode": "custom_voice", "model_id": CUSTOM_VOICE, "dtype": "float16",
        "utterances": ["Good evening.", {"text": LONG_LINE, "speaker": "Ryan",
                                         "language": "English", "instruct": "Warmly."}]})


def test_custom_voice_speaks_every_line_in_float16_with_a_float32_decoder(custom_voice):
    check_result(custom_voice, ["Good evening.", LONG_LINE])
    first = custom_voice.clips[0]
    assert first.duration == pytest.approx(CLIP_SECONDS)
    for clip in custom_voice.clips:  # read from the loaded model, not from the parameters
        assert (clip.extra["precision"], clip.extra["decoder_precision"]) == ("float16", "float32")
        assert (clip.extra["seed"], clip.device) == (0, "cpu")
    assert custom_voice.scraps["run"]["precisions_used"] == ["float16"]


def test_a_1_7b_model_runs_in_float32_unless_float16_is_asked_for(kernel, tmp_path):
    """float16 overflows the 1.7B talker's and code predictor's logits on a T4 too (QwenLM/
    Qwen3-TTS PR 355), in a device-side assert no fallback catches: "auto" is float32."""
    result = run(tmp_path, {"model_id": CUSTOM_VOICE, "text": "Hello there."})
    check_result(result, ["Hello there."])
    assert (result.clips[0].extra["precision"], result.scraps["run"]["precisions_used"]) == (
        "float32", ["float32"])


def test_a_line_too_long_for_one_generation_is_spoken_whole_in_pieces(custom_voice):
    long = custom_voice.clips[1]
    assert [piece["text"] for piece in long.pieces] == LONG_LINE_PIECES
    assert [piece["duration"] for piece in long.pieces] == pytest.approx([CLIP_SECONDS] * 3)
    assert long.duration == pytest.approx(3 * CLIP_SECONDS + 2 * 0.3, abs=1e-3)
    assert long.settings["speaker"] == "Ryan"


def test_the_image_torch_and_numpy_are_the_ones_the_kernel_ran(custom_voice):
    import numpy
    import torch

    packages = custom_voice.scraps["run"]["packages"]
    assert packages["torch"] == torch.__version__
    assert numpy.__version__.startswith("2.")


def test_voice_design_speaks_from_the_description(kernel, tmp_path):
    result = run(tmp_path, {"mode": "voice_design", "model_id": VOICE_DESIGN,
                            "instruct": "A calm, low voice.", "language": "French",
                            "text": "Bonsoir."})
    check_result(result, ["Bonsoir."])
    assert result.clips[0].duration == pytest.approx(CLIP_SECONDS)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, standins) -> Path:
    inputs = tmp_path_factory.mktemp("inputs")
    standins.wav(inputs / "my-voices" / "voice.wav", seconds=1.5)
    return inputs


@pytest.mark.parametrize("clone", [{"ref_text": "A square wave."}, {"x_vector_only": True}],
                         ids=["ref_text", "x_vector_only"])
def test_voice_clone_speaks_in_the_reference_voice(kernel, tmp_path, reference, clone):
    result = run(tmp_path, {"mode": "voice_clone", "model_id": BASE, "ref_audio": "voice.wav",
                            "utterances": ["Chapter one.", "It was late."], **clone},
                 input_root=reference, mp=kernel)
    check_result(result, ["Chapter one.", "It was late."])
    # With ref_text the reference's own codes lead the generation and are cut off again.
    assert [c.duration for c in result.clips] == pytest.approx([CLIP_SECONDS] * 2, abs=0.01)


def test_a_clone_that_runs_to_max_new_tokens_fails_naming_the_line(kernel, tmp_path, reference):
    """A wrong ref_text makes the real model babble until max_new_tokens: NaN and silence
    checks pass, so only the duration against the text catches it."""
    result = run(tmp_path, {"mode": "voice_clone", "model_id": BASE, "ref_audio": "voice.wav",
                            "ref_text": "Not what the reference says.", "max_new_tokens": 48,
                            "utterances": ["A longer first line.", "Hi."]},
                 input_root=reference, mp=kernel)
    # Line 1 is spoken; line 2 is tried twice, then recorded as missing with its reason.
    assert isinstance(result, kaggletts.Incomplete), result
    [missing] = result.result.missing
    assert (missing.number, missing.text) == (2, "Hi.")
    assert missing.reason.startswith("ran away") and "; then ran away" in missing.reason


def test_a_0_6b_model_runs_in_float32_where_float16_overflows(kernel, tmp_path):
    """The tiny 0.6B overflows float16 as the real one does on a T4; "auto" avoids it."""
    result = run(tmp_path, {"model_id": SMALL_CUSTOM_VOICE, "text": "Hello there."})
    check_result(result, ["Hello there."])
    assert result.clips[0].extra["precision"] == "float32"


def test_standin_signatures_match_the_real_package(qwen_environment, standins, monkeypatch):
    """tests/standins/qwen_tts keeps the real Qwen3TTSModel's public signatures."""
    from qwen_tts import Qwen3TTSModel as Real

    monkeypatch.syspath_prepend(str(standins.dir))
    spec = importlib.util.spec_from_file_location(
        "standin_qwen_tts", standins.dir / "qwen_tts" / "__init__.py")
    assert spec is not None and spec.loader is not None
    standin = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "standin_qwen_tts", standin)
    spec.loader.exec_module(standin)

    def shape(function) -> list[tuple]:
        return [(p.name, p.kind, p.default)
                for p in inspect.signature(function).parameters.values()]

    public = [name for name in vars(standin.Qwen3TTSModel)
              if not name.startswith("_") and callable(getattr(Real, name, None))]
    assert {"from_pretrained", "generate_custom_voice", "generate_voice_design",
            "generate_voice_clone"} <= set(public)
    for name in public:
        assert shape(getattr(standin.Qwen3TTSModel, name)) == shape(getattr(Real, name)), name
