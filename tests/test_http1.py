"""The lean HTTP/1.1 client against a raw scripted server: framing, reuse, faults.

The server reads each request head and answers with bytes the test chose, so
every framing the client must handle (Content-Length, chunked, close-delimited,
interim 1xx, split across TCP segments) is exercised byte for byte.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
import trustme
from yarl import URL

from asyncpresign import (
    InvalidArgumentError,
    PresignedRequest,
    RetryPolicy,
    Timeout,
    TransferEngine,
    TransferTimeoutError,
    TransportError,
    _http1,
)
from asyncpresign._http1 import HTTP1Pool

pytestmark = pytest.mark.anyio

#: One answer: the bytes to send (in this many separate writes), and whether to
#: close the connection afterwards.
Answer = Callable[[bytes], "Reply"]


@dataclass
class Reply:
    pieces: list[bytes]
    close: bool = False
    pause: float = 0.0  # between pieces


class Serve(Protocol):
    def __call__(
        self, answer: Answer, tls: ssl.SSLContext | None = None
    ) -> Awaitable[RawServer]: ...


@dataclass
class RawServer:
    answer: Answer
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0
    url: str = ""
    server: asyncio.AbstractServer | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.bodies.append(await reader.readexactly(length))
                reply = self.answer(head)
                for piece in reply.pieces:
                    writer.write(piece)
                    await writer.drain()
                    if reply.pause:
                        await asyncio.sleep(reply.pause)
                if reply.close:
                    return
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[RawServer] = []

    async def start(answer: Answer, tls: ssl.SSLContext | None = None) -> RawServer:
        raw = RawServer(answer)
        raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=tls)
        port = raw.server.sockets[0].getsockname()[1]
        raw.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        servers.append(raw)
        return raw

    yield start
    for raw in servers:
        assert raw.server is not None
        raw.server.close()


def pool(
    read: float | None = 5.0, total: float | None = None, tls: ssl.SSLContext | None = None
) -> HTTP1Pool:
    return HTTP1Pool(
        connect_timeout=5.0,
        read_timeout=read,
        total_timeout=total,
        max_idle=4,
        user_agent="test",
        ssl_context=tls,
    )


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def fixed(status: int, body: bytes, *extra: str) -> Answer:
    head = f"HTTP/1.1 {status} Whatever\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{line}\r\n" for line in extra) + "\r\n"
    return lambda _: Reply([head.encode() + body])


async def get(client: HTTP1Pool, url: str, n: int = -1) -> tuple[int, bytes]:
    async with client.open("GET", url + "/b/k?X-Amz-Signature=s", {}) as resp:
        if n < 0:
            return resp.status, await resp.read()
        pieces = []
        while piece := await resp.content.read(n):
            assert len(piece) <= n
            pieces.append(piece)
        return resp.status, b"".join(pieces)


async def test_request_is_one_head_with_host_target_and_headers_as_given(serve: Serve) -> None:
    server = await serve(fixed(200, b"ok"))
    client = pool()
    async with client.open("PUT", server.url + "/b/a%2Fb?x=1&y=%2F", {"x-amz-meta-a": "1"}, b"hi"):
        pass
    client.close()
    head = server.heads[0].decode()
    port = URL(server.url).port
    assert head.startswith("PUT /b/a%2Fb?x=1&y=%2F HTTP/1.1\r\n")  # path kept as signed
    assert f"\r\nHost: 127.0.0.1:{port}\r\n" in head
    assert "\r\nx-amz-meta-a: 1\r\n" in head
    assert "\r\nContent-Length: 2\r\n" in head
    assert server.bodies == [b"hi"]


def test_host_header_omits_the_default_port_and_brackets_ipv6() -> None:
    assert _http1._host_header(URL("https://s3.example.com:443/b")) == "s3.example.com"
    assert _http1._host_header(URL("http://h:80/")) == "h"
    assert _http1._host_header(URL("http://h:8333/")) == "h:8333"
    assert _http1._host_header(URL("http://[::1]:9000/")) == "[::1]:9000"


async def test_content_length_body_read_in_small_pieces_is_whole(serve: Serve) -> None:
    body = bytes(range(256)) * 1000
    server = await serve(fixed(200, body))
    client = pool()
    assert await get(client, server.url, 4096) == (200, body)
    client.close()


async def test_chunked_body_split_across_segments_is_decoded(serve: Serve) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    # Every byte its own write: no boundary may be assumed to fall anywhere.
    server = await serve(lambda _: Reply([raw[i : i + 1] for i in range(len(raw))]))
    client = pool()
    assert await get(client, server.url, 3) == (200, b"hello world")
    assert await get(client, server.url) == (200, b"hello world")
    client.close()
    assert server.connections == 1  # the chunked response ended cleanly: reused


async def test_body_without_length_ends_with_the_connection_and_is_not_reused(serve: Serve) -> None:
    server = await serve(lambda _: Reply([b"HTTP/1.1 200 OK\r\n\r\nuntil close"], close=True))
    client = pool()
    assert await get(client, server.url) == (200, b"until close")
    assert await get(client, server.url) == (200, b"until close")
    client.close()
    assert server.connections == 2


async def test_interim_100_continue_is_skipped(serve: Serve) -> None:
    server = await serve(
        lambda _: Reply(
            [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
        )
    )
    client = pool()
    assert await get(client, server.url) == (200, b"ok")
    client.close()


async def test_connection_is_reused_unless_the_server_says_close(serve: Serve) -> None:
    server = await serve(fixed(200, b"x"))
    client = pool()
    for _ in range(5):
        assert await get(client, server.url) == (200, b"x")
    assert server.connections == 1
    closing = await serve(fixed(200, b"x", "Connection: close"))
    for _ in range(3):
        assert await get(client, closing.url) == (200, b"x")
    client.close()
    assert closing.connections == 3


async def test_unread_body_closes_the_connection_instead_of_reusing_it(serve: Serve) -> None:
    server = await serve(fixed(200, b"x" * 100_000))
    client = pool()
    async with client.open("GET", server.url + "/k", {}) as resp:
        assert len(await resp.content.read(10)) == 10
    assert await get(client, server.url) == (200, b"x" * 100_000)
    client.close()
    assert server.connections == 2


async def test_idle_connection_closed_by_the_server_is_replaced_transparently(serve: Serve) -> None:
    # Keep-alive promised, then the server closes the idle connection: the next
    # request finds it dead before any answer and goes out on a new one.
    server = await serve(
        lambda _: Reply([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"], close=True)
    )
    client = pool()
    for _ in range(3):
        assert await get(client, server.url) == (200, b"x")
    client.close()
    assert server.connections == 3


async def test_reused_connection_dying_before_any_answer_is_retried_on_a_new_one(
    serve: Serve,
) -> None:
    # Each connection answers its first request and dies on its second without a
    # byte: the race of a server closing an idle connection as a request goes out.
    seen = 0

    def answer(_: bytes) -> Reply:
        nonlocal seen
        seen += 1
        if seen % 2 == 0:
            return Reply([], close=True)
        return Reply([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"])

    server = await serve(answer)
    client = pool()
    for _ in range(3):
        assert await get(client, server.url) == (200, b"x")
    client.close()
    assert (seen, server.connections) == (5, 3)


async def test_new_connection_dying_before_any_answer_is_an_error_not_retried(
    serve: Serve,
) -> None:
    server = await serve(lambda _: Reply([], close=True))
    client = pool()
    with pytest.raises(_http1.Disconnected, match="waiting for the response"):
        await get(client, server.url)
    client.close()
    assert server.connections == 1


async def test_body_cut_short_is_a_disconnect_not_a_short_success(serve: Serve) -> None:
    server = await serve(
        lambda _: Reply([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5"], close=True)
    )
    client = pool()
    with pytest.raises(_http1.Disconnected, match="middle of the body"):
        await get(client, server.url)
    client.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n Folded: header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
async def test_malformed_response_is_a_bad_response(serve: Serve, raw: bytes) -> None:
    server = await serve(lambda _: Reply([raw], close=True))
    client = pool()
    with pytest.raises(_http1.BadResponse):
        await get(client, server.url)
    client.close()


async def test_endless_head_is_refused_at_the_limit(serve: Serve) -> None:
    server = await serve(
        lambda _: Reply([b"HTTP/1.1 200 OK\r\nX: " + b"a" * (_http1.MAX_HEAD + 10)])
    )
    client = pool()
    with pytest.raises(_http1.BadResponse, match="no end of line"):
        await get(client, server.url)
    client.close()


async def test_a_stalled_body_hits_the_read_timeout(serve: Serve) -> None:
    server = await serve(
        lambda _: Reply(
            [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", b"defghij"], pause=2.0
        )
    )
    client = pool(read=0.2)
    with pytest.raises(_http1.HTTPTimeout, match="middle of the body"):
        await get(client, server.url)
    client.close()


async def test_a_slow_trickle_hits_the_total_timeout(serve: Serve) -> None:
    body = b"x" * 40
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
    server = await serve(lambda _: Reply([head, *(body[i : i + 1] for i in range(40))], pause=0.05))
    client = pool(read=1.0, total=0.5)
    with pytest.raises(_http1.HTTPTimeout):
        await get(client, server.url)
    client.close()


async def test_header_with_a_newline_is_refused_before_sending(serve: Serve) -> None:
    server = await serve(fixed(200, b""))
    client = pool()
    with pytest.raises(_http1.InvalidRequest):
        async with client.open("GET", server.url, {"x-amz-meta-a": "1\r\nInjected: yes"}):
            pass
    client.close()
    assert server.heads == []


async def test_large_body_is_read_with_the_socket_paused_and_comes_whole(serve: Serve) -> None:
    body = bytes(range(251)) * 40_000  # ~10 MB, well above the high-water mark
    server = await serve(fixed(200, body))
    client = pool()
    async with client.open("GET", server.url, {}) as resp:
        await asyncio.sleep(0.3)  # let the buffer fill to the mark
        conn = resp._conn
        assert conn is not None
        assert conn.buffered <= _http1.HIGH_WATER + 512 * 1024  # paused, not all 10 MB
        got = await resp.read()
    client.close()
    assert got == body


# -- through the engine ---------------------------------------------------------------


async def test_engine_reports_a_malformed_response_as_a_transport_error(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(
        lambda _: Reply([b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"], close=True)
    )
    async with TransferEngine(retry=RetryPolicy(attempts=1)) as engine:
        with pytest.raises(TransportError, match="bad response: invalid Content-Length"):
            await engine.download(server.url + "/b/k?X-Amz-Signature=secret", tmp_path / "f")
    assert not os.listdir(tmp_path)


async def test_engine_timeout_message_names_the_phase_and_hides_the_signature(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(
        lambda _: Reply([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", b"def"], pause=2.0)
    )
    async with TransferEngine(timeout=Timeout(read=0.2), retry=RetryPolicy(attempts=1)) as engine:
        with pytest.raises(TransferTimeoutError) as caught:
            await engine.download(server.url + "/b/k?X-Amz-Signature=secret", tmp_path / "f")
    assert "timed out in the middle of the body" in str(caught.value)
    assert "secret" not in str(caught.value)
    assert not os.listdir(tmp_path)


async def test_engine_refuses_a_header_with_a_newline_as_invalid_argument(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(fixed(200, b""))
    request = PresignedRequest(
        method="GET",
        url=server.url + "/b/k",
        headers={"x-amz-meta-a": "1\nX: y"},
        expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="invalid character"):
            await engine.download(request, tmp_path / "f")


# -- TLS and writes -------------------------------------------------------------------


async def test_https_is_verified_against_the_trusted_ca_and_the_connection_reused(
    serve: Serve, ca: trustme.CA
) -> None:
    server = await serve(fixed(200, b"secure"), tls=server_tls(ca))
    client = pool(tls=client_tls(ca))
    for _ in range(3):
        assert await get(client, server.url) == (200, b"secure")
    client.close()
    assert server.connections == 1


async def test_https_to_an_untrusted_certificate_is_refused(serve: Serve, ca: trustme.CA) -> None:
    server = await serve(fixed(200, b"secure"), tls=server_tls(ca))
    client = pool()  # the system's CAs, which never signed the test CA
    with pytest.raises(_http1.ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await get(client, server.url)
    client.close()


async def test_engine_refuses_an_untrusted_https_server_and_writes_nothing(
    serve: Serve, ca: trustme.CA, tmp_path: Path
) -> None:
    server = await serve(fixed(200, b"secure"), tls=server_tls(ca))
    async with TransferEngine(retry=RetryPolicy(attempts=1)) as engine:
        with pytest.raises(TransportError, match=r"cannot connect: .*CERTIFICATE_VERIFY_FAILED"):
            await engine.download(server.url + "/b/k?X-Amz-Signature=secret", tmp_path / "f")
    assert not os.listdir(tmp_path)


async def test_a_server_that_stops_reading_the_body_hits_the_read_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def never_read(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts, then reads nothing: the send buffers fill

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = pool(read=0.3)
    try:
        with pytest.raises(_http1.HTTPTimeout, match="sending the body"):
            await client.request("PUT", f"http://127.0.0.1:{port}/b/k", {}, bytes(64 << 20))
    finally:
        client.close()
        for writer in held:
            writer.close()
        server.close()
