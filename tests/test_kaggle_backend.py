"""The Kaggle backend end to end against the emulator: real HTTP, real papermill runs,
the official client library, with Kaggle's rough edges switched on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers import (
    FAST,
    KEY,
    USER,
    assert_verified,
    cli_env,
    kaggletts_cli,
    kernels,
    lines,
    pushes,
    run_kaggle,
)

import kaggletts
from kaggletts.backends.kaggle import KaggleBackend
from kaggletts.backends.kaggle.credentials import Credentials, find_credentials
from kaggletts.backends.kaggle.polling import PollSchedule
from kaggletts.emulator import Emulator, Faults, Quirks
from kaggletts.result import sha256_of


def backend(emulator: Emulator, **overrides) -> KaggleBackend:
    return KaggleBackend(
        endpoint=emulator.url, credentials=Credentials(USER, key=KEY), **{**FAST, **overrides}
    )


def test_twenty_line_batch_runs_on_the_emulator_with_one_push(emulator, tmp_path):
    texts = lines(20)
    result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})

    assert_verified(result, texts)
    assert result.backend == "kaggle" and result.scraps["run"]["notebook"] == "espeak"
    assert pushes(emulator) == 1
    [slug] = kernels(emulator)
    assert slug == f"kaggletts-espeak-{result.job_id[:10]}-1-1"
    kernel_log = json.loads((result.directory / "kernel.log").read_text())
    assert any("[20/20]" in entry["data"] for entry in kernel_log)

    again = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
    assert again.cached and again.audio == result.audio
    assert pushes(emulator) == 1
    metadata = json.loads((result.directory / "kernel" / "kernel-metadata.json").read_text())
    assert not metadata["enable_gpu"] and metadata["machine_shape"] is None
    assert metadata["title"].replace(" ", "-") == slug.split("/")[-1]
    assert 0 < metadata["session_timeout_seconds"] < 12 * 3600
    assert backend(emulator).quota().used_seconds == 0, "a CPU kernel uses no GPU quota"


@pytest.mark.slow
def test_the_kernels_are_deleted_once_the_result_is_safe(emulator, tmp_path):
    result = run_kaggle(
        emulator, tmp_path / "out", {"text": "Tidy up after me."}, keep_kernels=False
    )
    assert_verified(result, ["Tidy up after me."])
    assert emulator.calls["SaveKernel"] == 1 and emulator.calls["DeleteKernel"] == 1
    assert kernels(emulator) == []


@pytest.mark.slow
def test_cli_runs_on_the_emulator_and_prints_json(emulator, tmp_path):
    batch = tmp_path / "batch.yaml"
    batch.write_text("utterances:\n" + "".join(f"  - {t}\n" for t in lines(20)))
    out = str(tmp_path / "out")
    done = kaggletts_cli(
        "run",
        "espeak",
        "-f",
        str(batch),
        "--backend",
        "kaggle",
        "--out",
        out,
        "--json",
        env=cli_env(emulator),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "complete" and len(document["audio"]) == 20
    for path, clip in zip(document["audio"], document["scraps"]["clips"], strict=True):
        assert sha256_of(Path(path)) == clip["sha256"]
    assert KEY not in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "kinds", [("500", "502", "503"), ("429",), ("drop", "lost-reply"), ("truncate",)]
)
def test_each_fault_kind_is_ridden_out(tmp_path, kinds):
    with Emulator(
        state_dir=tmp_path / "state",
        users={USER: KEY},
        seed=7,
        faults=Faults(rate=0.3, kinds=kinds, retry_after_seconds=0),
    ) as emulator:
        texts = lines(3, "-".join(kinds) + " ")
        result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
        assert_verified(result, texts)
        assert pushes(emulator) == 1
        assert sum(n for (_, kind), n in emulator.faults_injected.items() if kind in kinds) > 0


@pytest.mark.slow
def test_twenty_runs_under_rough_edges_each_push_once(tmp_path):
    faults = Faults(
        rate=0.2,
        kinds=("500", "503", "429", "drop", "lost-reply", "truncate"),
        retry_after_seconds=0,
    )
    quirks = Quirks(stale_status_seconds=1.0, late_outputs_seconds=0.5)
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, seed=3, faults=faults, quirks=quirks
    ) as emulator:
        for run in range(20):
            texts = lines(2, f"run {run} ")
            result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
            assert_verified(result, texts)
            assert pushes(emulator) == run + 1
        assert sum(emulator.faults_injected.values()) >= 10


@pytest.mark.slow
def test_lost_push_replies_never_make_a_second_push_with_only_known_behaviour(tmp_path):
    """The emulator in its default mode: no session id in urls, no custom metadata kept,
    GetKernel ignoring version labels. Six of ten push replies are lost."""
    with Emulator(state_dir=tmp_path / "state", users={USER: KEY}, seed=5) as emulator:
        assert not emulator.assume
        for job in range(5):
            emulator.fail_next("SaveKernel", "lost-reply", times=1 + job % 2)
            texts = lines(2, f"job {job} ")
            result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts})
            assert_verified(result, texts)
        assert pushes(emulator) == 5


@pytest.mark.slow
def test_fan_out_over_three_shards_merges_in_input_order(emulator, tmp_path):
    texts = lines(4)  # uneven on purpose: 2 + 1 + 1, no empty shard
    result = run_kaggle(emulator, tmp_path / "out", {"utterances": texts}, shards=3)
    assert_verified(result, texts)
    assert len(result.scraps["shards"]) == 3
    assert pushes(emulator) == 3 and len(kernels(emulator)) == 3


@pytest.mark.slow
def test_a_failing_notebook_names_its_exception_and_says_what_was_lost(
    emulator, tmp_path, failing_notebook
):
    """By default a failed version lists no outputs (not known either way): the reason
    comes from Kaggle's failure message, and the user is told the session's work is lost."""
    with pytest.raises(kaggletts.RunFailed) as failure:
        run_kaggle(emulator, tmp_path / "out", {"text": "Broken."}, notebook=failing_notebook)
    assert "ValueError: cannot say 'Broken.'" in str(failure.value)
    assert "Kaggle listed none of its clips, so what it made is lost" in str(failure.value)


@pytest.mark.slow
def test_a_failing_notebook_names_its_cell_where_failed_outputs_are_listed(
    emulator, tmp_path, failing_notebook
):
    emulator.assume = {"failed-outputs"}
    with pytest.raises(kaggletts.RunFailed) as failure:
        run_kaggle(emulator, tmp_path / "out", {"text": "Broken."}, notebook=failing_notebook)
    assert failure.value.cell and "speak" in failure.value.cell
    assert "ValueError: cannot say 'Broken.'" in str(failure.value)


@pytest.mark.slow
def test_the_key_appears_nowhere(emulator, tmp_path, caplog, failing_notebook):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    run_kaggle(emulator, out, {"utterances": lines(2)})
    with pytest.raises(kaggletts.RunFailed) as failure:
        run_kaggle(emulator, out, {"text": "x"}, notebook=failing_notebook)
    searched = [p for root in (out, tmp_path / "state") for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "notebook.ipynb" for p in searched), "the pushed notebook was searched"
    for path in searched:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text and KEY not in str(failure.value)
    assert KEY not in repr(Credentials(USER, key=KEY))


def test_credentials_follow_the_clients_lookup_order(tmp_path, caplog):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    with pytest.raises(kaggletts.UsageError, match="KAGGLE_API_TOKEN"):
        find_credentials({}, home)

    kaggle_json = home / ".kaggle" / "kaggle.json"
    kaggle_json.write_text(json.dumps({"username": "carol", "key": "k1"}))
    kaggle_json.chmod(0o644)
    assert find_credentials({}, home).username == "carol"
    assert "readable by other users" in caplog.text

    assert find_credentials({"KAGGLE_USERNAME": "dan", "KAGGLE_KEY": "k2"}, home).username == "dan"
    token_txt = home / ".kaggle" / "access_token.txt"
    token_txt.write_text("from-txt\n")
    token_txt.chmod(0o600)
    assert find_credentials({"KAGGLE_USERNAME": "dan", "KAGGLE_KEY": "k2"}, home).token == (
        "from-txt"
    )
    (home / ".kaggle" / "access_token").write_text("from-file")
    assert find_credentials({}, home).token == "from-file"
    token = find_credentials(
        {"KAGGLE_API_TOKEN": "tok", "KAGGLE_USERNAME": "dan", "KAGGLE_KEY": "k2"}, home
    )
    assert token.token == "tok" and token.key is None


def test_polling_is_quick_at_first_and_sparse_later():
    schedule = PollSchedule()
    checks, elapsed = 0, 0.0
    while elapsed < 60:
        elapsed += schedule.interval(elapsed)
        checks += 1
    assert checks <= 20, "no more calls than fixed 3 s polling in the first minute"
    assert schedule.interval(5) <= 2 and schedule.interval(3600) == schedule.cap


def test_a_wrong_key_is_a_clear_error_with_exit_code_2(emulator, tmp_path):
    out = str(tmp_path / "out")
    done = kaggletts_cli(
        "run",
        "espeak",
        "-p",
        "text",
        "Hi",
        "--backend",
        "kaggle",
        "--out",
        out,
        env=cli_env(emulator, KAGGLE_KEY="not-the-key"),
    )
    assert done.returncode == 2
    assert "refused these credentials" in done.stderr and "HTTP 401" in done.stderr
    assert "Traceback" not in done.stderr and "not-the-key" not in done.stderr


@pytest.mark.slow
def test_a_reference_voice_is_uploaded_once_as_a_private_dataset(tmp_path, standins):
    voice = standins.wav(tmp_path / "voices" / "narrator.wav", 1.5)
    clone = {
        "mode": "voice_clone",
        "model_id": "Qwen/Qwen3-TTS-12Hz-1.7B-Base",
        "ref_audio": str(voice),
        "ref_text": "The reference transcript.",
    }
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, image_paths=[standins.dir]
    ) as emulator:

        def clone_run(*texts: str) -> kaggletts.Result:
            return kaggletts.execute(
                "qwen",
                {**clone, "utterances": list(texts)},
                backend="kaggle",
                output_dir=tmp_path / "out",
                endpoint=emulator.url,
                credentials=Credentials(USER, key=KEY),
                **FAST,
            )

        first = clone_run("One.", "Two.")
        assert [c.text for c in first.clips] == ["One.", "Two."]
        [dataset] = emulator.store.datasets.values()
        assert dataset.is_private and dataset.slug.startswith("kaggletts-voices-")
        metadata = json.loads((first.directory / "kernel" / "kernel-metadata.json").read_text())
        assert metadata["dataset_sources"] == [f"{USER}/{dataset.slug}"]
        assert metadata["enable_gpu"] and metadata["machine_shape"] == "NvidiaTeslaT4"
        assert first.clips[0].settings["ref_audio"] == f"{dataset.slug}/narrator.wav"

        clone_run("Three.")
        assert len(emulator.store.datasets) == 1 and emulator.calls["StartBlobUpload"] == 1

        standins.wav(voice, 2.5)
        clone_run("Four.")
        assert len(emulator.store.datasets) == 2 and emulator.calls["StartBlobUpload"] == 2

        quota = backend(emulator).quota()
        assert 0 < quota.used_seconds < quota.allowed_seconds == 30 * 3600, "GPU runs count"


@pytest.mark.slow
def test_the_kernels_progress_arrives_while_the_session_runs(
    emulator, tmp_path, caplog, notebook_maker
):
    source = notebook_maker(
        tmp_path / "slow.ipynb",
        "lines: int = 3  # How many",
        ("work", "import time, scrapbook\n"
                 "for k in range(1, lines + 1):\n"
                 "    time.sleep(0.8)\n"
                 "    print(f'[{k}/{lines}] {k:03d}-line.wav 1.5s', flush=True)\n"
                 "scrapbook.glue('clips', [], encoder='json')"),
    )
    seen = []

    def on_progress(progress):
        [slug] = kernels(emulator)
        seen.append((progress.done, progress.total, progress.file, emulator.status(USER, slug)))

    caplog.set_level(logging.INFO, logger="kaggletts")
    run_kaggle(emulator, tmp_path / "out", {"lines": 3}, notebook=source, on_progress=on_progress)
    assert [s[:3] for s in seen] == [(k, 3, f"{k:03d}-line.wav") for k in (1, 2, 3)]
    assert seen[0][3] == "RUNNING", "the first line was reported while the session ran"
    assert "[2/3] 002-line.wav 1.5s" in caplog.text
