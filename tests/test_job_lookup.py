"""Jobs as a person finds them: the list names each job's folder and first line, the job
commands take the latest job without an id, and an id recorded in two folders is the
newest of them."""

from __future__ import annotations

import pytest


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pages `kaggletts open` opened, instead of a web browser."""
    pages: list[str] = []

    def open_in_browser(url: str) -> bool:
        pages.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", open_in_browser)
    return pages


def test_one_request_in_two_folders_is_listed_by_folder_and_opened_as_the_newest(
    run_cli, tmp_path, opened
):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        done = run_cli("run", "espeak", "--text", "Twice asked.", "--out", str(folder))
        assert done.code == 0, done.output
    [older] = (first / "espeak").iterdir()
    [newer] = (second / "espeak").iterdir()
    assert older.name == newer.name

    listed = run_cli("jobs")
    assert listed.code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert "FOLDER" in header and header.endswith("FIRST LINE")
    assert [row.split()[0] for row in rows] == [newer.name, newer.name]
    assert str(second) in rows[0] and str(first) in rows[1]
    assert all(row.endswith("  Twice asked.") for row in rows)

    done = run_cli("open", newer.name)
    assert done.code == 0, done.output
    assert opened == [(newer / "index.html").as_uri()]
    assert f"also recorded in {older}" in done.stderr


def test_status_open_and_attach_without_an_id_take_the_latest_job(run_cli, tmp_path, opened):
    out = tmp_path / "out"
    for text in ("The older job.", "The latest job."):
        done = run_cli("run", "espeak", "--text", text, "--out", str(out), "--json")
        assert done.code == 0, done.output
    latest = (out / "espeak").glob("*/job.json")
    newest = max(latest, key=lambda path: path.stat().st_mtime).parent

    status = run_cli("status", "--out", str(out))
    assert status.code == 0, status.output
    assert status.stdout.startswith(f"job {newest.name}: espeak on local, complete")

    assert run_cli("open", "--out", str(out)).code == 0
    assert opened == [(newest / "index.html").as_uri()]

    attached = run_cli("attach", "--out", str(out), "--json")
    assert attached.code == 0, attached.output
    assert newest.name in attached.stdout


def test_without_an_id_and_without_jobs_the_commands_say_so(run_cli, tmp_path):
    for command in ("status", "open", "attach"):
        done = run_cli(command, "--out", str(tmp_path / "none"))
        assert done.code == 2
        assert "no job in" in done.stderr and "`kaggletts run` makes one" in done.stderr


def test_attach_refuses_the_options_a_pushed_run_has_fixed_and_says_why(run_cli, tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", "espeak", "--text", "Collected.", "--out", str(out)).code == 0
    for option, value, why in (
        ("--shards", "2", "the batch was split when it was pushed"),
        ("--timeout", "10m", "the run's deadline was set when it was pushed"),
        ("--machine-shape", "NvidiaTeslaT4", "the accelerator was chosen when the run was"),
    ):
        done = run_cli("attach", "--out", str(out), option, value)
        assert done.code == 2, done.output
        assert done.stderr.startswith(
            f"error: {option} means nothing to attach, which collects a run: {why}"
        )
