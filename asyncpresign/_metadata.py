"""An object's metadata as a copy carries it: read from the source's answer,
checked, and turned into the ``put_object`` parameters the destination signs.

Pure logic, no I/O. The source is not trusted: what it sends goes into the
destination's signed request only if each value is printable ASCII of a sane
length (so no source header can end the line and add another), each
``x-amz-meta-*`` name is an HTTP token given once, and the user metadata fits
S3's 2 KB; otherwise :class:`MetadataError` fails that copy before anything
is sent to the destination.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any, Final

from ._exceptions import MetadataError

__all__ = [
    "CARRIED_HEADERS",
    "MAX_HEADER_VALUE",
    "MAX_TOTAL",
    "MAX_USER_METADATA",
    "metadata_params",
]

#: The headers of an object's answer a copy carries, by the ``put_object``
#: parameter that sets each (the ``x-amz-meta-*`` ones go in ``Metadata``).
CARRIED_HEADERS: Final = {
    "content-type": "ContentType",
    "content-encoding": "ContentEncoding",
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-language": "ContentLanguage",
    "expires": "Expires",
}
#: S3's limit on user metadata: names (without ``x-amz-meta-``) and values, in bytes.
MAX_USER_METADATA: Final = 2048
#: The longest single value carried; S3 takes at most 8 KB of request headers.
MAX_HEADER_VALUE: Final = 4096
#: The most carried in all: every name and value, standard headers and user metadata.
MAX_TOTAL: Final = 8192

_USER_PREFIX: Final = "x-amz-meta-"
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: The four-digit year of an HTTP date (the first such number in it).
_YEAR: Final = re.compile(r"\b[0-9]{4}\b")
#: What a carried value may hold: printable ASCII and tab.
_VALUE: Final = re.compile(r"[\t\x20-\x7e]*")


def metadata_params(headers: Iterable[tuple[str, str]], url: str | None = None) -> dict[str, Any]:
    """The ``put_object`` parameters (``ContentType`` … ``Expires``, ``Metadata``)
    that give a copy the metadata of the object whose answer had ``headers``
    (every header, repeats included). ``url`` (redacted) names the source in
    an error. Raises :class:`MetadataError` for anything that cannot be carried
    exactly; an empty standard header is left out, as if absent."""
    params: dict[str, Any] = {}
    user: dict[str, str] = {}
    seen: set[str] = set()
    user_size = 0
    total = 0
    for raw_name, value in headers:
        name = raw_name.lower()
        param = CARRIED_HEADERS.get(name)
        if param is None and not name.startswith(_USER_PREFIX):
            continue
        _check_value(raw_name, value, url)
        total += len(name) + len(value)
        if param is None:
            meta = name[len(_USER_PREFIX):]
            if not _TOKEN.fullmatch(meta):
                raise MetadataError(
                    f"the source's metadata header {raw_name[:80]!r} has no valid name after "
                    "x-amz-meta-", url=url,
                )
            if meta in user:
                raise MetadataError(
                    f"the source sent the metadata header {name[:80]!r} more than once", url=url
                )
            user[meta] = value
            user_size += len(meta) + len(value)
            continue
        if name in seen:
            raise MetadataError(f"the source sent {raw_name!r} more than once", url=url)
        seen.add(name)
        if not value.strip():
            continue
        params[param] = _expires(value, url) if param == "Expires" else value
    if user_size > MAX_USER_METADATA:
        raise MetadataError(
            f"the source's user metadata (x-amz-meta-*) is {user_size} bytes of names and "
            f"values; S3 takes at most {MAX_USER_METADATA}", url=url,
        )
    if total > MAX_TOTAL:
        raise MetadataError(
            f"the source's metadata headers are {total} bytes; at most {MAX_TOTAL} are "
            "carried", url=url,
        )
    if user:
        params["Metadata"] = user
    return params


def _check_value(name: str, value: str, url: str | None) -> None:
    if len(value) > MAX_HEADER_VALUE:
        raise MetadataError(
            f"the source's {name[:80]!r} header is {len(value)} characters long; at most "
            f"{MAX_HEADER_VALUE} are carried", url=url,
        )
    if not _VALUE.fullmatch(value):
        bad = next(c for c in value if not _VALUE.fullmatch(c))
        what = "a non-ASCII character" if not bad.isascii() else "a control character"
        raise MetadataError(
            f"the source's {name[:80]!r} header holds {what} ({bad!r}), which cannot be "
            "sent as it is", url=url,
        )


def _expires(value: str, url: str | None) -> dt.datetime:
    """An ``Expires`` value as the instant it names (signed as botocore formats it)."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        when = None
    if when is None:
        raise MetadataError(
            f"the source's Expires header {value[:80]!r} is not an HTTP date", url=url
        )
    if when.tzinfo is None:  # "-0000": UTC, as RFC 5322 means it
        when = when.replace(tzinfo=dt.timezone.utc)
    # The instant is signed in UTC: one past year 9999 there cannot be, and a
    # year the parser took for two digits ("0001" read as 2001) is not the source's.
    year = _YEAR.search(value)
    try:
        utc = when.astimezone(dt.timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or (year is not None and int(year.group()) != when.year):
        raise MetadataError(
            f"the source's Expires header {value[:80]!r} names a date that cannot be "
            "carried exactly", url=url,
        )
    return utc
