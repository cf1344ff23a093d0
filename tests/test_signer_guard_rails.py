"""The Signer signs only what it checked, hands out what it signed, and shows no secret.

Issue #17, items 6, 7 and 15. Most of these need no server: signing is local.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from asyncpresign import (
    HTTPStatusError,
    InvalidArgumentError,
    PresignedPost,
    Signer,
    TransferEngine,
)
from asyncpresign._sigv4 import QuerySigner
from asyncpresign.testing import LocalS3
from tests.botocore_clock import frozen_botocore_clock, request_of

pytestmark = pytest.mark.anyio

KEYS = {"access_key": "AKIDEXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEX"}
TOKEN = "FwoGZXIvYXdzEXAMPLE-SESSION-TOKEN/with+base64=chars"
NOW = dt.datetime(2026, 11, 28, 12, 34, 56, tzinfo=dt.timezone.utc)


@pytest.fixture(params=[True, False], ids=["fast", "botocore"])
async def offline(request: pytest.FixtureRequest) -> AsyncIterator[Signer]:
    """A Signer for AWS itself: presigning needs no network, only keys and a region."""
    async with Signer(region="us-east-1", fast_signing=request.param, **KEYS) as signer:
        yield signer


def frozen() -> tuple[Any, Any]:
    """Both signing paths on one fixed clock, so their URLs can be compared."""
    return mock.patch.multiple(
        "asyncpresign._signer",
        _now=mock.Mock(return_value=NOW),
        _current_second=mock.Mock(return_value=int(NOW.timestamp())),
    ), frozen_botocore_clock(NOW)


# -- item 6: Bucket and Key come from the arguments, never from the options ----------------

Call = Callable[[Signer, dict[str, Any]], Awaitable[object]]

OPTION_CALLS: dict[str, Call] = {
    "presign_get": lambda s, o: s.presign_get("public-bucket", "allowed.txt", **o),
    "presign_put": lambda s, o: s.presign_put("public-bucket", "allowed.txt", **o),
    "presign_many GET": lambda s, o: s.presign_many("GET", "public-bucket", ["allowed.txt"], **o),
    "presign_many PUT": lambda s, o: s.presign_many("PUT", "public-bucket", ["allowed.txt"], **o),
    "create_multipart_upload": lambda s, o: s.create_multipart_upload(
        "public-bucket", "allowed.txt", **o
    ),
}


@pytest.mark.parametrize("call", list(OPTION_CALLS))
@pytest.mark.parametrize(
    "options",
    [
        {"Key": "private/secret.txt"},
        # An option the fast path does not cover: botocore used to sign the option's key.
        {"Key": "private/secret.txt", "ChecksumMode": "ENABLED", "VersionId": "v1"},
        {"Bucket": "someone-elses-bucket"},
        {"Bucket": "someone-elses-bucket", "Key": "private/secret.txt"},
    ],
    ids=["key", "key-with-uncovered-options", "bucket", "both"],
)
async def test_bucket_or_key_among_the_options_is_refused_before_signing(
    offline: Signer, call: str, options: dict[str, Any]
) -> None:
    sign = mock.patch.object(
        offline.client, "generate_presigned_url", side_effect=AssertionError("signed")
    )
    start = mock.patch.object(
        offline.client, "create_multipart_upload", side_effect=AssertionError("sent")
    )
    with sign, start, mock.patch.object(
        QuerySigner, "presign", side_effect=AssertionError("signed")
    ), pytest.raises(InvalidArgumentError, match=r"(Bucket|Key) cannot be given in the options"):
        await OPTION_CALLS[call](offline, options)


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("name", ["Bucket", "Key"])
async def test_sign_later_refuses_bucket_or_key_among_the_options_when_made(
    offline: Signer, method: Any, name: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{name} cannot be given in the options"):
        offline.sign_later(method, "public-bucket", "allowed.txt", **{name: "other"})


async def test_the_botocore_path_signs_the_checked_bucket_and_key_whatever_the_params_say(
    offline: Signer,
) -> None:
    # Below the public check, as a second line: the arguments win over params.
    request = await offline._botocore_presign(
        "get_object", "GET", "public-bucket", "allowed.txt", seconds=60,
        params={"Bucket": "someone-elses-bucket", "Key": "private/secret.txt"},
    )
    parts = urlsplit(request.url)
    assert parts.netloc == "public-bucket.s3.amazonaws.com"
    assert parts.path == "/allowed.txt"


# -- item 7: metadata names differing only in case ------------------------------------------

METADATA_CALLS: dict[str, Call] = {
    "presign_put metadata=": lambda s, m: s.presign_put("b-1", "k", metadata=m),
    "presign_put Metadata=": lambda s, m: s.presign_put("b-1", "k", Metadata=m),
    "presign_many Metadata=": lambda s, m: s.presign_many("PUT", "b-1", ["k"], Metadata=m),
    "sign_later metadata=": lambda s, m: s.sign_later("PUT", "b-1", "k", metadata=m)(),
    "create_multipart_upload Metadata=": lambda s, m: s.create_multipart_upload(
        "b-1", "k", Metadata=m
    ),
}


@pytest.mark.parametrize("call", list(METADATA_CALLS))
@pytest.mark.parametrize(
    "metadata", [{"a": "x", "A": "y"}, {"Owner": "ann", "owner": "bob", "team": "t"}]
)
async def test_metadata_names_that_differ_only_in_case_are_refused(
    offline: Signer, call: str, metadata: dict[str, str]
) -> None:
    start = mock.patch.object(
        offline.client, "create_multipart_upload", side_effect=AssertionError("sent")
    )
    with start, pytest.raises(InvalidArgumentError, match="differ only in case") as info:
        await METADATA_CALLS[call](offline, metadata)
    assert "x-amz-meta-" in str(info.value)


async def test_metadata_names_of_mixed_case_that_do_not_collide_are_signed(
    offline: Signer,
) -> None:
    request = await offline.presign_put("b-1", "k", metadata={"Owner": "ann", "team": "t"})
    assert dict(request.headers) == {"x-amz-meta-Owner": "ann", "x-amz-meta-team": "t"}
    signed = parse_qs(urlsplit(request.url).query)["X-Amz-SignedHeaders"][0]
    assert signed == "host;x-amz-meta-owner;x-amz-meta-team"


# -- item 15: both signing paths hand out the same headers ------------------------------

FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


@pytest.mark.parametrize(
    "content_type", [FORM_TYPE, "text/plain; charset=utf-8", "multipart/form-data; boundary=x"]
)
async def test_both_signing_paths_hand_out_the_same_headers_for_a_content_type(
    content_type: str,
) -> None:
    async with Signer(region="eu-west-1", **KEYS) as fast, Signer(
        region="eu-west-1", fast_signing=False, **KEYS
    ) as slow:
        ours, botocores = frozen()
        with ours, botocores:
            quick = await fast.presign_put("b-1", "k", content_type=content_type)
            reference = await slow.presign_put("b-1", "k", content_type=content_type)
    assert request_of(quick.url) == request_of(reference.url)
    assert dict(quick.headers) == dict(reference.headers) == {"Content-Type": content_type}


@pytest.mark.parametrize("fast_signing", [True, False], ids=["fast", "botocore"])
async def test_a_form_content_type_is_handed_out_so_the_object_is_stored_with_it(
    s3: LocalS3, bucket: str, fast_signing: bool
) -> None:
    # botocore leaves exactly this value out of the signature; the caller still
    # asked for it, and S3 stores only the Content-Type that is sent.
    async with s3.signer(fast_signing=fast_signing) as signer:
        request = await signer.presign_put(bucket, "form", content_type=FORM_TYPE)
        assert dict(request.headers) == {"Content-Type": FORM_TYPE}
        async with TransferEngine() as engine:
            result = await engine.upload(request, b"a=1&b=2")
        assert result.ok
        head = await signer.client.head_object(Bucket=bucket, Key="form")
    assert head["ContentType"] == FORM_TYPE


# -- item 15: a PresignedPost's repr shows no token, not even inside the policy ------------

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def _decodings(text: str) -> list[bytes]:
    """Every base64 (standard or URL-safe) reading of every run in ``text``, from
    every offset, so a token buried anywhere in an encoded value is found."""
    found: list[bytes] = []
    for run in _BASE64_RUN.findall(text):
        for shift in range(4):
            piece = run[shift:].rstrip("=")
            piece = piece[: len(piece) // 4 * 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                with contextlib.suppress(binascii.Error, ValueError):
                    found.append(decode(piece))
    return found


def _shows(text: str, secret: str) -> bool:
    return secret in text or any(secret.encode() in raw for raw in _decodings(text))


async def test_post_repr_and_str_show_no_session_token_even_inside_the_policy() -> None:
    async with Signer(region="us-east-1", session_token=TOKEN, **KEYS) as signer:
        post = await signer.presign_post("my-bucket", "uploads/${filename}")
    raw_policy = base64.b64decode(post.fields["policy"]).decode()
    assert TOKEN in raw_policy  # what the repr must not leak
    for text in (repr(post), str(post)):
        assert not _shows(text, TOKEN)
        assert not _shows(text, post.fields["x-amz-signature"])
        assert "uploads/${filename}" in text  # the policy is still there to read


def test_post_repr_redacts_tokens_in_every_condition_form_and_signatures_in_any_case() -> None:
    policy = {
        "expiration": "2026-11-28T13:34:56Z",
        "conditions": [
            {"bucket": "b-1"},
            {"X-Amz-Security-Token": TOKEN},
            ["eq", "$x-amz-security-token", TOKEN],
            ["starts-with", "$X-Amz-Security-Token", TOKEN[:12]],
            {"x-amz-credential": "AKIDEXAMPLE/20261128/us-east-1/s3/aws4_request"},
        ],
    }
    signature = "f0e43e09f048651a501416c7e0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d"
    post = PresignedPost(
        url="https://b-1.s3.amazonaws.com/",
        fields={
            "key": "k",
            "X-Amz-Security-Token": TOKEN,
            "X-Amz-Credential": "AKIDEXAMPLE/20261128/us-east-1/s3/aws4_request",
            "Policy": base64.b64encode(json.dumps(policy).encode()).decode(),
            "X-Amz-Signature": signature,
        },
        expires_at=NOW,
    )
    text = repr(post)
    assert not _shows(text, TOKEN)
    assert not _shows(text, TOKEN[:12])
    assert not _shows(text, signature)
    # The access key id is not a secret: the repr keeps showing it, as it did.
    assert "AKIDEXAMPLE/20261128/us-east-1/s3/aws4_request" in text


def test_post_repr_does_not_show_a_policy_it_cannot_read() -> None:
    secret = base64.b64encode(b"not json but " + TOKEN.encode()).decode()
    post = PresignedPost(url="https://h/", fields={"policy": secret}, expires_at=NOW)
    assert not _shows(repr(post), TOKEN)


# -- item 6: S3's rules for which buckets objects can be signed for --------------------------


@pytest.mark.parametrize(
    ("arn", "host", "service"),
    [
        (
            "arn:aws:s3:us-east-1:123456789012:accesspoint/my-ap",
            "my-ap-123456789012.s3-accesspoint.us-east-1.amazonaws.com",
            "s3",
        ),
        (
            "arn:aws:s3:eu-west-1:123456789012:accesspoint:my-ap",
            "my-ap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com",
            "s3",
        ),
        (
            "arn:aws:s3-object-lambda:us-east-1:123456789012:accesspoint/my-olap",
            "my-olap-123456789012.s3-object-lambda.us-east-1.amazonaws.com",
            "s3-object-lambda",
        ),
        (
            "arn:aws:s3-outposts:us-east-1:123456789012:outpost/op-01ac5d28a6a232904/"
            "accesspoint/my-ap",
            "my-ap-123456789012.op-01ac5d28a6a232904.s3-outposts.us-east-1.amazonaws.com",
            "s3-outposts",
        ),
    ],
)
async def test_an_access_point_arn_is_signed_by_botocore_for_the_access_points_host(
    arn: str, host: str, service: str
) -> None:
    async with Signer(region="us-east-1", **KEYS) as fast, Signer(
        region="us-east-1", fast_signing=False, **KEYS
    ) as slow:
        ours, botocores = frozen()
        with ours, botocores, mock.patch.object(
            QuerySigner, "presign", side_effect=AssertionError("fast path used")
        ), mock.patch.object(
            QuerySigner, "prepare", side_effect=AssertionError("fast path used")
        ):
            quick = await fast.presign_get(arn, "k")
            again = await fast.presign_get(arn, "k")  # the bucket's route is remembered
            many = await fast.presign_many("PUT", arn, ["a", "b"])
        with ours, botocores:
            reference = await slow.presign_get(arn, "k")
    assert urlsplit(quick.url).netloc == host
    assert parse_qs(urlsplit(quick.url).query)["X-Amz-Credential"][0].split("/")[3] == service
    assert request_of(quick.url) == request_of(again.url) == request_of(reference.url)
    assert dict(quick.headers) == dict(reference.headers)
    assert [urlsplit(r.url).netloc for r in many] == [host, host]


async def test_a_legacy_bucket_name_is_signed_path_style_on_both_paths() -> None:
    async with Signer(region="us-east-1", **KEYS) as fast, Signer(
        region="us-east-1", fast_signing=False, **KEYS
    ) as slow:
        ours, botocores = frozen()
        with ours, botocores:
            quick = await fast.presign_get("Legacy_Bucket", "k")
            reference = await slow.presign_get("Legacy_Bucket", "k")
    assert urlsplit(quick.url).path == "/Legacy_Bucket/k"
    assert request_of(quick.url) == request_of(reference.url)


async def test_a_multi_region_access_point_arn_is_refused_as_needing_sigv4a(
    offline: Signer,
) -> None:
    with pytest.raises(InvalidArgumentError, match="SigV4A"):
        await offline.presign_get("arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap", "k")


@pytest.mark.parametrize(
    "name",
    [
        "Legacy_Bucket",
        "my-ap-abc123-s3alias",
        "my-olap-abc123--ol-s3",
        "arn:aws:s3:us-east-1:123456789012:accesspoint/my-ap",
        "my-bucket--usw2-az1--x-s3",
    ],
)
async def test_ensure_bucket_refuses_to_create_what_cannot_be_a_new_bucket(
    offline: Signer, name: str
) -> None:
    # Each of these can be signed for when it exists; none can be created.
    not_found = ClientError(
        {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadBucket"
    )
    missing = mock.patch.object(offline.client, "head_bucket", side_effect=not_found)
    create = mock.patch.object(
        offline.client, "create_bucket", side_effect=AssertionError("created")
    )
    with missing, create, pytest.raises(InvalidArgumentError, match="cannot create"):
        await offline.ensure_bucket(name)


async def test_a_server_error_quoting_the_signed_request_shows_no_signature(
    offline: Signer,
) -> None:
    # The Signer's own requests (listings, bucket checks) are signed in their
    # Authorization header; a server may quote it, or S3's SignatureProvided.
    signature = "5e" * 32
    quoted = ClientError(
        {"Error": {"Code": "SignatureDoesNotMatch", "Message": (
            f"Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/"
            f"aws4_request, SignedHeaders=host, Signature={signature}; "
            f"SignatureProvided: {signature}")},
         "ResponseMetadata": {"HTTPStatusCode": 403}},
        "HeadBucket",
    )
    with (
        mock.patch.object(offline.client, "head_bucket", side_effect=quoted),
        pytest.raises(HTTPStatusError) as caught,
    ):
        await offline.ensure_bucket("bkt")
    shown = f"{caught.value} {caught.value!r} {caught.value.s3_message}"
    assert signature not in shown
    assert "SignatureDoesNotMatch" in shown
    assert "Credential=AKIDEXAMPLE/20260101" in shown


@pytest.mark.parametrize(
    ("keyword", "option"),
    [
        ({"content_type": "text/plain"}, {"ContentType": "image/png"}),
        ({"content_md5": "1B2M2Y8AsgTpgAmY7PhCfg=="}, {"ContentMD5": "XUFAKrxLKna5cZ2REBfFkg=="}),
        ({"metadata": {"a": "1"}}, {"Metadata": {"b": "2"}}),
    ],
    ids=["content-type", "content-md5", "metadata"],
)
async def test_a_put_setting_given_both_as_keyword_and_option_is_refused_not_overridden(
    offline: Signer, keyword: dict[str, Any], option: dict[str, Any]
) -> None:
    with pytest.raises(InvalidArgumentError, match="given twice"):
        await offline.presign_put("b", "k", **keyword, **option)
