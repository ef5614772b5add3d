"""Credentials are found where the official client (kaggle 2.2.x) finds them: each
arrangement of files and variables is looked up by kaggletts and by the unchanged
official client (in a subprocess, without its import-time authentication), both asking
the emulator about tokens, and the two must agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kaggletts.backends.kaggle.credentials import find_credentials
from kaggletts.backends.kaggle.remote import KaggleRemote
from kaggletts.emulator import Emulator
from kaggletts.errors import UsageError

# The official client's own lookup: `kaggle/__init__.py` authenticates at import, so the
# package is registered without running it; KaggleApi then runs unchanged, aimed at the
# emulator (it reads its config folder from the environment when its module loads).
OFFICIAL_LOOKUP = """
import importlib.util, json, sys, types
spec = importlib.util.find_spec("kaggle")
package = types.ModuleType("kaggle")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["kaggle"] = package
from kaggle.api.kaggle_api_extended import AuthMethod, KaggleApi

class Aimed(KaggleApi):
    def build_kaggle_client(self):
        client = super().build_kaggle_client()
        client._http_client._endpoint = sys.argv[1]
        return client

api = Aimed()
try:
    api.authenticate()
    values = api.config_values
    legacy = values.get("auth_method") == str(AuthMethod.LEGACY_API_KEY)
    found = {"username": values.get("username"),
             "secret": values.get("key") if legacy else values.get("token")}
except SystemExit:
    found = None
print("\\nLOOKUP " + json.dumps(found))
"""


@dataclass
class Arrangement:
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()


def kaggle_json(user: str, key: str) -> str:
    return json.dumps({"username": user, "key": key})


def oauth_file(token: str, user: str = "alice") -> str:
    return json.dumps(
        {
            "refresh_token": "refresh-me",
            "access_token": token,
            "access_token_expiration": "2099-01-01T00:00:00+00:00",
            "username": user,
            "scopes": [],
        }
    )


ARRANGEMENTS = {
    "kaggle.json in ~/.kaggle": Arrangement({".kaggle/kaggle.json": kaggle_json("alice", "k1")}),
    "XDG folder when ~/.kaggle is absent": Arrangement(
        {".config/kaggle/kaggle.json": kaggle_json("alice", "k1")}
    ),
    "XDG folder ignored while ~/.kaggle exists": Arrangement(
        {".config/kaggle/kaggle.json": kaggle_json("alice", "k1")}, dirs=(".kaggle",)
    ),
    "XDG_CONFIG_HOME moves the XDG folder": Arrangement(
        {"xdg/kaggle/kaggle.json": kaggle_json("bob", "k2")},
        {"XDG_CONFIG_HOME": "{home}/xdg"},
    ),
    "KAGGLE_CONFIG_DIR": Arrangement(
        {"elsewhere/kaggle.json": kaggle_json("bob", "k2"),
         ".kaggle/kaggle.json": kaggle_json("alice", "k1")},
        {"KAGGLE_CONFIG_DIR": "{home}/elsewhere"},
    ),
    "KAGGLE_USERNAME merged with the file's key": Arrangement(
        {".kaggle/kaggle.json": kaggle_json("alice", "k1")}, {"KAGGLE_USERNAME": "bob"}
    ),
    "KAGGLE_KEY merged with the file's username": Arrangement(
        {".kaggle/kaggle.json": json.dumps({"username": "alice"})}, {"KAGGLE_KEY": "k3"}
    ),
    "KAGGLE_USERNAME alone": Arrangement(env={"KAGGLE_USERNAME": "bob"}),
    "both variables, no file": Arrangement(env={"KAGGLE_USERNAME": "bob", "KAGGLE_KEY": "k2"}),
    "KAGGLE_API_TOKEN": Arrangement(
        {".kaggle/kaggle.json": kaggle_json("bob", "k2")}, {"KAGGLE_API_TOKEN": "{token}"}
    ),
    "KAGGLE_API_TOKEN naming a file": Arrangement(
        {"token.txt": "{token}\n"}, {"KAGGLE_API_TOKEN": "{home}/token.txt"}
    ),
    "an invalid token falls back to kaggle.json": Arrangement(
        {".kaggle/kaggle.json": kaggle_json("bob", "k2")}, {"KAGGLE_API_TOKEN": "expired"}
    ),
    "an invalid token file falls back to the variables": Arrangement(
        {".kaggle/access_token": "expired"}, {"KAGGLE_USERNAME": "bob", "KAGGLE_KEY": "k2"}
    ),
    "~/.kaggle/access_token": Arrangement({".kaggle/access_token": "{token}"}),
    "~/.kaggle/access_token.txt": Arrangement({".kaggle/access_token.txt": "{token}\n"}),
    "kaggle auth login's credentials.json": Arrangement(
        {".kaggle/credentials.json": oauth_file("{token}")}
    ),
    "legacy key before credentials.json": Arrangement(
        {".kaggle/credentials.json": oauth_file("{token}"),
         ".kaggle/kaggle.json": kaggle_json("bob", "k2")}
    ),
    "an invalid token and nothing else": Arrangement(env={"KAGGLE_API_TOKEN": "expired"}),
    "nothing at all": Arrangement(),
}


def arrange(arrangement: Arrangement, home: Path, token: str) -> dict[str, str]:
    def filled(text: str) -> str:
        return text.replace("{home}", str(home)).replace("{token}", token)

    for folder in arrangement.dirs:
        (home / folder).mkdir(parents=True, exist_ok=True)
    for name, text in arrangement.files.items():
        path = home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(filled(text))
        path.chmod(0o600)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("KAGGLE_") and name != "XDG_CONFIG_HOME"
    }
    env.update({name: filled(value) for name, value in arrangement.env.items()})
    env["HOME"] = str(home)
    return env


def official_lookup(env: dict[str, str], endpoint: str) -> dict | None:
    done = subprocess.run(
        [sys.executable, "-c", OFFICIAL_LOOKUP, endpoint],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert "LOOKUP " in done.stdout, done.stderr
    return json.loads(done.stdout.rsplit("LOOKUP ", 1)[1])


def our_lookup(env: dict[str, str], home: Path, endpoint: str) -> dict | None:
    try:
        credentials = KaggleRemote(find_credentials(env, home), endpoint).credentials
    except UsageError:
        return None
    return {"username": credentials.username, "secret": credentials.token or credentials.key}


@pytest.mark.parametrize("name", list(ARRANGEMENTS))
def test_credentials_are_found_where_the_official_client_finds_them(
    name: str, kaggle_emulator: Emulator, tmp_path: Path
):
    token = kaggle_emulator.auth.issue_token("alice")
    home = tmp_path / "home"
    home.mkdir()
    env = arrange(ARRANGEMENTS[name], home, token)
    ours = our_lookup(env, home, kaggle_emulator.url)
    official = official_lookup(env, kaggle_emulator.url)
    assert ours == official
