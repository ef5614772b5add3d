"""`kaggletts voices NOTEBOOK` and `kaggletts.voices()`: every speaker, voice, language and
variant a notebook accepts, the very lists its validation checks against."""

from __future__ import annotations

import json
import re

import kaggletts
from kaggletts import api
from kaggletts.notebook import find_notebook


def listed(run_cli, notebook: str) -> dict:
    done = run_cli("voices", notebook, "--json")
    assert done.code == 0, done.output
    document = json.loads(done.stdout)
    assert document["notebook"] == notebook
    return document["parameters"]


def refusal(run_cli, notebook: str, name: str, value: str) -> str:
    done = run_cli("run", notebook, "--text", "Hello.", "-p", name, value)
    assert done.code == 2, done.output
    return done.stderr


def test_espeak_lists_every_voice_its_validation_knows_and_accepts_each(run_cli):
    voice = listed(run_cli, "espeak")["voice"]
    known = re.search(
        r"not one of the (\d+) eSpeak NG voices",
        refusal(run_cli, "espeak", "voice", "no-such-voice"),
    )
    assert known is not None
    assert len(voice["values"]) == int(known.group(1)) > 400
    assert {"en-us", "de", "English (Great Britain)"} <= set(voice["values"])
    assert {"m3", "whisper"} <= set(voice["variants"])
    assert voice["per_line"] and voice["ignore_case"] and voice["default"] == "en-us"
    spec = find_notebook("espeak")
    for value in voice["values"]:
        api.validate(spec, {"text": "Hello.", "voice": value})
    api.validate(spec, {"text": "Hello.", "voice": f"{voice['values'][0]}+{voice['variants'][0]}"})

    shown = run_cli("voices", "espeak").stdout
    assert shown.startswith(f"voice, {len(voice['values'])} values (default 'en-us'; ")
    assert "\n    English (Great Britain)\n" in shown
    assert "then optionally + one of" in shown
    pointer = "  voice: str = 'en-us'\n"
    described = run_cli("notebooks", "espeak").stdout
    assert pointer in described and "one of the values `kaggletts voices espeak` lists" in described


def test_qwen_lists_its_speakers_and_languages_as_its_refusals_do(run_cli):
    found = listed(run_cli, "qwen")
    speakers = found["speaker"]["values"]
    assert speakers[:2] == ["Vivian", "Serena"] and len(speakers) == 9
    assert ", ".join(speakers) in refusal(run_cli, "qwen", "speaker", "Nobody")
    assert found["speaker"]["only_when"] == {"mode": "custom_voice"}
    assert "English" in found["language"]["values"]
    assert ", ".join(found["language"]["values"]) in refusal(run_cli, "qwen", "language", "Klingon")
    shown = run_cli("voices", "qwen").stdout
    assert (
        "speaker, 9 values (default 'Vivian'; a line may set its own; any case; when mode "
        "is 'custom_voice'):\n    Vivian, Serena," in shown
    )
    assert shown.index("language,") < shown.index("mode,"), "a line's own choices first"


def test_chatterbox_lists_its_languages_and_variants_through_the_api(run_cli):
    found = {choice.parameter: choice for choice in kaggletts.voices("chatterbox")}
    assert len(found["language_id"].values) == 23 and "fr" in found["language_id"].values
    assert found["variant"].values == ("english", "multilingual", "turbo")
    assert not found["variant"].per_line
    assert listed(run_cli, "chatterbox") == {
        name: json.loads(json.dumps(choice.to_dict())) for name, choice in found.items()
    }


def test_an_unknown_notebook_is_one_line(run_cli):
    done = run_cli("voices", "piper")
    assert done.code == 2
    assert done.stderr.startswith("error: unknown notebook 'piper'; known notebooks: ")
