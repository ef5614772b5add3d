"""Parameter validation: the bad-input corpus in tests/bad_params, `-p` values, unknown
notebooks and backends, all refused before anything runs with exit code 2, one line on
stderr naming the file and line, and no traceback; and how sources merge.

Each corpus file starts with comment lines:
    # expect: <substring of the error message>     (required)
    # also: <another substring>                      (optional, repeatable)
    # notebook: <name>                               (optional, default qwen)
    # line: <N>                                      (optional: the message names FILE:N)
    # xfail: <reason>                                (optional: a known library bug)
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest

import kaggletts
from kaggletts import api, parameters
from kaggletts.notebook import data_dir

BAD_PARAMS = Path(__file__).resolve().parent / "bad_params"
CORPUS = sorted(BAD_PARAMS.glob("*.yaml"))


@pytest.fixture(autouse=True)
def nothing_runs(monkeypatch):
    """A request these tests expect refused must never reach a backend: a GPU notebook run
    here would pip-install its model package into the test environment."""
    from kaggletts.backends.local import LocalBackend

    def refuse(self, job, *, force=False, attach=False):
        pytest.fail(f"the request reached the {self.name} backend: {job.params}")

    monkeypatch.setattr(LocalBackend, "run", refuse)


def header(path: Path) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        fields.setdefault(key, []).append(value)
    return fields


def corpus_case(path: Path):
    fields = header(path)
    marks = [pytest.mark.xfail(strict=True, reason=fields["xfail"][0])] if "xfail" in fields \
        else []
    return pytest.param(path, fields, id=path.stem, marks=marks)


def assert_refused(result, out: Path, *expected: str) -> None:
    """Exit 2, the message on stderr, nothing on stdout, no traceback, nothing run."""
    assert result.code == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.stderr, (text, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def test_the_corpus_is_there():
    assert len(CORPUS) >= 20
    for path in CORPUS:
        assert "expect" in header(path), f"{path.name} has no `# expect:` line"


@pytest.mark.parametrize(("path", "fields"), [corpus_case(p) for p in CORPUS])
def test_bad_parameter_file_is_refused(path, fields, run_cli, tmp_path):
    out = tmp_path / "out"
    notebook = fields.get("notebook", ["qwen"])[0]
    result = run_cli("run", notebook, "-f", str(path), "--out", str(out))
    expected = [*fields["expect"], *fields.get("also", [])]
    assert_refused(result, out, f"{path.name}:", *expected)
    if "line" in fields:
        assert f"{path.name}:{fields['line'][0]}:" in result.stderr


@pytest.mark.parametrize("name", ["unknown_name", "syntax_error", "top_level_list"])
def test_bad_parameter_file_exit_code_as_a_real_process(name, kaggletts_cmd, tmp_path):
    path = BAD_PARAMS / f"{name}.yaml"
    out = tmp_path / "out"
    result = kaggletts_cmd("run", "qwen", "-f", str(path), "--out", str(out))
    assert_refused(result, out, *header(path)["expect"])
    assert result.stderr.startswith("error: ")


def test_too_long_string_is_refused(run_cli, tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("utterances:\n  - Fine.\n  - " + "a" * 20_001 + "\n", encoding="utf-8")
    result = run_cli("run", "espeak", "-f", str(path), "--out", str(tmp_path / "out"))
    assert_refused(result, tmp_path / "out", "long.yaml:3:",
                   "a string of 20001 characters is over the limit of 20000")


def test_too_many_utterances_are_refused(run_cli, tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("voice: en-us\nutterances:\n" + "  - Hello.\n" * 5001, encoding="utf-8")
    result = run_cli("run", "espeak", "-f", str(path), "--out", str(tmp_path / "out"))
    assert_refused(result, tmp_path / "out", "many.yaml:2:",
                   "5001 utterances is over the limit of 5000")


def test_the_utterance_limit_itself_is_allowed(tmp_path):
    path = tmp_path / "limit.yaml"
    path.write_text("utterances:\n" + "  - Hello.\n" * 5000, encoding="utf-8")
    job = api.prepare("espeak", path, "local", tmp_path / "out")
    assert len(job.params["utterances"]) == 5000


def test_too_big_file_is_refused(run_cli, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("text: Hello.\n# " + "x" * (5 * 1024 * 1024) + "\n", encoding="utf-8")
    result = run_cli("run", "espeak", "-f", str(path), "--out", str(tmp_path / "out"))
    assert_refused(result, tmp_path / "out", "big.yaml", "is over the 5242880-byte limit")


def test_missing_file_is_refused(run_cli, tmp_path):
    result = run_cli("run", "espeak", "-f", str(tmp_path / "absent.yaml"),
                     "--out", str(tmp_path / "out"))
    assert_refused(result, tmp_path / "out", "absent.yaml", "cannot read parameter file")


ALIAS_BOMB = """utterances:
  - &a [x, x, x, x, x, x, x, x, x, x]
  - &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
  - &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
  - &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
  - &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
  - &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


def test_yaml_alias_bomb_is_refused_while_loading(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    with pytest.raises(kaggletts.UsageError, match="bomb.yaml"):
        parameters.from_yaml_file(path)


BAD_PAIRS = [
    ("espeak", ["rate", "fast"], ["-p rate:", "rate must be an int, not str 'fast'"]),
    ("espeak", ["rate", "true"], ["-p rate:", "rate must be an int, not bool"]),
    ("qwen", ["spekaer", "Ryan"], ["-p spekaer:", "did you mean 'speaker'"]),
    ("qwen", ["language", "Englsh"], ["-p language:", "did you mean 'English'"]),
    ("qwen", ["temperature", ".nan"], ["-p temperature:", "not a finite number"]),
    ("qwen", ["temperature", "hot"], ["-p temperature:", "temperature must be a float"]),
    ("espeak", ["text", ""], ["-p text:", "`text` is empty"]),
    ("espeak", ["2fast", "1"], ["-p 2fast:", "'2fast' is not a valid parameter name"]),
    ("espeak", ["utterances", "[[nested]]"], ["utterance 1 must be a string or a mapping"]),
    ("espeak", ["utterances", "[{text: hi, speed: 3}]"], ["'speed' cannot be set per utterance"]),
    ("chatterbox", ["variant", "turbo2"], ["variant 'turbo2' is not one of english, "
                                           "multilingual, turbo; did you mean 'turbo'?"]),
]


@pytest.mark.parametrize(("notebook", "pair", "expected"), BAD_PAIRS,
                         ids=[f"{nb}-{p[0]}-{p[1]}" for nb, p, _ in BAD_PAIRS])
def test_bad_p_value_is_refused(notebook, pair, expected, run_cli, tmp_path):
    args = ["-p", "text", "Hello."] if pair[0] != "text" else []
    result = run_cli("run", notebook, *args, "-p", *pair, "--out", str(tmp_path / "out"))
    assert_refused(result, tmp_path / "out", *expected)


def test_unknown_notebook_lists_the_known_ones(kaggletts_cmd, tmp_path):
    result = kaggletts_cmd("run", "festival", "-p", "text", "Hi", "--out", str(tmp_path / "out"))
    assert_refused(result, tmp_path / "out", "unknown notebook 'festival'",
                   "known notebooks: chatterbox, espeak, qwen")


def test_unknown_backend_is_refused_by_the_cli(kaggletts_cmd, tmp_path):
    result = kaggletts_cmd("run", "espeak", "-p", "text", "Hi", "--backend", "cloud",
                           "--out", str(tmp_path / "out"))
    assert result.code == 2
    assert "'cloud'" in result.stderr and "'local'" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_kaggle_options_are_refused_for_a_local_run(run_cli, tmp_path):
    result = run_cli("run", "espeak", "-p", "text", "Hi", "--shards", "2",
                     "--out", str(tmp_path / "out"))
    assert result.code == 2 and "--shards only applies to --backend kaggle" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_backend_is_refused_by_the_api(tmp_path):
    with pytest.raises(kaggletts.UsageError, match="unknown backend 'cloud'; choose one of: "
                                                   "local, kaggle"):
        kaggletts.execute("espeak", {"text": "Hi"}, backend="cloud", output_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_api_errors_are_usage_errors_with_exit_code_2(tmp_path):
    with pytest.raises(kaggletts.UsageError) as caught:
        kaggletts.execute("espeak", {"text": "Hi", "rate": "fast"}, output_dir=tmp_path)
    assert caught.value.exit_code == 2
    assert "rate must be an int" in str(caught.value)


# --- Loading and merging ---------------------------------------------------------------------

def prepare(notebook: str, *sources, tmp_path: Path):
    return api.prepare(notebook, list(sources), "local", tmp_path / "out").params


def test_files_and_p_pairs_merge_in_order_later_wins(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text("voice: en-gb\nrate: 150\npitch: 30\nutterances: [One., Two.]\n",
                     encoding="utf-8")
    second = tmp_path / "second.yaml"
    second.write_text("rate: 200\nutterances: [Three.]\n", encoding="utf-8")
    pairs = parameters.from_cli_pairs([("pitch", "70"), ("voice", "de")])
    values = prepare("espeak", first, second, pairs, tmp_path=tmp_path)
    assert values == {"voice": "de", "rate": 200, "pitch": 70, "utterances": ["Three."]}


def test_an_overridden_bad_value_is_not_reported(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text("text: Hi.\nrate: fast\n", encoding="utf-8")
    pairs = parameters.from_cli_pairs([("rate", "120")])
    assert prepare("espeak", first, pairs, tmp_path=tmp_path)["rate"] == 120


def test_errors_name_the_file_the_bad_value_came_from(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text("text: Hi.\nvoice: en-gb\nrate: fast\n", encoding="utf-8")
    second = tmp_path / "second.yaml"
    second.write_text("voice: de\n", encoding="utf-8")
    with pytest.raises(kaggletts.UsageError, match=r"first\.yaml:3: rate must be an int"):
        prepare("espeak", first, second, tmp_path=tmp_path)


@pytest.mark.parametrize(("notebook", "name", "raw", "value"), [
    ("espeak", "text", "123", "123"),
    ("espeak", "text", "true", "true"),
    ("espeak", "text", "[a, b]", "[a, b]"),
    ("espeak", "text", "3.10", "3.10"),
    ("qwen", "ref_text", "null", "null"),
    ("espeak", "rate", "200", 200),
    ("qwen", "temperature", "0.7", 0.7),
    ("qwen", "temperature", "1", 1),
    ("qwen", "x_vector_only", "true", True),
    ("espeak", "utterances", "[One., Two.]", ["One.", "Two."]),
])
def test_p_values_are_read_as_yaml_but_strings_stay_strings(notebook, name, raw, value,
                                                             tmp_path):
    sources = [parameters.from_cli_pairs([("text", "Hello."), (name, raw)])]
    got = prepare(notebook, *sources, tmp_path=tmp_path)[name]
    assert got == value and type(got) is type(value)


def test_p_values_through_the_cli_reach_the_job(run_cli, tmp_path, monkeypatch):
    """The real command line and `execute`, up to the backend, which notes the job's
    parameters and stops."""
    from kaggletts.backends.local import LocalBackend

    seen = {}

    def note_and_stop(self, job, *, force=False, attach=False):
        seen["params"] = job.params
        raise kaggletts.UsageError("stop here")

    monkeypatch.setattr(LocalBackend, "run", note_and_stop)
    result = run_cli("run", "espeak", "-p", "text", "123", "-p", "rate", "200",
                     "--out", str(tmp_path / "out"))
    assert result.code == 2 and "stop here" in result.stderr
    assert seen["params"] == {"text": "123", "rate": 200}


def test_a_mapping_a_path_and_a_parameter_set_are_all_accepted(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("rate: 150\n", encoding="utf-8")
    values = prepare("espeak", {"text": "Hi.", "rate": 100}, str(path),
                     kaggletts.load_params({"pitch": 20}), tmp_path=tmp_path)
    assert values == {"text": "Hi.", "rate": 150, "pitch": 20}


@pytest.mark.parametrize("path", sorted(data_dir("params").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_example_parameter_files_are_valid(path, tmp_path):
    notebook = path.name.split("-")[0]
    values = prepare(notebook, path, tmp_path=tmp_path)
    assert values.get("text") or values.get("utterances")


# --- Allowed values: what the models compare case-insensitively, and eSpeak NG's voices -----

@pytest.mark.parametrize(("notebook", "given"), [
    ("qwen", {"speaker": "uncle_fu", "language": "ENGLISH"}),
    ("qwen", {"language": "auto"}),
    ("chatterbox", {"variant": "multilingual", "language_id": "FR"}),
    ("espeak", {"voice": "EN-GB"}),
    ("espeak", {"voice": "Klingon"}),  # a real eSpeak NG voice (lang/art/piqd)
    ("espeak", {"voice": "English (America)"}),  # a voice file's `name` line
    ("espeak", {"voice": "en-us+Mike"}),
    ("espeak", {"voice": "de+3"}),  # +N is the variant mN
])
def test_values_the_models_accept_are_accepted_as_given(notebook, given, tmp_path):
    values = prepare(notebook, {"text": "Hi.", **given}, tmp_path=tmp_path)
    assert {name: values[name] for name in given} == given


def test_speaker_is_not_checked_when_the_mode_ignores_it(tmp_path):
    clone = {"mode": "voice_clone", "model_id": "Qwen/Qwen3-TTS-12Hz-1.7B-Base",
             "ref_audio": str(SHIPPED_REFERENCE), "ref_text": "Hi.", "text": "Hi."}
    assert prepare("qwen", {**clone, "speaker": "Bob"}, tmp_path=tmp_path)["speaker"] == "Bob"
    with pytest.raises(kaggletts.UsageError, match="speaker 'Bob' is not one of"):
        prepare("qwen", {"text": "Hi.", "speaker": "Bob"}, tmp_path=tmp_path)


def test_an_unknown_choices_source_in_a_notebook_is_refused(tmp_path):
    notebook = json.loads((data_dir("notebooks") / "espeak.ipynb").read_text(encoding="utf-8"))
    notebook["metadata"]["kaggletts"]["choices_from"] = {"voice": "festival-voices"}
    path = tmp_path / "custom.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    with pytest.raises(kaggletts.UsageError, match="unknown source 'festival-voices'"):
        prepare(str(path), {"text": "Hi."}, tmp_path=tmp_path)


# The notebook's select_voice, run against the real engine in a fresh process: a name by
# espeak_SetVoiceByName, else a language tag by espeak_SetVoiceByProperties.
ENGINE_PROBE = """
import ctypes, hashlib, json, sys
import espeakng_loader

engine = ctypes.CDLL(espeakng_loader.get_library_path())
engine.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)

class VoiceQuery(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]

def selects(name):
    if engine.espeak_SetVoiceByName(name.encode()) == 0:
        return True
    query = VoiceQuery(languages=name.encode())
    return engine.espeak_SetVoiceByProperties(ctypes.byref(query)) == 0

if sys.argv[1] == "select":
    names = json.loads(sys.stdin.read())
    print(json.dumps([name for name in names if not selects(name)]))
else:
    engine.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
        ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    chunks = []
    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                      ctypes.c_void_p)
    def collect(samples, count, events):
        if samples and count > 0:
            chunks.append(ctypes.string_at(samples, count * 2))
        return 0
    engine.espeak_SetSynthCallback(collect)
    assert selects(sys.argv[2])
    text = b"Hello there."
    engine.espeak_Synth(text, len(text) + 1, 0, 0, 0, 1, None, None)
    engine.espeak_Synchronize()
    print(hashlib.sha256(b"".join(chunks)).hexdigest())
"""


def engine(*args: str, stdin: str = "") -> str:
    done = subprocess.run([sys.executable, "-c", ENGINE_PROBE, *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_every_espeak_voice_the_check_accepts_is_one_the_engine_selects():
    voices = parameters.espeak_ng_voices()
    assert len(voices.names) > 300 and {"en-us", "en-gb", "de", "fr", "es"} <= set(voices.names)
    refused_by_engine = json.loads(engine("select", stdin=json.dumps(list(voices.names))))
    assert refused_by_engine == []


@pytest.mark.parametrize("name", ["klingonese", "en_us", "eng", "xx", "zz-yy"])
def test_a_name_the_check_refuses_is_one_the_engine_refuses(name):
    assert parameters.espeak_ng_voices().refusal(name) is not None
    assert json.loads(engine("select", stdin=json.dumps([name]))) == [name]


def test_espeak_variants_are_case_sensitive_in_the_engine_so_in_the_check():
    """The engine opens `+variant` as a file and silently ignores one it cannot find:
    `+mike` speaks like no variant at all, which is why the check refuses it."""
    plain, mike, wrong_case = (engine("speak", v) for v in ("en-us", "en-us+Mike", "en-us+mike"))
    assert mike != plain and wrong_case == plain
    assert parameters.espeak_ng_voices().refusal("en-us+mike") is not None


# --- Reference files ------------------------------------------------------------------------

SHIPPED_CLONE = data_dir("params") / "qwen-clone.yaml"
SHIPPED_REFERENCE = data_dir("params") / "qwen-clone-reference.wav"


def clone_params(**overrides) -> dict:
    return {"mode": "voice_clone", "model_id": "Qwen/Qwen3-TTS-12Hz-1.7B-Base",
            "ref_text": "The transcript.", "text": "Hello.", **overrides}


def wav_file(path: Path, seconds: float, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x10\x00" * round(seconds * rate))
    return path


def test_the_shipped_clone_example_points_at_its_reference_from_any_folder(tmp_path,
                                                                           monkeypatch):
    """From the clone, from an installed copy of the params folder, and from elsewhere."""
    installed = tmp_path / "site-packages" / "kaggletts" / "_data" / "params"
    installed.mkdir(parents=True)
    for path in (SHIPPED_CLONE, SHIPPED_REFERENCE):
        shutil.copy(path, installed / path.name)
    monkeypatch.chdir(tmp_path)
    for folder in (SHIPPED_CLONE.parent, installed):
        values = prepare("qwen", folder / "qwen-clone.yaml", tmp_path=tmp_path)
        assert values["ref_audio"] == str((folder / "qwen-clone-reference.wav").resolve())
        assert values["ref_text"].strip()


def test_the_shipped_reference_is_a_short_16_bit_mono_wav():
    with wave.open(str(SHIPPED_REFERENCE), "rb") as clip:
        seconds = clip.getnframes() / clip.getframerate()
        assert (clip.getnchannels(), clip.getsampwidth()) == (1, 2)
    assert 2 < seconds < 10
    assert SHIPPED_REFERENCE.stat().st_size < 300_000


def test_a_relative_path_from_p_or_a_dict_is_read_from_the_current_folder(tmp_path,
                                                                          monkeypatch):
    reference = wav_file(tmp_path / "voices" / "me.wav", 1.0)
    monkeypatch.chdir(tmp_path)
    pairs = parameters.from_cli_pairs([("ref_audio", "voices/me.wav")])
    values = prepare("qwen", clone_params(), pairs, tmp_path=tmp_path)
    assert values["ref_audio"] == str(reference.resolve())


def test_a_later_source_takes_its_own_folder_with_the_value(tmp_path, monkeypatch):
    first = tmp_path / "a" / "first.yaml"
    first.parent.mkdir()
    first.write_text("ref_audio: me.wav\n", encoding="utf-8")
    reference = wav_file(tmp_path / "me.wav", 1.0)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(kaggletts.UsageError, match=r"first\.yaml:1: ref_audio 'me.wav'"):
        prepare("qwen", clone_params(), first, tmp_path=tmp_path)
    values = prepare("qwen", first, clone_params(ref_audio="me.wav"), tmp_path=tmp_path)
    assert values["ref_audio"] == str(reference.resolve())


def test_reference_paths_the_notebook_finds_on_kaggle_are_kept_as_given(tmp_path,
                                                                        monkeypatch):
    """A /kaggle/input path (a dataset the user attaches) is taken on trust; a relative
    path under the inputs root is left for the notebook's find_input to resolve."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGGLETTS_INPUT_ROOT", str(tmp_path / "inputs"))
    wav_file(tmp_path / "inputs" / "my-voices" / "voice.wav", 1.0)
    for given in ("/kaggle/input/my-voices/narrator.wav", "voice.wav", "my-voices/voice.wav"):
        values = prepare("qwen", clone_params(ref_audio=given), tmp_path=tmp_path)
        assert values["ref_audio"] == given
    with pytest.raises(kaggletts.UsageError, match="'other-voices/voice.wav' is not a file"):
        prepare("qwen", clone_params(ref_audio="other-voices/voice.wav"), tmp_path=tmp_path)


def test_resolving_paths_leaves_the_callers_parameters_alone(tmp_path):
    reference = wav_file(tmp_path / "me.wav", 1.0)
    given = {"utterances": [{"text": "Hi.", "audio_prompt": str(reference)}]}
    prepare("chatterbox", given, tmp_path=tmp_path)
    assert given == {"utterances": [{"text": "Hi.", "audio_prompt": str(reference)}]}


def test_a_resolved_reference_is_what_the_kaggle_backend_uploads(tmp_path, monkeypatch):
    from kaggletts.backends.kaggle.voices import local_inputs

    monkeypatch.chdir(tmp_path)  # the YAML's folder, not this one, gives the file
    job = api.prepare("qwen", SHIPPED_CLONE, "kaggle", tmp_path / "out")
    assert list(local_inputs(job.spec, job.params).values()) == [SHIPPED_REFERENCE.resolve()]


@pytest.mark.parametrize(("seconds", "refused"), [(5.0, True), (5.01, False)])
def test_a_turbo_prompt_must_be_over_five_seconds(seconds, refused, tmp_path):
    """tts_turbo.py asserts len(wav) / sr > 5.0, after install and model download."""
    prompt = wav_file(tmp_path / "prompt.wav", seconds)
    given = {"variant": "turbo", "utterances": [{"text": "Hi.", "audio_prompt": str(prompt)}]}
    if refused:
        with pytest.raises(kaggletts.UsageError,
                           match=r"utterance 1: audio_prompt .* is 5\.00 s long"):
            prepare("chatterbox", given, tmp_path=tmp_path)
    else:
        assert prepare("chatterbox", given, tmp_path=tmp_path)["variant"] == "turbo"


def test_only_turbo_needs_a_long_prompt(tmp_path):
    prompt = wav_file(tmp_path / "short.wav", 1.0)
    for variant in ("english", "multilingual"):
        given = {"variant": variant, "audio_prompt": str(prompt), "text": "Hi."}
        assert prepare("chatterbox", given, tmp_path=tmp_path)["audio_prompt"] == str(prompt)


def test_a_float_wav_turbo_prompt_is_refused_clearly(tmp_path):
    """torchaudio writes float WAVs, which the stdlib `wave` cannot read."""
    samples = b"\x00\x00\x80\x3e" * 8000 * 6  # 6 s of 0.25 as 32-bit float at 8 kHz
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 8000 * 4, 4, 32)
    prompt = tmp_path / "float.wav"
    prompt.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE"
                       + b"fmt " + struct.pack("<I", 16) + fmt
                       + b"data" + struct.pack("<I", len(samples)) + samples)
    given = {"variant": "turbo", "audio_prompt": str(prompt), "text": "Hi."}
    with pytest.raises(kaggletts.UsageError, match=r"cannot be read as WAV \(unknown format: 3\)"):
        prepare("chatterbox", given, tmp_path=tmp_path)
