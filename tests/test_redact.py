"""URL redaction: the hand-cut fast path agrees with the regex on every input."""

from __future__ import annotations

import random
import re
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncpresign._redact import _SECRET_QUERY, REDACTED, redact_text, redact_url

PIECES = [
    "X-Amz-Signature=", "x-amz-signature=", "Signature=", "X-Amz-Security-Token=",
    "&", "?", "#", " ", ",", "'", '"', "-", "\t", "a", "f0", "=", "%2F",
]


def by_regex(url: str) -> str:
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, url)


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(PIECES), max_size=10))
def test_fast_redaction_equals_the_regex_on_any_mix_of_secret_names(pieces: list[str]) -> None:
    url = "https://b.s3.amazonaws.com/k" + "".join(pieces)
    assert redact_url(url) == by_regex(url)


def test_a_sigv4_url_loses_its_signature_and_keeps_the_rest() -> None:
    url = (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60"
        "&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "ab" * 32
    )
    shown = redact_url(url)
    assert "ab" * 32 not in shown
    assert shown.endswith("X-Amz-Signature=REDACTED")
    assert shown.startswith("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256")


# -- a request URL quoted in an error message ------------------------------------------------

SIGNATURE = "3f" * 32
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH+Token/Value=="
SIGNED_URL = (
    "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    f"&X-Amz-Security-Token={quote(TOKEN, safe='')}&X-Amz-SignedHeaders=host"
    f"&X-Amz-Signature={SIGNATURE}"
)


@settings(max_examples=500)
@given(
    levels=st.integers(min_value=1, max_value=3),
    safe=st.sampled_from(["", "/", ":/", ":/?=&"]),
    cases=st.randoms(use_true_random=False),
)
def test_a_signed_url_quoted_percent_encoded_in_a_message_loses_its_secrets(
    levels: int, safe: str, cases: random.Random
) -> None:
    """An error message may echo the request URL percent-encoded, once or more,
    its escapes in either case (%3D, %3d, %253D): the signature and the session
    token are redacted, the access key id (no secret) stays."""
    quoted = SIGNED_URL
    for _ in range(levels):
        quoted = quote(quoted, safe=safe)
    quoted = re.sub(
        r"%[0-9A-F]{2}", lambda m: m.group().lower() if cases.random() < 0.5 else m.group(),
        quoted,
    )
    shown = redact_text(f"The resource {quoted} is not available.")
    while unquote(shown) != shown:
        shown = unquote(shown)
    assert SIGNATURE not in shown
    assert TOKEN not in shown
    assert "Token/Value" not in shown
    assert "X-Amz-Security-Token=REDACTED" in shown
    assert "AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request" in shown
    assert shown.endswith(" is not available.")


@pytest.mark.parametrize("form", [
    "SignatureProvided: {}",
    "SignatureProvided={}",
    "'SignatureProvided': '{}'",
    "<SignatureProvided>{}</SignatureProvided>",
    "&lt;SignatureProvided&gt;{}&lt;/SignatureProvided&gt;",
    "<X-Amz-Signature>{}</X-Amz-Signature>",
    "signatureprovided :\t{}",
])
def test_the_signature_provided_that_s3_quotes_in_a_signature_error_is_redacted(
    form: str,
) -> None:
    message = ("The request signature we calculated does not match the signature you "
               "provided. " + form.format(SIGNATURE) + " StringToSign: AWS4-HMAC-SHA256")
    shown = redact_text(message)
    assert SIGNATURE not in shown
    assert "REDACTED" in shown
    assert shown.startswith("The request signature we calculated")
    assert shown.endswith(" StringToSign: AWS4-HMAC-SHA256")

