"""Checks on bucket names, keys, expiries and URLs, done before anything is signed or sent."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from urllib.parse import urlsplit

from ._exceptions import InvalidArgumentError
from ._redact import redact_url

MIN_EXPIRES = 1
MAX_EXPIRES = 7 * 24 * 3600  # SigV4's hard limit; S3 answers a cryptic 400 beyond it.
MAX_KEY_BYTES = 1024
MIN_CHUNK_SIZE = 4 * 1024
MAX_CHUNK_SIZE = 8 * 1024 * 1024

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_bucket(bucket: str) -> str:
    """Raise unless ``bucket`` follows S3's naming rules for general purpose buckets."""
    if not isinstance(bucket, str):
        raise InvalidArgumentError(f"bucket name must be a str, not {type(bucket).__name__}")
    problem = _bucket_problem(bucket)
    if problem is not None:
        raise InvalidArgumentError(f"invalid bucket name {bucket!r}: {problem}")
    return bucket


@functools.lru_cache(maxsize=4096)
def _bucket_problem(bucket: str) -> str | None:
    """What is wrong with a bucket name, or None. Cached: bulk jobs sign one
    bucket millions of times, and this check is then most of a URL's cost."""
    if not _BUCKET.match(bucket):
        return (
            "S3 bucket names are 3-63 characters of lowercase letters, digits, dots and "
            "hyphens, starting and ending with a letter or digit"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "no two adjacent dots, and no dot next to a hyphen"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        pass
    else:
        return "it looks like an IP address"
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        return "uses a prefix or suffix S3 reserves"
    return None


def check_key(key: str) -> str:
    """Raise unless ``key`` is a non-empty S3 key of at most 1,024 UTF-8 bytes."""
    if not isinstance(key, str):
        raise InvalidArgumentError(f"object key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidArgumentError("object key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgumentError(
            f"object key {key!r} is not valid Unicode (lone surrogate)"
        ) from None
    if size > MAX_KEY_BYTES:
        raise InvalidArgumentError(
            f"object key is {size} bytes in UTF-8; S3 allows at most 1024"
        )
    return key


def expires_seconds(expires_in: float | dt.timedelta) -> int:
    """Normalise an expiry given in seconds or as a timedelta, within SigV4's 1 s to 7 days."""
    if isinstance(expires_in, dt.timedelta):
        seconds = expires_in.total_seconds()
    elif isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        seconds = float(expires_in)
    else:
        raise InvalidArgumentError(
            f"expires_in must be seconds or a timedelta, not {type(expires_in).__name__}"
        )
    if not MIN_EXPIRES <= seconds <= MAX_EXPIRES:
        raise InvalidArgumentError(
            f"expires_in={seconds:g}s is outside what SigV4 allows "
            f"(1 s to 7 days = {MAX_EXPIRES} s)"
        )
    return int(seconds)


def check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise InvalidArgumentError(f"chunk_size must be an int, not {type(chunk_size).__name__}")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidArgumentError(
            f"chunk_size={chunk_size} is outside 4 KiB ({MIN_CHUNK_SIZE}) "
            f"to 8 MiB ({MAX_CHUNK_SIZE})"
        )
    return chunk_size


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")
    return value


def check_http_url(url: str) -> str:
    """Raise unless ``url`` is an absolute http(s) URL with a host."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"URL must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidArgumentError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = url if len(url) <= 80 else url[:77] + "..."
        raise InvalidArgumentError(f"not an http(s) URL: {redact_url(shown)!r}")
    return url
