"""The records the notebooks write, read by the package: what kaggletts.kernel.support writes
(run for real) reads as typed records, and a record the package cannot read fails with a
kaggletts error naming the file and the field, whether it enters from a ledger, an executed
notebook's scraps or a stored result.json."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kaggletts.cost import RunCost
from kaggletts.errors import BadRecord, DamagedResult
from kaggletts.kernel import support
from kaggletts.layout import RESULT_FILE
from kaggletts.ledger import LineStatus, read_ledger, read_ledger_file
from kaggletts.records import ClipRecord, RunRecord
from kaggletts.result import Result, build_result

# The support code glues its scraps outside a kernel here, which scrapbook warns of.
pytestmark = pytest.mark.filterwarnings("ignore:No kernel detected")
SECONDS_PER_CHARACTER = {"alphabetic": (0.01, 1.0), "wide": (0.01, 1.0)}
TEXTS = ["Good evening.", "A second, longer line to speak."]


def tone(utterance: dict[str, Any], text: str) -> tuple[list[float], int, dict[str, Any]]:
    """A model stand-in: 0.05 s of tone per character, and what made it."""
    rate = 8000
    samples = [0.3 * math.sin(i / 5) for i in range(int(0.05 * len(text) * rate))]
    return samples, rate, {"precision": "float32", "seed": 7}


@pytest.fixture
def spoken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict], Path]:
    """A batch spoken by the support code, in its working folder as a kernel runs it: the
    clips (the `clips` scrap) and the line ledger with the run's record last."""
    monkeypatch.chdir(tmp_path)
    batch = support.build_batch("", TEXTS, {"speaker": "Ryan"})
    clips, progress = support.speak_batch(
        batch,
        tone,
        ".",
        deadline=0,
        max_characters=200,
        seconds_per_character=SECONDS_PER_CHARACTER,
    )
    support.record(clips, notebook="qwen", model_id="a-model", mode="custom_voice", **progress)
    return clips, tmp_path


def test_what_the_support_code_writes_reads_as_typed_records(spoken):
    clips, folder = spoken
    records = [ClipRecord.from_dict(clip, "the clips scrap") for clip in clips]
    assert [record.text for record in records] == TEXTS
    assert all(record.schema == support.RECORD_SCHEMA for record in records)
    first = records[0]
    assert (folder / first.file).stat().st_size == first.bytes
    assert first.duration == pytest.approx(0.05 * len(TEXTS[0]))
    assert first.settings == {"speaker": "Ryan"}
    assert first.extra == {"precision": "float32", "seed": 7}  # the model's own fields

    ledger = read_ledger(folder)
    assert [entry.status for entry in ledger.spoken] == [LineStatus.SPOKEN] * 2
    assert [entry.clip for entry in ledger.spoken] == [
        replace(record, line=number) for number, record in enumerate(records, 1)
    ]
    [run] = ledger.runs
    assert (run.notebook, run.model_id, run.mode) == ("qwen", "a-model", "custom_voice")
    assert (run.lines_done, run.lines_total, run.stopped, run.stopped_at_deadline) == (
        2,
        2,
        None,
        False,
    )
    assert run.characters == len("".join(TEXTS)) and run.schema == support.RECORD_SCHEMA
    assert run.audio_seconds == pytest.approx(sum(r.duration or 0 for r in records), abs=1e-3)


def test_a_result_built_from_the_ledger_keeps_the_records_as_written(spoken):
    _, folder = spoken
    result = build_result("job", "qwen", "local", folder, {}, texts=TEXTS)
    result.save()
    assert [clip.line for clip in result.clips] == [1, 2]
    assert result.run.notebook == "qwen" and result.runs == [result.run]
    stored = Result.read(folder)
    assert stored is not None and stored.clips == result.clips and stored.run == result.run
    assert stored.scraps["clips"][0]["seed"] == 7  # result.json holds the fields as written


def rewrite_ledger(folder: Path, change) -> Path:
    path = folder / support.LEDGER_FILE
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(json.dumps(change(e)) + "\n" for e in entries), encoding="utf-8")
    return path


def test_records_written_before_the_schema_version_read_as_version_one(spoken):
    _, folder = spoken
    path = rewrite_ledger(folder, lambda e: {k: v for k, v in e.items() if k != "schema"})
    ledger = read_ledger_file(path, folder)
    assert [entry.clip.schema for entry in ledger.spoken if entry.clip] == [1, 1]
    assert ledger.runs[0].schema == 1


def test_a_newer_schema_is_refused_naming_the_file(spoken):
    _, folder = spoken
    path = rewrite_ledger(folder, lambda e: {**e, "schema": support.RECORD_SCHEMA + 1})
    with pytest.raises(
        BadRecord,
        match=f"{path}, line 1: written with record schema 2; this kaggletts reads up to 1",
    ):
        read_ledger_file(path, folder)


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda e: {k: v for k, v in e.items() if k != "sha256"}, "`sha256` is missing"),
        (lambda e: {k: v for k, v in e.items() if k != "file"}, "`file` is missing"),
        (lambda e: {**e, "bytes": "44"}, "`bytes` is str, not a whole number"),
        (lambda e: {**e, "bytes": True}, "`bytes` is bool, not a whole number"),
        (lambda e: {**e, "sha256": "nope"}, "`sha256` is not a sha256 digest"),
        (lambda e: {**e, "schema": "one"}, "`schema` is 'one', not a schema version"),
    ],
)
def test_a_damaged_ledger_entry_names_the_file_line_and_field(spoken, change, problem):
    _, folder = spoken
    path = rewrite_ledger(folder, lambda e: change(e) if e.get("line") == 2 else e)
    with pytest.raises(BadRecord, match=f"{path}, line 2: {problem}"):
        read_ledger_file(path, folder)


def test_a_field_that_only_describes_reads_as_none_and_is_kept_as_written(spoken):
    _, folder = spoken
    odd = {"duration": "long", "settings": "fast", "warnings": "one text", "total_seconds": "1"}
    path = rewrite_ledger(folder, lambda e: {**e, **odd})
    ledger = read_ledger_file(path, folder)
    clip = ledger.spoken[0].clip
    assert clip is not None
    assert (clip.duration, clip.settings, clip.warnings) == (None, {}, ("one text",))
    assert clip.to_dict()["duration"] == "long"
    assert ledger.runs[0].total_seconds is None
    assert RunCost.from_run("qwen", ledger.runs[0]) is None  # no figures, no cost


def test_a_stored_result_with_a_damaged_record_is_no_result(spoken):
    _, folder = spoken
    build_result("job", "qwen", "local", folder, {}, texts=TEXTS).save()
    stored = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    del stored["scraps"]["clips"][1]["bytes"]
    (folder / RESULT_FILE).write_text(json.dumps(stored), encoding="utf-8")

    with pytest.raises(
        DamagedResult, match=r"result.json is damaged \(clip 2: `bytes` is missing\)$"
    ):
        Result.read(folder)
    assert Result.load(folder) is None


def test_warnings_read_as_texts_whatever_the_notebook_wrote():
    def warnings_of(written: Any) -> tuple[str, ...]:
        clip = {"file": "a.wav", "bytes": 1, "sha256": "0" * 64, "warnings": written}
        return ClipRecord.from_dict(clip, "a clip").warnings

    assert warnings_of(["clipped", {"peak": 1.2}]) == ("clipped", '{"peak": 1.2}')
    assert warnings_of("clipped") == ("clipped",)
    assert warnings_of(None) == warnings_of([]) == ()


def test_a_run_without_the_cost_figures_reads_with_none():
    run = RunRecord.from_dict({"device": "cuda", "packages": {"torch": "2.8"}}, "a run")
    assert (run.device, run.total_seconds, run.stopped_at_deadline) == ("cuda", None, False)
    assert run.extra == {"packages": {"torch": "2.8"}}
    assert run.to_dict() == {"device": "cuda", "packages": {"torch": "2.8"}}
