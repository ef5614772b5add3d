"""Fixtures for the emulator tests: the plugin's emulator and official clients aimed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import KEYS

from kaggletts.emulator import Emulator


@pytest.fixture
def make_emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start emulators with settings of the test's choosing (e.g. `assume={...}`), users
    `alice` and `bob` as in `kaggle_emulator`; each is stopped after the test."""
    started: list[Emulator] = []

    def make(**settings: Any) -> Emulator:
        state = tmp_path / f"emulator-{len(started)}"
        emulator = Emulator(state_dir=state, users=dict(KEYS), seed=0, **settings).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def official_api(
    kaggle_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Any]]:
    """Build unchanged `KaggleApi` clients for a user, pointed at the emulator."""
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", KEYS["alice"])
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    from kaggle.api.kaggle_api_extended import KaggleApi

    class EmulatorKaggleApi(KaggleApi):
        # KaggleApi builds a fresh KaggleClient per call; only its endpoint changes.
        def build_kaggle_client(self):
            client = super().build_kaggle_client()
            client._http_client._endpoint = kaggle_emulator.url
            return client

    def build(user: str = "alice") -> KaggleApi:
        monkeypatch.setenv("KAGGLE_USERNAME", user)
        monkeypatch.setenv("KAGGLE_KEY", KEYS[user])
        api = EmulatorKaggleApi()
        api.authenticate()
        return api

    yield build
