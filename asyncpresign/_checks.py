"""Checks on what a server answered: ranges, lengths, ETags. Pure: no I/O.

Every header value the engine acts on is parsed here, strictly (ASCII digits
only, bounded lengths), so a malformed or hostile answer becomes a typed,
retried error instead of a bare ``ValueError`` or a wrong write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ._exceptions import IntegrityError, InvalidArgumentError, TransferError, TransportError
from ._models import TransferResult

__all__ = [
    "MAX_CLAIMED_SIZE",
    "MAX_EMPTY_PAGES",
    "PageChecks",
    "RangeSpec",
    "check_etag",
    "check_part_answer",
    "check_range_answer",
    "check_stored_md5",
    "expected_total",
    "is_plain_md5",
    "is_range",
    "parse_content_length",
    "parse_content_range",
    "parse_range_spec",
    "refuse_signed_range",
    "resolve_range",
    "signed_range",
    "unsatisfied_size",
]

#: 19 digits hold any size an object can have with room to spare, and int() of
#: them stays cheap; a longer "number" is an attack or a bug, not a size.
_NUMBER = re.compile(r"[0-9]{1,19}")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19}|\*)")
#: A 416's Content-Range: no range, the object's size.
_UNSATISFIED_RANGE = re.compile(r"bytes \*/([0-9]{1,19})")
#: An ETag is a quoted string of visible ASCII (RFC 9110); S3's are 32-40 hex
#: digits, with a part count for multipart objects.
_ETAG = re.compile(r'(W/)?"?[\x21\x23-\x7e]{1,1024}"?')
_MD5 = re.compile(r'"?[0-9a-fA-F]{32}"?')
_RANGE_SPEC = re.compile(r"bytes=(?:([0-9]{1,19})-([0-9]{1,19})?|-([0-9]{1,19}))")

#: The largest object size a download believes: 1 PiB, over twenty times the largest
#: object AWS stores (50 TB), generous so that no real object, on S3 or on a
#: store with limits of its own, is refused. A larger claim is a lie or a bug,
#: failed at the first answer rather than trusted to size the ranges, the
#: progress and the checks that follow.
MAX_CLAIMED_SIZE = 1 << 50

#: One byte range as a Range header gives it: (first, last) with None for an
#: open end; ``bytes=-N`` (the last N bytes) is (None, N).
RangeSpec = tuple[int | None, int | None]


def parse_content_length(value: str | None) -> int | None:
    """The Content-Length as a number, None if absent; malformed is an error."""
    if value is None:
        return None
    if not _NUMBER.fullmatch(value.strip(" \t")):
        raise TransportError(f"bad response: malformed Content-Length {value[:40]!r}")
    return int(value)


def parse_content_range(value: str) -> tuple[int, int, int | None] | None:
    """``bytes START-END/SIZE`` (SIZE may be ``*``) as numbers, or None if malformed."""
    match = _CONTENT_RANGE.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    start, end = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if end < start or (total is not None and end >= total):
        return None
    return start, end, total


def unsatisfied_size(headers: Mapping[str, str]) -> int | None:
    """The object's size a 416 gives in ``Content-Range: bytes */SIZE``, or None."""
    match = _UNSATISFIED_RANGE.fullmatch(headers.get("Content-Range", "").strip(" \t"))
    return None if match is None else int(match[1])


def is_range(status: int, headers: Mapping[str, str]) -> bool:
    """Whether a body is a byte range: a 206, or a 200 that says so with a
    Content-Range (rclone's ``serve s3`` answers every Range request that way)."""
    return status == 206 or (status == 200 and "Content-Range" in headers)


def expected_total(
    status: int, headers: Mapping[str, str], offset: int, shown: str
) -> int | None:
    """The full object size the body must add up to, checking a range's Content-Range
    against where it was asked to start and against its Content-Length, and
    any size against :data:`MAX_CLAIMED_SIZE`."""
    total = _expected_total(status, headers, offset, shown)
    if total is not None and total > MAX_CLAIMED_SIZE:
        raise IntegrityError(
            f"server claims an object of {total} bytes, larger than any object store "
            f"holds (at most {MAX_CLAIMED_SIZE} bytes are believed)",
            url=shown,
        )
    return total


def _expected_total(
    status: int, headers: Mapping[str, str], offset: int, shown: str
) -> int | None:
    length = parse_content_length(headers.get("Content-Length"))
    if is_range(status, headers):
        content_range = headers.get("Content-Range", "")
        parsed = parse_content_range(content_range)
        if parsed is None or parsed[0] != offset:
            raise IntegrityError(
                f"server answered a range request from byte {offset} with "
                f"Content-Range {content_range[:80]!r}",
                url=shown,
            )
        start, end, size = parsed
        if length is not None and length != end - start + 1:
            raise IntegrityError(
                f"Content-Length {length} does not match Content-Range {content_range[:80]!r}",
                url=shown,
            )
        if size is None:
            # "bytes 0-999/*": the server does not say how large the object is, so
            # nothing shows these bytes are all of it (or all after a resume).
            raise IntegrityError(
                f"server answered with Content-Range {content_range[:80]!r}, of an unknown "
                "total: the download cannot be shown complete",
                url=shown,
            )
        return size
    return length


def check_etag(value: str | None, shown: str) -> str | None:
    """An ETag as sent, if it looks like one; a malformed one is an error (it is
    compared with later answers and written beside resumable downloads)."""
    if value is None:
        return None
    if not _ETAG.fullmatch(value):
        raise IntegrityError(f"server sent a malformed ETag {value[:80]!r}", url=shown)
    return value


def is_plain_md5(etag: str | None, headers: Mapping[str, str]) -> bool:
    """Whether an ETag is the object's MD5: single-part, and not SSE-KMS or SSE-C."""
    if not etag or not _MD5.fullmatch(etag):
        return False
    if headers.get("x-amz-server-side-encryption") == "aws:kms":
        return False
    return "x-amz-server-side-encryption-customer-algorithm" not in headers


def check_stored_md5(
    result: TransferResult, expected: str, what: str, headers: Mapping[str, str]
) -> None:
    """Raise if the server's ETag is a plain MD5 (single part) other than ``expected``.
    ``headers`` are the server's answer: an object stored under SSE-KMS or SSE-C
    has an ETag of 32 hex digits that is no MD5 of its bytes, and every copy or
    upload into such a bucket failed its check, on every retry."""
    if result.etag is None or not is_plain_md5(result.etag, headers):
        return
    stored = result.etag.strip('"').lower()
    if stored != expected:
        raise IntegrityError(
            f"server stored ETag {stored} but {what} is {expected}", url=result.url
        )


def parse_range_spec(value: str) -> RangeSpec:
    """A ``Range`` header of one byte range: ``bytes=FIRST-LAST``, ``bytes=FIRST-``
    or ``bytes=-COUNT``. Anything else (several ranges, other units, LAST before
    FIRST) is refused: the download writes one contiguous piece to one file."""
    match = _RANGE_SPEC.fullmatch(value.strip(" \t")) if isinstance(value, str) else None
    if match is not None:
        if match[3] is not None:
            if int(match[3]) > 0:
                return None, int(match[3])
        elif match[2] is None or int(match[2]) >= int(match[1]):
            return int(match[1]), None if match[2] is None else int(match[2])
    raise InvalidArgumentError(
        f"Range {str(value)[:80]!r} is not one byte range: use bytes=FIRST-LAST, "
        "bytes=FIRST- or bytes=-COUNT"
    )


def signed_range(headers: Mapping[str, str]) -> RangeSpec | None:
    """The byte range a presigned GET was signed for, if any (the header's
    name in any case)."""
    for name, value in headers.items():
        if name.lower() == "range":
            return parse_range_spec(value)
    return None


#: Empty pages that say more follows: S3 can give a few (a page's worth of keys
#: deleted during the listing); a listing that gives only those never ends.
MAX_EMPTY_PAGES = 1000


class PageChecks:
    """What every page of a listing (of objects, of open multipart uploads) must
    pass before any of it is used. A listing cut short (truncated with no
    ``marker`` for the next page: botocore's paginator just stops), one going
    round (a marker given again: botocore only notices one given twice in a
    row), one of empty pages for ever, or one holding keys outside the prefix
    (a server that ignores Prefix) would make a run say "done" of part of it,
    or act on what it was not asked to: each is a :class:`TransferError`.
    ``listing`` names it in the messages ("the listing of s3://b/p/")."""

    def __init__(self, listing: str, where: str, prefix: str, marker: str) -> None:
        self.listing, self.where, self.prefix, self.marker = listing, where, prefix, marker
        self._markers: set[int] = set()  # hashes, as a marker can be long
        self._empty_pages = 0

    def check(self, truncated: bool, marker: object, keys: Sequence[str]) -> None:
        if truncated and not marker:
            raise self._error(f"is truncated with no {self.marker}: stopped before acting "
                              "on part of it")
        if truncated:
            if hash(marker) in self._markers:
                raise self._error(f"came back to a {self.marker} it gave before "
                                  f"({str(marker)[:80]!r}): stopped before acting on part "
                                  "of it")
            self._markers.add(hash(marker))
        self._empty_pages = 0 if keys else self._empty_pages + 1
        if self._empty_pages > MAX_EMPTY_PAGES:
            raise self._error(f"gave {MAX_EMPTY_PAGES:,} empty pages in a row, each saying "
                              "more would follow: stopped")
        for key in keys:
            if not key.startswith(self.prefix):
                raise self._error(f"holds {key!r}, which is not under it: stopped before "
                                  "acting on it")

    def _error(self, what: str) -> TransferError:
        return TransferError(f"{self.listing} {what}", url=self.where)


def refuse_signed_range(headers: Mapping[str, str], what: str) -> None:
    """Raise :class:`InvalidArgumentError` for a GET signed for a byte range,
    which ``what`` (a stream, a copy) cannot take: it reads whole objects, and
    the answer's first byte is not the object's (a stream retried 20 times,
    blaming the server; a copy failed on "HTTP 206 Partial Content")."""
    if signed_range(headers) is not None:
        raise InvalidArgumentError(
            f"a presigned GET signed for a Range cannot be {what}: sign the GET without "
            "Range (TransferEngine.download writes a signed range to a file)"
        )


def resolve_range(spec: RangeSpec, total: int) -> tuple[int, int] | None:
    """The first and last byte ``spec`` selects of an object of ``total`` bytes,
    as RFC 9110 resolves it (a last byte past the end means the end); None if
    it selects nothing (the server answers 416)."""
    first, last = spec
    if first is None:  # the last ``last`` bytes
        return (max(0, total - (last or 0)), total - 1) if total else None
    if first >= total:
        return None
    return first, total - 1 if last is None else min(last, total - 1)


def check_range_answer(
    spec: RangeSpec, status: int, headers: Mapping[str, str], shown: str
) -> int:
    """How many bytes the answer to a signed Range must carry, once its
    Content-Range (or, for a whole answer, its length) shows it is exactly the
    range asked for."""
    length = parse_content_length(headers.get("Content-Length"))
    if is_range(status, headers):
        content_range = headers.get("Content-Range", "")
        parsed = parse_content_range(content_range)
        if parsed is None or parsed[2] is None or resolve_range(spec, parsed[2]) != parsed[:2]:
            raise IntegrityError(
                f"asked for the signed {_show(spec)}, the server answered Content-Range "
                f"{content_range[:80]!r}",
                url=shown,
            )
        expected = parsed[1] - parsed[0] + 1
        if length is not None and length != expected:
            raise IntegrityError(
                f"Content-Length {length} does not match Content-Range {content_range[:80]!r}",
                url=shown,
            )
        return expected
    # A whole answer is the range asked for only when that range is the whole object.
    if length is None or (length and resolve_range(spec, length) != (0, length - 1)):
        raise IntegrityError(
            f"the server ignored the signed {_show(spec)} and sent the whole object",
            url=shown,
        )
    return length


def _show(spec: RangeSpec) -> str:
    first, last = spec
    if first is None:
        return f"Range bytes=-{last}"
    return f"Range bytes={first}-{'' if last is None else last}"


def check_part_answer(
    status: int,
    headers: Mapping[str, str],
    span: tuple[int, int],
    total: int,
    shown: str,
) -> None:
    """An answer to ``Range: bytes=first_byte-last_byte`` of an object of
    ``total`` bytes must be a 206 carrying exactly that range: anything else
    (a whole 200, another range, a Content-Length that disagrees) would put
    the wrong bytes at the range's place."""
    first_byte, last_byte = span
    content_range = headers.get("Content-Range", "")
    if (
        not is_range(status, headers)
        or parse_content_range(content_range) != (first_byte, last_byte, total)
        or parse_content_length(headers.get("Content-Length"))
        not in (None, last_byte - first_byte + 1)
    ):
        raise IntegrityError(
            f"asked for bytes {first_byte}-{last_byte}/{total}, got HTTP {status} "
            f"Content-Range {content_range[:80]!r} Content-Length "
            f"{headers.get('Content-Length', '')[:40]!r}",
            url=shown,
        )
