"""A copy's source metadata: read from the answer's headers, checked, turned into
put_object parameters. Pure: no server, no event loop."""

from __future__ import annotations

import datetime as dt

import pytest

from asyncpresign import MetadataError, TransferError
from asyncpresign._metadata import MAX_HEADER_VALUE, MAX_USER_METADATA, metadata_params

SOURCE = "http://127.0.0.1:1/b/k?X-Amz-Signature=REDACTED"


def test_the_carried_headers_become_put_object_parameters() -> None:
    headers = [
        ("Content-Length", "5"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Encoding", "gzip"),
        ("Cache-Control", "max-age=60"),
        ("Content-Disposition", 'attachment; filename="x.txt"'),
        ("Content-Language", "fr"),
        ("Expires", "Wed, 02 Jan 2030 03:04:05 GMT"),
        ("ETag", '"abc"'),
        ("X-Amz-Meta-Foo", "bar"),
        ("x-amz-meta-x-y", "z  w\tv"),
        ("x-amz-meta-empty", ""),
        ("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
        ("Seaweed-X-Amz-Owner", "someone"),
        ("Last-Modified", "Mon, 30 Nov 2026 02:50:08 GMT"),
    ]
    assert metadata_params(headers, SOURCE) == {
        "ContentType": "text/plain; charset=utf-8",
        "ContentEncoding": "gzip",
        "CacheControl": "max-age=60",
        "ContentDisposition": 'attachment; filename="x.txt"',
        "ContentLanguage": "fr",
        "Expires": dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        # Names as S3 keeps them, lower case; values exactly as sent.
        "Metadata": {"foo": "bar", "x-y": "z  w\tv", "empty": ""},
    }


def test_an_answer_without_metadata_gives_none() -> None:
    assert metadata_params([("Content-Length", "5"), ("ETag", '"x"')]) == {}
    # An empty standard header is as good as none.
    assert metadata_params([("Content-Type", ""), ("Cache-Control", "  ")]) == {}


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("x-amz-meta-a", "one\r\nX-Injected: 1", "control character"),
        ("x-amz-meta-a", "one\nx-amz-acl: public-read", "control character"),
        ("Content-Type", "text/plain\rX: y", "control character"),
        ("Cache-Control", "no\x00cache", "control character"),
        ("x-amz-meta-a", "bell\x07", "control character"),
        ("x-amz-meta-a", "del\x7f", "control character"),
        ("Content-Disposition", "attachment; filename=\"caf\u00e9\"", "non-ASCII"),
        ("x-amz-meta-a", "\udcc3\udca9", "non-ASCII"),  # undecodable bytes, as aiohttp keeps them
    ],
)
def test_a_value_that_would_break_or_add_a_header_fails(name: str, value: str, says: str) -> None:
    with pytest.raises(MetadataError, match=says) as info:
        metadata_params([(name, value)], SOURCE)
    assert info.value.url == SOURCE  # the source is named
    assert isinstance(info.value, TransferError)
    assert isinstance(info.value, ValueError)


def test_a_value_longer_than_carried_fails() -> None:
    metadata_params([("Content-Disposition", "x" * MAX_HEADER_VALUE)])
    with pytest.raises(MetadataError, match=f"{MAX_HEADER_VALUE + 1} characters long"):
        metadata_params([("Content-Disposition", "x" * (MAX_HEADER_VALUE + 1))])


def test_user_metadata_over_s3s_2_kb_fails() -> None:
    # Names (without x-amz-meta-) and values count, as S3 counts them.
    fits = [(f"x-amz-meta-k{i}", "v" * 254) for i in range(8)]  # 8 * (2 + 254) = 2048
    assert len(metadata_params(fits)["Metadata"]) == 8
    over = [*fits, ("x-amz-meta-z", "")]
    with pytest.raises(MetadataError, match=f"2049 bytes .* at most {MAX_USER_METADATA}"):
        metadata_params(over)
    three_kb = [(f"x-amz-meta-m{i}", "v" * 1000) for i in range(3)]
    with pytest.raises(MetadataError, match="user metadata"):
        metadata_params(three_kb)


def test_all_carried_headers_together_are_bounded() -> None:
    big = [(name, "x" * 2000) for name in (
        "Content-Type", "Content-Encoding", "Cache-Control", "Content-Disposition",
        "Content-Language",
    )]
    with pytest.raises(MetadataError, match="at most 8192"):
        metadata_params(big)


@pytest.mark.parametrize(
    "name", ["x-amz-meta-", "x-amz-meta-a{b}", "x-amz-meta-a b", "x-amz-meta-\u00e9"]
)
def test_a_metadata_name_that_is_no_token_fails(name: str) -> None:
    with pytest.raises(MetadataError, match="no valid name"):
        metadata_params([(name, "v")])


def test_a_header_given_twice_fails() -> None:
    with pytest.raises(MetadataError, match="more than once"):
        metadata_params([("X-Amz-Meta-A", "1"), ("x-amz-meta-a", "2")])
    with pytest.raises(MetadataError, match="more than once"):
        metadata_params([("Content-Type", ""), ("content-type", "text/html")])


def test_expires_is_carried_as_the_instant_it_names() -> None:
    got = metadata_params([("Expires", "Thu, 01 Jan 2071 00:00:00 -0000")])
    assert got["Expires"] == dt.datetime(2071, 1, 1, tzinfo=dt.timezone.utc)
    assert got["Expires"].tzinfo is not None
    for bad in ("0", "-1", "never", "Thu, 99 Foo 2071"):
        with pytest.raises(MetadataError, match="not an HTTP date"):
            metadata_params([("Expires", bad)])
