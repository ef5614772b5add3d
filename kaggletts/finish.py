"""The end of a job's run, whichever backend ran it: the result stored, with the audition
page beside it, written from the result, the job's record and what the run cost."""

from __future__ import annotations

from pathlib import Path

from kaggletts import cost
from kaggletts.errors import CorruptRecord
from kaggletts.jobs import read_record_file
from kaggletts.layout import RECORD_FILE
from kaggletts.page import write_page
from kaggletts.result import Result


def finish(result: Result) -> Result:
    """Store a finished run's result and write its page (index.html, clips.csv). The page
    first: the next request returns a stored result as it is, so one must never be stored
    without its page, even when the disk fills up between the two."""
    write_result_page(result)
    result.save()
    return result


def write_result_page(result: Result) -> Path:
    """Write (or write again) the result's page; returns its path."""
    return write_page(result, kernel_urls(result.directory), cost.rate(result))


def kernel_urls(directory: Path) -> list[str]:
    """The Kaggle kernels' urls from the job record; none for a local run, a record
    without them, or one that cannot be read (the page never depends on them)."""
    try:
        record = read_record_file(directory / RECORD_FILE)
    except CorruptRecord:
        return []
    shards = record.run.get("shards") if record else None
    if not isinstance(shards, list):
        return []
    return [s["url"] for s in shards if isinstance(s, dict) and isinstance(s.get("url"), str)]
