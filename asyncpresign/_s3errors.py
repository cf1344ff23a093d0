"""Turning an S3 error answer (status, headers, XML body) into an exception. Pure."""

from __future__ import annotations

import datetime as dt
import email.utils
import xml.etree.ElementTree as ET

from ._exceptions import HTTPStatusError, RequestExpiredError

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


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
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


def status_error(
    status: int,
    reason: str | None,
    body: bytes,
    retry_after_header: str | None,
    url: str,
) -> HTTPStatusError:
    """Build the exception for a non-2xx answer; ``url`` must already be redacted."""
    code, s3_message = parse_error_body(body)
    text = f"HTTP {status} {reason or ''}".rstrip()
    if code:
        text += f" {code}"
    if s3_message:
        text += f": {s3_message}"
    cls = RequestExpiredError if is_expired(status, code, s3_message) else HTTPStatusError
    return cls(
        text,
        status=status,
        code=code,
        s3_message=s3_message,
        retry_after=parse_retry_after(retry_after_header),
        url=url,
    )
