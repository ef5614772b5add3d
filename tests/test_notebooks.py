"""The notebooks themselves: eSpeak NG really speaks; Qwen3-TTS (three modes) and Chatterbox
(three variants) run end to end under papermill with the stand-in models from
tests/standins; the float32 retry and the loud failure on silence; and notebook hygiene.

Each notebook run is a module-scoped fixture checked by several tests. The fast tier runs
each notebook once; the other modes and variants, and a 1000-line batch, are marked slow."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import wave
from array import array
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

import kaggletts
from kaggletts.notebook import data_dir
from kaggletts.records import ClipRecord

NOTEBOOKS = ("chatterbox", "espeak", "qwen")
SAFE_NAME = re.compile(r"^\d{3,}-(?:[^\W_A-Z]|-){1,40}\.wav$")


def read_wav(path: Path) -> dict:
    """What the stdlib `wave` sees in a file, plus its RMS (full scale = 1)."""
    with wave.open(str(path), "rb") as clip:
        params = clip.getparams()
        frames = clip.readframes(params.nframes)
    samples = array("h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1)) / 32768
    return {"channels": params.nchannels, "width": params.sampwidth, "rate": params.framerate,
            "frames": params.nframes, "seconds": params.nframes / params.framerate, "rms": rms}


def check_clips(result: kaggletts.Result, expected_rate: int) -> list[dict]:
    """Every clip is a valid 16-bit mono WAV inside the job folder that matches its scrap."""
    assert len(result.audio) == len(result.clips) > 0
    infos = []
    for path, clip in zip(result.audio, result.clips, strict=True):
        assert path.is_file()
        assert path.parent == result.directory
        assert SAFE_NAME.match(path.name), path.name
        assert clip.file == path.name
        data = path.read_bytes()
        assert clip.bytes == len(data)
        assert clip.sha256 == hashlib.sha256(data).hexdigest()
        info = read_wav(path)
        assert (info["channels"], info["width"], info["rate"]) == (1, 2, expected_rate)
        assert clip.sample_rate == expected_rate
        assert clip.duration == pytest.approx(info["seconds"], abs=1e-9)
        assert info["rms"] > 0.01, f"{path.name} is near-silent"
        assert clip.rms == pytest.approx(info["rms"], abs=1e-5)
        infos.append(info)
    return infos


def clip_by_name(result: kaggletts.Result, fragment: str) -> ClipRecord:
    [clip] = [c for c in result.clips if fragment in c.file]
    return clip


# --- eSpeak NG: real synthesis --------------------------------------------------------------

SHORT = "Short."
LONG = "A much longer sentence takes noticeably longer to say, and the audio grows with it."
MID = "The quick brown fox jumps over the lazy dog."
ESPEAK_PARAMS: dict[str, Any] = {
    "text": "Hello from the text parameter.",
    "voice": "en-gb",
    "rate": 175,
    "utterances": [
        SHORT,
        LONG,
        {"text": MID, "rate": 380, "name": "fast"},
        {"text": MID, "rate": 110, "name": "slow"},
        {"text": "Bonjour tout le monde.", "voice": "fr", "name": "french"},
        {"text": "Bonjour tout le monde.", "name": "english"},
        {"text": MID, "pitch": 10, "name": "Low/../../Pitch!!"},
        {"text": MID, "pitch": 90, "name": "!!!"},
    ],
}
ESPEAK_FILES = [
    "001-hello-from-the-text-parameter.wav",
    "002-short.wav",
    "003-a-much-longer-sentence-takes-noticeably.wav",
    "004-fast.wav",
    "005-slow.wav",
    "006-french.wav",
    "007-english.wav",
    "008-low-pitch.wav",
    "009-utterance.wav",
]


@pytest.fixture(scope="module")
def espeak_run(tmp_path_factory) -> kaggletts.Result:
    out = tmp_path_factory.mktemp("espeak-out")
    return kaggletts.execute("espeak", ESPEAK_PARAMS, output_dir=out)


def test_espeak_batch_gives_valid_wavs_matching_the_scraps(espeak_run):
    infos = check_clips(espeak_run, expected_rate=22050)
    assert len(infos) == 1 + len(ESPEAK_PARAMS["utterances"])
    assert espeak_run.scraps["run"]["notebook"] == "espeak"
    assert not espeak_run.cached


def test_espeak_clips_follow_input_order_with_safe_predictable_names(espeak_run):
    assert [p.name for p in espeak_run.audio] == ESPEAK_FILES
    texts = [ESPEAK_PARAMS["text"]] + [
        u if isinstance(u, str) else u["text"] for u in ESPEAK_PARAMS["utterances"]]
    assert [c.text for c in espeak_run.clips] == texts


def test_espeak_longer_text_gives_longer_audio(espeak_run):
    short, long = clip_by_name(espeak_run, "short"), clip_by_name(espeak_run, "much-longer")
    assert (short.duration or 0) > 0.2
    assert (long.duration or 0) > 3 * (short.duration or 0)


def test_espeak_per_utterance_rate_applies(espeak_run):
    fast, slow = clip_by_name(espeak_run, "fast"), clip_by_name(espeak_run, "slow")
    assert fast.settings["rate"] == 380 and slow.settings["rate"] == 110
    assert (slow.duration or 0) > 1.8 * (fast.duration or 0)


def test_espeak_per_utterance_voice_and_defaults_apply(espeak_run):
    french, english = clip_by_name(espeak_run, "french"), clip_by_name(espeak_run, "english")
    assert french.settings["voice"] == "fr"
    assert english.settings["voice"] == "en-gb"  # the top-level default
    assert french.sha256 != english.sha256


def test_espeak_per_utterance_pitch_applies(espeak_run):
    low, high = clip_by_name(espeak_run, "low-pitch"), clip_by_name(espeak_run, "utterance")
    assert (low.settings["pitch"], high.settings["pitch"]) == (10, 90)
    assert low.sha256 != high.sha256
    assert low.duration == pytest.approx(high.duration, rel=0.2)


def test_espeak_result_round_trips_through_result_json(espeak_run):
    stored = json.loads((espeak_run.directory / "result.json").read_text(encoding="utf-8"))
    assert stored["audio"] == [str(p) for p in espeak_run.audio]
    assert stored["scraps"] == espeak_run.scraps


def test_espeak_starts_no_line_after_the_deadline_and_ends_cleanly(out_dir):
    params = {**ESPEAK_PARAMS, "deadline": time.time() - 60}
    with pytest.raises(kaggletts.RunFailed, match=f"none of its {len(ESPEAK_FILES)} lines was "
                       "spoken: not spoken: the job's deadline passed before it was reached"):
        kaggletts.execute("espeak", params, output_dir=out_dir)
    result = kaggletts.execute("espeak", {**params, "deadline": time.time() + 3600},
                               output_dir=out_dir)
    assert [p.name for p in result.audio] == ESPEAK_FILES
    assert {k: result.scraps["run"][k] for k in ("stopped_at_deadline", "lines_done",
                                                   "lines_total")} == {
        "stopped_at_deadline": False, "lines_done": len(ESPEAK_FILES),
        "lines_total": len(ESPEAK_FILES)}


# --- Qwen3-TTS with the stand-in ------------------------------------------------------------

CUSTOM_VOICE = "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"


def run_with_standins(standins, mp, tmp, notebook, params, *, fault=None, input_root=None):
    """Run `notebook` under the stand-ins; returns (result or RunFailed, the calls made)."""
    calls = standins.use(mp, tmp / "calls.jsonl", fault=fault, input_root=input_root)
    outcome: kaggletts.Result | kaggletts.RunFailed
    try:
        outcome = kaggletts.execute(notebook, params, backend="local", output_dir=tmp / "out")
    except kaggletts.RunFailed as failure:
        outcome = failure
    return outcome, standins.calls(calls)


def generate_calls(calls, method="generate"):
    return [c for c in calls if c["method"] == method]


@pytest.fixture(scope="module")
def qwen_custom(standins, module_monkeypatch, tmp_path_factory):
    return run_with_standins(standins, module_monkeypatch, tmp_path_factory.mktemp("qwen-cv"),
                             "qwen", {
                                 "mode": "custom_voice", "model_id": CUSTOM_VOICE,
                                 "dtype": "float16",
                                 "utterances": [
                                     "Good evening.",
                                     {"text": "Tonight we have three stories for you.",
                                      "speaker": "Ryan", "language": "English",
                                      "instruct": "Speak warmly."},
                                 ]})


def test_qwen_custom_voice_runs_end_to_end(qwen_custom):
    result, _ = qwen_custom
    assert isinstance(result, kaggletts.Result), result
    infos = check_clips(result, expected_rate=24000)
    # The stand-in speaks 0.2 s plus 50 ms per character.
    for clip, info in zip(result.clips, infos, strict=True):
        assert info["seconds"] == pytest.approx(0.2 + 0.05 * len(clip.text), abs=1e-3)
    run = result.scraps["run"]
    assert (run["notebook"], run["mode"], run["model_id"]) == ("qwen", "custom_voice",
                                                               CUSTOM_VOICE)
    assert run["precisions_used"] == ["float16"]
    assert run["packages"]["qwen-tts"] is None  # the stand-in, not an installed qwen-tts
    for clip in result.clips:  # what made each clip, as the model reports it
        assert (clip.extra["precision"], clip.extra["decoder_precision"]) == ("float16", "float32")
        assert (clip.extra["seed"], clip.device) == (0, "cpu")


def test_qwen_loads_the_model_once_in_float16_with_sdpa(qwen_custom):
    _, calls = qwen_custom
    loads = generate_calls(calls, "from_pretrained")
    assert len(loads) == 1
    assert loads[0]["args"] == [CUSTOM_VOICE]
    assert loads[0]["kwargs"] == {"device_map": "cpu", "dtype": "torch.float16",
                                  "attn_implementation": "sdpa"}


def test_qwen_custom_voice_passes_speaker_language_and_instruct(qwen_custom):
    _, calls = qwen_custom
    # Lines with other settings are not batched together: one call each, as lists of one.
    first, second = generate_calls(calls, "generate_custom_voice")
    assert first["args"] == [["Good evening."], ["Vivian"]]  # the default speaker
    assert first["kwargs"]["language"] == ["Auto"]  # qwen-tts reads "auto" as no language
    assert first["kwargs"]["instruct"] == [""]  # qwen-tts reads "" as no instruction
    assert second["args"] == [["Tonight we have three stories for you."], ["Ryan"]]
    assert second["kwargs"]["language"] == ["English"]
    assert second["kwargs"]["instruct"] == ["Speak warmly."]
    sampling = {k: v for k, v in first["kwargs"].items() if k not in ("language", "instruct")}
    assert sampling == {"do_sample": True, "temperature": 0.9, "top_p": 1.0, "top_k": 50,
                        "repetition_penalty": 1.05, "max_new_tokens": 2048}


@pytest.fixture(scope="module")
def qwen_design(standins, module_monkeypatch, tmp_path_factory):
    return run_with_standins(standins, module_monkeypatch, tmp_path_factory.mktemp("qwen-vd"),
                             "qwen", {
                                 "mode": "voice_design",
                                 "model_id": "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign",
                                 "language": "French",
                                 "instruct": "A calm, low voice.",
                                 "text": "Bonsoir.",
                                 "utterances": [{"text": "Et bienvenue.",
                                                 "instruct": "A bright voice."}],
                             })


@pytest.mark.slow
def test_qwen_voice_design_runs_and_passes_the_description(qwen_design):
    result, calls = qwen_design
    assert isinstance(result, kaggletts.Result), result
    check_clips(result, expected_rate=24000)
    first, second = generate_calls(calls, "generate_voice_design")
    assert first["args"] == [["Bonsoir."], ["A calm, low voice."]]
    assert second["args"] == [["Et bienvenue."], ["A bright voice."]]
    assert first["kwargs"]["language"] == ["French"]
    assert first["model_id"].endswith("-VoiceDesign")


@pytest.fixture(scope="module")
def qwen_clone(standins, module_monkeypatch, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qwen-vc")
    inputs = tmp / "kaggle-input"
    reference = standins.wav(inputs / "my-voices" / "voice.wav", seconds=1.0)
    outcome = run_with_standins(standins, module_monkeypatch, tmp, "qwen", {
        "mode": "voice_clone", "model_id": "Qwen/Qwen3-TTS-12Hz-1.7B-Base",
        "ref_audio": "voice.wav", "ref_text": "The transcript of the reference.",
        "utterances": ["Chapter one.", "Nobody had lived there for years."],
    }, input_root=inputs)
    return (*outcome, reference)


@pytest.mark.slow
def test_qwen_voice_clone_finds_the_reference_under_the_inputs_root(qwen_clone):
    result, calls, reference = qwen_clone
    assert isinstance(result, kaggletts.Result), result
    check_clips(result, expected_rate=24000)
    # The reference is turned into a prompt once; both lines share it in one call.
    (prompt,) = generate_calls(calls, "create_voice_clone_prompt")
    assert Path(prompt["kwargs"]["ref_audio"]).resolve() == reference.resolve()
    assert prompt["kwargs"]["ref_text"] == "The transcript of the reference."
    assert prompt["kwargs"]["x_vector_only_mode"] is False
    (clone,) = generate_calls(calls, "generate_voice_clone")
    assert clone["args"] == [["Chapter one.", "Nobody had lived there for years."]]
    assert len(clone["kwargs"]["voice_clone_prompt"]) == 2
    assert clone["kwargs"]["non_streaming_mode"] is True  # streaming clones run away
    assert clone["kwargs"]["language"] == ["Auto", "Auto"]


@pytest.fixture(scope="module")
def qwen_nan_once(standins, module_monkeypatch, tmp_path_factory):
    return run_with_standins(standins, module_monkeypatch, tmp_path_factory.mktemp("qwen-nan"),
                             "qwen", {"utterances": ["First line.", "Second line."],
                                      "batch_size": 1, "dtype": "float16"}, fault="nan-once")


@pytest.mark.slow
def test_qwen_remakes_a_nan_clip_in_float32_and_stays_there(qwen_nan_once):
    result, calls = qwen_nan_once
    assert isinstance(result, kaggletts.Result), result
    check_clips(result, expected_rate=24000)
    assert result.scraps["run"]["precisions_used"] == ["float16", "float32"]
    made = [(c["args"][0], c["dtype"]) for c in generate_calls(calls, "generate_custom_voice")]
    assert made == [(["First line."], "torch.float16"), (["First line."], "torch.float32"),
                    (["Second line."], "torch.float32")]
    assert [c.extra["precision"] for c in result.clips] == ["float32", "float32"]
    loads = [c["kwargs"]["dtype"] for c in generate_calls(calls, "from_pretrained")]
    assert loads == ["torch.float16", "torch.float32"]


@pytest.fixture(scope="module")
def qwen_silence(standins, module_monkeypatch, tmp_path_factory):
    return run_with_standins(standins, module_monkeypatch, tmp_path_factory.mktemp("qwen-mute"),
                             "qwen", {"text": "Is anybody there?", "dtype": "float16"},
                             fault="silence")


@pytest.mark.slow
def test_qwen_silent_audio_fails_the_line_with_its_reason(qwen_silence):
    failure, calls = qwen_silence
    assert isinstance(failure, kaggletts.RunFailed), failure
    assert "none of its 1 line was spoken: NaN or silent audio; then NaN or silent audio" in (
        str(failure))
    # float32 after float16, then the line once more (in float32, where it stays), no clip.
    assert [c["dtype"] for c in generate_calls(calls, "generate_custom_voice")] == [
        "torch.float16", "torch.float32", "torch.float32"]


@pytest.mark.parametrize(("notebook", "gpus", "seen"), [
    ("qwen", "6.0 6.0", "this machine has 6.0, 6.0"), ("chatterbox", "none", "no GPU at all")])
def test_a_gpu_notebook_on_kaggle_without_a_t4_stops_before_installing(
    standins, monkeypatch, tmp_path, notebook, gpus, seen
):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("KAGGLETTS_STANDIN_GPUS", gpus)
    failure, calls = run_with_standins(standins, monkeypatch, tmp_path, notebook,
                                       {"text": "Hello."})
    assert isinstance(failure, kaggletts.RunFailed), failure
    assert "MachineUnfit: this notebook needs a GPU of compute capability 7.0 or more" in str(
        failure)
    assert seen in str(failure)
    assert calls == [], "no model was loaded"


def test_a_gpu_notebook_on_kaggle_runs_on_the_cpu_when_told_to(standins, monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("KAGGLETTS_STANDIN_GPUS", "none")
    monkeypatch.setenv("KAGGLETTS_DEVICE", "cpu")
    result, _ = run_with_standins(standins, monkeypatch, tmp_path, "qwen", {"text": "Hello."})
    assert isinstance(result, kaggletts.Result), result


def test_qwen_auto_loads_a_1_7b_model_in_float32(standins, monkeypatch, tmp_path):
    """float16 overflows the 1.7B logits on a T4 too (QwenLM/Qwen3-TTS PR 355), in a
    device-side assert nothing catches: float16 only when asked for."""
    result, calls = run_with_standins(standins, monkeypatch, tmp_path, "qwen",
                                      {"model_id": CUSTOM_VOICE, "text": "Hello."})
    assert isinstance(result, kaggletts.Result), result
    assert [c["kwargs"]["dtype"] for c in generate_calls(calls, "from_pretrained")] == [
        "torch.float32"]
    assert result.scraps["run"]["precisions_used"] == ["float32"]


def test_qwen_float16_with_a_0_6b_model_is_refused_before_any_run(out_dir):
    """0.6B overflows float16 on a T4 and kills the CUDA context: refuse it up front."""
    with pytest.raises(kaggletts.UsageError) as refused:
        kaggletts.execute("qwen", {"dtype": "float16", "text": "Hello.",
                                   "model_id": "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"},
                          output_dir=out_dir)
    assert "does not fit dtype 'float16'" in str(refused.value)


def test_qwen_mode_that_does_not_fit_the_model_is_refused_before_any_run(out_dir):
    """The notebook's rules catch it at validation, so no GPU session is spent on it."""
    with pytest.raises(kaggletts.UsageError) as refused:
        kaggletts.execute("qwen", {"mode": "custom_voice", "text": "Hello.",
                                   "model_id": "Qwen/Qwen3-TTS-12Hz-0.6B-Base"},
                          output_dir=out_dir)
    assert "model_id 'Qwen/Qwen3-TTS-12Hz-0.6B-Base' does not fit mode 'custom_voice'" in str(
        refused.value)
    assert "'CustomVoice'" in str(refused.value)
    assert not out_dir.exists() or not any(out_dir.rglob("*.ipynb"))


def test_standins_follow_the_real_signatures(standins, monkeypatch):
    """The stand-ins keep the signatures /work/shared/models.md reads from the real wheels."""
    import importlib
    import inspect
    import sys

    monkeypatch.syspath_prepend(str(standins.dir))
    for name in [m for m in sys.modules if m.split(".")[0] in ("qwen_tts", "chatterbox")]:
        monkeypatch.delitem(sys.modules, name)

    def parameters(function) -> list[str]:
        shown = []
        for p in inspect.signature(function).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                shown.append(f"**{p.name}")
            else:
                shown.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
        return shown

    # qwen_tts: tests/models/qwen compares every signature with the real package's.
    qwen = importlib.import_module("qwen_tts").Qwen3TTSModel
    english = importlib.import_module("chatterbox.tts").ChatterboxTTS
    assert parameters(english.generate) == [
        "self", "text", "repetition_penalty=1.2", "min_p=0.05", "top_p=1.0",
        "audio_prompt_path=None", "exaggeration=0.5", "cfg_weight=0.5", "temperature=0.8"]
    multilingual = importlib.import_module("chatterbox.mtl_tts").ChatterboxMultilingualTTS
    assert parameters(multilingual.generate)[:3] == ["self", "text", "language_id"]
    turbo = importlib.import_module("chatterbox.tts_turbo").ChatterboxTurboTTS
    for model in (english, multilingual, turbo):
        assert parameters(model.from_pretrained) == ["device"]
        assert model.sr == 24000
    with pytest.raises(ValueError, match="Unsupported language_id"):
        multilingual.from_pretrained(device="cpu").generate("Hello.", "xx")
    wav = turbo.from_pretrained(device="cpu").generate("Hello there.")
    assert tuple(wav.shape) == (1, int((0.2 + 0.05 * 12) * 24000))
    assert str(wav.dtype) == "torch.float32"
    with pytest.raises(ValueError, match="does not support generate_voice_clone"):
        qwen.from_pretrained("Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign").generate_voice_clone(
            "Hi.", ref_audio="x.wav", ref_text="x")


# --- Chatterbox with the stand-in -----------------------------------------------------------

@pytest.fixture(scope="module")
def chatterbox_inputs(standins, tmp_path_factory) -> tuple[Path, Path, Path]:
    inputs = tmp_path_factory.mktemp("chatterbox-inputs")
    short = standins.wav(inputs / "voices-ds" / "voices" / "narrator.wav", seconds=2.0)
    long = standins.wav(inputs / "voices-ds" / "voices" / "long.wav", seconds=6.0)
    return inputs, short, long


@pytest.fixture(scope="module")
def chatterbox_english(standins, module_monkeypatch, tmp_path_factory, chatterbox_inputs):
    inputs, _, _ = chatterbox_inputs
    return run_with_standins(
        standins, module_monkeypatch, tmp_path_factory.mktemp("cb-en"), "chatterbox", {
            "variant": "english", "cfg_weight": 0.4,
            "utterances": [
                "Welcome back!",
                {"text": "Keep it calm.", "exaggeration": 0.3},
                {"text": "In the narrator's voice.", "audio_prompt": "voices/narrator.wav"},
            ]}, fault="nan-once", input_root=inputs)


def test_chatterbox_english_runs_and_passes_its_settings(chatterbox_english, chatterbox_inputs):
    result, calls = chatterbox_english
    assert isinstance(result, kaggletts.Result), result
    check_clips(result, expected_rate=24000)
    assert result.scraps["run"]["variant"] == "english"
    loads = generate_calls(calls, "from_pretrained")
    assert [(c["module"], c["kwargs"]) for c in loads] == [("chatterbox.tts", {"device": "cpu"})]
    made = generate_calls(calls)[1:]  # the first one came out NaN (see the next test)
    assert [c["args"] for c in made] == [["Welcome back!"], ["Keep it calm."],
                                         ["In the narrator's voice."]]
    assert [c["kwargs"]["exaggeration"] for c in made] == [0.5, 0.3, 0.5]
    assert {c["kwargs"]["cfg_weight"] for c in made} == {0.4}
    assert {c["kwargs"]["min_p"] for c in made} == {0.05}
    assert all("language_id" not in c["kwargs"] for c in made)
    # The prompt's voice is prepared once and set per line, never passed to generate(),
    # which would keep it for every later line.
    assert all("audio_prompt_path" not in c["kwargs"] for c in made)
    _, narrator, _ = chatterbox_inputs
    [prepared] = generate_calls(calls, "prepare_conditionals")
    assert Path(prepared["args"][0]).resolve() == narrator.resolve()
    assert {c["kwargs"]["repetition_penalty"] for c in made} == {1.2}  # english's own


def test_chatterbox_remakes_a_nan_clip_with_the_next_seed(chatterbox_english):
    result, calls = chatterbox_english
    made = generate_calls(calls)
    assert [c["args"][0] for c in made[:2]] == ["Welcome back!", "Welcome back!"]
    assert len(result.clips) == 3


@pytest.fixture(scope="module")
def chatterbox_multilingual(standins, module_monkeypatch, tmp_path_factory):
    return run_with_standins(
        standins, module_monkeypatch, tmp_path_factory.mktemp("cb-mtl"), "chatterbox", {
            "variant": "multilingual", "language_id": "fr",
            "utterances": ["Bonjour et bienvenue.",
                           {"text": "こんにちは、ようこそ。", "language_id": "ja"}]})


@pytest.mark.slow
def test_chatterbox_multilingual_passes_language_id(chatterbox_multilingual):
    result, calls = chatterbox_multilingual
    assert isinstance(result, kaggletts.Result), result
    check_clips(result, expected_rate=24000)
    assert [c["module"] for c in generate_calls(calls, "from_pretrained")] == [
        "chatterbox.mtl_tts"]
    made = generate_calls(calls)
    assert [c["kwargs"]["language_id"] for c in made] == ["fr", "ja"]
    assert {c["kwargs"]["repetition_penalty"] for c in made} == {2.0}  # multilingual's own
    # A text in another script keeps its letters in the name.
    assert [p.name for p in result.audio] == ["001-bonjour-et-bienvenue.wav",
                                              "002-こんにちは-ようこそ.wav"]


@pytest.fixture(scope="module")
def chatterbox_turbo(standins, module_monkeypatch, tmp_path_factory, chatterbox_inputs):
    inputs, _, _ = chatterbox_inputs
    return run_with_standins(
        standins, module_monkeypatch, tmp_path_factory.mktemp("cb-turbo"), "chatterbox", {
            "variant": "turbo", "cfg_weight": 0.3, "exaggeration": 0.9,
            "audio_prompt": "voices/long.wav",
            "utterances": ["Hi there [chuckle], have you got one minute?"]},
        input_root=inputs)


@pytest.mark.slow
def test_chatterbox_turbo_sends_only_what_turbo_understands(chatterbox_turbo,
                                                            chatterbox_inputs):
    result, calls = chatterbox_turbo
    assert isinstance(result, kaggletts.Result), result
    check_clips(result, expected_rate=24000)
    assert [c["module"] for c in generate_calls(calls, "from_pretrained")] == [
        "chatterbox.tts_turbo"]
    [made] = generate_calls(calls)
    for ignored in ("cfg_weight", "exaggeration", "min_p", "language_id", "audio_prompt_path"):
        assert ignored not in made["kwargs"]
    assert made["kwargs"]["top_p"] == 0.95  # turbo's own default
    _, _, long = chatterbox_inputs
    [prepared] = generate_calls(calls, "prepare_conditionals")
    assert Path(prepared["args"][0]).resolve() == long.resolve()


@pytest.fixture(scope="module")
def chatterbox_silence(standins, module_monkeypatch, tmp_path_factory):
    return run_with_standins(standins, module_monkeypatch, tmp_path_factory.mktemp("cb-mute"),
                             "chatterbox", {"text": "Hello?"}, fault="silence")


@pytest.mark.slow
def test_chatterbox_silent_audio_fails_the_line_with_its_reason(chatterbox_silence):
    failure, calls = chatterbox_silence
    assert isinstance(failure, kaggletts.RunFailed), failure
    assert "none of its 1 line was spoken: NaN or silent audio" in str(failure)
    # The next seed on NaN inside speak, then the line once more two seeds on: four calls.
    assert len(generate_calls(calls)) == 4


# --- Hygiene ---------------------------------------------------------------------------------

def load(name: str):
    return nbformat.read(data_dir("notebooks") / f"{name}.ipynb", as_version=4)


def test_the_three_notebooks_are_shipped():
    assert kaggletts.notebook_names() == list(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_clean_and_valid(name):
    nb = load(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.kernelspec.language == "python"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: outputs committed in {cell.get('id')}"
            assert cell.execution_count is None, f"{name}: execution count in {cell.get('id')}"
    ids = [cell.get("id") for cell in nb.cells]
    assert len(set(ids)) == len(ids)
    assert "synthesize" in ids  # the failure message names this cell


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_is_fully_declared(name):
    nb = load(name)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assignments = [line.split(":")[0].split("=")[0].strip()
                   for line in tagged[0].source.splitlines()
                   if re.match(r"^[A-Za-z_]\w*\s*[:=]", line)]
    inspected = papermill.inspect_notebook(str(data_dir("notebooks") / f"{name}.ipynb"))
    assert list(inspected) == assignments  # papermill sees every assignment line
    for parameter in inspected.values():
        assert parameter["inferred_type_name"] in {"str", "int", "float", "bool", "list"}, \
            parameter
        assert parameter["help"].strip(), parameter
    assert {"text", "utterances", "output_dir"} <= set(inspected)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_metadata_names_real_parameters_and_valid_defaults(name):
    spec = kaggletts.find_notebook(name)
    assert set(spec.per_utterance) <= set(spec.parameters)
    for parameter, allowed in spec.choices.items():
        assert parameter in spec.parameters
        assert spec.parameters[parameter].default in allowed


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_support_cell_is_exactly_the_support_module(name):
    """The module is the only place the support code changes: a cell edited by hand, or a
    module changed without `nox -s sync`, fails here."""
    from kaggletts.kernel.sync import support_cell_source

    cells = [c.source for c in load(name).cells if "support" in c.metadata.get("tags", [])]
    assert cells == [support_cell_source()]


@pytest.mark.slow
def test_names_sort_in_order_keep_accents_and_are_cut_between_words(tmp_path):
    texts = ["Ceci est une phrase en français.", "Dies ist ein ganz und gar überlanger "
             "deutscher Satz mit vielen Wörtern."] + [f"Line {n}." for n in range(3, 1001)]
    result = kaggletts.execute("espeak", {"utterances": texts}, output_dir=tmp_path)
    names = [p.name for p in result.audio]
    assert names[:2] == ["0001-ceci-est-une-phrase-en-français.wav",
                         "0002-dies-ist-ein-ganz-und-gar-überlanger.wav"]
    assert names[-1] == "1000-line-1000.wav" and names == sorted(names)


# The backend sets `deadline`; the README's tables list what a user chooses.
_SET_BY_THE_BACKEND = ("deadline", "line_numbers", "line_count")


@pytest.mark.parametrize("name", kaggletts.notebook_names())
def test_the_readme_lists_each_notebooks_parameters_as_its_parameters_cell_has_them(name):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n### {name}\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    spec = kaggletts.find_notebook(name)
    expected = [f"| `{p.name}` | {p.type_name} | `{p.default!r}`".replace("'", '"')
                + f" | {p.help} |"
                for p in spec.parameters.values() if p.name not in _SET_BY_THE_BACKEND]
    assert rows == expected
