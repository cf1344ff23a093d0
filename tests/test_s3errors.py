import datetime as dt
from urllib.parse import quote

import pytest

from asyncpresign import HTTPStatusError, RequestExpiredError
from asyncpresign._checks import parse_content_range as _parse_content_range
from asyncpresign._s3errors import parse_error_body, parse_retry_after, status_error

EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><RequestId>1</RequestId></Error>"
)


def test_code_and_message_are_parsed_from_s3_xml() -> None:
    assert parse_error_body(EXPIRED) == ("AccessDenied", "Request has expired")


def test_namespaced_error_xml_is_parsed() -> None:
    body = b'<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Code>NoSuchKey</Code></Error>'
    assert parse_error_body(body) == ("NoSuchKey", None)


@pytest.mark.parametrize("body", [b"", b"plain text", b"<not closed", b"\x00\xff"])
def test_bodies_that_are_not_xml_give_no_code(body: bytes) -> None:
    assert parse_error_body(body) == (None, None)


def test_expired_403_becomes_request_expired_error() -> None:
    error = status_error(403, "Forbidden", EXPIRED, None, "http://h/k")
    assert isinstance(error, RequestExpiredError)
    assert error.code == "AccessDenied"
    assert error.status == 403


def test_expired_400_from_other_servers_is_recognised() -> None:
    body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    assert isinstance(status_error(400, "Bad Request", body, None, "u"), RequestExpiredError)


def test_other_access_denied_is_not_expiry() -> None:
    body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    error = status_error(403, "Forbidden", body, None, "u")
    assert type(error) is HTTPStatusError


def test_message_names_status_code_and_s3_message() -> None:
    body = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
    error = status_error(503, "Service Unavailable", body, {"Retry-After": "3"}, "http://h/k")
    assert "503" in str(error)
    assert "SlowDown" in str(error)
    assert "Reduce your rate" in str(error)
    assert error.retry_after == 3.0


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-99/100", (0, 99, 100)),
        ("bytes 50-99/100", (50, 99, 100)),
        ("bytes 5-9/*", (5, 9, None)),
        ("bytes 10-5/100", None),
        ("bytes 0-100/100", None),
        ("items 0-1/2", None),
        ("bytes x-1/2", None),
        ("", None),
    ],
)
def test_content_range_is_parsed_and_checked(
    value: str, parsed: tuple[int, int, int | None] | None
) -> None:
    assert _parse_content_range(value) == parsed


@pytest.mark.parametrize("value", ["-3", "1e400", ".5", "NaN", "inf", "9" * 40, "3 s", "²"])
def test_malformed_retry_after_is_ignored_not_trusted(value: str) -> None:
    assert parse_retry_after(value) is None


def test_redirect_names_where_the_server_points_without_the_signature() -> None:
    body = (
        b"<Error><Code>PermanentRedirect</Code><Message>Use the endpoint</Message>"
        b"<Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint></Error>"
    )
    headers = {
        "Location": "https://b.s3.eu-west-1.amazonaws.com/k?X-Amz-Signature=abcdef0123",
        "x-amz-bucket-region": "eu-west-1",
    }
    error = status_error(307, "Temporary Redirect", body, headers, "u")
    text = str(error)
    assert text.startswith("HTTP 307 PermanentRedirect: Use the endpoint")
    assert "b.s3.eu-west-1.amazonaws.com" in text
    assert "region eu-west-1" in text
    assert "abcdef0123" not in text
    assert "sign for that region or endpoint" in text


def test_a_redirect_to_a_page_quoting_the_signed_url_shows_no_signature() -> None:
    # A gateway's login page told where to send the client back, and the
    # request URL percent-encoded in its own query.
    signed = "https://b.s3.amazonaws.com/k?X-Amz-Signature=" + "ab" * 32
    headers = {"Location": "https://sso.example.com/login?return=" + quote(signed, safe="")}
    text = str(status_error(302, "Found", b"", headers, "u"))
    assert "ab" * 32 not in text
    assert "Location https://sso.example.com/login?return=https%3A%2F%2Fb.s3" in text


def test_status_is_not_doubled_when_s3_sends_no_code() -> None:
    assert str(status_error(403, "Forbidden", b"", None, "")) == "HTTP 403 Forbidden"


def test_transfer_errors_cross_processes_with_every_field() -> None:
    """Failures travel back from Dask workers pickled: each field must survive,
    the ones kept in slots and the ones set beside them."""
    import pickle

    from asyncpresign import IntegrityError, RequestExpiredError, TransportError

    http = RequestExpiredError("HTTP 403 AccessDenied: Request has expired", status=403,
                               code="AccessDenied", s3_message="Request has expired",
                               url="https://h/k?X-Amz-Signature=REDACTED", attempts=2)
    unsent = TransportError("cannot connect: refused", url="https://h/k", request_sent=False)
    untrusted = TransportError("TLS certificate not trusted", retryable=False)
    integrity = IntegrityError("body ended after 3 of 5 bytes", url="https://h/k", attempts=4)
    for error in (http, unsent, untrusted, integrity):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        for name in ("message", "url", "attempts", "status", "code", "s3_message",
                     "retry_after", "request_sent", "retryable"):
            assert getattr(copy, name, "absent") == getattr(error, name, "absent"), name
    assert pickle.loads(pickle.dumps(unsent)).request_sent is False
    assert pickle.loads(pickle.dumps(untrusted)).retryable is False
    assert isinstance(pickle.loads(pickle.dumps(unsent)), ConnectionError)
