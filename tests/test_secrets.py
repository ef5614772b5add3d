"""No credential ever shows: `run`, `quota` and `doctor` with a recognisable secret in every
place credentials are read from, and every byte they print or leave behind searched."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kaggletts.emulator import Emulator

SECRET = "SUPERSECRET"
# A token longer than a file name may be (Kaggle's tokens are long): it names no file, is
# not active, and the lookup goes on to kaggle.json.
LONG_TOKEN = (SECRET + "TOKEN" * 100)[:311]
KEY = SECRET + "KEY123"


def test_no_command_shows_a_credential_from_any_source(tmp_path: Path, kaggletts_cmd):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "alice", "key": KEY}))
    (home / ".kaggle" / "access_token").write_text(SECRET + "FILETOKEN")
    (home / ".kaggle" / "credentials.json").write_text(
        json.dumps({"refresh_token": SECRET + "REFRESH", "access_token": SECRET + "OAUTH"})
    )
    for path in (home / ".kaggle").iterdir():
        path.chmod(0o600)
    out = tmp_path / "out"
    with Emulator(state_dir=tmp_path / "state", users={"alice": KEY}, seed=0) as emulator:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")},
            "HOME": str(home),
            "KAGGLE_API_TOKEN": LONG_TOKEN,
            "KAGGLETTS_KAGGLE_ENDPOINT": emulator.url,
        }
        runs = [
            kaggletts_cmd("-v", "run", "espeak", "--text", "Hello there.", "--backend",
                          "kaggle", "--out", str(out), "--keep-kernels", env=env),
            kaggletts_cmd("quota", env=env),
            kaggletts_cmd("doctor", env=env),
        ]
    for done in runs:
        assert "internal error" not in done.output, done.output
        assert SECRET not in done.output, done.output
    assert runs[0].code == 0 and runs[1].code == 0, runs[0].output + runs[1].output
    left = [p for root in (out, tmp_path / "state") for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "job.json" for p in left)
    assert any(p.name == "notebook.ipynb" for p in left), "the pushed notebook was searched"
    for path in left:
        assert SECRET.encode() not in path.read_bytes(), path
