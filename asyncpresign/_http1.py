"""A lean HTTP/1.1 client for the engine's hot path: GETs, and PUTs of one buffer.

aiohttp spends about 150-200 µs of CPU on each request (its request and
response objects, tracing hooks, cookie, redirect and proxy handling), which
for objects of a few KiB is most of the client's work. A presigned request
needs none of that: the URL carries its whole authority, redirects are not
followed, and the body is either nothing or bytes already in memory. This
client writes the request in one piece, parses the response head with the
bytes at hand, hands body pieces over without copying them, and keeps
connections alive per host. Streamed uploads and POST forms stay on aiohttp.

Errors are this module's own (all internal); the engine translates them.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Mapping
from types import TracebackType
from typing import cast

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

__all__ = [
    "BODY_TYPES",
    "LEAN_ERRORS",
    "BadResponse",
    "ConnectFailed",
    "Disconnected",
    "HTTP1Pool",
    "HTTP1Response",
    "HTTPTimeout",
    "InvalidRequest",
]

#: Stop reading from the socket while this much is buffered and unread, so a
#: slow disk holds back the sender instead of filling memory.
HIGH_WATER = 512 * 1024
LOW_WATER = 128 * 1024
#: A response head larger than this is refused rather than buffered.
MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024
#: Idle connections older than this are closed instead of reused: servers drop
#: idle keep-alive connections after a while (Go's default is 90 s, nginx's
#: 75 s), and a request on a connection closed under it costs a retry.
KEEPALIVE = 15.0

_Body = bytes | bytearray | memoryview
BODY_TYPES = (bytes, bytearray, memoryview)
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_NO_BODY_STATUS = frozenset({204, 304})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class BadResponse(Exception):
    """The server's bytes are not a valid HTTP/1.1 response."""


class ConnectFailed(ConnectionError):
    """No connection could be made."""


class Disconnected(ConnectionError):
    """The connection ended before the response was complete."""


class InvalidRequest(ValueError):
    """A header that would break the request's framing (a CR, LF or colon in a name)."""


class HTTPTimeout(Exception):
    """Connect, read (a gap between two pieces of data) or total timeout."""


LEAN_ERRORS = (BadResponse, ConnectFailed, Disconnected, HTTPTimeout, InvalidRequest)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: buffers what arrives as a queue of pieces."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.pieces: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.offset = 0  # into pieces[0]: what of it was already taken
        self.eof = False
        self.lost: BaseException | None = None
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._drain: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.pieces.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self._wake()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- used by the client --------------------------------------------------

    @property
    def usable(self) -> bool:
        return (
            self.transport is not None
            and not self.eof
            and not self.transport.is_closing()
            and not self.buffered  # bytes nobody asked for: the stream is out of step
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def write(
        self, data: _Body, timeout: float | None, deadline: float | None
    ) -> None:
        """Send ``data``; if the socket's buffer is full, wait (a server that stops
        reading the body is a stall like one that stops sending)."""
        assert self.transport is not None
        self.transport.write(data)
        if self._drain is not None:
            await self._wait(self._drain, timeout, deadline, "sending the body")

    async def wait_data(self, timeout: float | None, deadline: float | None, what: str) -> None:
        """Until more bytes arrive than are buffered now, or the connection ends."""
        if self.eof:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiter = waiter
        try:
            await self._wait(waiter, timeout, deadline, what)
        finally:
            self._waiter = None

    async def _wait(
        self,
        waiter: asyncio.Future[None],
        timeout: float | None,
        deadline: float | None,
        what: str,
    ) -> None:
        if timeout is None and deadline is None:
            await waiter
            return
        now = self.loop.time()
        until = min(
            now + timeout if timeout is not None else float("inf"),
            deadline if deadline is not None else float("inf"),
        )
        timer = self.loop.call_at(until, _expire, waiter, what)
        try:
            await waiter
        finally:
            timer.cancel()

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` buffered bytes, from the first piece only: a piece that fits
        is handed over whole, without a copy; a larger one is sliced from an offset,
        so small reads from a large piece copy only what they return."""
        first, start = self.pieces[0], self.offset
        if len(first) - start <= limit:
            self.pieces.popleft()
            self.offset = 0
            data = first[start:] if start else first
        else:
            self.offset = start + limit
            data = first[start : self.offset]
        self.buffered -= len(data)
        if self._reading_paused and self.buffered < LOW_WATER and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def take_until(self, separator: bytes, limit: int) -> bytes | None:
        """The bytes before ``separator`` (which is consumed too), or None if not yet
        here; BadResponse if more than ``limit`` bytes came without it."""
        if not self.pieces:
            return None
        first, start = self.pieces[0], self.offset
        end = first.find(separator, start)
        if end < 0 and len(self.pieces) > 1:  # it may straddle pieces: join them
            first = b"".join([first[start:], *list(self.pieces)[1:]])
            self.pieces.clear()
            self.pieces.append(first)
            self.offset = start = 0
            end = first.find(separator)
        if end < 0:
            if len(first) - start > limit:
                raise BadResponse(f"no end of line in the first {limit} bytes")
            return None
        after = end + len(separator)
        if after == len(first):
            self.pieces.popleft()
            self.offset = 0
        else:
            self.offset = after
        self.buffered -= after - start
        return first[start:end]

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _parse_headers(raw: bytes) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    if raw:
        for line in raw.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            # A name with space around it, or a folded line, is a request
            # smuggling vector: refuse rather than guess.
            if not colon or not name or name != name.strip():
                raise BadResponse(f"invalid header line {line[:100]!r}")
            headers.add(name, value.strip())
    return headers


def _host_header(url: URL) -> str:
    """As SigV4 signs it (botocore's ``_host_from_url``): the port only if not the
    scheme's default, an IPv6 address in brackets."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    port = url.port
    return host if port is None or port == _DEFAULT_PORTS.get(url.scheme) else f"{host}:{port}"


def _expire(waiter: asyncio.Future[None], what: str) -> None:
    if not waiter.done():
        waiter.set_exception(HTTPTimeout(f"timed out {what}"))


class HTTP1Response:
    """A response whose body is read in pieces. ``content`` is the response itself,
    so it reads like aiohttp's (``resp.content.read(n)``)."""

    def __init__(
        self,
        pool: HTTP1Pool,
        key: tuple[str, str, int],
        conn: _Connection,
        *,
        head_only: bool,
        deadline: float | None,
    ) -> None:
        self._pool = pool
        self._key = key
        self._conn: _Connection | None = conn
        self._head_only = head_only
        self._deadline = deadline
        self.status = 0
        self.reason = ""
        self.headers: CIMultiDictProxy[str] = _NO_HEADERS
        self._keep_alive = True
        self._remaining: int | None = 0  # None: until the connection closes
        self._chunked = False
        self._chunk_left = 0
        self._complete = False
        self._received_any = False

    @property
    def content(self) -> HTTP1Response:
        return self

    def release(self) -> None:
        """Back to the pool if the exchange ended cleanly, else closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._complete and self._keep_alive and conn.usable:
            self._pool._put(self._key, conn)
        else:
            conn.close()

    # -- the head ------------------------------------------------------------

    async def _read_head(self) -> None:
        while True:  # skip interim 1xx responses
            head = await self._until(b"\r\n\r\n", MAX_HEAD, "waiting for the response")
            status_line, _, raw = head.partition(b"\r\n")
            version, _, rest = status_line.partition(b" ")
            code, _, reason = rest.partition(b" ")
            if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise BadResponse(f"invalid status line {status_line[:100]!r}")
            status = int(code)
            if status == 101:
                raise BadResponse("101 Switching Protocols to a request that asked for none")
            if not 100 <= status < 200:
                break
        headers = _parse_headers(raw)
        self.status = status
        self.reason = reason.decode("latin-1", errors="replace")
        self.headers = CIMultiDictProxy(headers)
        self._frame(version, headers)

    def _frame(self, version: bytes, headers: CIMultiDict[str]) -> None:
        """Where the body ends, and whether the connection outlives it."""
        connection = headers.get("Connection", "").lower()
        self._keep_alive = (
            "close" not in connection if version == b"HTTP/1.1" else "keep-alive" in connection
        )
        encoding = headers.get("Transfer-Encoding")
        length = headers.get("Content-Length")
        if self._head_only or self.status in _NO_BODY_STATUS:
            self._remaining = 0
        elif encoding is not None:
            if encoding.lower() != "chunked":
                raise BadResponse(f"unsupported Transfer-Encoding {encoding!r}")
            self._chunked = True
        elif length is not None:
            if not length.isdigit():
                raise BadResponse(f"invalid Content-Length {length!r}")
            self._remaining = int(length)
        else:
            self._remaining = None
            self._keep_alive = False
        if self._remaining == 0 and not self._chunked:
            self._complete = True

    async def _line(self, limit: int, what: str) -> bytes:
        return await self._until(b"\r\n", limit, what)

    async def _until(self, separator: bytes, limit: int, what: str) -> bytes:
        conn = self._connection
        while True:
            found = conn.take_until(separator, limit)
            if found is not None:
                self._received_any = True
                return found
            if conn.buffered:
                self._received_any = True
            await self._more(what)

    async def _more(self, what: str) -> None:
        conn = self._connection
        if conn.eof:
            if conn.lost is not None:
                message = f"connection lost {what}: {conn.lost}"
            else:
                message = f"server closed the connection {what}"
            raise Disconnected(message)
        await conn.wait_data(self._pool.read_timeout, self._deadline, what)

    @property
    def _connection(self) -> _Connection:
        if self._conn is None:
            raise RuntimeError("the response was released")
        return self._conn

    # -- the body ------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body (all of it for -1); b"" at its end."""
        if n < 0:
            pieces = []
            while piece := await self._read_some(1 << 30):
                pieces.append(piece)
            return b"".join(pieces)
        return await self._read_some(n)

    async def _read_some(self, n: int) -> bytes:
        if self._complete:
            return b""
        if self._chunked:
            return await self._read_chunked(n)
        conn = self._connection
        while not conn.buffered:
            if conn.eof and self._remaining is None and conn.lost is None:
                self._complete = True  # the body ends with the connection
                return b""
            await self._more("in the middle of the body")
        limit = n if self._remaining is None else min(n, self._remaining)
        data = conn.take(limit)
        if self._remaining is not None:
            self._remaining -= len(data)
            if self._remaining == 0:
                self._complete = True
        return data

    async def _read_chunked(self, n: int) -> bytes:
        conn = self._connection
        if self._chunk_left == 0:
            line = await self._line(MAX_LINE, "in the middle of the body")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse(f"invalid chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise BadResponse(f"invalid chunk size {size_text[:20]!r}")
            if size == 0:
                while await self._line(MAX_LINE, "reading the trailer"):
                    pass
                self._complete = True
                return b""
            self._chunk_left = size
        while not conn.buffered:
            await self._more("in the middle of the body")
        data = conn.take(min(n, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and await self._line(2, "in the middle of the body"):
            raise BadResponse("chunk not followed by CRLF")
        return data


class _Exchange:
    """``async with pool.open(...) as response``: the response, released on exit."""

    __slots__ = ("_args", "_response")

    def __init__(self, args: tuple[HTTP1Pool, str, str, Mapping[str, str], _Body | None]) -> None:
        self._args = args
        self._response: HTTP1Response | None = None

    async def __aenter__(self) -> HTTP1Response:
        pool, method, url, headers, body = self._args
        self._response = await pool.request(method, url, headers, body)
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.release()


class HTTP1Pool:
    """Keep-alive connections per (scheme, host, port); one request per connection
    at a time. The engine bounds how many requests run at once."""

    def __init__(
        self,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        total_timeout: float | None,
        max_idle: int,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.max_idle = max_idle
        self._agent = f"User-Agent: {user_agent}\r\n"
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        # Made on the first https request: loading the system's CAs takes ~30 ms.
        self._ssl = ssl_context
        self._closed = False

    def open(
        self, method: str, url: str, headers: Mapping[str, str], body: _Body | None = None
    ) -> _Exchange:
        """The request as an async context manager that releases its response."""
        return _Exchange((self, method, url, headers, body))

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: _Body | None = None
    ) -> HTTP1Response:
        """Send a request; the response's head is read, its body not yet.

        A connection reused from the pool may have been closed by the server
        while idle; if it ends before any byte of the answer, the request is sent
        once more on a new connection, which a server that closes idle
        connections would otherwise turn into a failure now and then."""
        if self._closed:
            raise RuntimeError("the HTTP/1.1 pool is closed")
        parsed = URL(url, encoded=True)
        scheme, host = parsed.scheme, parsed.raw_host
        port = parsed.port
        if scheme not in _DEFAULT_PORTS or not host or port is None:
            raise BadResponse(f"not an http(s) URL: {scheme}://…")
        key = (scheme, host, port)
        head = self._head(method, parsed, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout if self.total_timeout is not None else None
        while True:
            conn, reused = await self._get(key, deadline)
            response = HTTP1Response(
                self, key, conn, head_only=method == "HEAD", deadline=deadline
            )
            try:
                if body is not None and len(body) <= 256 * 1024:
                    await conn.write(head + body, self.read_timeout, deadline)
                else:
                    await conn.write(head, self.read_timeout, deadline)
                    if body is not None:
                        await conn.write(body, self.read_timeout, deadline)
                await response._read_head()
            except Disconnected:
                response.release()
                if reused and not response._received_any:
                    continue
                raise
            except BaseException:
                response.release()
                raise
            return response

    def _head(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: _Body | None,
    ) -> bytes:
        lines = [
            f"{method} {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {_host_header(url)}\r\n",
            self._agent,
        ]
        has_length = False
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
                raise InvalidRequest(f"invalid character in the header {name!r}")
            if len(name) == 14 and name.lower() == "content-length":
                has_length = True
            lines.append(f"{name}: {value}\r\n")
        if body is not None and not has_length:
            lines.append(f"Content-Length: {len(body)}\r\n")
        elif body is None and method in {"PUT", "POST"} and not has_length:
            lines.append("Content-Length: 0\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("utf-8")

    async def _get(
        self, key: tuple[str, str, int], deadline: float | None
    ) -> tuple[_Connection, bool]:
        idle = self._idle.get(key)
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if conn.usable and now - conn.idle_since < KEEPALIVE:
                    return conn, True
                conn.close()
        return await self._connect(key, deadline), False

    async def _connect(self, key: tuple[str, str, int], deadline: float | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        timeout = self.connect_timeout
        if deadline is not None:
            left = deadline - loop.time()
            timeout = left if timeout is None else min(timeout, left)
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop), host, port, ssl=context,
                    server_hostname=host if context is not None else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise HTTPTimeout("timed out connecting") from None
        except OSError as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        return conn

    def _put(self, key: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if self._closed or len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
