"""A long GPU batch across quota weeks (issue 18.3): when the week's GPU quota is used up
the run stops with exit 3, saying when it refreshes, with what was spoken kept; the same
command after the refresh goes on from the line ledger, and no line is pushed twice. The
emulator's quota is scaled so that one stand-in session uses a whole week of it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import (
    KEY,
    USER,
    cli_env,
    kaggletts_cli,
    pushed_utterances,
    pushes,
    record_of,
    run_kaggle,
)

import kaggletts
from kaggletts.emulator import Emulator, Limits, Quirks

pytestmark = pytest.mark.slow

TEXTS = [f"Line {n} of a long book." for n in range(1, 7)]
# One hour a week, and a tenth of a second of session uses all of it.
ONE_SESSION_A_WEEK = Limits(weekly_gpu_seconds=3600, gpu_quota_scale=36000)


def book(tmp_path: Path) -> Path:
    path = tmp_path / "book.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def run_book(emulator: Emulator, tmp_path: Path):
    # Three sessions, one at a time: each stops at the quota the one before used up. The
    # kernels are kept, for the notebooks they were pushed with.
    env = cli_env(
        emulator, KAGGLETTS_OUTPUT=str(tmp_path / "out"), KAGGLETTS_KAGGLE_GPU_SESSIONS="1",
        KAGGLETTS_KAGGLE_KEEP_KERNELS="true",
    )
    return kaggletts_cli(
        "run", "qwen", "-f", str(book(tmp_path)), "--shards", "3", "--yes", env=env
    )


def spoken_wavs(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").rglob("*.wav") if "kernel" not in p.parts)


def test_a_batch_past_the_quota_stops_with_exit_3_and_goes_on_after_each_refresh(
    tmp_path, standins
):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        limits=ONE_SESSION_A_WEEK,
    ) as emulator:
        _, refresh = emulator.kernels.quota_period()
        refreshes = datetime.fromtimestamp(refresh, UTC).strftime("%Y-%m-%d %H:%M")
        for week, spoken in ((1, 2), (2, 4)):
            stopped = run_book(emulator, tmp_path)
            assert stopped.returncode == 3, stopped.stderr
            error = stopped.stderr.split("error: ", 1)[1]
            assert error.startswith("this week's GPU quota on Kaggle is used up (")
            assert f"it refreshes {refreshes} UTC)" in error
            assert f"{spoken} lines spoken and kept in " in error
            assert f"{len(TEXTS) - spoken} left" in error
            assert "Run the same command again once the quota refreshes" in error
            assert "Traceback" not in stopped.stderr
            assert record_of(tmp_path / "out")["state"] == "partial"
            # Nothing lost: the sessions pushed were collected, clips and ledgers.
            assert len(spoken_wavs(tmp_path)) == spoken
            # The quota was read before each push: no push was left for Kaggle to refuse.
            assert emulator.calls["SaveKernel"] == pushes(emulator) == week
            emulator.refresh_gpu_quota()
        done = run_book(emulator, tmp_path)
        assert done.returncode == 0, done.stderr
        assert len(spoken_wavs(tmp_path)) == len(TEXTS)
        pushed = pushed_utterances(emulator)
        assert sorted(line for push in pushed for line in push) == sorted(TEXTS)
        assert [len(push) for push in pushed] == [2, 2, 2]


MARKDOWN_BOOK = """# A Book of Weeks

## Monday

The first paragraph is spoken.

The second paragraph follows it.

## Tuesday

A third paragraph ends the week.
"""


def test_a_book_past_the_quota_stops_mid_book_and_the_same_command_finishes_it(
    tmp_path, standins
):
    """`kaggletts book` is one job on the line ledger: the quota stops it mid-book (exit
    3) and after the refresh the same command speaks only the lines left, then builds the
    audiobook from every line."""
    source = tmp_path / "weeks.md"
    source.write_text(MARKDOWN_BOOK, encoding="utf-8")
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        limits=ONE_SESSION_A_WEEK,
    ) as emulator:
        env = cli_env(
            emulator, KAGGLETTS_OUTPUT=str(tmp_path / "out"),
            KAGGLETTS_KAGGLE_GPU_SESSIONS="1", KAGGLETTS_KAGGLE_KEEP_KERNELS="true",
        )
        command = ("book", str(source), "--notebook", "qwen", "--backend", "kaggle",
                   "--shards", "2", "--yes", "-o", str(tmp_path / "audiobook"))
        stopped = kaggletts_cli(*command, env=env)
        assert stopped.returncode == 3, stopped.stderr
        assert "this week's GPU quota on Kaggle is used up" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert not (tmp_path / "audiobook").exists()
        first_week = [line for push in pushed_utterances(emulator) for line in push]
        assert first_week

        emulator.refresh_gpu_quota()
        done = kaggletts_cli(*command, env=env)
        assert done.returncode == 0, done.stderr
        pushed = [line for push in pushed_utterances(emulator) for line in push]
        assert len(pushed) == len(set(pushed)) > len(first_week)
        assert [p.suffix for p in sorted((tmp_path / "audiobook").glob("*.m4b"))] == [".m4b"]


def test_without_the_quota_call_a_refused_push_fails_clearly_and_nothing_is_pushed_twice(
    tmp_path, standins
):
    """Where the quota cannot be read, kaggletts pushes unguarded and a refusal is not
    taken for the quota's (its wording is not known): the run fails with Kaggle's words,
    pushes nothing more, and the same command after the refresh finishes the batch."""
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        limits=ONE_SESSION_A_WEEK, quirks=Quirks(no_quota_call=True),
    ) as emulator:
        failed = run_book(emulator, tmp_path)
        assert failed.returncode == 1, failed.stderr
        assert "Kaggle refused to run" in failed.stderr
        assert "GPU quota unknown" in failed.stderr
        assert "the same request continues once it refreshes" in failed.stderr
        assert "Traceback" not in failed.stderr
        # The first session ran; the second push was refused; the third never tried.
        assert pushes(emulator) == 1 and emulator.calls["SaveKernel"] == 2

        emulator.refresh_gpu_quota()
        emulator.config.limits = Limits(weekly_gpu_seconds=3600)
        done = run_book(emulator, tmp_path)
        assert done.returncode == 0, done.stderr
        assert len(spoken_wavs(tmp_path)) == len(TEXTS)
        pushed = pushed_utterances(emulator)
        assert sorted(line for push in pushed for line in push) == sorted(TEXTS)



def test_with_too_little_quota_left_for_a_session_nothing_is_pushed(tmp_path, standins):
    """Less quota left than a session's cold start: the Python API raises QuotaExhausted
    (exit 3) with Kaggle's refresh time, and nothing is pushed."""
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        limits=Limits(weekly_gpu_seconds=120),
    ) as emulator:
        with pytest.raises(kaggletts.QuotaExhausted) as stopped:
            run_kaggle(emulator, tmp_path / "out", {"utterances": TEXTS}, notebook="qwen")
        _, refresh = emulator.kernels.quota_period()
        assert stopped.value.exit_code == 3
        assert stopped.value.refreshes == datetime.fromtimestamp(refresh, UTC).isoformat()
        assert str(stopped.value).startswith(
            "this week's GPU quota on Kaggle is used up (2 min left of 2 min, too little for a "
            "session to start; it refreshes "
        )
        assert f"0 lines spoken and kept in {tmp_path / 'out'}" in str(stopped.value)
        assert emulator.calls["SaveKernel"] == 0


def test_a_used_up_quota_is_said_before_any_question_about_the_cost(tmp_path, standins):
    """Without a terminal a costly push is refused unless --yes (exit 2); with no quota
    left there is nothing to ask about: the run stops at the quota (exit 3)."""
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir],
        limits=Limits(weekly_gpu_seconds=120),
    ) as emulator:
        env = cli_env(emulator, KAGGLETTS_OUTPUT=str(tmp_path / "out"))
        stopped = kaggletts_cli("run", "qwen", "-f", str(book(tmp_path)), "--ask-above", "1s",
                                env=env)
        assert stopped.returncode == 3, stopped.stderr
        assert "no terminal to ask on" not in stopped.stderr
        assert emulator.calls["SaveKernel"] == 0
