"""The engine against a hostile raw HTTP server: every byte of every answer chosen.

A real S3 never sends two Content-Lengths, a lenient chunk size or a trickle,
but a proxy, a broken gateway or an attacker on the path can. Whatever arrives,
the engine must fail with one of asyncpresign's errors (never a bare
ValueError), retry only what may be retried, never send a POST twice, never
follow a redirect with a signed URL, refuse before connecting what it must not
send, and leave nothing behind in the destination folder.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncpresign import (
    HTTPStatusError,
    InvalidArgumentError,
    PresignedPost,
    PresignedRequest,
    RetryPolicy,
    Timeout,
    TransferEngine,
    TransferError,
    TransferTimeoutError,
    TransportError,
)

from .conftest import address_space_capped
from .rawserver import Answer, RawServer, Reply, Request, Serve, fixed, head_bytes, trickle

pytestmark = pytest.mark.anyio

ATTEMPTS = 2
RETRY = RetryPolicy(attempts=ATTEMPTS, initial_backoff=0.0, max_backoff=0.0)
SIGNED = "/b/k?X-Amz-Signature=secret123"
MiB = 1024 * 1024


def engine(**options: Any) -> TransferEngine:
    return TransferEngine(retry=RETRY, **options)


def in_an_hour() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)


def assert_nothing_left(folder: Path, name: str = "f") -> None:
    """No file at the destination, no hidden partial beside it, nothing else either."""
    assert not (folder / name).exists()
    assert list(folder.glob(f".{name}*.asyncpresign-partial")) == []
    assert os.listdir(folder) == []


def always(*pieces: bytes, close: bool = True) -> Answer:
    """The same bytes for every request, then (by default) the connection closed."""
    return lambda _: Reply(list(pieces), close=close)


async def download_error(
    server: RawServer, folder: Path, expected: type[TransferError], **options: Any
) -> TransferError:
    """Download from ``server`` expecting ``expected``; check nothing is left behind."""
    async with engine(**options) as eng:
        with pytest.raises(expected) as caught:
            await eng.download(server.url + SIGNED, folder / "f")
    assert_nothing_left(folder)
    assert "secret123" not in str(caught.value)
    return caught.value


# -- a well-formed answer, so a failure below is the answer's fault -------------------------


async def test_a_well_formed_answer_from_the_raw_server_downloads_whole(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(fixed(200, b"hello world", 'ETag: "abc"'))
    async with engine() as eng:
        result = await eng.download(server.url + SIGNED, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == b"hello world"
    assert result.attempts == 1
    assert len(server.requests) == 1
    assert server.requests[0].method == "GET"


async def test_requests_ask_for_the_bytes_as_stored_and_invent_no_content_type(
    serve: Serve, tmp_path: Path
) -> None:
    """No Accept-Encoding at all would allow any coding (RFC 9110): a proxy that
    compressed on the fly would hand over bytes the checksum does not describe.
    A PUT carries no Content-Type it was not given: S3 would store it."""
    server = await serve(fixed(200, b"hello world", 'ETag: "abc"'))
    async with engine() as eng:
        await eng.download(server.url + SIGNED, tmp_path / "f")
        await eng.upload(server.url + SIGNED, b"body")
    get, put = server.requests
    assert (get.method, put.method) == ("GET", "PUT")
    for request in (get, put):
        assert request.header("accept-encoding") == "identity"
        assert request.header("content-type") is None


@pytest.mark.parametrize("status", [412, 416])
async def test_a_precondition_answer_to_a_plain_get_is_the_servers_error_not_a_changed_object(
    serve: Serve, tmp_path: Path, status: int
) -> None:
    """Nothing was asked If-Match or from an offset, yet it was reported as
    "object changed since the partial download began ... restarting from zero"."""
    server = await serve(fixed(status, b"", 'ETag: "abc"'))
    async with engine() as eng:
        with pytest.raises(HTTPStatusError) as caught:
            await eng.download(server.url + SIGNED, tmp_path / "f")
    assert caught.value.status == status
    assert "partial" not in str(caught.value)
    assert os.listdir(tmp_path) == []


# -- framing --------------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [("40", "100"), ("40", "40")])
async def test_two_content_lengths_are_a_transport_error_after_every_attempt(
    serve: Serve, tmp_path: Path, first: str, second: str
) -> None:
    head = head_bytes("HTTP/1.1 200 OK", f"Content-Length: {first}", f"Content-Length: {second}")
    server = await serve(always(head + b"x" * 40))
    error = await download_error(server, tmp_path, TransportError)
    assert error.attempts == ATTEMPTS
    assert len(server.requests) == ATTEMPTS


async def test_content_length_beside_chunked_encoding_is_a_transport_error(
    serve: Serve, tmp_path: Path
) -> None:
    head = head_bytes("HTTP/1.1 200 OK", "Content-Length: 5", "Transfer-Encoding: chunked")
    server = await serve(always(head + b"5\r\nhello\r\n0\r\n\r\n"))
    await download_error(server, tmp_path, TransportError)
    assert len(server.requests) == ATTEMPTS


@pytest.mark.parametrize(
    "chunks",
    [
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-0\r\n\r\n",  # read leniently, an empty object would be "downloaded"
        b"0_5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["0x5", "+5", "-0", "0_5"],
)
async def test_lenient_chunk_size_is_a_transport_error(
    serve: Serve, tmp_path: Path, chunks: bytes
) -> None:
    head = head_bytes("HTTP/1.1 200 OK", "Transfer-Encoding: chunked")
    server = await serve(always(head + chunks))
    await download_error(server, tmp_path, TransportError)


@pytest.mark.parametrize(
    "status_line",
    ["HTTP/1.9 200 OK", "HTTP/1.1 2x0 OK", "HTTP/2 200", "FOO"],
)
async def test_malformed_status_line_is_a_transport_error(
    serve: Serve, tmp_path: Path, status_line: str
) -> None:
    server = await serve(always(head_bytes(status_line, "Content-Length: 2") + b"ok"))
    await download_error(server, tmp_path, TransportError)


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000], ids=["superscript-two", "5000-digits"])
async def test_non_ascii_or_huge_content_length_is_a_transport_error_not_a_value_error(
    serve: Serve, tmp_path: Path, value: str
) -> None:
    server = await serve(always(head_bytes("HTTP/1.1 200 OK", f"Content-Length: {value}") + b"ok"))
    await download_error(server, tmp_path, TransportError)


async def test_body_cut_short_of_its_content_length_is_a_transport_error_after_every_attempt(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(always(head_bytes("HTTP/1.1 200 OK", "Content-Length: 100") + b"x" * 40))
    error = await download_error(server, tmp_path, TransportError)
    assert error.attempts == ATTEMPTS
    assert len(server.requests) == ATTEMPTS


# -- early answers and closed connections ---------------------------------------------------


async def test_403_sent_before_the_upload_body_is_read_is_a_status_error_with_s3_code(
    serve: Serve,
) -> None:
    body = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
    answer = head_bytes("HTTP/1.1 403 Forbidden", f"Content-Length: {len(body)}") + body
    server = await serve(lambda _: Reply([answer], close=True, read_body=False))
    async with engine() as eng:
        with pytest.raises(HTTPStatusError) as caught:
            await eng.upload(server.url + SIGNED, bytes(8 * MiB))
    assert caught.value.status == 403
    assert caught.value.code == "AccessDenied"
    assert server.methods() == ["PUT"]  # a 403 is not retried


async def test_keep_alive_connection_closed_after_a_complete_answer_is_replaced(
    serve: Serve, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4
    # No "Connection: close": the client may keep the connection, which then dies.
    server = await serve(fixed(200, data, close=True))
    async with engine() as eng:
        first = await eng.download(server.url + SIGNED, tmp_path / "a")
        await asyncio.sleep(0.05)
        second = await eng.download(server.url + SIGNED, tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == data
    assert (tmp_path / "b").read_bytes() == data
    assert (first.attempts, second.attempts) == (1, 1)
    assert (len(server.requests), server.connections) == (2, 2)


async def test_post_whose_connection_closes_after_its_body_without_an_answer_is_sent_once(
    serve: Serve,
) -> None:
    server = await serve(lambda _: Reply([], close=True))
    post = PresignedPost(
        url=server.url + "/b",
        fields={"key": "k", "policy": "p", "x-amz-signature": "secret123"},
        expires_at=in_an_hour(),
    )
    async with engine() as eng:
        with pytest.raises(TransferError) as caught:
            await eng.upload_post(post, b"form-data-payload")
    assert server.methods() == ["POST"]  # its body went out: never sent twice
    body = server.requests[0].body
    assert body is not None
    assert b"form-data-payload" in body
    assert "secret123" not in str(caught.value)


async def test_put_whose_connection_closes_after_its_body_without_an_answer_is_retried(
    serve: Serve,
) -> None:
    server = await serve(lambda _: Reply([], close=True))
    async with engine() as eng:
        with pytest.raises(TransportError) as caught:
            await eng.upload(server.url + SIGNED, b"put-payload")
    assert server.methods() == ["PUT"] * ATTEMPTS
    assert server.bodies == [b"put-payload"] * ATTEMPTS
    assert caught.value.attempts == ATTEMPTS


async def test_get_whose_connection_closes_without_an_answer_is_sent_once_per_attempt(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(lambda _: Reply([], close=True))
    error = await download_error(server, tmp_path, TransportError)
    assert error.attempts == ATTEMPTS
    assert server.methods() == ["GET"] * ATTEMPTS  # the policy's attempts, no hidden extra


# -- stalls ---------------------------------------------------------------------------------

SLOW = Timeout(read=5, min_rate=100, min_rate_window=0.5)


@pytest.mark.parametrize("where", ["head", "body"])
async def test_trickling_server_fails_the_low_speed_limit_in_bounded_time(
    serve: Serve, tmp_path: Path, where: str
) -> None:
    body = b"y" * 200
    head = head_bytes("HTTP/1.1 200 OK", f"Content-Length: {len(body)}")
    pieces = trickle(head + body) if where == "head" else [head, *trickle(body)]
    server = await serve(lambda _: Reply(pieces, pause=0.2))
    started = time.monotonic()
    error = await download_error(server, tmp_path, TransferTimeoutError, timeout=SLOW)
    elapsed = time.monotonic() - started
    assert "min_rate" in str(error)
    assert elapsed < 10
    assert len(server.requests) == ATTEMPTS


# -- redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(307, "TemporaryRedirect"), (301, "PermanentRedirect")]
)
async def test_redirect_is_not_followed_and_names_where_it_points_without_the_signature(
    serve: Serve, tmp_path: Path, status: int, code: str
) -> None:
    other = await serve(fixed(200, b"must not be fetched"))
    where = f"127.0.0.1:{other.port}"
    xml = (
        f"<Error><Code>{code}</Code><Message>Please re-send this request to the specified "
        f"endpoint.</Message><Endpoint>{where}</Endpoint><Bucket>b</Bucket></Error>"
    ).encode()
    answer = head_bytes(
        f"HTTP/1.1 {status} Moved",
        f"Location: http://{where}/k?X-Amz-Signature=secret123",
        f"Content-Length: {len(xml)}",
    ) + xml
    server = await serve(lambda _: Reply([answer]))
    error = await download_error(server, tmp_path, HTTPStatusError)
    assert isinstance(error, HTTPStatusError)
    assert error.status == status
    assert error.code == code
    text = str(error)
    assert where in text
    assert "sign for that region or endpoint" in text
    assert "secret123" not in text
    assert other.connections == 0
    assert len(server.requests) == 1


# -- what must be refused before connecting -------------------------------------------------


def put_request(url: str, headers: dict[str, str] | None = None) -> PresignedRequest:
    return PresignedRequest(
        method="PUT", url=url, headers=headers or {}, expires_at=in_an_hour()
    )


@pytest.mark.parametrize(
    "name",
    ["content-length", "Content-LENGTH", "Transfer-Encoding", "host", "Connection", "Expect",
     "Upgrade"],
)
async def test_framing_header_given_by_the_caller_is_refused_before_connecting(
    serve: Serve, name: str
) -> None:
    server = await serve(fixed(200, b""))
    async with engine() as eng:
        with pytest.raises(InvalidArgumentError):
            await eng.upload(put_request(server.url + SIGNED, {name: "5"}), b"x")
    assert server.connections == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-meta-a": "1\r\nX-Injected: yes"},
        {"x-amz-meta-a": "1\nX-Injected: yes"},
        {"x-amz-meta-a": "1\x00"},
        {"x-amz meta": "1"},
        {"x-amz:meta": "1"},
    ],
    ids=["crlf-value", "lf-value", "nul-value", "space-name", "colon-name"],
)
async def test_header_with_a_control_character_or_bad_name_is_refused_before_connecting(
    serve: Serve, headers: dict[str, str]
) -> None:
    server = await serve(fixed(200, b""))
    async with engine() as eng:
        with pytest.raises(InvalidArgumentError):
            await eng.upload(put_request(server.url + SIGNED, headers), b"x")
    assert server.connections == 0


BAD_PATHS = pytest.mark.parametrize(
    "path", ["/b/k\r\nX-Injected: yes", "/b/k\x00", "/b/k x"], ids=["crlf", "nul", "space"]
)


@BAD_PATHS
async def test_upload_url_with_a_control_character_or_space_is_refused_before_connecting(
    serve: Serve, path: str
) -> None:
    server = await serve(fixed(200, b""))
    async with engine() as eng:
        with pytest.raises(InvalidArgumentError):
            await eng.upload(put_request(server.url + path), b"x")
    assert server.connections == 0


@BAD_PATHS
async def test_download_url_with_a_control_character_or_space_is_refused_before_connecting(
    serve: Serve, tmp_path: Path, path: str
) -> None:
    server = await serve(fixed(200, b""))
    async with engine() as eng:
        with pytest.raises(InvalidArgumentError):
            await eng.download(server.url + path, tmp_path / "f")
    assert server.connections == 0
    assert_nothing_left(tmp_path)


async def test_upload_of_a_presigned_get_is_refused_before_connecting(serve: Serve) -> None:
    server = await serve(fixed(200, b""))
    request = PresignedRequest(method="GET", url=server.url + SIGNED, expires_at=in_an_hour())
    async with engine() as eng:
        with pytest.raises(InvalidArgumentError):
            await eng.upload(request, b"x")
    assert server.connections == 0


async def test_download_of_a_presigned_put_is_refused_before_connecting(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(fixed(200, b""))
    async with engine() as eng:
        with pytest.raises(InvalidArgumentError):
            await eng.download(put_request(server.url + SIGNED), tmp_path / "f")
    assert server.connections == 0
    assert_nothing_left(tmp_path)


# -- ranged answers -------------------------------------------------------------------------


def allocated(folder: Path) -> int:
    """The most disk any one file in ``folder`` has allocated, in bytes."""
    most = 0
    for entry in os.scandir(folder):
        try:
            most = max(most, entry.stat(follow_symlinks=False).st_blocks * 512)
        except FileNotFoundError:
            continue
    return most


async def test_claimed_huge_object_reserves_no_more_disk_than_arrives(
    serve: Serve, tmp_path: Path
) -> None:
    part = 5 * MiB
    # The first request of a ranged download asks for the whole object (only a
    # whole answer carries its checksum); this one claims 4 GiB and sends 1,000.
    head = head_bytes(
        "HTTP/1.1 200 OK",
        "Content-Length: 4294967296",
        "Accept-Ranges: bytes",
        'ETag: "abc"',
    )
    seen: list[int] = []

    async def hold_and_look() -> None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            seen.append(allocated(tmp_path))
            await asyncio.sleep(0.05)

    def answer(request: Request) -> Reply:
        return Reply([head + b"z" * 1000], close=True, after=hold_and_look)

    server = await serve(answer)
    await download_error(
        server, tmp_path, TransferError, multipart_threshold=part, part_size=part
    )
    assert seen
    assert max(seen) <= 64 * MiB
    assert server.requests[0].header("range") is None


def claims_10_to_the_15_bytes(part: int) -> Answer:
    """A server that claims an object of 10^15 bytes (under the 1 PiB believed),
    with ranges: the whole answer carries the first part, then closes; every
    range's connection closes unanswered."""
    head = head_bytes(
        "HTTP/1.1 200 OK", f"Content-Length: {10**15}", "Accept-Ranges: bytes", 'ETag: "abc-2"'
    )

    def answer(request: Request) -> Reply:
        if request.header("range") is None:
            return Reply([head, b"z" * part], close=True)
        return Reply([], close=True)

    return answer


def first_ranges(part: int, count: int) -> set[str]:
    return {f"bytes={part * n}-{part * (n + 1) - 1}" for n in range(1, count + 1)}


async def test_a_claimed_10_to_the_15_bytes_fails_the_download_cleanly_in_bounded_memory(
    serve: Serve, tmp_path: Path
) -> None:
    # Its 190 million ranges were planned as one list: a MemoryError (or the
    # machine's memory) instead of a failed download.
    part = 5 * MiB
    server = await serve(claims_10_to_the_15_bytes(part))
    with address_space_capped(1024 * MiB):
        await download_error(
            server, tmp_path, TransportError, multipart_threshold=part, part_size=part,
            concurrency=4,
        )
    asked = [request.header("range") for request in server.requests[1:]]
    assert asked
    assert set(asked) <= first_ranges(part, 4)  # at most 4 ranges in flight, in order
    assert len(asked) <= 4 * ATTEMPTS


async def test_a_stream_of_a_claimed_10_to_the_15_bytes_fails_cleanly_in_bounded_memory(
    serve: Serve,
) -> None:
    part = 5 * MiB
    server = await serve(claims_10_to_the_15_bytes(part))
    got = bytearray()
    async with engine(part_size=part, concurrency=4) as eng:

        async def read_what_comes() -> None:
            async with eng.download_stream(server.url + SIGNED, parts_in_flight=4) as stream:
                async for piece in stream:
                    got.extend(piece)

        with address_space_capped(1024 * MiB), pytest.raises(TransportError):
            await read_what_comes()
    assert got == b"z" * part
    asked = [request.header("range") for request in server.requests[1:]]
    assert asked
    assert set(asked) <= first_ranges(part, 4)
    assert len(asked) <= 4 * ATTEMPTS


@pytest.mark.parametrize("content_range", ["bytes \u00b2-5/10", "bytes 0-x/100", "bytes 5-1/10"])
async def test_malformed_content_range_is_a_transfer_error_not_a_value_error(
    serve: Serve, tmp_path: Path, content_range: str
) -> None:
    head = head_bytes(
        "HTTP/1.1 206 Partial Content",
        "Content-Length: 6",
        f"Content-Range: {content_range}",
        'ETag: "abc"',
    )
    server = await serve(always(head + b"abcdef", close=False))
    await download_error(server, tmp_path, TransferError)


@pytest.mark.parametrize(
    "etag", ['"ab\x01c"', '"' + "a" * 2100 + '"'], ids=["control-character", "2100-chars"]
)
async def test_malformed_etag_is_a_transfer_error(
    serve: Serve, tmp_path: Path, etag: str
) -> None:
    server = await serve(fixed(200, b"hello", f"ETag: {etag}"))
    await download_error(server, tmp_path, TransferError)


# -- a range's answer that runs past its range ------------------------------------------------


def _chunked(data: bytes, piece: int = 65536) -> bytes:
    out = [b"%x\r\n%s\r\n" % (len(data[i : i + piece]), data[i : i + piece])
           for i in range(0, len(data), piece)]
    return b"".join(out) + b"0\r\n\r\n"


async def test_a_range_answer_longer_than_its_range_never_overwrites_the_next_range(
    serve: Serve, tmp_path: Path
) -> None:
    """A 206 with the exact Content-Range, chunked, whose body runs 100,000 bytes
    past its range, answered after the next range has landed: its excess went
    over the next range's bytes in the file, while each range's CRC (of what
    came over the wire) still combined to the object's, so a corrupt file was
    reported checked. Now the range fails and is fetched again."""
    import base64
    import random

    from awscrt import checksums

    part = 5 * MiB
    data = random.Random(7).randbytes(3 * part)
    crc = base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()
    common = ("Accept-Ranges: bytes", 'ETag: "0123456789abcdef0123456789abcdef-3"')
    asked: list[int] = []

    def answer(request: Request) -> Reply:
        wanted = request.header("range")
        if wanted is None:
            return Reply([head_bytes(
                "HTTP/1.1 200 OK", f"Content-Length: {len(data)}",
                f"x-amz-checksum-crc64nvme: {crc}", "x-amz-checksum-type: FULL_OBJECT", *common,
            ) + data], close=True)
        first, last = (int(n) for n in wanted.removeprefix("bytes=").split("-"))
        asked.append(first)
        content_range = f"Content-Range: bytes {first}-{last}/{len(data)}"
        if first == part and asked.count(first) == 1:
            # Late (the next range lands first), and 100,000 bytes too long.
            head = head_bytes("HTTP/1.1 206 Partial Content", content_range,
                              "Transfer-Encoding: chunked", *common)
            return Reply([b"", head + _chunked(data[first : last + 1] + b"\xaa" * 100_000)],
                         pause=0.7, close=True)
        head = head_bytes("HTTP/1.1 206 Partial Content", content_range,
                          f"Content-Length: {last - first + 1}", *common)
        return Reply([head + data[first : last + 1]])

    server = await serve(answer)
    async with engine(multipart_threshold=part, part_size=part) as eng:
        result = await eng.download(server.url + SIGNED, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == data
    assert result.verified == "crc64nvme"
    assert sorted(asked) == [part, part, 2 * part]  # the long answer's range, again


async def test_a_range_writer_refuses_bytes_past_its_range_before_writing_them(
    tmp_path: Path,
) -> None:
    from asyncpresign import IntegrityError
    from asyncpresign._diskio import RangeWriter
    from asyncpresign._files import PartialFile

    partial = PartialFile(dest=str(tmp_path / "f"), path=str(tmp_path / ".f.partial"))
    await anyio.Path(partial.path).write_bytes(b"." * 30)
    writer = RangeWriter(partial, 10, 10)
    await writer.open(create=False)
    try:
        await writer.write([b"a" * 6])
        with pytest.raises(IntegrityError, match="ran past its 10 bytes"):
            await writer.write([b"b" * 3, b"c" * 2])
        await writer.write([b"d" * 4])  # what fits still goes in
    finally:
        await writer.close()
    expected = b"." * 10 + b"a" * 6 + b"d" * 4 + b"." * 10
    assert await anyio.Path(partial.path).read_bytes() == expected


# -- an error answer that echoes the request target ------------------------------------------


@pytest.mark.parametrize("where", ["message", "code", "reason"])
async def test_an_error_answer_echoing_the_signed_target_leaks_no_secret(
    serve: Serve, tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    echoed = "/b/k?X-Amz-Signature=secret123&X-Amz-Security-Token=token456"
    code = echoed if where == "code" else "SlowDown"
    message = f"Cannot serve {echoed}" if where == "message" else "slow down"
    reason = f"Unavailable {echoed}" if where == "reason" else "Service Unavailable"
    body = (f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
            .replace("&", "&amp;").encode())
    if where == "reason":
        body = b""
    server = await serve(always(head_bytes(
        f"HTTP/1.1 503 {reason}", f"Content-Length: {len(body)}",
        "Content-Type: application/xml",
    ) + body))
    caplog.set_level("DEBUG", logger="asyncpresign")
    error = await download_error(server, tmp_path, TransferError)
    shown = f"{error} {error!r} {getattr(error, 'code', '')} {getattr(error, 's3_message', '')}"
    for secret in ("secret123", "token456"):
        assert secret not in shown
        assert secret not in caplog.text
    assert "X-Amz-Signature=" in shown  # still says what was echoed, redacted


async def test_a_206_of_unknown_total_to_a_plain_get_is_no_finished_download(
    serve: Serve, tmp_path: Path
) -> None:
    # No checksum and no MD5 ETag to tell: 1,000 bytes "of *" were moved into
    # place as the whole object.
    head = head_bytes("HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-999/*",
                      "Content-Length: 1000", 'ETag: "opaque-1"')
    server = await serve(always(head + b"z" * 1000, close=False))
    error = await download_error(server, tmp_path, TransferError)
    assert "unknown total" in str(error)
    assert len(server.requests) == ATTEMPTS  # retried, as an integrity failure is
