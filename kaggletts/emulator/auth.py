"""Who is calling (basic auth or bearer token) and signed, expiring download URLs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from pathlib import Path

from .wire import ApiError


class Authenticator:
    """Maps credentials to configured user names; anything else is a 401."""

    def __init__(self, users: dict[str, str]):
        self._lock = threading.Lock()
        self._keys = dict(users)
        # Each user's key doubles as their bearer token, so KAGGLE_API_TOKEN=<key> works.
        self._tokens = {key: name for name, key in users.items()}

    @property
    def users(self) -> list[str]:
        return sorted(self._keys)

    def set_users(self, users: dict[str, str]) -> None:
        with self._lock:
            self._keys = dict(users)
            self._tokens = {key: name for name, key in users.items()}

    def issue_token(self, user: str) -> str:
        """A fresh bearer token for `user`, as Kaggle's settings page would hand out."""
        token = "KGAT_" + secrets.token_hex(16)
        with self._lock:
            if user not in self._keys:
                raise KeyError(user)
            self._tokens[token] = user
        return token

    def user_for_token(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def identify(self, authorization: str | None) -> str:
        if not authorization:
            raise ApiError(401, "Unauthenticated: missing Authorization header")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            user = self.user_for_token(credentials.strip())
            if user is None:
                raise ApiError(401, "Unauthenticated: invalid or expired token")
            return user
        if scheme.lower() == "basic":
            return self._basic_user(credentials.strip())
        raise ApiError(401, f"Unauthenticated: unsupported scheme '{scheme}'")

    def _basic_user(self, credentials: str) -> str:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ApiError(401, "Unauthenticated: malformed basic credentials") from error
        name, _, key = decoded.partition(":")
        with self._lock:
            expected = self._keys.get(name)
        if expected is None or not hmac.compare_digest(expected.encode(), key.encode()):
            raise ApiError(401, "Unauthenticated: unknown user or wrong key")
        return name


class UrlSigner:
    """HMAC signatures over (kernel version, file, expiry), like a cloud storage signed URL."""

    def __init__(self, secret_file: Path, ttl_seconds: int):
        self.ttl_seconds = ttl_seconds
        if secret_file.exists():
            self._secret = secret_file.read_bytes()
        else:
            self._secret = secrets.token_bytes(32)
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.write_bytes(self._secret)
            secret_file.chmod(0o600)

    def _signature(self, resource: str, expires: int) -> str:
        message = f"{resource}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, resource: str, now: float | None = None) -> tuple[int, str]:
        expires = int((now if now is not None else time.time()) + self.ttl_seconds)
        return expires, self._signature(resource, expires)

    def verify(self, resource: str, expires: str | None, signature: str | None) -> None:
        if not expires or not signature or not expires.isdigit():
            raise ApiError(403, "Missing or malformed URL signature")
        if not hmac.compare_digest(self._signature(resource, int(expires)), signature):
            raise ApiError(403, "Invalid URL signature")
        if int(expires) < time.time():
            raise ApiError(403, "Signed URL has expired")
