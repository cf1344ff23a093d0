"""What a server answers is parsed strictly: pure checks, no server."""

from __future__ import annotations

import pytest

from asyncpresign import IntegrityError, InvalidArgumentError, Timeout, TransportError
from asyncpresign._checks import (
    check_etag,
    expected_total,
    is_plain_md5,
    parse_content_length,
    parse_content_range,
)


@pytest.mark.parametrize("value", ["0", "5", " 17 ", "9223372036854775807"])
def test_content_length_of_ascii_digits_is_a_number(value: str) -> None:
    assert parse_content_length(value) == int(value)


@pytest.mark.parametrize("value", ["²", "+5", "-0", "0x5", "5_0", "1e3", "", "9" * 5000, "٣"])
def test_malformed_content_length_is_a_transport_error_not_a_value_error(value: str) -> None:
    with pytest.raises(TransportError, match="malformed Content-Length"):
        parse_content_length(value)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-9/10", (0, 9, 10)),
        ("bytes 5-9/*", (5, 9, None)),
        ("bytes 100-199/1000", (100, 199, 1000)),
    ],
)
def test_content_range_parses_start_end_and_total(
    value: str, parsed: tuple[int, int, int | None]
) -> None:
    assert parse_content_range(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "bytes ²-5/10", "bytes 0-x/100", "bytes 5-1/10", "bytes 0-10/10", "bits 0-1/2",
        "bytes=0-1/2", "bytes 0-1", "bytes -1-2/3", "bytes 0-" + "9" * 30 + "/5", "",
    ],
)
def test_malformed_content_range_is_refused(value: str) -> None:
    assert parse_content_range(value) is None


def test_a_range_answer_must_start_where_it_was_asked_and_agree_with_its_length() -> None:
    headers = {"Content-Range": "bytes 10-19/100", "Content-Length": "10"}
    assert expected_total(206, headers, 10, "u") == 100
    with pytest.raises(IntegrityError, match="from byte 0"):
        expected_total(206, headers, 0, "u")
    with pytest.raises(IntegrityError, match="does not match"):
        expected_total(206, {**headers, "Content-Length": "11"}, 10, "u")


@pytest.mark.parametrize("offset", [0, 10])
def test_a_range_answer_of_unknown_total_cannot_show_a_download_complete(offset: int) -> None:
    # "bytes 0-999/*" to a GET that asked for no range was moved into place as
    # the whole object, checked by nothing (no checksum, no MD5 ETag).
    headers = {"Content-Range": f"bytes {offset}-999/*", "Content-Length": str(1000 - offset)}
    with pytest.raises(IntegrityError, match="unknown total"):
        expected_total(206, headers, offset, "u")


def test_a_whole_answer_is_as_long_as_its_content_length() -> None:
    assert expected_total(200, {"Content-Length": "42"}, 0, "u") == 42
    assert expected_total(200, {}, 0, "u") is None
    with pytest.raises(TransportError):
        expected_total(200, {"Content-Length": "4 2"}, 0, "u")


def test_an_object_size_no_store_can_hold_is_refused_and_50_tb_is_not() -> None:
    # AWS's largest object is 50 TB; 2^50 (1 PiB) is the most believed.
    assert expected_total(200, {"Content-Length": str(50 * 10**12)}, 0, "u") == 50 * 10**12
    assert expected_total(200, {"Content-Length": str(2**50)}, 0, "u") == 2**50
    with pytest.raises(IntegrityError, match="larger than any object store"):
        expected_total(200, {"Content-Length": str(2**50 + 1)}, 0, "u")
    with pytest.raises(IntegrityError, match="larger than any object store"):
        expected_total(206, {"Content-Range": f"bytes 10-19/{10**19 - 1}"}, 10, "u")
    # A Content-Length is a body's length: any the 19 digits hold still parses.
    assert parse_content_length(str(2**50 + 1)) == 2**50 + 1


@pytest.mark.parametrize(
    "etag",
    ['"d41d8cd98f00b204e9800998ecf8427e"', '"abc-3"', "W/\"x\"", "unquoted"],
)
def test_etags_of_visible_ascii_are_kept(etag: str) -> None:
    assert check_etag(etag, "u") == etag


@pytest.mark.parametrize("etag", ['"a\x01b"', '"a b"', "x" * 2000, "é"])
def test_malformed_etags_are_integrity_errors(etag: str) -> None:
    with pytest.raises(IntegrityError, match="malformed ETag"):
        check_etag(etag, "u")


def test_only_a_32_hex_digit_etag_of_an_unencrypted_object_is_its_md5() -> None:
    md5 = '"d41d8cd98f00b204e9800998ecf8427e"'
    assert is_plain_md5(md5, {})
    assert not is_plain_md5('"d41d8cd98f00b204e9800998ecf8427e-2"', {})
    assert not is_plain_md5(md5, {"x-amz-server-side-encryption": "aws:kms"})
    assert not is_plain_md5(md5, {"x-amz-server-side-encryption-customer-algorithm": "AES256"})


@pytest.mark.parametrize(
    "settings",
    [
        {"min_rate": 0}, {"min_rate": -1.0}, {"min_rate_window": 0},
        {"min_rate_window": None}, {"read": float("nan")}, {"total": float("inf")},
        {"connect": True}, {"min_rate": "1k"},
    ],
)
def test_timeout_settings_out_of_range_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        Timeout(**settings)  # type: ignore[arg-type]


def test_the_low_speed_limit_is_on_by_default_and_can_be_turned_off() -> None:
    assert Timeout().min_rate == 1024.0
    assert Timeout().min_rate_window == 60.0
    assert Timeout(min_rate=None).min_rate is None
