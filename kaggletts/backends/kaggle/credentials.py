"""Kaggle credentials, found where the official client (kaggle 2.2.x) finds them, and never
shown.

The client's own lookup cannot be called: importing `kaggle` authenticates against the
production service, KaggleApi fixes its config folder when the module is imported and
creates it, prints its warnings and exits the process when nothing is found. So the lookup
is spelled out here, and tests/test_credentials.py compares it, arrangement by
arrangement, with the official client's own result.

The order (kaggle_api_extended.py `authenticate`, kagglesdk's `get_access_token_from_env`
and `KaggleCredentials`): an access token (KAGGLE_API_TOKEN, the token or a file holding
it; else ~/.kaggle/access_token or access_token.txt), then a username and key (kaggle.json
merged key by key with KAGGLE_* variables), then `kaggle auth login`'s
~/.kaggle/credentials.json. A token Kaggle calls inactive is skipped for the next source;
that check needs the server, so it happens in KaggleRemote, through `fallback`."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from dataclasses import dataclass, field, replace
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
    """A username with a legacy key, an access token, or `kaggle auth login`'s OAuth file;
    secrets stay out of repr(). `fallback` is what the client uses instead when Kaggle
    calls the token inactive (expired or revoked)."""

    username: str | None
    key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""
    # The file they were read from, if any (its mode is worth checking).
    file: Path | None = None
    oauth_file: Path | None = None
    fallback: Credentials | None = field(default=None, repr=False)


def find_credentials(
    environ: dict[str, str] | None = None, home: Path | None = None
) -> Credentials:
    env = os.environ if environ is None else environ
    home = home or Path.home()
    found = [c for c in (_token(env, home), _legacy(env, home), _oauth(home)) if c is not None]
    if not found:
        raise UsageError(WHERE_TO_PUT_THEM)
    chosen = found[-1]
    for credentials in reversed(found[:-1]):
        chosen = replace(credentials, fallback=chosen)
    return chosen


def _token(env: dict[str, str] | os._Environ[str], home: Path) -> Credentials | None:
    value = env.get("KAGGLE_API_TOKEN")
    if value:
        # The variable holds the token or names a file holding it. A token can be longer
        # than a file name may be: asking the file system then fails (ENAMETOOLONG), and
        # that means it is no file name.
        if _is_file(Path(value)):
            token = Path(value).read_text().strip()
            return (
                Credentials(None, token=token, source="KAGGLE_API_TOKEN", file=Path(value))
                if token
                else None
            )
        return Credentials(None, token=value, source="KAGGLE_API_TOKEN")
    # kagglesdk reads ~/.kaggle/access_token, then access_token.txt (as Windows editors
    # tend to save it); neither moves with KAGGLE_CONFIG_DIR.
    for token_file in (home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt"):
        if _is_file(token_file) and (token := token_file.read_text().strip()):
            _warn_if_readable_by_others(token_file)
            return Credentials(None, token=token, source=str(token_file), file=token_file)
    return None


def config_dir(env: dict[str, str] | os._Environ[str], home: Path) -> Path:
    """kaggle.json's folder: KAGGLE_CONFIG_DIR, else ~/.kaggle, else on Linux (when
    ~/.kaggle does not exist) the XDG config folder's `kaggle`."""
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"])
    legacy = home / ".kaggle"
    if sys.platform.startswith("linux") and not legacy.exists():
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    return legacy


def _legacy(env: dict[str, str] | os._Environ[str], home: Path) -> Credentials | None:
    """kaggle.json's values, each overridden by its KAGGLE_* variable (KAGGLE_USERNAME
    for `username`, KAGGLE_KEY for `key`), as the client merges them."""
    kaggle_json = config_dir(env, home) / "kaggle.json"
    values: dict[str, object] = {}
    if _is_file(kaggle_json):
        _warn_if_readable_by_others(kaggle_json)
        try:
            values = json.loads(kaggle_json.read_text())
        except (OSError, ValueError):
            log.warning("warning: %s is not JSON; its values are ignored", kaggle_json)
        if not isinstance(values, dict):
            values = {}
    sources = {name: str(kaggle_json) for name in values}
    for name in ("username", "key"):
        if env.get(f"KAGGLE_{name.upper()}") is not None:
            values[name] = env[f"KAGGLE_{name.upper()}"]
            sources[name] = f"KAGGLE_{name.upper()}"
    username, key = values.get("username"), values.get("key")
    if username is None or key is None:
        return None
    used = dict.fromkeys((sources["username"], sources["key"]))
    file = kaggle_json if str(kaggle_json) in used else None
    source = "KAGGLE_USERNAME/KAGGLE_KEY" if file is None else " and ".join(used)
    return Credentials(str(username), key=str(key), source=source, file=file)


def _oauth(home: Path) -> Credentials | None:
    """`kaggle auth login`'s file, usable when it holds a refresh token (as kagglesdk's
    KaggleCredentials.load decides); the access token comes from it in KaggleRemote."""
    path = home / ".kaggle" / "credentials.json"
    if not _is_file(path):
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("refresh_token"):
        return None
    _warn_if_readable_by_others(path)
    return Credentials(data.get("username") or None, source=str(path), file=path, oauth_file=path)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _warn_if_readable_by_others(path: Path) -> None:
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "warning: %s is readable by other users of this machine; run: chmod 600 %s", path, path
        )
