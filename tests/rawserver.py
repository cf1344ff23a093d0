"""A raw scripted HTTP/1.1 server on 127.0.0.1 that answers with exact bytes.

Each connection reads a request head, asks the test's ``answer`` function what
to do, and sends the bytes it chose: in pieces with pauses between them (a
trickle), before or after reading the request body, then keeping or closing
the connection. Every request head and body is recorded, and connections are
counted, so a test can assert what the client actually sent. The ``serve``
fixture closes every server it started (and every connection still open).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pytest

__all__ = [
    "Answer",
    "RawServer",
    "Reply",
    "Request",
    "Serve",
    "fixed",
    "head_bytes",
    "serve",
    "serving",
    "trickle",
]

#: The largest request head or chunk-size line the server accepts.
_LIMIT = 1 << 20



def method_and_target(request_line: str) -> tuple[str, str]:
    """``GET /k?x HTTP/1.1`` -> ("GET", "/k?x"); a short line gives what it has."""
    parts = request_line.split(" ")
    return parts[0], parts[1] if len(parts) > 1 else ""

@dataclass
class Request:
    """One request as the server received it."""

    head: bytes
    connection: int  # 1-based number of the connection it came on
    body: bytes | None = None  # None: the server never read it

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def method(self) -> str:
        return method_and_target(self.request_line)[0]

    @property
    def target(self) -> str:
        return method_and_target(self.request_line)[1]

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Header lines as (lower-case name, value), in order, repeats kept."""
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        found = []
        for line in lines:
            if not line:
                continue
            name, _, value = line.partition(":")
            found.append((name.strip().lower(), value.strip()))
        return found

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None


@dataclass
class Reply:
    """What to do with one request.

    ``pieces`` are written one by one with ``pause`` seconds after each (a
    trickle when they are single bytes). With ``read_body=False`` the answer
    goes out before the request body is read (as S3 refuses an upload early);
    the body is then read afterwards unless ``close``. ``after`` runs once the
    pieces are out, before the connection is closed or the next request read
    (to hold the connection open while the test looks at something).
    """

    pieces: Sequence[bytes] = ()
    close: bool = False
    pause: float = 0.0
    read_body: bool = True
    after: Callable[[], Awaitable[None]] | None = None


Answer = Callable[[Request], Reply]


class Serve(Protocol):
    def __call__(self, answer: Answer) -> Awaitable[RawServer]: ...


@dataclass
class RawServer:
    answer: Answer
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    url: str = ""
    port: int = 0
    server: asyncio.AbstractServer | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def heads(self) -> list[bytes]:
        return [request.head for request in self.requests]

    @property
    def bodies(self) -> list[bytes | None]:
        return [request.body for request in self.requests]

    def methods(self) -> list[str]:
        return [request.method for request in self.requests]

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=_LIMIT)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        number = self.connections
        try:
            await self._converse(reader, writer, number)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away: what it sent is recorded
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # closed between requests
            request = Request(head=head, connection=number)
            self.requests.append(request)
            reply = self.answer(request)
            if reply.read_body:
                request.body = await read_body(reader, request)
            for piece in reply.pieces:
                writer.write(piece)
                await writer.drain()
                if reply.pause:
                    await asyncio.sleep(reply.pause)
            if reply.after is not None:
                await reply.after()
            if reply.close:
                return
            if not reply.read_body:
                request.body = await read_body(reader, request)


async def read_body(reader: asyncio.StreamReader, request: Request) -> bytes:
    """The request body as framed by Content-Length or chunked encoding (else none)."""
    encoding = request.header("transfer-encoding")
    if encoding is not None and encoding.lower() == "chunked":
        pieces = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return b"".join(pieces)
            pieces.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = request.header("content-length")
    if length is None:
        return b""
    return await reader.readexactly(int(length))


def head_bytes(status_line: str, *lines: str) -> bytes:
    """A response head: the status line, then each header line, then the blank line."""
    return (status_line + "\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def fixed(status: int, body: bytes, *lines: str, close: bool = False) -> Answer:
    """Always the same answer: ``status``, a Content-Length, ``lines``, then ``body``."""
    data = head_bytes(f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}", *lines) + body
    return lambda _: Reply([data], close=close)


def trickle(data: bytes) -> list[bytes]:
    """``data`` as one-byte pieces."""
    return [data[i : i + 1] for i in range(len(data))]


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Serve]:
    """Start raw servers on 127.0.0.1; every one is closed on leaving the block."""
    servers: list[RawServer] = []

    async def start(answer: Answer) -> RawServer:
        raw = RawServer(answer)
        servers.append(raw)
        return await raw.start()

    try:
        yield start
    finally:
        for raw in servers:
            await raw.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """The ``serving`` block as a fixture: every server started is closed after the test."""
    async with serving() as start:
        yield start
