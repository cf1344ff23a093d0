"""Keep signatures and session tokens out of anything a person or a log can read."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

REDACTED = "REDACTED"

#: Where a parameter's name may begin: not inside a longer name, but right after
#: a percent escape (``%3F``, ``%26``; encoded again, ``%253F``, ``%25253F``),
#: which ends in a letter or digit.
_NAME_START = r"(?:(?<![A-Za-z0-9-])|(?<=%[0-9A-Fa-f]{2})|(?<=25[0-9A-Fa-f]{2}))"
_SECRET_NAMES = r"(?:X-Amz-Signature|X-Amz-Security-Token|Signature)"
# Query parameters (SigV4 and SigV2) and Authorization header parts whose values grant access.
_SECRET_QUERY = re.compile(rf"(?i)({_NAME_START}{_SECRET_NAMES}=)[^&#\s,'\"]+")
# The same percent-encoded, once or more (%3D, %253D, either case), as a server
# or a gateway quotes the request URL in an error message: the value ends where
# an encoded &, # or space begins. The credential (the access key id) is no
# secret and stays readable.
_SECRET_ENCODED_QUERY = re.compile(
    rf"(?i)({_NAME_START}{_SECRET_NAMES}%(?:25)*3D)(?:(?!%(?:25)*2[036])[^&#\s,'\"<>])+"
)
# The same in dict reprs and header blocks: 'X-Amz-Security-Token': b'...', x-amz-security-token:...
# An SSE-C key (its copy-source form too) decrypts the object: botocore logs
# it at DEBUG, as a header and as a parameter. Its MD5 is a digest, kept.
_SECRET_MAPPING = re.compile(
    r"(?i)((?:x-amz-security-token|x-amz-signature|aws_session_token|aws_secret_access_key"
    r"|x-amz-(?:copy-source-)?server-side-encryption-customer-key|(?:CopySource)?SSECustomerKey"
    r"|SignatureProvided)"
    r"['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,}]+"
)
# S3's SignatureDoesNotMatch fields, as a message may quote them (XML, or XML
# escaped once more): the signature sent is the live one. StringToSign and
# CanonicalRequest hold no secret once the token forms above are redacted.
_SECRET_ELEMENT = re.compile(
    r"(?i)((?:<|&lt;)(?:SignatureProvided|X-Amz-Signature|X-Amz-Security-Token)(?:>|&gt;)\s*)"
    r"[^<&\s]+"
)
# botocore's own debug line "Signature:\n<64 hex digits>".
_SIGNATURE_LINE = re.compile(r"(Signature:\s*)[0-9a-f]{64}")
_SECRET_FIELDS = frozenset({"x-amz-signature", "signature", "x-amz-security-token"})
#: Request headers whose values grant access or decrypt: a presigned request
#: with SSE-C carries the customer's key, base64, among the headers to send.
_SECRET_HEADERS = frozenset({
    "authorization",
    "x-amz-security-token",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key",
})


_VALUE_END = re.compile(r"[&#\s,'\"]")
_SIGV4_NAME = "x-amz-signature="


def redact_url(url: str) -> str:
    """Return ``url`` with its signature and session token replaced by ``REDACTED``.

    Every transfer shows its URL, so the common case (a SigV4 URL with one
    signature and no session token) is cut by hand: the regex costs about ten
    times as much. Anything else takes the regex. A password in the URL
    (``https://user:password@host/...``) is replaced too."""
    if "@" in url:
        url = _without_password(url)
    lower = url.lower()
    if "signature=" not in lower and "security-token=" not in lower:
        return url
    if lower.count("signature=") == 1 and "security-token=" not in lower:
        start = lower.find(_SIGV4_NAME)
        if start > 0 and url[start - 1] in "?&":
            value = start + len(_SIGV4_NAME)
            end = _VALUE_END.search(url, value)
            stop = end.start() if end else len(url)
            if stop > value:
                return url[:value] + REDACTED + url[stop:]
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, url)


def _without_password(url: str) -> str:
    """``url`` with the password of its user information, if any, REDACTED."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(ends, default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not (at and colon):
        return url
    return f"{scheme}://{user}:{REDACTED}@{host}{rest[end:]}"


def redact_text(text: str) -> str:
    """Redact every signature and token form we know of in free text (log lines)."""
    text = _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    if "%" in text:
        text = _SECRET_ENCODED_QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SECRET_MAPPING.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SECRET_ELEMENT.sub(lambda m: m.group(1) + REDACTED, text)
    return _SIGNATURE_LINE.sub(lambda m: m.group(1) + REDACTED, text)


def redact_fields(fields: dict[str, str]) -> dict[str, str]:
    """Return POST form fields with the signature and token values replaced."""
    return {k: (REDACTED if k.lower() in _SECRET_FIELDS else v) for k, v in fields.items()}


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return request headers with the values of secret ones replaced."""
    return {k: (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


class RedactingFilter(logging.Filter):
    """Rewrites log records that carry signatures or session tokens.

    botocore logs, at DEBUG, the canonical request (with the session token), the
    signature itself, and every request's headers (Authorization, token). A
    URL we hand out grants access until it expires, so those lines are redacted
    before any handler sees them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix; pass it on
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


#: Loggers of our dependencies that print signing material at DEBUG.
_NOISY_LOGGERS = (
    "botocore.auth",
    "botocore.endpoint",
    "botocore.hooks",
    "botocore.signers",
    "botocore.httpsession",
    "botocore.parsers",
    "aiobotocore.endpoint",
    "aiobotocore.httpsession",
    "aiobotocore.parsers",
)
_installed = False


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to the dependency loggers, once."""
    global _installed  # noqa: PLW0603 - once per process, whatever creates the first Signer
    if _installed:
        return
    redacting = RedactingFilter()
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).addFilter(redacting)
    _installed = True
