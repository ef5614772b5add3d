"""Kaggle's JSON wire conventions: errors, names, durations, timestamps, version labels."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from slugify import slugify

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
OWNER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
# The kaggle client refuses a kernel title shorter than this, in these words (kaggle 2.2.5,
# kaggle_api_extended.py, kernels_push); the emulator answers such a push alike, with a 400.
MIN_TITLE_LENGTH = 5
SHORT_TITLE_MESSAGE = "Title must be at least five characters"
MIN_SLUG_LENGTH = 5
MAX_SLUG_LENGTH = 50


class ApiError(Exception):
    """A failure reported to the client as an HTTP status with a JSON `{code, message}` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.status, "message": self.message}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def permission_denied(what: str) -> ApiError:
    # Kaggle answers 403 both for a private kernel of someone else and for one that does
    # not exist, so a caller cannot probe for other users' private kernels.
    return ApiError(403, f"Permission '{what}' was denied")


def title_slug(title: str) -> str:
    return slugify(title)


def split_ref(ref: str) -> tuple[str, str]:
    """Split `owner/slug`, validating both halves as Kaggle does."""
    parts = ref.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise bad_request(f"'{ref}' is not of the form owner/slug")
    owner, slug = parts
    check_owner(owner)
    check_slug(slug)
    return owner, slug


def check_owner(owner: str) -> None:
    if not OWNER_PATTERN.match(owner):
        raise bad_request(f"Invalid owner '{owner}'")


def check_slug(slug: str) -> None:
    if not MIN_SLUG_LENGTH <= len(slug) <= MAX_SLUG_LENGTH:
        raise bad_request(
            f"Slug '{slug}' must be {MIN_SLUG_LENGTH} to {MAX_SLUG_LENGTH} characters long"
        )
    if not SLUG_PATTERN.match(slug):
        raise bad_request(
            f"Slug '{slug}' may hold only lowercase letters, digits and single hyphens"
        )


def parse_version_label(label: str | None) -> int | None:
    """`v3` -> 3. Kaggle answers 404 for a bare number, so the emulator does too."""
    if label is None or label == "":
        return None
    match = re.fullmatch(r"v([1-9][0-9]*)", label)
    if not match:
        raise ApiError(404, f"Version '{label}' not found")
    return int(match.group(1))


def duration(seconds: float) -> str:
    """Protobuf JSON duration, e.g. `108000s` or `1.5s`."""
    whole = int(seconds)
    millis = int(round((seconds - whole) * 1000))
    if millis >= 1000:
        whole, millis = whole + 1, 0
    return f"{whole}.{millis:03d}s" if millis else f"{whole}s"


def timestamp(epoch_seconds: float) -> str:
    """Protobuf JSON timestamp in UTC with milliseconds, as kagglesdk parses it."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def require_str(body: dict[str, object], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"'{key}' is required")
    return value


def optional_str(body: dict[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{key}' must be a string")
    return value


def optional_int(body: dict[str, object], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"'{key}' must be an integer")
    return value


def optional_bool(body: dict[str, object], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"'{key}' must be a boolean")
    return value


def str_list(body: dict[str, object], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_request(f"'{key}' must be a list of strings")
    return list(value)
