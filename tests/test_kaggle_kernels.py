"""What the Kaggle backend pushes and how it follows a kernel: slugs that round-trip, a
push counted only once a run exists, kernels that vanish, one kernel for one request
whatever the output folder. Against the emulator in its default mode."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import nbformat
import pytest
from helpers import (
    CRASH_TEXTS,
    FAST,
    KEY,
    USER,
    kernels,
    pushes,
    record_of,
    run_kaggle,
    start_client,
    wait_until,
)

import kaggletts
from kaggletts.backends.kaggle import kernel
from kaggletts.backends.kaggle.credentials import Credentials
from kaggletts.backends.kaggle.kernel import slug_of, slug_stem, title_for
from kaggletts.backends.kaggle.records import RunStore, Shard
from kaggletts.backends.kaggle.remote import KaggleRemote
from kaggletts.emulator import Emulator, Latency
from kaggletts.emulator.wire import check_slug
from kaggletts.jobs import find_job

pytestmark = pytest.mark.slow


# Notebook names of every kind: Kaggle's slug rules, python-slugify's transliteration and
# the 20-character cut each have a way to break a round trip.
NOTEBOOK_NAMES = [
    "tts_batch_generator_2",
    "tts-batch-generator-2",
    "TTS Batch Generator 2",
    "a",
    "42",
    "2024_01_31",
    "___",
    "!!!",
    "",
    "-leading-and-trailing-",
    "dots.in.the.name",
    "x" * 200,
    "word " * 30,
    "abcdefghijklmnopqrs_uvw",
    "abcdefghijklmnopqrst-uvw",
    "Café au lait",
    "straße",
    "日本語のノート",
    "Привет мир",
    "مرحبا",
    "emoji 🎤 voices",
    "zero\u200bwidth",
    "tab\tand\nnewline",
    "İstanbul",
    "ﬁnal ligature",
    "Ⅻ roman",
    "٣٤ digits",
    "MiXeD_CaSe-123_abc",
] + [f"name_{n}_{'x' * n}" for n in range(0, 40, 3)]


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_every_slug_is_what_kaggle_derives_from_its_title(name):
    for shard in (1, 12, 250):
        for attempt in (1, 9, 99):
            slug = f"{slug_stem(name, '79aa37b7a2d1e0f3', shard)}-{attempt}"
            assert slug_of(title_for(slug)) == slug
            check_slug(slug)  # Kaggle's form: 5 to 50 characters, [a-z0-9] and single dashes
            assert len(title_for(slug)) >= 5



def first_shard(job_id: str, out: Path) -> Shard:
    """The first shard of the job's recorded Kaggle run."""
    run = RunStore(find_job(job_id, out)).load()
    assert run is not None, f"job {job_id} has no Kaggle run recorded"
    return run.shards[0]

def test_a_name_with_underscores_and_digits_runs_under_its_own_slug(
    emulator, tmp_path, notebook_maker
):
    path = notebook_maker(
        tmp_path / "tts_batch_generator_2.ipynb",
        'text = ""',
        ("glue", "import scrapbook\nscrapbook.glue('clips', [], encoder='json')"),
    )
    result = run_kaggle(emulator, tmp_path / "out", {"text": "hi"}, notebook=path)
    shard = first_shard(result.job_id, tmp_path / "out")
    assert shard.slug.startswith("kaggletts-tts-batch-generator-") and shard.filed_as is None
    assert emulator.push_count(USER, shard.slug) == 1


@pytest.mark.timeout(120)
def test_a_push_filed_elsewhere_is_followed_where_the_reply_says(
    emulator, tmp_path, monkeypatch, caplog
):
    # A title that does not slugify to the slug, as a future slug rule of Kaggle's might
    # make it: the reply names the kernel's real address, and the run follows it.
    monkeypatch.setattr(kernel, "title_for", lambda slug: "elsewhere " + slug[-24:])
    result = run_kaggle(emulator, tmp_path / "out", {"text": "Filed elsewhere."})
    shard = first_shard(result.job_id, tmp_path / "out")
    assert shard.filed_as == slug_of("elsewhere " + shard.pushed_slug[-24:])
    assert emulator.push_count(USER, shard.filed_as) == 1
    assert "following that kernel" in caplog.text
    assert result.audio and all(path.is_file() for path in result.audio)


def test_a_notebook_without_a_kernelspec_is_pushed_with_one(
    emulator, tmp_path, notebook_maker
):
    path = notebook_maker(
        tmp_path / "bare.ipynb",
        'text = ""',
        ("glue", "import scrapbook\nscrapbook.glue('clips', [], encoder='json')"),
    )
    bare = nbformat.read(path, as_version=4)
    del bare.metadata["kernelspec"]
    nbformat.write(bare, path)

    result = run_kaggle(emulator, tmp_path / "out", {"text": "hi"}, notebook=path)
    assert result.status == "complete"
    pushed = json.loads(next((tmp_path / "out").rglob("kernel/notebook.ipynb")).read_text())
    assert pushed["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.timeout(120)
def test_a_push_that_left_a_kernel_without_a_run_is_pushed_again_as_a_new_attempt(
    emulator, tmp_path
):
    emulator.fail_next("SaveKernel", "empty-kernel")
    result = run_kaggle(emulator, tmp_path / "out", {"text": "Half a push."})
    shard = first_shard(result.job_id, tmp_path / "out")
    assert shard.attempt == 2 and pushes(emulator) == 1
    # The kernel the half push left is not left behind.
    assert kernels(emulator) == [shard.slug]
    assert result.audio and all(path.is_file() for path in result.audio)


@pytest.mark.timeout(120)
def test_a_deleted_kernel_is_reported_gone_and_the_request_pushes_it_anew(tmp_path):
    out = tmp_path / "out"
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=30)
    ) as slow:
        client = start_client(slow, out)
        wait_until(
            lambda: any(
                s["state"] == "pushed" for s in record_of(out)["run"].get("shards", [])
            ) if list(out.rglob("job.json")) else False,
            "the client never recorded its push",
        )
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)
        [slug] = kernels(slow)
        # Deleted on kaggle.com, or by another client, while nobody watched.
        KaggleRemote(Credentials(USER, key=KEY), slow.url).delete_kernel(slug)

        with pytest.raises(kaggletts.RunFailed) as gone:
            run_kaggle(slow, out, {"utterances": CRASH_TEXTS})
        said = str(gone.value)
        assert "no longer exists" in said and "--force" in said
        assert "keep running" not in said and "attach" not in said

        slow.latency = Latency()
        result = run_kaggle(slow, out, {"utterances": CRASH_TEXTS})
        assert result.audio and all(path.is_file() for path in result.audio)
        assert first_shard(result.job_id, out).attempt == 2


def test_force_pushes_a_new_attempt_and_never_to_a_kept_kernel(emulator, tmp_path):
    first = run_kaggle(emulator, tmp_path / "out", {"text": "Forced again."})
    again = kaggletts.execute(
        "espeak", {"text": "Forced again."}, backend="kaggle", output_dir=tmp_path / "out",
        endpoint=emulator.url, credentials=Credentials(USER, key=KEY), force=True,
        **{**FAST, "keep_kernels": True},
    )
    assert again.job_id == first.job_id and not again.cached
    shard = first_shard(again.job_id, tmp_path / "out")
    assert shard.attempt == 2
    assert [emulator.push_count(USER, slug) for slug in kernels(emulator)] == [1, 1]


@pytest.mark.timeout(180)
def test_one_request_into_two_folders_at_once_pushes_once(tmp_path):
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY}, latency=Latency(cold_start=3.0)
    ) as slowish:
        first = start_client(slowish, tmp_path / "A")
        wait_until(lambda: pushes(slowish) >= 1, "the first client never pushed")
        second = start_client(slowish, tmp_path / "B")
        outputs = [client.communicate(timeout=150) for client in (first, second)]
        assert [c.returncode for c in (first, second)] == [0, 0], outputs
        assert pushes(slowish) == 1 and len(kernels(slowish)) == 1
    for folder, (printed, _) in zip(("A", "B"), outputs, strict=True):
        audio = [Path(name) for name in printed.split()]
        assert audio and all(p.is_file() and p.is_relative_to(tmp_path / folder) for p in audio)
    record = record_of(tmp_path / "B")
    assert record["state"] == "complete"
    assert all(Path(s["directory"]).is_relative_to(tmp_path / "B") for s in record["run"]["shards"])
