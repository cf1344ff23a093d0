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
# Buckets made in us-east-1 before March 2018 may have capitals and underscores
# and be up to 255 characters long, and S3 still serves object requests on them
# (botocore signs them path style); the other rules hold for them as well.
_LEGACY_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")
# Access point names: 3-50 lowercase letters, digits and hyphens, starting and
# ending with a letter or digit. The resource may be written "accesspoint/name"
# or "accesspoint:name", as botocore accepts both.
_PARTITION = r"aws(?:-[a-z]+)*"
_ACCOUNT = r"[0-9]{12}"
_AP_NAME = r"[a-z0-9][a-z0-9-]{1,48}[a-z0-9]"
_ACCESS_POINT_ARN = re.compile(
    rf"^arn:{_PARTITION}:(?:s3|s3-object-lambda):[a-z0-9-]+:{_ACCOUNT}:accesspoint[/:]{_AP_NAME}$"
)
_OUTPOSTS_ARN = re.compile(
    rf"^arn:{_PARTITION}:s3-outposts:[a-z0-9-]+:{_ACCOUNT}:outpost[/:]op-[a-z0-9]{{1,60}}"
    rf"[/:]accesspoint[/:]{_AP_NAME}$"
)
# A multi-region access point ARN has no region: it is signed with SigV4A.
_MULTI_REGION_ARN = re.compile(rf"^arn:{_PARTITION}:s3::{_ACCOUNT}:accesspoint[/:].+$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
#: Reserved suffixes of names no object request can be signed for, and why.
_RESERVED_SUFFIXES = {
    ".mrap": (
        "multi-region access points, which are signed with SigV4A (asyncpresign does "
        "not do it): use one of its regional access points"
    ),
    "--table-s3": "S3 table buckets, which serve no object requests",
}
#: Suffixes of names that objects can be signed for but no bucket can be created with.
_UNCREATABLE_SUFFIXES = {
    "-s3alias": "an access point alias",
    "--ol-s3": "an Object Lambda access point alias",
    "--x-s3": "a directory bucket, made with its own CreateBucket configuration",
}


def check_bucket(bucket: str) -> str:
    """Raise unless objects can be signed for in ``bucket``, by S3's rules for
    object requests: a general purpose or directory bucket name (legacy
    us-east-1 names with capitals or underscores too), an access point alias,
    or an access point ARN (S3, Object Lambda or Outposts)."""
    if not isinstance(bucket, str):
        raise InvalidArgumentError(f"bucket name must be a str, not {type(bucket).__name__}")
    problem = _bucket_problem(bucket)
    if problem is not None:
        raise InvalidArgumentError(f"invalid bucket name {bucket!r}: {problem}")
    return bucket


def check_new_bucket(bucket: str) -> str:
    """Raise unless ``bucket`` can be created as a general purpose bucket today:
    :func:`check_bucket`, and none of the names only older or other kinds of
    bucket have."""
    check_bucket(bucket)
    problem: str | None = None
    if is_bucket_arn(bucket):
        problem = "an ARN names an access point, not a bucket"
    elif not _BUCKET.match(bucket):
        problem = (
            "capitals, underscores and names over 63 characters are only left from "
            "buckets made in us-east-1 before March 2018"
        )
    else:
        for suffix, kind in _UNCREATABLE_SUFFIXES.items():
            if bucket.endswith(suffix):
                problem = f"a name ending {suffix!r} is {kind}"
    if problem is not None:
        raise InvalidArgumentError(
            f"cannot create bucket {bucket!r}: {problem}; give the name of a new general "
            "purpose bucket (3-63 lowercase letters, digits, dots and hyphens)"
        )
    return bucket


def is_bucket_arn(bucket: str) -> bool:
    """Whether ``bucket`` is an ARN rather than a name (one :func:`check_bucket` passed)."""
    return bucket.startswith("arn:")


@functools.lru_cache(maxsize=4096)
def _bucket_problem(bucket: str) -> str | None:
    """What is wrong with a bucket name, or None. Cached: bulk jobs sign one
    bucket millions of times, and this check is then most of a URL's cost."""
    if is_bucket_arn(bucket):
        return _arn_problem(bucket)
    if not _BUCKET.match(bucket) and not _LEGACY_BUCKET.match(bucket):
        return (
            "S3 bucket names are 3-63 characters of lowercase letters, digits, dots and "
            "hyphens, starting and ending with a letter or digit (buckets made in us-east-1 "
            "before March 2018 may also have capitals and underscores, up to 255 "
            "characters); an access point is given by its alias or ARN"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "no two adjacent dots, and no dot next to a hyphen"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        pass
    else:
        return "it looks like an IP address"
    lower = bucket.lower()
    for prefix in _RESERVED_PREFIXES:
        if lower.startswith(prefix):
            return f"S3 reserves the prefix {prefix!r}: no bucket can have it"
    for suffix, kind in _RESERVED_SUFFIXES.items():
        if lower.endswith(suffix):
            return f"S3 reserves the suffix {suffix!r} for {kind}"
    return None


def _arn_problem(arn: str) -> str | None:
    if _ACCESS_POINT_ARN.match(arn) or _OUTPOSTS_ARN.match(arn):
        return None
    if _MULTI_REGION_ARN.match(arn):
        return (
            "a multi-region access point is signed with SigV4A, which asyncpresign does "
            "not do; use the ARN of one of its regional access points"
        )
    return (
        "not an S3 access point ARN; expected "
        "arn:aws:s3:<region>:<12-digit account>:accesspoint/<name> (or s3-object-lambda, "
        "or s3-outposts with outpost/<id>/accesspoint/<name>), the name 3-50 lowercase "
        "letters, digits and hyphens"
    )


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


#: The ``scheme://authority`` starts of URLs that passed :func:`check_http_url`.
#: What it checks lies in that start alone, so a URL that begins with one (then
#: "/", "?" or "#") passes as well: a bulk run's URLs share a few, and parsing
#: each whole cost a tenth of the engine's own CPU per small object.
_good_origins: dict[str, None] = {}


def check_http_url(url: str) -> str:
    """Raise unless ``url`` is an absolute http(s) URL with a host."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"URL must be a str, not {type(url).__name__}")
    origin = _origin(url)
    if origin is not None and origin in _good_origins:
        return url
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidArgumentError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Redacted whole, then cut: a password cut before its "@" would not be found.
        shown = redact_url(url)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InvalidArgumentError(f"not an http(s) URL: {shown!r}")
    if origin is not None and "@" not in origin:  # no password kept in memory
        if len(_good_origins) >= 256:
            _good_origins.clear()
        _good_origins[origin] = None
    return url


def _origin(url: str) -> str | None:
    """``http(s)://authority`` of a URL that has a path, query or fragment after
    it, as written (no character removed, nothing lowered); else None."""
    if url.startswith("https://"):
        start = 8
    elif url.startswith("http://"):
        start = 7
    else:
        return None
    ends = [i for i in (url.find("/", start), url.find("?", start), url.find("#", start))
            if i >= 0]
    if not ends:
        return None
    origin = url[: min(ends)]
    # urlsplit removes tabs and newlines anywhere in a URL before it splits it:
    # an authority holding one is judged the long way, every time.
    return origin if origin.isprintable() and " " not in origin else None
