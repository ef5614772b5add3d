"""notebooks/chatterbox.ipynb, unchanged, under papermill against the real chatterbox-tts
0.1.7 on CPU with tiny random checkpoints: the install into a kernel that has already
imported torch and numpy 2, every variant with lines with and without a reference voice in
one batch, and what each clip's record says.

Random weights say nothing about voice quality. They do make every line run to the token
cap (kernel_site/tiny_chatterbox.py), and the same voice, text and seed give the same
samples: equal or different audio tells which voice a line was spoken with."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from chatterbox_runs import run_notebook

import kaggletts
from kaggletts.notebook import data_dir
from kaggletts.records import ClipRecord

NARRATOR = "voices/narrator.wav"
PLAIN, CLONED = "Plain voice first.", "Now the cloned voice."


def check_clips(run, texts: list[str]) -> list[ClipRecord]:
    result = run.outcome
    assert isinstance(result, kaggletts.Result), result
    assert [clip.text for clip in result.clips] == texts
    for clip in result.clips:
        assert clip.sample_rate == 24000 and (clip.rms or 0) > 0.001
        assert (clip.extra["precision"], clip.extra["seed"], clip.device) == ("float32", 0, "cpu")
    return result.clips


def own_defaults(module: str, class_name: str) -> dict:
    generate = getattr(importlib.import_module(module), class_name).generate
    return {name: p.default for name, p in inspect.signature(generate).parameters.items()}


def test_a_first_install_stops_only_for_the_missing_checkpoints(first_install):
    """On a fresh environment the first run installs chatterbox-tts and gets as far as
    loading the model (with its first line), which is not in the (still empty, offline)
    cache."""
    if first_install is None:
        pytest.skip("chatterbox-tts was installed by an earlier session")
    failure = first_install.outcome
    # The model's load fails on the line (tried twice), so the line is missing with that
    # reason and the notebook ends normally with its ledger: no line was spoken.
    assert isinstance(failure, kaggletts.RunFailed), failure
    assert "none of its 1 line was spoken: LocalEntryNotFoundError" in str(failure), failure
    assert "; then LocalEntryNotFoundError" in str(failure), failure
    assert "installed chatterbox-tts==0.1.7 without its dependencies" in first_install.output


# --- English, and the install it starts with ------------------------------------------------

@pytest.fixture(scope="module")
def english(hf_home, inputs, tmp_path_factory):
    """The install runs again (chatterbox-tts removed) in an environment whose setuptools
    (82) has no pkg_resources, then a batch mixing the built-in voice and a reference."""
    image = {name: importlib.metadata.version(name) for name in ("numpy", "torch")}
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run([*pip, "uninstall", "--yes", "chatterbox-tts"], check=True)
    subprocess.run([*pip, "install", "setuptools==82.0.1"], check=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAGGLETTS_INPUT_ROOT", str(inputs))
        run = run_notebook(tmp_path_factory.mktemp("english"), {
            "variant": "english",
            "utterances": [PLAIN, {"text": CLONED, "audio_prompt": NARRATOR},
                           {"text": PLAIN, "name": "plain-again"},
                           {"text": CLONED, "audio_prompt": NARRATOR, "name": "cloned-again"}]})
    return run, image


def test_the_install_keeps_the_kernels_numpy_and_torch(english):
    """chatterbox-tts pins numpy<2 and torch 2.6: installed naively into a kernel that has
    imported numpy 2, numpy is replaced on disk and the next import fails."""
    run, image = english
    check_clips(run, [PLAIN, CLONED, PLAIN, CLONED])
    packages = run.outcome.scraps["run"]["packages"]
    assert (packages["numpy"], packages["torch"]) == (image["numpy"], image["torch"])
    assert packages["chatterbox-tts"] == "0.1.7"
    assert "installed chatterbox-tts==0.1.7 without its dependencies" in run.output
    assert "left out (declared, never imported): gradio" in run.output
    assert f"numpy {image['numpy']} (asked: numpy<2.0.0,>=1.24.0)" in run.output
    assert importlib.metadata.version("numpy") == image["numpy"]  # on disk too


def test_the_watermarker_works_after_an_install_over_setuptools_82(english):
    """resemble-perth imports pkg_resources, which setuptools 82 removed; without it
    Chatterbox fails with "'NoneType' object is not callable"."""
    run, _ = english
    assert isinstance(run.outcome, kaggletts.Result), run.outcome
    assert int(run.outcome.scraps["run"]["packages"]["setuptools"].split(".")[0]) < 82


def test_a_cloned_line_leaves_later_lines_in_the_built_in_voice(english):
    """generate(audio_prompt_path=...) keeps the prompt's voice for every later line."""
    run, _ = english
    plain, cloned, plain_again, cloned_again = (c.sha256 for c in run.outcome.clips)
    assert plain != cloned
    assert plain_again == plain
    assert cloned_again == cloned


def test_a_reference_voice_is_prepared_once(english):
    run, _ = english
    assert run.output.count(f"prepared the voice of {NARRATOR}") == 1


def test_english_keeps_its_own_sampling_defaults(english):
    run, _ = english
    defaults = own_defaults("chatterbox.tts", "ChatterboxTTS")
    for clip in run.outcome.clips:
        assert clip.settings["repetition_penalty"] == defaults["repetition_penalty"] == 1.2
        assert clip.settings["top_p"] == defaults["top_p"]


# --- Multilingual and turbo -----------------------------------------------------------------

def test_multilingual_speaks_with_its_own_repetition_penalty(hf_home, inputs, tmp_path, kernel):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAGGLETTS_INPUT_ROOT", str(inputs))
        run = run_notebook(tmp_path, {
            "variant": "multilingual", "language_id": "fr",
            "utterances": ["Bonjour à tous.",
                           {"text": "こんにちは", "language_id": "ja", "audio_prompt": NARRATOR}]})
    clips = check_clips(run, ["Bonjour à tous.", "こんにちは"])
    defaults = own_defaults("chatterbox.mtl_tts", "ChatterboxMultilingualTTS")
    assert defaults["repetition_penalty"] == 2.0
    assert [c.settings["repetition_penalty"] for c in clips] == [2.0, 2.0]
    assert [c.settings["language_id"] for c in clips] == ["fr", "ja"]


def test_turbo_clones_from_a_long_reference_with_its_own_top_p(hf_home, inputs, tmp_path):
    """Turbo's loudness step turns the reference into float64 under numpy 2 (the image's),
    which its speech tokenizer rejects: the notebook keeps it float32."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAGGLETTS_INPUT_ROOT", str(inputs))
        run = run_notebook(tmp_path, {
            "variant": "turbo",
            "utterances": ["A turbo line.", {"text": "A cloned one.",
                                             "audio_prompt": "voices/long.wav"}]})
    clips = check_clips(run, ["A turbo line.", "A cloned one."])
    assert own_defaults("chatterbox.tts_turbo", "ChatterboxTurboTTS")["top_p"] == 0.95
    assert [c.settings["top_p"] for c in clips] == [0.95, 0.95]
    assert "min_p" not in clips[0].settings


def test_a_watermarker_that_cannot_load_fails_naming_the_cause(hf_home, tmp_path):
    """Where pkg_resources cannot be had (setuptools 82 already imported, say), the run stops
    in the setup cell saying so, not later with "'NoneType' object is not callable"."""
    hidden = tmp_path / "no-pkg-resources"
    hidden.mkdir()
    (hidden / "pkg_resources.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pkg_resources'\", name='pkg_resources')\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", f"{hidden}{os.pathsep}{os.environ['PYTHONPATH']}")
        run = run_notebook(tmp_path, {"text": "Hello."})
    failure = run.outcome
    assert isinstance(failure, kaggletts.RunFailed) and failure.exception is not None, failure
    assert "'setup'" in str(failure)
    assert "setuptools 82 removed" in failure.exception


# --- What the notebook and the stand-ins declare about the real package ---------------------

def notebook_constant(name: str):
    cells = json.loads((data_dir("notebooks") / "chatterbox.ipynb").read_text(encoding="utf-8"))
    for cell in (c for c in cells["cells"] if c["cell_type"] == "code"):
        for node in ast.parse("".join(cell["source"])).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
                return ast.literal_eval(node.value)
    raise LookupError(name)


def test_the_install_list_is_what_the_package_code_imports(hf_home):
    """CHATTERBOX_NEEDS names every declared dependency the library (and its watermarker)
    imports, and nothing else but setuptools, which provides perth's pkg_resources."""
    from packaging.requirements import Requirement

    imported = set()
    for package in ("chatterbox", "perth"):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, package
        root = Path(spec.origin).parent
        for source in root.rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_bytes())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    owners = importlib.metadata.packages_distributions()
    providers = {canonical(dist) for module in imported for dist in owners.get(module, ())}
    declared = {canonical(Requirement(r).name)
                for r in importlib.metadata.requires("chatterbox-tts") or []}
    needs = {canonical(Requirement(n).name) for n in notebook_constant("CHATTERBOX_NEEDS")}
    assert needs == (declared & providers) | {"setuptools"}
    assert "gradio" in declared - needs


def test_standin_signatures_match_the_real_package(hf_home, standins, monkeypatch):
    """tests/standins/chatterbox keeps the real classes' public signatures."""
    real = {module: importlib.import_module(f"chatterbox.{module}")
            for module in ("tts", "mtl_tts", "tts_turbo")}
    monkeypatch.syspath_prepend(str(standins.dir))
    for name in [m for m in sys.modules if m.split(".")[0] == "chatterbox"]:
        monkeypatch.delitem(sys.modules, name)
    fake = {module: importlib.import_module(f"chatterbox.{module}") for module in real}

    def shape(function) -> list[tuple]:
        return [(p.name, p.kind, p.default)
                for p in inspect.signature(function).parameters.values()]

    for module, class_name in (("tts", "ChatterboxTTS"), ("mtl_tts", "ChatterboxMultilingualTTS"),
                               ("tts_turbo", "ChatterboxTurboTTS")):
        standin, original = getattr(fake[module], class_name), getattr(real[module], class_name)
        public = [name for name in dir(standin)
                  if not name.startswith("_") and callable(getattr(standin, name))]
        assert {"from_pretrained", "generate", "prepare_conditionals"} <= set(public)
        for name in public:
            assert shape(getattr(standin, name)) == shape(getattr(original, name)), (module, name)
        assert standin.sr == 24000
    assert fake["mtl_tts"].SUPPORTED_LANGUAGES == real["mtl_tts"].SUPPORTED_LANGUAGES
