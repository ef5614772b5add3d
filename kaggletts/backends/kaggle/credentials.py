"""Kaggle credentials, looked up in the order the official client uses, and never shown."""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from kaggletts.errors import UsageError

log = logging.getLogger("kaggletts")

WHERE_TO_PUT_THEM = (
    "no Kaggle credentials found. Create an API token at https://www.kaggle.com/settings and "
    "either set KAGGLE_API_TOKEN (or save it in ~/.kaggle/access_token), or set "
    "KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json in ~/.kaggle (chmod 600; "
    "KAGGLE_CONFIG_DIR moves that folder)"
)


@dataclass(frozen=True)
class Credentials:
    """A username with a legacy key, or an access token; secrets stay out of repr()."""

    username: str | None
    key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""


def find_credentials(
    environ: dict[str, str] | None = None, home: Path | None = None
) -> Credentials:
    env = os.environ if environ is None else environ
    home = home or Path.home()
    username = env.get("KAGGLE_USERNAME")

    token = env.get("KAGGLE_API_TOKEN")
    if token and Path(token).is_file():
        token = Path(token).read_text().strip()
    if token:
        return Credentials(username, token=token, source="KAGGLE_API_TOKEN")
    # kagglesdk reads ~/.kaggle/access_token, then access_token.txt (as Windows editors
    # tend to save it), both before the legacy username and key.
    for token_file in (home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt"):
        if token_file.is_file() and (token := token_file.read_text().strip()):
            _warn_if_readable_by_others(token_file)
            return Credentials(username, token=token, source=str(token_file))

    if username and env.get("KAGGLE_KEY"):
        return Credentials(username, key=env["KAGGLE_KEY"], source="KAGGLE_USERNAME/KAGGLE_KEY")

    config_dir = (
        Path(env["KAGGLE_CONFIG_DIR"]) if env.get("KAGGLE_CONFIG_DIR") else home / ".kaggle"
    )
    kaggle_json = config_dir / "kaggle.json"
    if kaggle_json.is_file():
        _warn_if_readable_by_others(kaggle_json)
        try:
            data = json.loads(kaggle_json.read_text())
            return Credentials(data["username"], key=data["key"], source=str(kaggle_json))
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{kaggle_json}: expected JSON with `username` and `key`") from None
    raise UsageError(WHERE_TO_PUT_THEM)


def _warn_if_readable_by_others(path: Path) -> None:
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "warning: %s is readable by other users of this machine; run: chmod 600 %s", path, path
        )
