import datetime as dt

import pytest

from asyncpresign import InvalidArgumentError
from asyncpresign._validation import (
    check_bucket,
    check_chunk_size,
    check_http_url,
    check_key,
    expires_seconds,
)


@pytest.mark.parametrize("name", ["abc", "my-bucket", "my.bucket.name", "a" * 63, "0bucket9"])
def test_valid_bucket_names_pass(name: str) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "My-Bucket", "under_score", "-start", "end-", "two..dots", "a.-b",
     "192.168.1.1", "xn--punycode", "bucket-s3alias", "with space", ""],
)
def test_invalid_bucket_names_raise_a_value_error_naming_the_bucket(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid bucket name") as info:
        check_bucket(name)
    assert isinstance(info.value, ValueError)


def test_empty_key_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="must not be empty"):
        check_key("")


def test_key_over_1024_utf8_bytes_is_rejected() -> None:
    check_key("é" * 512)  # 1024 bytes: the limit itself is fine
    with pytest.raises(InvalidArgumentError, match="1025 bytes"):
        check_key("é" * 512 + "x")


def test_key_with_a_lone_surrogate_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        check_key("bad\ud800key")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1, 1), (3600, 3600), (604800, 604800), (dt.timedelta(hours=2), 7200), (90.7, 90)],
)
def test_expiry_accepts_seconds_and_timedeltas_within_seven_days(
    value: float | dt.timedelta, seconds: int
) -> None:
    assert expires_seconds(value) == seconds


@pytest.mark.parametrize("value", [0, -5, 604801, dt.timedelta(days=8), dt.timedelta(0)])
def test_expiry_outside_one_second_to_seven_days_is_rejected(value: float | dt.timedelta) -> None:
    with pytest.raises(InvalidArgumentError, match="7 days"):
        expires_seconds(value)


def test_expiry_of_a_wrong_type_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="seconds or a timedelta"):
        expires_seconds("3600")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [4096, 65536, 8 * 1024 * 1024])
def test_chunk_sizes_from_4_kib_to_8_mib_are_accepted(size: int) -> None:
    assert check_chunk_size(size) == size


@pytest.mark.parametrize("size", [0, 4095, 8 * 1024 * 1024 + 1, -1])
def test_chunk_sizes_outside_the_range_are_rejected(size: int) -> None:
    with pytest.raises(InvalidArgumentError, match="chunk_size"):
        check_chunk_size(size)


@pytest.mark.parametrize("url", ["not a url", "ftp://host/x", "/relative/path", "http://", ""])
def test_non_http_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        check_http_url(url)


def test_rejected_url_does_not_echo_its_signature() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_http_url("ftp://h/k?X-Amz-Signature=deadbeefcafe")
    assert "deadbeefcafe" not in str(info.value)
