"""Each assumption about Kaggle is off by default, and does what it says when named."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click.testing
import nbformat
import pytest
import requests
from emulator_helpers import call, notebook_text, outputs, push, wait_until

from kaggletts.emulator import Emulator, Latency
from kaggletts.emulator.cli import emulator as emulator_command

QUICK_SAVE = {"kernelExecutionType": "QUICK_SAVE"}


def _pull(emulator: Emulator, slug: str, version: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"userName": "alice", "kernelSlug": slug}
    if version:
        body["versionLabel"] = f"v{version}"
    reply = call(emulator, "GetKernel", body)
    reply.raise_for_status()
    return reply.json()


def test_a_title_of_another_slug_files_a_new_kernel_there_unless_409_is_assumed(
    make_emulator: Callable[..., Emulator],
):
    plain = make_emulator()
    reply = push(plain, "wanted-slug", title="Another Title", **QUICK_SAVE).json()
    assert reply["url"] == f"{plain.url}/code/alice/another-title"
    assert plain.push_count("alice", "another-title") == 1
    asked = call(plain, "GetKernel", {"userName": "alice", "kernelSlug": "wanted-slug"})
    assert asked.status_code == 403
    # An existing kernel keeps its slug whatever the new title.
    assert push(plain, "another-title", title="Renamed Title", **QUICK_SAVE).ok
    assert plain.push_count("alice", "another-title") == 2

    assuming = make_emulator(assume={"title-conflict"})
    refused = push(assuming, "wanted-slug", title="Another Title", **QUICK_SAVE)
    assert refused.status_code == 409 and "another-title" in refused.json()["message"]


def test_save_kernel_url_is_plain_unless_assumed(make_emulator: Callable[..., Emulator]):
    plain = make_emulator()
    reply = push(plain, "plain-url", **QUICK_SAVE).json()
    assert reply["url"] == f"{plain.url}/code/alice/plain-url"

    assuming = make_emulator(assume={"session-id-in-url"})
    reply = push(assuming, "session-url", **QUICK_SAVE).json()
    session_id = assuming.session_id("alice", "session-url")
    assert reply["url"] == f"{assuming.url}/code/alice/session-url?scriptVersionId={session_id}"


def _notebook_with_metadata() -> str:
    notebook = nbformat.reads(notebook_text("x = 1", "print(x)"), as_version=4)
    notebook.metadata["kaggletts_push"] = "token-123"
    notebook.cells[0].metadata = {"tags": ["parameters"], "custom": {"kept": True}}
    notebook.cells[1].metadata = {"custom": "only"}
    return nbformat.writes(notebook)


def test_pulled_source_keeps_only_tags_and_kaggles_metadata(kaggle_emulator: Emulator):
    assert push(kaggle_emulator, "with-metadata", text=_notebook_with_metadata(), **QUICK_SAVE).ok
    source = nbformat.reads(_pull(kaggle_emulator, "with-metadata")["blob"]["source"], 4)
    assert [cell.source for cell in source.cells] == ["x = 1", "print(x)"]
    assert [cell.metadata for cell in source.cells] == [{"tags": ["parameters"]}, {}]
    assert "kaggletts_push" not in source.metadata
    assert source.metadata.kernelspec.name == "python3"
    assert source.metadata.kaggle.isInternetEnabled is False

    kaggle_emulator.assume = {"metadata-kept"}
    source = nbformat.reads(_pull(kaggle_emulator, "with-metadata")["blob"]["source"], 4)
    assert source.metadata.kaggletts_push == "token-123"
    assert source.cells[0].metadata.custom == {"kept": True}
    assert source.cells[1].metadata == {"custom": "only"}
    assert source.metadata.kaggle.sourceType == "notebook"


def test_pulled_version_is_the_newest_unless_assumed(kaggle_emulator: Emulator):
    for cell in ("print('one')", "print('two')"):
        assert push(kaggle_emulator, "two-sources", cell, **QUICK_SAVE).ok
    assert "two" in _pull(kaggle_emulator, "two-sources", version=1)["blob"]["source"]
    # Ignored entirely: a version that does not exist is no error either.
    assert "two" in _pull(kaggle_emulator, "two-sources", version=9)["blob"]["source"]

    kaggle_emulator.assume = {"version-source"}
    assert "one" in _pull(kaggle_emulator, "two-sources", version=1)["blob"]["source"]
    assert "two" in _pull(kaggle_emulator, "two-sources")["blob"]["source"]
    missing = call(
        kaggle_emulator,
        "GetKernel",
        {"userName": "alice", "kernelSlug": "two-sources", "versionLabel": "v9"},
    )
    assert missing.status_code == 404


@pytest.mark.slow
def test_current_version_number_counts_queued_versions_only_if_assumed(kaggle_emulator: Emulator):
    kaggle_emulator.latency = Latency(queue_delay=3600)
    assert push(kaggle_emulator, "queued-first").ok
    # A kernel whose only version is queued has no current version yet.
    assert "currentVersionNumber" not in _pull(kaggle_emulator, "queued-first")["metadata"]
    kaggle_emulator.assume = {"queued-version-counted"}
    assert _pull(kaggle_emulator, "queued-first")["metadata"]["currentVersionNumber"] == 1

    kaggle_emulator.assume = set()
    kaggle_emulator.latency = Latency()
    assert push(kaggle_emulator, "queued-second").ok
    kaggle_emulator.wait_for("alice", "queued-second")
    kaggle_emulator.latency = Latency(queue_delay=3600)
    assert push(kaggle_emulator, "queued-second").json()["versionNumber"] == 2
    assert _pull(kaggle_emulator, "queued-second")["metadata"]["currentVersionNumber"] == 1
    kaggle_emulator.assume = {"queued-version-counted"}
    assert _pull(kaggle_emulator, "queued-second")["metadata"]["currentVersionNumber"] == 2


WRITES_THEN_WAITS = """
import time
open('early.txt', 'w').write('written early')
print('early line', flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_running_outputs_are_listed_only_if_assumed(kaggle_emulator: Emulator):
    assert push(kaggle_emulator, "running-outputs", WRITES_THEN_WAITS).ok
    working = kaggle_emulator.store.working_dir(
        kaggle_emulator.store.kernels["alice/running-outputs"], 1
    )
    wait_until(lambda: (working / "early.txt").exists())
    live = kaggle_emulator.sessions.live_log(kaggle_emulator.session_id("alice", "running-outputs"))
    assert live is not None
    wait_until(lambda: "early line" in json.dumps(live.snapshot()))

    assert outputs(kaggle_emulator, "running-outputs") == {"files": []}

    kaggle_emulator.assume = {"running-outputs"}
    listing = outputs(kaggle_emulator, "running-outputs")
    files = {item["fileName"]: item["url"] for item in listing["files"]}
    assert list(files) == ["early.txt"]
    assert requests.get(files["early.txt"], timeout=10).text == "written early"
    assert "early line" in "".join(entry["data"] for entry in json.loads(listing["log"]))


def test_unknown_assumptions_are_refused_with_a_close_match(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'session-id-in-url'"):
        Emulator(state_dir=tmp_path, assume={"session-id-in-ur"})
    result = click.testing.CliRunner().invoke(
        emulator_command, ["--assume", "metadata-kep"], prog_name="kaggletts emulator"
    )
    assert result.exit_code == 2
    assert "did you mean 'metadata-kept'" in result.output
