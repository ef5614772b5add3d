"""Adversarial texts reach the real eSpeak NG notebook exactly as given and never run as
code: papermill's injected-parameters cell carries them as literals, through the API (a
dict) and through the CLI (a YAML file)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

import kaggletts


def adversarial_texts(canary: Path) -> list[str]:
    """Each has a few words so eSpeak makes sound; the dangerous ones aim at `canary`."""
    c = str(canary)
    return [
        'Double "quotes" and single \'quotes\' here.',
        'Triple """ double quotes """ here.',
        "Triple ''' single quotes ''' here.",
        "A backslash \\ in the middle and \\n that is no newline.",
        "Ends with a backslash \\",
        "Ends with two backslashes \\\\",
        "Two lines:\nthe second line.",
        "Carriage\rreturn and\r\nCRLF here.",
        "Tabs\tbetween\twords.",
        "Music \U0001d11e and a party \U0001f389 and a flag \U0001f1eb\U0001f1f7 here.",
        "Line\u2028separator and paragraph\u2029separator here.",
        "Right to left \u202eoverride and zero\u200bwidth space.",
        "Braces {} and {text} and {{double}} and %s and %(name)s here.",
        f"Shell $(touch {c}) and `touch {c}` here.",
        f'"; open({c!r}, "w") #',
        f"'; open({c!r}, 'w') #",
        f"__import__('os').system('touch {c}')",
        f"\nimport os; os.system('touch {c}')",
        f"'''; open({c!r}, 'w'); '''",
        f'"""; open({c!r}, "w"); """',
        f'\\"; open({c!r}, "w"); "\\',
        "print('CANARY'); open('CANARY', 'w')",
        "<speak>SSML <break time='3s'/> markup</speak> is read as text.",
        "Ünïcödé àccents, ñ and ß.",
    ]


def check_round_trip(result: kaggletts.Result, texts: list[str], canary: Path) -> None:
    assert [clip.text for clip in result.clips] == texts
    assert len(result.audio) == len(texts)
    for path in result.audio:
        assert re.fullmatch(r"\d{3,}-(?:[^\W_A-Z]|-){1,40}\.wav", path.name), path.name
        assert path.parent == result.directory
    assert not canary.exists()
    assert not (result.directory / "CANARY").exists()
    assert not Path("CANARY").exists()

    parameterized = nbformat.read(result.directory / "parameterized.ipynb", as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in parameterized.cells]
    injected = [i for i, t in enumerate(tags) if "injected-parameters" in t]
    original = [i for i, t in enumerate(tags) if "parameters" in t]
    assert len(injected) == 1 and len(original) == 1
    assert injected[0] == original[0] + 1  # papermill puts it right after `parameters`
    tree = ast.parse(parameterized.cells[injected[0]].source)
    # Only plain assignments of literals to names: nothing else can run.
    assert all(isinstance(node, ast.Assign) for node in tree.body)
    values = {target.id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(target := node.targets[0], ast.Name)}
    assert len(values) == len(tree.body)
    assert values["utterances"] == texts


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inject-api")
    canary = tmp / "CANARY"
    texts = adversarial_texts(canary)
    result = kaggletts.execute("espeak", {"utterances": texts}, output_dir=tmp / "out")
    return result, texts, canary


def test_adversarial_texts_round_trip_through_the_api(api_run):
    check_round_trip(*api_run)


def test_adversarial_texts_are_really_spoken(api_run):
    result, _, _ = api_run
    assert all((clip.rms or 0) > 0.01 and (clip.duration or 0) > 0.2 for clip in result.clips)


def test_adversarial_texts_round_trip_through_a_yaml_file_and_the_cli(kaggletts_cmd,
                                                                      tmp_path):
    canary = tmp_path / "CANARY"
    texts = adversarial_texts(canary)
    params = tmp_path / "adversarial.yaml"
    params.write_text(yaml.safe_dump({"utterances": texts}, allow_unicode=True),
                      encoding="utf-8")
    assert yaml.safe_load(params.read_text(encoding="utf-8"))["utterances"] == texts
    done = kaggletts_cmd("run", "espeak", "-f", str(params), "--out", str(tmp_path / "out"),
                         "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    document = json.loads(done.stdout)
    result = kaggletts.Result.load(Path(document["notebook"]).parent)
    assert result is not None
    check_round_trip(result, texts, canary)


def test_adversarial_p_value_round_trips(kaggletts_cmd, tmp_path):
    canary = tmp_path / "CANARY"
    text = f"\"\"\"'''\\\"; __import__('os').system('touch {canary}') # \\"
    done = kaggletts_cmd("run", "espeak", "-p", "text", text, "--out", str(tmp_path / "out"),
                         "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    clips = json.loads(done.stdout)["scraps"]["clips"]
    assert [clip["text"] for clip in clips] == [text]
    assert not canary.exists()
