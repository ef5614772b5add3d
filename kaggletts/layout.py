"""The layout of the output folder: `<output>/<notebook>/<job id>/`, and the names kaggletts
gives the files and folders it writes in a job's folder (which a notebook's clips therefore
may not take)."""

from __future__ import annotations

import re

from kaggletts.kernel.support import LEDGER_FILE

# Where jobs go unless told otherwise (--out, KAGGLETTS_OUTPUT, the settings).
DEFAULT_OUTPUT_DIR = "kaggletts-output"
# The job record: what was asked, where, and how far it got.
RECORD_FILE = "job.json"
# Held by the process that drives the job.
LOCK_FILE = ".job.lock"
# The stored result: a repeat of the request returns it at once.
RESULT_FILE = "result.json"
# The audition page, and its table for spreadsheets.
PAGE_FILE = "index.html"
CSV_FILE = "clips.csv"
# The executed notebook, under the name Kaggle gives it among a session's outputs.
EXECUTED_NOTEBOOK = "__notebook__.ipynb"
# Kaggle's own rendering of the executed notebook, among a session's outputs.
KAGGLE_RESULTS_PAGE = "__results__.html"
# A local run's notebook with its parameters injected.
PARAMETERIZED_NOTEBOOK = "parameterized.ipynb"
# The kernel's log: a local kernel's own stderr, or a Kaggle session's log.
KERNEL_LOG = "kernel.log"
# The folder pushed to Kaggle as a kernel.
KERNEL_FOLDER = "kernel"
# Each Kaggle attempt's downloaded line ledger, as `ledger/<attempt>/<LEDGER_FILE>`.
LEDGER_FOLDER = "ledger"
# Where a plain notebook's files whose names kaggletts keeps for itself are put back.
NOTEBOOK_FILES = "notebook-files"
# The folder of each session of a job run in several (`shard-1`, `shard-2`, ...).
SHARD_FOLDER = re.compile(r"shard-\d+")


def shard_folder(index: int) -> str:
    return f"shard-{index}"


# Names kaggletts itself writes in a job folder: a clip may never take one of them.
RESERVED_NAMES = frozenset(
    {
        RECORD_FILE,
        RESULT_FILE,
        PAGE_FILE,
        CSV_FILE,
        KERNEL_FOLDER,
        KERNEL_LOG,
        PARAMETERIZED_NOTEBOOK,
        EXECUTED_NOTEBOOK,
        KAGGLE_RESULTS_PAGE,
        LEDGER_FILE,
        LEDGER_FOLDER,
        NOTEBOOK_FILES,
    }
)
