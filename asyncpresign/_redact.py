"""Keep signatures and session tokens out of anything a person or a log can read."""

from __future__ import annotations

import re

# Query parameters (SigV4 and SigV2) and POST fields whose values grant access.
_SECRET_PARAMS = ("X-Amz-Signature", "X-Amz-Security-Token", "Signature", "x-amz-security-token")
_SECRET_QUERY = re.compile(
    r"(?i)((?:^|[?&])(?:X-Amz-Signature|X-Amz-Security-Token|Signature)=)[^&#]*"
)
REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """Return ``url`` with its signature and session token replaced by ``REDACTED``."""
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, url)


def redact_fields(fields: dict[str, str]) -> dict[str, str]:
    """Return POST form fields with the signature and token values replaced."""
    secret = {name.lower() for name in (*_SECRET_PARAMS, "x-amz-signature", "signature")}
    return {k: (REDACTED if k.lower() in secret else v) for k, v in fields.items()}
