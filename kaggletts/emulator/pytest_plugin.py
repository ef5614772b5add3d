"""pytest fixture `kaggle_emulator`: an in-process emulator on a free port, stopped afterwards.

Load it with `pytest_plugins = ["kaggletts.emulator.pytest_plugin"]` in a conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .emulator import Emulator

USERS = {"alice": "alice-key", "bob": "bob-key"}


@pytest.fixture
def kaggle_emulator(tmp_path: Path) -> Iterator[Emulator]:
    """Users `alice` (key `alice-key`) and `bob` (key `bob-key`); state under tmp_path."""
    with Emulator(state_dir=tmp_path / "kaggle-emulator", users=dict(USERS), seed=0) as emulator:
        yield emulator
