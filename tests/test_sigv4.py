"""QuerySigner must produce botocore's presigned URLs byte for byte.

The property test drives a real botocore S3 client and the sans-I/O signer
with the same clock, credentials, endpoint, key and parameters. The endpoint
is derived per bucket from a URL botocore presigned for a probe key, which is
how the product does it.
"""

from __future__ import annotations

import datetime
import functools
import hmac
import string
from collections.abc import Mapping
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, urlsplit

import botocore.session
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from asyncpresign._exceptions import InvalidArgumentError
from asyncpresign._sigv4 import (
    _PATH_QUOTE_TABLE,
    BucketEndpoint,
    QuerySigner,
    SigningCredentials,
    s3_request_parts,
)
from tests.botocore_clock import frozen_botocore_clock, request_of

PROBE_KEY = "probe"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "xx-made-up-7")
ENDPOINTS = (
    None,  # AWS itself, endpoint chosen by botocore's ruleset
    "http://127.0.0.1:8333",
    "https://s3.example.com",
    "https://S3.Example.COM:443/base/path",  # default port kept in URL, not in signed host
    "http://[::1]:9000",
)
ADDRESSING_STYLES = ("auto", "path", "virtual")
# Few enough to keep one botocore client per combination (creating one takes
# ~15 ms), varied enough to cover encoding of the credential and the token.
CREDENTIALS = (
    SigningCredentials(
        access_key="AKIAIOSFODNN7EXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    ),
    SigningCredentials(
        access_key="ASIAEXAMPLE",
        secret_key="s3cr3t+/=",
        token="FQoGZXIvYXdzEJr//////////wEaDEXAMPLE+/=",
    ),
    SigningCredentials(access_key="AKID/ODD+KEY=", secret_key="x", token="tok en~é"),
    SigningCredentials(access_key="AKIDEXAMPLE", secret_key="y", token=""),  # empty: left out (CRT)
)

# Bucket names of these shapes are aliases or names S3 reserves: the Signer
# either refuses them or signs them as aliases (tested in
# test_signer_guard_rails.py), so the byte-for-byte property leaves them out.
_SPECIAL_BUCKET_SUFFIXES = ("--x-s3", "--ol-s3", "-s3alias", ".mrap")
_SPECIAL_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")


@functools.cache
def _session() -> Any:
    # One session for every client: it caches the parsed service model, which
    # otherwise costs ~200 ms of JSON decoding per client.
    return botocore.session.get_session()


@functools.cache
def _client(region: str, endpoint_url: str | None, style: str, credentials_index: int) -> Any:
    credentials = CREDENTIALS[credentials_index]
    return _session().create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@functools.cache
def _endpoint(region: str, endpoint_url: str | None, style: str, bucket: str) -> BucketEndpoint:
    client = _client(region, endpoint_url, style, 0)
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": PROBE_KEY}, ExpiresIn=60
    )
    return BucketEndpoint.from_presigned_url(url, PROBE_KEY)


@functools.cache
def _signer(region: str) -> QuerySigner:
    return QuerySigner(region)


def _botocore_url(
    client: Any, operation: str, params: Mapping[str, object], expires: int, now: datetime.datetime
) -> str:
    # botocore reads the clock through get_current_datetime (naive UTC), in
    # botocore.auth and, with awscrt, in botocore.crt.auth: both are frozen.
    with frozen_botocore_clock(now):
        url: str = client.generate_presigned_url(operation, Params=params, ExpiresIn=expires)
    return url


# -- strategies ---------------------------------------------------------------

_ANY_TEXT = st.characters(exclude_categories=["Cs"])  # surrogates cannot be UTF-8 encoded
_KEY_PIECES = (
    "/", "//", "./", "../", ".", "..", " ", "  ", "\t", "\n", "\r", "+", "~", "=", "&", "?",
    "#", "%", "%2F", "%20", "'", "(", ")", "[", "]", "{", "}", "|", "^", "!", "*", "$", ";",
    ":", "@", ",", '"', "<", ">", "\\", "`", "a", "Z", "0", "-", "_", "é", "😀", "日本",
    "\u00a0", "\u2028", "\ufeff", "\x00", "\x7f", "\x85",
)  # fmt: skip
KEYS = st.one_of(
    st.text(_ANY_TEXT, min_size=1, max_size=40),
    st.lists(
        st.one_of(st.sampled_from(_KEY_PIECES), st.text(_ANY_TEXT, max_size=4)),
        min_size=1,
        max_size=12,
    )
    .map("".join)
    .filter(bool),
    st.from_regex(r"[A-Za-z0-9._~/-]{1,40}", fullmatch=True),  # the no-escaping fast path
)

# Labels of 3..12 characters, at most three of them: always 3..38 long.
_LABEL = st.from_regex(r"[a-z0-9][a-z0-9-]{1,10}[a-z0-9]", fullmatch=True)
BUCKETS = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=3)
    .map(".".join)
    .filter(lambda b: not b.endswith(_SPECIAL_BUCKET_SUFFIXES))
    .filter(lambda b: not b.startswith(_SPECIAL_BUCKET_PREFIXES)),
    st.sampled_from(["my-bucket", "a.b.c", "my.dotted.bucket", "x" * 63]),
)

_HEADER_TEXT = st.one_of(
    st.text(string.printable, max_size=30),
    st.text(_ANY_TEXT, max_size=20),
    st.sampled_from(["", " ", "  a \t b  ", FORM_CONTENT_TYPE, FORM_CONTENT_TYPE.upper()]),
)
_QUERY_TEXT = st.one_of(
    st.text(_ANY_TEXT, max_size=30),
    st.sampled_from(['attachment; filename="a b.txt"', "inline", "text/plain; charset=utf-8"]),
)
_STRING_PARAMS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "get_object": {
        "ResponseCacheControl": _QUERY_TEXT,
        "ResponseContentDisposition": _QUERY_TEXT,
        "ResponseContentEncoding": _QUERY_TEXT,
        "ResponseContentLanguage": _QUERY_TEXT,
        "ResponseContentType": _QUERY_TEXT,
        "VersionId": _QUERY_TEXT,
        "PartNumber": st.integers(1, 10000),
        "ChecksumMode": st.one_of(st.just("ENABLED"), _HEADER_TEXT),
    },
    "put_object": {
        "CacheControl": _HEADER_TEXT,
        "ContentDisposition": _HEADER_TEXT,
        "ContentEncoding": _HEADER_TEXT,
        "ContentLanguage": _HEADER_TEXT,
        "ContentMD5": st.one_of(_HEADER_TEXT, st.just("1B2M2Y8AsgTpgAmY7PhCfg==")),
        "ContentType": _HEADER_TEXT,
        "Metadata": st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
            st.text(string.printable, max_size=20),
            max_size=4,
        ),
        "ChecksumCRC64NVME": st.one_of(st.just("jSnVw/bqjr4="), _HEADER_TEXT),
        "ChecksumCRC32C": st.one_of(st.just("AAAAAA=="), _HEADER_TEXT),
        "ChecksumCRC32": _HEADER_TEXT,
    },
    "upload_part": {
        "UploadId": _QUERY_TEXT,
        "PartNumber": st.integers(1, 10000),
        "ContentMD5": _HEADER_TEXT,
        "ChecksumCRC64NVME": st.one_of(st.just("jSnVw/bqjr4="), _HEADER_TEXT),
    },
}


@st.composite
def operation_params(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    operation = draw(st.sampled_from(sorted(_STRING_PARAMS)))
    table = _STRING_PARAMS[operation]
    # Chosen as an ordered list: botocore keeps the Params order in the URL.
    names = draw(st.lists(st.sampled_from(sorted(table)), unique=True, max_size=len(table)))
    if operation == "upload_part":
        names = [n for n in names if n not in ("UploadId", "PartNumber")]
        names[draw(st.integers(0, len(names))) : 0] = ["UploadId"]
        names[draw(st.integers(0, len(names))) : 0] = ["PartNumber"]
    return operation, {name: draw(table[name]) for name in names}


NOWS = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2099, 12, 31)
)
OFFSETS = st.one_of(
    st.none(),  # hand the signer the naive UTC value botocore itself uses
    st.integers(-14 * 60, 14 * 60).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m))),
)


# -- the property ------------------------------------------------------------


@settings(
    max_examples=4000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    region=st.sampled_from(REGIONS),
    endpoint_url=st.sampled_from(ENDPOINTS),
    style=st.sampled_from(ADDRESSING_STYLES),
    credentials_index=st.integers(0, len(CREDENTIALS) - 1),
    bucket=BUCKETS,
    key=KEYS,
    operation=operation_params(),
    expires=st.one_of(st.integers(1, 604800), st.sampled_from([1, 3600, 604800])),
    now=NOWS,
    offset=OFFSETS,
)
def test_presign_matches_botocore(
    *,
    region: str,
    endpoint_url: str | None,
    style: str,
    credentials_index: int,
    bucket: str,
    key: str,
    operation: tuple[str, dict[str, object]],
    expires: int,
    now: datetime.datetime,
    offset: datetime.timezone | None,
) -> None:
    operation_name, params = operation
    full_params = {"Bucket": bucket, "Key": key, **params}
    client = _client(region, endpoint_url, style, credentials_index)
    expected = _botocore_url(client, operation_name, full_params, expires, now)

    parts = s3_request_parts(operation_name, full_params)
    assert parts is not None
    method, query, headers = parts
    signer_now = (
        now if offset is None else now.replace(tzinfo=datetime.timezone.utc).astimezone(offset)
    )
    signer = _signer(region)
    endpoint = _endpoint(region, endpoint_url, style, bucket)
    shape: dict[str, Any] = {
        "method": method,
        "endpoint": endpoint,
        "credentials": CREDENTIALS[credentials_index],
        "expires": expires,
        "now": signer_now,
        "query": query,
        "headers": headers,
    }
    # Shown by --hypothesis-show-statistics, to see that the cases spread out.
    event(f"{operation_name}, {len(query)} query params, {len(headers)} headers")
    event("path style" if endpoint.path_prefix else "virtual hosted")
    event("key needs escaping" if quote(key, safe="/~") != key else "key verbatim")
    assert request_of(signer.presign(key=key, **shape)) == request_of(expected)
    assert request_of(signer.presign_many(keys=[PROBE_KEY, key], **shape)[1]) == request_of(
        expected
    )


# -- unit tests ----------------------------------------------------------------

NOW = datetime.datetime(2024, 5, 6, 7, 8, 9)
ENDPOINT = BucketEndpoint(scheme="https", host="examplebucket.s3.amazonaws.com", path_prefix="")
DOC_CREDENTIALS = CREDENTIALS[0]


def test_aws_documentation_example() -> None:
    # "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)",
    # S3 API reference, example GET Object.
    url = QuerySigner("us-east-1").presign(
        method="GET",
        endpoint=ENDPOINT,
        key="test.txt",
        credentials=DOC_CREDENTIALS,
        expires=86400,
        now=datetime.datetime(2013, 5, 24),
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_signing_key_matches_aws_documentation() -> None:
    # "Examples of how to derive a signing key for Signature Version 4".
    signer = QuerySigner("us-east-1", "iam")
    key = signer.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_fixed_upload_part_with_header_query_and_token() -> None:
    # Recorded once from botocore 1.43 (upload_part, Params in this order), so
    # a change on either side shows up even without the property test.
    url = QuerySigner("eu-west-1").presign(
        method="PUT",
        endpoint=BucketEndpoint(scheme="http", host="127.0.0.1:8333", path_prefix="/my.bucket"),
        key="dir/a b+c/ü.txt",
        credentials=CREDENTIALS[1],
        expires=900,
        now=NOW,
        query=[("uploadId", "a/b=c"), ("partNumber", "7")],
        headers={"Content-MD5": "  1B2M2Y8AsgTpgAmY7PhCfg==  "},
    )
    assert url == (
        "http://127.0.0.1:8333/my.bucket/dir/a%20b%2Bc/%C3%BC.txt?uploadId=a%2Fb%3Dc&partNumber=7"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=ASIAEXAMPLE%2F20240506%2Feu-west-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20240506T070809Z&X-Amz-Expires=900&X-Amz-SignedHeaders=content-md5%3Bhost"
        "&X-Amz-Security-Token=FQoGZXIvYXdzEJr%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaDEXAMPLE%2B%2F%3D"
        "&X-Amz-Signature=ad25e40e8161413225c9c4a23eac61ea28815349fd0ffeb006f5f681c30c643a"
    )


def test_signing_key_cached_per_day() -> None:
    signer = QuerySigner("eu-west-1")
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    first = signer.signing_key(secret, "20240506")
    assert signer.signing_key(secret, "20240506") is first
    assert signer.signing_key(secret, "20240507") != first
    assert signer.signing_key("other", "20240506") != first


def test_presign_derives_the_key_once_per_day() -> None:
    signer = QuerySigner("eu-west-1")
    shape: dict[str, Any] = {"method": "GET", "endpoint": ENDPOINT, "credentials": DOC_CREDENTIALS}
    real_digest = hmac.digest
    with mock.patch("asyncpresign._sigv4.hmac.digest", side_effect=real_digest) as digest:
        late = datetime.datetime(2024, 5, 6, 23, 59, 58)
        for second, key in enumerate(["a", "b", "c"]):
            signer.presign(
                key=key, expires=60, now=late + datetime.timedelta(seconds=second / 2), **shape
            )
        signer.presign_many(keys=["d", "e"], expires=120, now=late, **shape)
        assert digest.call_count == 4  # kDate, kRegion, kService, kSigning
        url = signer.presign(key="a", expires=60, now=datetime.datetime(2024, 5, 7), **shape)
        assert digest.call_count == 8
    assert "%2F20240507%2F" in url


def test_credentials_repr_hides_secret_and_token() -> None:
    credentials = SigningCredentials(
        access_key="AKIDVISIBLE", secret_key="SECRETVALUE", token="TOKENVALUE"
    )
    for text in (repr(credentials), str(credentials), f"{credentials}"):
        assert "AKIDVISIBLE" in text
        assert "SECRETVALUE" not in text
        assert "TOKENVALUE" not in text


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ((), None),
        ([("response-content-disposition", 'attachment; filename="a b.txt"')], None),
        ([("partNumber", "3"), ("uploadId", "abc")], {"content-md5": "abc==", "X-Amz-Meta-A": "1"}),
    ],
)
def test_presign_many_equals_presign(
    query: list[tuple[str, str]], headers: dict[str, str] | None
) -> None:
    signer = QuerySigner("ap-southeast-2")
    keys = ["a", "dir/b.txt", "sp ace", "ünï/cødé", "//x/../y/./", "%41", "😀", "a" * 300]
    shape: dict[str, Any] = {
        "method": "PUT",
        "endpoint": BucketEndpoint(scheme="https", host="s3.example.com", path_prefix="/b"),
        "credentials": CREDENTIALS[2],
        "expires": 3600,
        "now": NOW,
        "query": query,
        "headers": headers,
    }
    many = signer.presign_many(keys=iter(keys), **shape)
    assert many == [QuerySigner("ap-southeast-2").presign(key=k, **shape) for k in keys]


def test_path_quote_table_is_botocore_quoting() -> None:
    for byte in range(256):
        assert _PATH_QUOTE_TABLE[byte] == quote(bytes([byte]), safe="/~")


def test_aware_and_naive_clocks_agree() -> None:
    signer = QuerySigner("us-east-1")
    shape: dict[str, Any] = {
        "method": "GET",
        "endpoint": ENDPOINT,
        "key": "k",
        "credentials": DOC_CREDENTIALS,
        "expires": 5,
    }
    naive = signer.presign(now=datetime.datetime(2024, 1, 1, 0, 30, 0, 999999), **shape)
    india = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    aware = signer.presign(now=datetime.datetime(2024, 1, 1, 6, 0, tzinfo=india), **shape)
    assert naive == aware
    assert "X-Amz-Date=20240101T003000Z" in naive


def test_form_content_type_is_not_signed() -> None:
    # botocore's SigV4QueryAuth drops this exact value, believing it set it itself.
    signer = QuerySigner("us-east-1")
    shape: dict[str, Any] = {
        "method": "PUT", "endpoint": ENDPOINT, "key": "k", "credentials": DOC_CREDENTIALS,
        "expires": 5, "now": NOW,
    }  # fmt: skip
    dropped = signer.presign(headers={"Content-Type": FORM_CONTENT_TYPE}, **shape)
    assert "X-Amz-SignedHeaders=host&" in dropped
    assert dropped == signer.presign(**shape)
    kept = signer.presign(headers={"Content-Type": FORM_CONTENT_TYPE.upper()}, **shape)
    assert "X-Amz-SignedHeaders=content-type%3Bhost&" in kept


def test_unsigned_headers_are_left_out() -> None:
    signer = QuerySigner("us-east-1")
    url = signer.presign(
        method="PUT",
        endpoint=ENDPOINT,
        key="k",
        credentials=DOC_CREDENTIALS,
        expires=5,
        now=NOW,
        headers={"User-Agent": "x", "Expect": "100-continue", "Content-Type": "a/b"},
    )
    assert dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"] == "content-type;host"


@pytest.mark.parametrize(
    "changes",
    [
        {"key": ""},
        {"key": "bad\ud800surrogate"},
        {"expires": 0},
        {"expires": 604801},
        {"expires": True},
        {"expires": 60.0},
        {"method": "GE T"},
        {"now": datetime.date(2024, 1, 1)},
        {"query": [("a", "1"), ("a", "2")]},
        {"query": [("X-Amz-Signature", "x")]},
        {"query": [("a", 1)]},
        {"headers": {"host": "evil.example"}},
        {"headers": {"bad name": "x"}},
        {"headers": {"x-ok": 1}},
    ],
)
def test_invalid_arguments(changes: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "method": "GET", "endpoint": ENDPOINT, "key": "k", "credentials": DOC_CREDENTIALS,
        "expires": 60, "now": NOW, **changes,
    }  # fmt: skip
    with pytest.raises(InvalidArgumentError):
        QuerySigner("us-east-1").presign(**arguments)
    many = {k: v for k, v in arguments.items() if k != "key"}
    with pytest.raises(InvalidArgumentError):
        QuerySigner("us-east-1").presign_many(keys=["ok", arguments["key"]], **many)


def test_invalid_construction() -> None:
    with pytest.raises(InvalidArgumentError):
        SigningCredentials(access_key="", secret_key="s")
    with pytest.raises(InvalidArgumentError):
        BucketEndpoint(scheme="ftp", host="h", path_prefix="")
    with pytest.raises(InvalidArgumentError):
        BucketEndpoint(scheme="https", host="h", path_prefix="nolead")
    with pytest.raises(InvalidArgumentError):
        QuerySigner("us/east")


def test_endpoint_from_presigned_url() -> None:
    virtual = BucketEndpoint.from_presigned_url(
        "https://b.s3.eu-west-1.amazonaws.com/probe?X-Amz-Algorithm=AWS4-HMAC-SHA256", "probe"
    )
    assert virtual == BucketEndpoint(
        scheme="https", host="b.s3.eu-west-1.amazonaws.com", path_prefix=""
    )
    path = BucketEndpoint.from_presigned_url(
        "HTTP://S3.Example.com:8443/base/my.bucket/a%20b/c?x=1", "a b/c"
    )
    assert path == BucketEndpoint(
        scheme="http", host="S3.Example.com:8443", path_prefix="/base/my.bucket"
    )
    with pytest.raises(InvalidArgumentError):
        BucketEndpoint.from_presigned_url("https://b.s3.amazonaws.com/other", "probe")


def test_signed_host_drops_default_port_and_lowercases() -> None:
    signer = QuerySigner("us-east-1")
    shape: dict[str, Any] = {
        "method": "GET",
        "key": "k",
        "credentials": DOC_CREDENTIALS,
        "expires": 5,
        "now": NOW,
    }
    lower = BucketEndpoint(scheme="https", host="s3.example.com", path_prefix="/b")
    upper = BucketEndpoint(scheme="https", host="S3.Example.COM:443", path_prefix="/b")
    signature = signer.presign(endpoint=lower, **shape).rpartition("=")[2]
    url = signer.presign(endpoint=upper, **shape)
    assert url.startswith("https://S3.Example.COM:443/b/k?")
    assert url.endswith(signature)


def test_s3_request_parts_mapping() -> None:
    assert s3_request_parts(
        "get_object",
        {"Bucket": "b", "Key": "k", "ResponseContentType": "a/b", "ResponseCacheControl": "no"},
    ) == ("GET", [("response-content-type", "a/b"), ("response-cache-control", "no")], {})
    assert s3_request_parts(
        "put_object",
        {"ContentType": "text/plain", "ContentMD5": "x==", "Metadata": {"Color": "blue"}},
    ) == (
        "PUT",
        [],
        {"content-type": "text/plain", "content-md5": "x==", "x-amz-meta-color": "blue"},
    )
    assert s3_request_parts("upload_part", {"PartNumber": 3, "UploadId": "u"}) == (
        "PUT",
        [("partNumber", "3"), ("uploadId", "u")],
        {},
    )


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("delete_object", {}),
        ("get_object", {"Range": "bytes=0-1"}),
        ("get_object", {"ResponseExpires": datetime.datetime(2024, 1, 1)}),
        ("get_object", {"ResponseContentType": None}),
        ("get_object", {"Bucket": 3}),
        ("upload_part", {"PartNumber": True}),
        ("upload_part", {"PartNumber": "3"}),
        ("upload_part", {"PartNumber": 10001}),
        ("put_object", {"Metadata": {"k": "vé"}}),
        ("put_object", {"Metadata": {"bad key": "v"}}),
        ("put_object", {"Metadata": {"A": "1", "a": "2"}}),
        ("put_object", {"Metadata": [("a", "b")]}),
        ("put_object", {"ContentLength": 3}),
    ],
)
def test_s3_request_parts_declines(operation: str, params: dict[str, object]) -> None:
    assert s3_request_parts(operation, params) is None
