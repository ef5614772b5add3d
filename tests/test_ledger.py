"""Every line counts: a bad line is a bad line, not a bad batch; what a run made is kept
however it ended, and the same request again speaks only what is missing."""

from __future__ import annotations

import json
import time

import pytest

import kaggletts
from kaggletts.kernel.support import LEDGER_FILE


def ledger_entries(directory):
    lines = (directory / LEDGER_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_line_that_raises_is_recorded_and_the_batch_goes_on_then_a_rerun_speaks_only_it(
    standins, monkeypatch, tmp_path
):
    texts = ["First line.", "Second line.", "The broken line.", "Fourth line.", "Fifth line."]
    params = {"utterances": texts, "batch_size": 1}
    calls = standins.use(monkeypatch, tmp_path / "calls.jsonl", fault="fail-text-broken")
    with pytest.raises(kaggletts.Incomplete) as ended:
        kaggletts.execute("qwen", params, backend="local", output_dir=tmp_path / "out")
    result = ended.value.result
    assert ended.value.exit_code == 4
    assert [p.name for p in result.audio] == [
        "001-first-line.wav", "002-second-line.wav", "004-fourth-line.wav", "005-fifth-line.wav"
    ]
    assert [(m.number, m.text) for m in result.missing] == [(3, "The broken line.")]
    assert "RuntimeError: stand-in" in result.missing[0].reason
    assert "then" in result.missing[0].reason  # tried twice before giving up
    entries = ledger_entries(result.directory)
    failed = [e for e in entries if e.get("status") == "failed"]
    assert [e["line"] for e in failed] == [3]
    assert entries[-1]["kind"] == "run" and entries[-1]["lines_failed"] == 1
    broken = [c for c in standins.calls(calls) if "broken" in str(c.get("args"))]
    assert len(broken) == 2  # the line, then once more
    first_bytes = result.audio[0].read_bytes()

    # The same request, the fault gone: only line 3 is spoken, and the result is whole.
    calls = standins.use(monkeypatch, tmp_path / "calls-2.jsonl")
    again = kaggletts.execute("qwen", params, backend="local", output_dir=tmp_path / "out")
    spoken = [c["args"][0] for c in standins.calls(calls) if c["method"] == "generate_custom_voice"]
    assert spoken == [["The broken line."]]
    assert not again.missing and again.status == "complete"
    assert [p.name for p in again.audio] == [
        "001-first-line.wav", "002-second-line.wav", "003-the-broken-line.wav",
        "004-fourth-line.wav", "005-fifth-line.wav",
    ]
    assert again.audio[0].read_bytes() == first_bytes
    assert [c.line for c in again.clips] == [1, 2, 3, 4, 5]


def test_a_deadline_mid_batch_keeps_what_was_made_and_a_rerun_speaks_only_the_rest(tmp_path):
    texts = [f"Line number {n}." for n in range(1, 7)]
    # A deadline already past: nothing is started, every line is missing with its reason.
    params = {"utterances": texts, "deadline": time.time() - 1}
    with pytest.raises(kaggletts.RunFailed, match="deadline passed"):
        kaggletts.execute("espeak", params, output_dir=tmp_path)

    # Lines spoken by an earlier session stay: pretend one spoke lines 1-3 (its ledger is
    # what any session leaves), and the rerun with no deadline speaks 4-6 only.
    # (The line cache would serve lines 4-6 too: this is about the ledger alone.)
    whole = kaggletts.execute(
        "espeak", {"utterances": texts}, output_dir=tmp_path / "whole", cache=False
    )
    job_dir = whole.directory
    entries = ledger_entries(job_dir)
    kept = [e for e in entries if e.get("line") in (1, 2, 3)]
    for clip in whole.audio[3:]:
        clip.unlink()
    (job_dir / LEDGER_FILE).write_text(
        "".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8"
    )
    (job_dir / "result.json").unlink()
    resumed = kaggletts.execute(
        "espeak", {"utterances": texts}, output_dir=tmp_path / "whole", cache=False
    )
    assert resumed.job_id == whole.job_id and not resumed.missing
    assert [p.name for p in resumed.audio] == [p.name for p in whole.audio]
    assert resumed.scraps["run"]["lines_total"] == 3  # the session spoke only the rest
    assert [p.read_bytes() for p in resumed.audio[:3]] == [
        p.read_bytes() for p in whole.audio[:3]
    ]


def test_a_session_killed_mid_line_leaves_a_readable_ledger(tmp_path):
    """A ledger whose last line was cut short (the session died writing it) is read up to
    that line; anything damaged before it fails with where it is."""
    from kaggletts.errors import RunFailed
    from kaggletts.ledger import read_ledger

    whole = kaggletts.execute("espeak", {"utterances": ["One.", "Two."]}, output_dir=tmp_path)
    ledger_path = whole.directory / LEDGER_FILE
    text = ledger_path.read_text(encoding="utf-8")
    ledger_path.write_text(text[: text.rindex("\n", 0, -1) + 20], encoding="utf-8")
    assert [e.number for e in read_ledger(whole.directory).spoken] == [1, 2]
    ledger_path.write_text("{broken\n" + text, encoding="utf-8")
    with pytest.raises(RunFailed, match=rf"{LEDGER_FILE}, line 1: not a ledger entry"):
        read_ledger(whole.directory)


def test_the_line_cache_serves_a_line_once_spoken_unless_told_not_to(tmp_path):
    from click.testing import CliRunner

    from kaggletts.cli import cli

    first = kaggletts.execute("espeak", {"utterances": ["Alpha.", "Beta."]}, output_dir=tmp_path)
    second = kaggletts.execute(
        "espeak", {"utterances": ["Beta.", "Gamma."]}, output_dir=tmp_path
    )
    assert [c.reused for c in second.clips] == [True, False]
    assert second.audio[0].name == "001-beta.wav"
    assert second.audio[0].read_bytes() == first.audio[1].read_bytes()
    assert second.scraps["run"]["lines_total"] == 1  # the session spoke Gamma alone

    third = kaggletts.execute(
        "espeak", {"utterances": ["Gamma.", "Delta."]}, output_dir=tmp_path, cache=False
    )
    assert not any(c.reused for c in third.clips)
    shown = CliRunner().invoke(cli, ["cache"])
    assert shown.exit_code == 0 and shown.output.startswith("3 clips,")  # Alpha, Beta, Gamma
    cleared = CliRunner().invoke(cli, ["cache", "--clear"])
    assert cleared.output.startswith("removed 3 clips")
    assert CliRunner().invoke(cli, ["cache"]).output.startswith("0 clips,")


def test_a_stored_result_is_checked_before_it_is_returned(tmp_path):
    """A job folder moved elsewhere still returns its own clips; a clip changed since it
    was made is made again (that line alone), never returned as it is."""
    import shutil

    texts = ["One line.", "Two lines.", "Three lines."]
    first = kaggletts.execute("espeak", {"utterances": texts}, output_dir=tmp_path / "mv1")
    shutil.move(tmp_path / "mv1", tmp_path / "mv2")
    moved = kaggletts.execute("espeak", {"utterances": texts}, output_dir=tmp_path / "mv2")
    assert moved.cached and all(path.is_file() for path in moved.audio)
    assert [p.relative_to(tmp_path / "mv2") for p in moved.audio] == [
        p.relative_to(tmp_path / "mv1") for p in first.audio
    ]

    moved.audio[1].write_bytes(b"RIFF1234")
    again = kaggletts.execute(
        "espeak", {"utterances": texts}, output_dir=tmp_path / "mv2", cache=False
    )
    assert not again.cached and not again.missing
    assert again.scraps["run"]["lines_total"] == 1  # the damaged line alone was spoken
    assert again.audio[1].stat().st_size == again.clips[1].bytes > 8


def test_verify_checks_a_stored_clip_by_its_sha256(tmp_path):
    params = {"utterances": ["Kept as made.", "Changed in place."]}
    first = kaggletts.execute("espeak", params, output_dir=tmp_path)
    data = bytearray(first.audio[1].read_bytes())
    data[-1] ^= 1  # same size: only the hash tells
    first.audio[1].write_bytes(bytes(data))
    assert kaggletts.execute("espeak", params, output_dir=tmp_path).cached
    checked = kaggletts.execute("espeak", params, output_dir=tmp_path, verify=True, cache=False)
    assert not checked.cached and not checked.missing
    assert checked.scraps["run"]["lines_total"] == 1
    assert checked.audio[1].read_bytes() != bytes(data)
