"""Turning an S3 error answer (status, headers, XML body) into an exception. Pure."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from ._exceptions import HTTPStatusError, RequestExpiredError
from ._redact import redact_text, redact_url

#: Read at most this much of an error body: S3's are a few hundred bytes, and a
#: misbehaving server must not make us buffer a whole object to report an error.
MAX_ERROR_BODY = 64 * 1024


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """Return S3's ``(Code, Message)`` from an XML error body, or Nones if there is none."""
    if not body or b"<" not in body[:256]:
        return None, None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, None
    code = root.findtext("Code") or root.findtext("{*}Code")
    message = root.findtext("Message") or root.findtext("{*}Message")
    return (code.strip() if code else None), (message.strip() if message else None)


#: RFC 9110's delta-seconds, plus a fraction (some servers and proxies send one).
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}(\.[0-9]{1,6})?")


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (ASCII digits,
    with an optional fraction) or an HTTP date. Anything else is ignored (None)."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    if not value[:1].isalpha():
        return None  # "-3", "1e400", "NaN" are not delta-seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def is_expired(status: int, code: str | None, message: str | None) -> bool:
    """Whether an error means the presigned URL has expired.

    S3 answers 403 AccessDenied "Request has expired"; rclone and some other
    servers answer 400 with a similar message or an ``ExpiredToken`` code.
    """
    if status not in (400, 403):
        return False
    if code in ("ExpiredToken", "RequestExpired", "ExpiredRequest"):
        return True
    return bool(message) and "expired" in (message or "").lower() and code in (
        "AccessDenied",
        "InvalidRequest",
        "ExpiredToken",
        None,
    )


_STATUSES: dict[int, int] = {}


def status_error(
    status: int,
    reason: str | None,
    body: bytes,
    headers: Mapping[str, str] | None,
    url: str,
) -> HTTPStatusError:
    """Build the exception for a non-2xx answer; ``url`` must already be redacted.

    Reads as ``HTTP 403 AccessDenied: <S3's message>`` (the reason phrase only
    when S3 sent no code). A redirect says where the server pointed and what
    to do: a presigned URL's signature is bound to its host, so it cannot be
    followed."""
    headers = headers or {}
    code, s3_message = parse_error_body(body)
    # What the server says may echo the request target (a proxy's or a gateway's
    # "cannot serve /b/k?X-Amz-Signature=..."): its secrets go no further.
    code = redact_text(code) if code else code
    s3_message = redact_text(s3_message) if s3_message else s3_message
    reason = redact_text(reason) if reason else reason
    # A run of failures repeats the same few codes and messages: one copy each
    # (a kept failure costs memory for the rest of the run).
    code = sys.intern(code) if code else code
    s3_message = sys.intern(s3_message) if s3_message and len(s3_message) < 256 else s3_message
    text = f"HTTP {status} {code or reason or ''}".rstrip()
    if s3_message:
        text += f": {s3_message}"
    if 300 <= status < 400:
        text += redirect_advice(body, headers)
    cls = RequestExpiredError if is_expired(status, code, s3_message) else HTTPStatusError
    return cls(
        text,
        # Each response's status is a fresh int object (above 256): one per status.
        status=_STATUSES.setdefault(status, status),
        code=code,
        s3_message=s3_message,
        retry_after=parse_retry_after(headers.get("Retry-After")),
        url=url,
    )


def redirect_advice(body: bytes, headers: Mapping[str, str]) -> str:
    """Where a 3xx answer points, and what to do about it."""
    where = []
    location = headers.get("Location")
    if location:
        # A Location may carry the request URL percent-encoded (a login page's
        # ?return=...): redact_url knows a URL's own query only.
        where.append(f"Location {redact_text(redact_url(location))[:200]}")
    endpoint = _find_text(body, "Endpoint")
    if endpoint:
        where.append(f"endpoint {redact_text(endpoint)[:200]}")
    region = headers.get("x-amz-bucket-region") or _find_text(body, "Region")
    if region:
        where.append(f"region {region[:64]}")
    pointed = f"; the server points to {', '.join(where)}" if where else ""
    return (
        f"{pointed}. Redirects are not followed, since the signature is bound to the host: "
        "sign for that region or endpoint (Signer(region=..., endpoint_url=...))"
    )


def _find_text(body: bytes, tag: str) -> str | None:
    if not body or b"<" not in body[:256]:
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    text = root.findtext(tag) or root.findtext("{*}" + tag)
    return text.strip() if text else None
