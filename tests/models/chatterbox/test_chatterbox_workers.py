"""The chatterbox notebook's model replicas against the real chatterbox-tts with tiny
checkpoints: two "devices" (two CPU worker processes standing in for a T4 x2 session's GPUs)
each load the model once, prepare a reference voice once and speak the share the dealing
gives them; the clips come back in input order, the same as one process makes them, and the
parent process, which forks the workers, never touches CUDA."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chatterbox_runs import run_notebook

import kaggletts
from kaggletts.records import ClipRecord

NARRATOR = "voices/narrator.wav"
LINES: list[str | dict[str, str]] = [
    "A plain line in the built-in voice.",
    {"text": "A cloned line.", "audio_prompt": NARRATOR},
    "Plain and short.",
    {"text": "Cloned again, and this one is longer.", "audio_prompt": NARRATOR},
    {"text": "The third cloned line.", "audio_prompt": NARRATOR},
]
TEXTS = [line if isinstance(line, str) else line["text"] for line in LINES]
# Dealt longest first, each to the less loaded worker (a tie to the first): line 4 (37
# characters) to cpu:0, 1 (35) to cpu:1, 5 (22) to cpu:1, 3 (16) and 2 (14) to cpu:0, which
# ends with 67 characters against 57.
DEALT = ["cpu:1", "cpu:0", "cpu:0", "cpu:0", "cpu:1"]
# Entry points that initialise CUDA, or its driver: after either, a forked worker cannot use
# its GPU. Every real CUDA use, a tensor moved to a GPU included, goes through _lazy_init;
# is_available initialises the driver unless PYTORCH_NVML_BASED_CUDA_CHECK is 1 when called
# (torch.cuda._nvml_based_avail), so the probe counts it only when that switch is off.
CUDA_ENTRY_POINTS = ("is_available", "init", "_lazy_init")
# Each CPU worker gets half the cores (work_share): the one-process run gets as many, since
# CPU sums, and so the audio, depend on how many threads share them.
WORKER_THREADS = str(max(1, (os.cpu_count() or 1) // 2))


@contextmanager
def cuda_calls_in_the_parent(log: Path) -> Iterator[Path]:
    """Kernels started meanwhile create `log` (so a probe that did not load shows), then
    append each call the kernel process itself (not a worker it forks) makes to a CUDA entry
    point, with where it came from."""
    startup = Path(os.environ["IPYTHONDIR"]) / "profile_default" / "startup" / "50-cuda.py"
    startup.write_text(f"""\
import os
import traceback

import torch.cuda

open({str(log)!r}, "w").close()

def _watch(name, original, parent=os.getpid()):
    def watched(*args, **kwargs):
        fork_safe = (name == "is_available"
                     and os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1")
        if os.getpid() == parent and not fork_safe:
            with open({str(log)!r}, "a", encoding="utf-8") as calls:
                calls.write(f"{{name}} from " + "".join(traceback.format_stack(limit=12)))
        return original(*args, **kwargs)
    return watched

for _name in {CUDA_ENTRY_POINTS!r}:
    setattr(torch.cuda, _name, _watch(_name, getattr(torch.cuda, _name)))
""", encoding="utf-8")
    try:
        yield log
    finally:
        startup.unlink()


def speak(tmp: Path, inputs: Path, workers: int):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAGGLETTS_INPUT_ROOT", str(inputs))
        mp.setenv("OMP_NUM_THREADS", WORKER_THREADS)
        return run_notebook(tmp, {"utterances": LINES, "workers": workers})


@pytest.fixture(scope="module")
def one_worker(hf_home, inputs, tmp_path_factory):
    return speak(tmp_path_factory.mktemp("one-worker"), inputs, workers=1)


@pytest.fixture(scope="module")
def two_workers(hf_home, inputs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-workers")
    with cuda_calls_in_the_parent(tmp / "cuda-calls.txt") as log:
        run = speak(tmp, inputs, workers=2)
    return run, log.read_text(encoding="utf-8") if log.exists() else None


def spoken_in_order(run) -> list[ClipRecord]:
    result = run.outcome
    assert isinstance(result, kaggletts.Result), result
    assert [clip.text for clip in result.clips] == TEXTS
    assert [path.name[:4] for path in result.audio] == ["001-", "002-", "003-", "004-", "005-"]
    assert [clip.file for clip in result.clips] == [path.name for path in result.audio]
    return result.clips


def test_one_worker_speaks_in_this_process_on_the_cpu(one_worker):
    clips = spoken_in_order(one_worker)
    assert {clip.device for clip in clips} == {"cpu"}
    run_scrap = one_worker.outcome.scraps["run"]
    assert (run_scrap["device"], run_scrap["devices"]) == ("cpu", ["cpu"])
    assert one_worker.output.count("loaded chatterbox english in") == 1
    assert one_worker.output.count(f"prepared the voice of {NARRATOR}") == 1


def test_two_workers_each_speak_the_share_dealt_to_them_in_input_order(two_workers):
    run, _ = two_workers
    clips = spoken_in_order(run)
    assert [clip.device for clip in clips] == DEALT
    run_scrap = run.outcome.scraps["run"]
    assert (run_scrap["device"], run_scrap["devices"]) == ("cpu", ["cpu:0", "cpu:1"])
    assert (run_scrap["lines_done"], run_scrap["stopped_at_deadline"]) == (5, False)


def test_each_worker_loads_the_model_and_prepares_a_voice_once(two_workers):
    """Three cloned lines, on both workers: one model and one voice per worker, not per line
    (the workers' printing reaches the notebook through the kernel's output stream)."""
    run, _ = two_workers
    assert run.output.count("loaded chatterbox english in") == 2
    assert run.output.count(f"prepared the voice of {NARRATOR}") == 2


def test_two_workers_make_the_same_audio_as_one(one_worker, two_workers):
    """Every random draw in generation comes from torch's generator, seeded before each
    line, and the replicas are built after the same seed: with as many threads per process,
    a line sounds the same whichever process speaks it."""
    run, _ = two_workers
    assert [c.sha256 for c in run.outcome.clips] == [
        c.sha256 for c in one_worker.outcome.clips]


def test_the_parent_that_forks_the_workers_never_touches_cuda(two_workers):
    """A fork cannot use CUDA once its parent has initialised it (or, through
    torch.cuda.is_available, its driver): on a T4 x2 the workers would fail on their GPUs."""
    run, cuda_calls = two_workers
    assert isinstance(run.outcome, kaggletts.Result), run.outcome
    assert cuda_calls == "", cuda_calls  # None: the probe did not load


def test_the_parent_fetches_the_multilingual_tokenizer_files_before_the_workers(
    hf_home, inputs, tmp_path
):
    """The pkuseg model is downloaded and unzipped into ~/.pkuseg without a lock: two
    workers building their tokenizers at once would write the same folder together."""
    record = tmp_path / "segmenters.txt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAGGLETTS_INPUT_ROOT", str(inputs))
        mp.setenv("OMP_NUM_THREADS", WORKER_THREADS)
        mp.setenv("KAGGLETTS_SEGMENTER_LOG", str(record))
        run = run_notebook(tmp_path, {"variant": "multilingual", "language_id": "fr",
                                      "utterances": ["Bonjour.", "Bonsoir."], "workers": 2})
    assert isinstance(run.outcome, kaggletts.Result), run.outcome
    first, *workers = [line.split() for line in record.read_text().splitlines()]
    assert len(workers) == 2 and all(ppid == first[0] for _, ppid in workers), (
        "the first tokenizer is built in the process that forks the workers")
