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

from pathlib import Path

import pytest

import kaggletts
from kaggletts import api, parameters
from kaggletts.notebook import data_dir

BAD_PARAMS = Path(__file__).resolve().parent / "bad_params"
CORPUS = sorted(BAD_PARAMS.glob("*.yaml"))


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
    assert result.code == 2 and "--shards only apply to --backend kaggle" in result.stderr
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
    seen = {}

    def fake_execute(notebook, sources, **options):
        seen["params"] = api.prepare(notebook, sources, options["backend"],
                                     options["output_dir"]).params
        raise kaggletts.UsageError("stop here")

    monkeypatch.setattr(api, "execute", fake_execute)
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
