"""A small forward HTTP proxy on 127.0.0.1 (asyncio streams) that records what it sees.

It serves the two ways a client uses a forward proxy:

* absolute-form requests for plain http (``GET http://host:port/path HTTP/1.1``):
  the request goes on to the origin in origin form (Host kept, hop-by-hop and
  Proxy-* headers dropped) with ``Connection: close``, and the answer comes
  back with ``Connection: close`` too, so every connection carries one request
  and the end of the stream delimits the answer;
* ``CONNECT host:port`` tunnels (for https): answered with 200, then bytes are
  copied both ways until both sides are done.

Every request line and the ``Proxy-Authorization`` header that came with it are
recorded in :attr:`ForwardProxy.seen`. With ``credentials`` the proxy answers
407 unless the request carries them as Basic authentication.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from .rawserver import method_and_target

_HEAD_LIMIT = 1 << 20
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
     "te", "trailer", "upgrade"}
)


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it."""

    line: str  # the request line, e.g. "GET http://127.0.0.1:8333/b/k?... HTTP/1.1"
    proxy_authorization: str | None

    @property
    def method(self) -> str:
        return method_and_target(self.line)[0]

    @property
    def target(self) -> str:
        return method_and_target(self.line)[1]


@dataclass
class ForwardProxy:
    """``async with ForwardProxy() as proxy:`` then point a client at ``proxy.url``."""

    credentials: tuple[str, str] | None = None  # (user, password) required, else 407
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def lines(self) -> list[str]:
        return [seen.line for seen in self.seen]

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    # -- one client connection --------------------------------------------------------------

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_LIMIT:
            await _answer(writer, 431, "Request Header Fields Too Large")
            return
        line, headers = _parse_head(head)
        self.seen.append(Seen(line, _get(headers, "proxy-authorization")))
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await _answer(writer, 400, "Bad Request")
            return
        method, target, _ = parts
        if not self._authorized(headers):
            await _answer(
                writer, 407, "Proxy Authentication Required",
                extra=[("Proxy-Authenticate", 'Basic realm="forward-proxy"')],
            )
            return
        if method == "CONNECT":
            await self._tunnel(target, reader, writer)
        else:
            await self._forward(method, target, headers, reader, writer)

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        if self.credentials is None:
            return True
        user, password = self.credentials
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return _get(headers, "proxy-authorization") == expected

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port_text = target.rpartition(":")
        if not host or not port_text.isdigit():
            await _answer(writer, 400, "Bad Request")
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port_text))
        except OSError:
            await _answer(writer, 502, "Bad Gateway")
            return
        self._writers.add(up_writer)
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.close()

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            await _answer(writer, 400, "Bad Request")  # only absolute-form http is proxied
            return
        if _get(headers, "transfer-encoding") is not None:
            await _answer(writer, 411, "Length Required")  # not needed by the tests
            return
        length = int(_get(headers, "content-length") or "0")
        try:
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        except OSError:
            await _answer(writer, 502, "Bad Gateway")
            return
        self._writers.add(up_writer)
        try:
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            out = [f"{method} {path} HTTP/1.1"]
            out += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
            out.append("Connection: close")
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            remaining = length
            while remaining:
                piece = await reader.read(min(remaining, 1 << 16))
                if not piece:
                    return  # the client went away mid-body
                up_writer.write(piece)
                await up_writer.drain()
                remaining -= len(piece)
            await up_writer.drain()
            # The answer: its head with Connection rewritten, then the rest as it comes.
            answer_head = await up_reader.readuntil(b"\r\n\r\n")
            status_line, answer_headers = _parse_head(answer_head)
            back = [status_line]
            back += [f"{k}: {v}" for k, v in answer_headers if k.lower() not in _HOP_BY_HOP]
            back.append("Connection: close")
            writer.write(("\r\n".join(back) + "\r\n\r\n").encode("latin-1"))
            await _pipe(up_reader, writer)
        finally:
            self._writers.discard(up_writer)
            up_writer.close()


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    text = head.decode("latin-1")
    first, *rest = text.split("\r\n")
    headers: list[tuple[str, str]] = []
    for raw in rest:
        if not raw:
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            raise ValueError(f"malformed header line {raw!r}")
        headers.append((name.strip(), value.strip()))
    return first, headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    reason: str,
    extra: list[tuple[str, str]] | None = None,
) -> None:
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Length: 0", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in extra or []]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends, then half-close ``sink`` (or close it if it cannot)."""
    try:
        while piece := await source.read(1 << 16):
            sink.write(piece)
            await sink.drain()
    except OSError:
        pass
    finally:
        if sink.can_write_eof() and not sink.is_closing():
            with contextlib.suppress(OSError):
                sink.write_eof()
        else:
            sink.close()
