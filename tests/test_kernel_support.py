"""The kernels' support module as a module: its pure parts tested directly, and the sync
that writes it into the notebooks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kaggletts.jobs import batch_lines
from kaggletts.kernel import support
from kaggletts.kernel.sync import main as sync_main
from kaggletts.kernel.sync import support_cell_source, sync_folder
from kaggletts.notebook import data_dir


def test_the_package_reads_a_batch_as_the_notebooks_do():
    params = {"text": "First.", "utterances": ["Second.", {"text": "Third.", "voice": "de"}]}
    built = support.build_batch(params["text"], params["utterances"], {"voice": "en-us"})
    assert [support.line_text(line) for line in batch_lines(params)] == [
        line["text"] for line in built
    ]
    assert built[2] == {"voice": "de", "text": "Third."}
    assert support.characters_of(batch_lines(params)) == len("First.Second.Third.")


def test_a_batch_refuses_unknown_settings_and_empty_lines():
    with pytest.raises(ValueError, match=r"utterance 2: unknown settings \['speed'\]"):
        support.build_batch("", ["One.", {"text": "Two.", "speed": 2}], {"voice": "en"})
    with pytest.raises(ValueError, match="utterance 1 has no text"):
        support.build_batch("", ["   "], {})
    with pytest.raises(ValueError, match="nothing to speak"):
        support.build_batch("", [], {})


def test_long_text_is_cut_after_sentences_then_clauses_then_words():
    text = "One two three. Four, five six seven eight nine ten eleven twelve."
    pieces = support.split_text(text, 30)
    # a clause too short to stand alone rejoins the sentence before it
    assert pieces == ["One two three. Four,", "five six seven eight nine ten", "eleven twelve."]
    assert all(len(piece) <= 30 for piece in pieces)
    assert support.split_text("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]
    assert support.split_text("Short.", 30) == ["Short."]


def test_clip_names_sort_widen_and_keep_accents(tmp_path):
    name = support.clip_path(tmp_path, 7, {"text": "Ça va? Très bien!"}, 12).name
    assert name == "007-ça-va-très-bien.wav"
    assert support.clip_path(tmp_path, 7, {"text": "x", "name": "Intro"}, 1200).name == (
        "0007-intro.wav"
    )
    assert support.clip_path(tmp_path, 1, {"text": "!!!"}, 1).name == "001-utterance.wav"


def test_inputs_are_found_by_their_path_ending_under_the_root(tmp_path):
    (tmp_path / "voices" / "alice").mkdir(parents=True)
    (tmp_path / "voices" / "alice" / "ref.wav").write_bytes(b"RIFF")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "ref.wav").mkdir()  # a folder of that name is not the file
    assert support.find_under(tmp_path, "alice/ref.wav") == tmp_path / "voices/alice/ref.wav"
    assert support.find_under(tmp_path, "bob/ref.wav") is None
    assert support.find_under(tmp_path / "absent", "ref.wav") is None


def test_work_with_the_same_settings_is_grouped_by_length_and_dealt_evenly():
    batch = [
        {"text": "a" * 10, "voice": "x"},
        {"text": "b" * 40, "voice": "y"},
        {"text": "c" * 30, "voice": "x"},
        {"text": "d" * 20, "voice": "x"},
    ]
    units = support.plan_work(batch, max_characters=100, batch_size=2)
    assert [[piece.line for piece in unit] for unit in units] == [[0, 3], [1], [2]]
    shares = support.deal(units, 2)
    loads = [sum(support.expected_cost(unit) for unit in share) for share in shares]
    assert sorted(loads) == [40, 50]


def test_duration_bounds_count_wide_characters_apart():
    per_character = {"alphabetic": (0.05, 0.2), "wide": (0.1, 0.5)}
    shortest, longest = support.duration_bounds("ab 日本", per_character)
    assert shortest == pytest.approx(2 * 0.05 + 2 * 0.1)
    assert longest == pytest.approx(2 * 0.2 + 2 * 0.5 + support.DURATION_SLACK_SECONDS)
    assert support.duration_problem("ab", 60.0, per_character).startswith("ran away: 60.0s")
    assert support.duration_problem("ab 日本", 0.1, per_character).startswith("was cut off")
    assert support.duration_problem("ab 日本", 1.0, per_character) is None


def test_sync_writes_the_module_into_a_stale_notebook_and_nothing_else(tmp_path):
    for path in data_dir("notebooks").glob("*.ipynb"):
        shutil.copy(path, tmp_path)
    assert sync_folder(tmp_path, check=True) == []
    stale = tmp_path / "espeak.ipynb"
    notebook = json.loads(stale.read_text(encoding="utf-8"))
    before = [cell["source"] for cell in notebook["cells"]]
    support_index = next(
        i for i, c in enumerate(notebook["cells"]) if "support" in c["metadata"].get("tags", [])
    )
    notebook["cells"][support_index]["source"] = ["print('edited by hand')\n"]
    stale.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    assert sync_main(["--check", str(tmp_path)]) == 1
    assert sync_folder(tmp_path) == [stale]
    after = json.loads(stale.read_text(encoding="utf-8"))["cells"]
    assert "".join(after[support_index]["source"]) == support_cell_source()
    assert [c["source"] for i, c in enumerate(after) if i != support_index] == [
        s for i, s in enumerate(before) if i != support_index
    ]
    assert sync_folder(tmp_path, check=True) == []


def test_the_support_module_needs_only_the_standard_library_to_load():
    """A kernel runs the cell before it installs anything: no third-party import at the top."""
    import ast
    import sys

    tree = ast.parse(Path(support.__file__).read_text(encoding="utf-8"))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.partition(".")[0])
    assert top and top <= sys.stdlib_module_names


def test_a_missing_package_without_a_reachable_index_stops_the_kernel(monkeypatch):
    import socket

    with socket.socket() as closed:  # a port nothing listens on once this block ends
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    with pytest.raises(support.MachineUnfit, match="needs the internet to install no_such_tts"):
        support.check_machine(["json", "no_such_tts"])
    support.check_machine(["json"])  # nothing to install: no probe, no refusal
    with socket.create_server(("127.0.0.1", 0)) as index:
        monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{index.getsockname()[1]}/")
        support.check_machine(["no_such_tts"])


@pytest.mark.parametrize(("visible", "second"), [
    (None, "1"), ("2,3", "3"), ("GPU-aaaa, GPU-bbbb", "GPU-bbbb")])
def test_a_worker_gets_its_gpu_by_the_parents_name_for_it(monkeypatch, visible, second):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert support.visible_device(1) == second
