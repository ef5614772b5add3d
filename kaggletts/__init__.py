"""kaggletts: open text-to-speech notebooks, run on Kaggle's free GPUs or locally.

import kaggletts
result = kaggletts.execute("espeak", {"text": "Hello"})
result.audio  # absolute paths of the WAV files, in input order
audiobook = kaggletts.book("novel.epub", "espeak")
audiobook.m4b  # one M4B, a chapter mark per chapter
"""

from kaggletts.api import execute
from kaggletts.audiobook import Audiobook, book
from kaggletts.errors import (
    Incomplete,
    Interrupted,
    KaggleTTSError,
    LeftOnKaggle,
    QuotaExhausted,
    RunFailed,
    UsageError,
)
from kaggletts.notebook import find_notebook, notebook_names
from kaggletts.parameters import ParameterSet
from kaggletts.parameters import load as load_params
from kaggletts.result import Result
from kaggletts.voicelist import VoiceChoice, voices

__all__ = [
    "Audiobook",
    "Incomplete",
    "Interrupted",
    "KaggleTTSError",
    "LeftOnKaggle",
    "ParameterSet",
    "QuotaExhausted",
    "Result",
    "RunFailed",
    "UsageError",
    "VoiceChoice",
    "book",
    "execute",
    "find_notebook",
    "load_params",
    "notebook_names",
    "voices",
]
__version__ = "0.1.0"
