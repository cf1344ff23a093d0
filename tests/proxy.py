"""A forwarding proxy in front of a real S3 server, which counts and can disrupt requests.

Signatures cover the Host header, so the Signer signs for the proxy's address
and the proxy forwards every request unchanged (Host included) to the server,
which then verifies it as usual. Rules pick requests by method and a substring
of the path and query, and answer them with an error, or hold them for a while
before forwarding (long enough for a URL to expire on the way).
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from .fault_server import error_xml
from .sites import start_local_site

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}


@dataclass
class Rule:
    method: str
    contains: str
    times: int
    status: int | None = None  # answer with this instead of forwarding
    code: str = "InternalError"
    message: str = "injected by the test proxy"
    delay: float = 0.0  # hold the request this long, then forward it
    #: Flip one byte (in the middle) of the request's body on its way to the
    #: server, or of the response's body on its way back.
    flip: str | None = None  # "request" | "response"
    #: Only requests that ask for a byte range (True), or only those that do not.
    ranged: bool | None = None
    #: Apply to this share of the matching requests (drawn from the proxy's seeded RNG).
    probability: float = 1.0
    #: Only until this ``time.monotonic()`` (a storm of a few seconds).
    until: float | None = None
    #: Send this Retry-After header with the error.
    retry_after: str | None = None
    #: Send the response's head and half its body, then drop the connection.
    cut: bool = False


@dataclass
class S3Proxy:
    upstream: str  # e.g. http://127.0.0.1:PORT of the real server
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    flipped: int = 0
    down: bool = False
    times: list[float] = field(default_factory=list)  # when each request arrived
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    _runner: web.AppRunner | None = None
    _client: aiohttp.ClientSession | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> None:
        self.rules.append(rule)

    def count(self, predicate: Callable[[str, str], bool]) -> int:
        return sum(1 for method, target in self.seen if predicate(method, target))

    async def __aenter__(self) -> S3Proxy:
        self._client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 31)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client that gives up (Ctrl-C) stops the forward too, as with a real server.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        self.port = await start_local_site(self._runner)
        return self

    async def outage(self, seconds: float) -> None:
        """Be a server that is down for ``seconds``: every open connection is cut
        (requests in flight included) and new ones are refused, then it serves
        again on the same port, as after a restart."""
        assert self._runner is not None
        for site in list(self._runner.sites):
            await site.stop()
        server = self._runner.server
        assert server is not None
        for handler in list(server.connections):
            handler.force_close()
        self.down = True
        try:
            await asyncio.sleep(seconds)
        finally:
            self.down = False
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await site.start()

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    def _match(self, method: str, target: str, ranged: bool) -> Rule | None:
        for rule in self.rules:
            if (
                rule.times > 0
                and (rule.until is None or time.monotonic() < rule.until)
                and rule.method in (method, "*")
                and rule.contains in target
                and rule.ranged in (None, ranged)
                and (rule.probability >= 1.0 or self.rng.random() < rule.probability)
            ):
                rule.times -= 1
                return rule
        return None

    def _flip(self, body: bytes) -> bytes:
        if not body:
            return body
        self.flipped += 1
        middle = len(body) // 2
        return body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]

    @staticmethod
    async def _cut(
        request: web.Request, status: int, headers: dict[str, str], payload: bytes
    ) -> web.StreamResponse:
        """The head (with the whole Content-Length) and half the body, then a dropped
        connection: a body cut off mid-way."""
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: len(payload) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = request.raw_path  # path and query exactly as signed
        self.seen.append((request.method, target))
        self.times.append(time.monotonic())
        rule = self._match(request.method, target, "Range" in request.headers)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.status is not None:
            await request.read()
            return web.Response(
                status=rule.status,
                body=error_xml(rule.code, rule.message),
                headers={"Retry-After": rule.retry_after} if rule.retry_after else None,
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        if rule is not None and rule.flip == "request":
            body = self._flip(body)
        assert self._client is not None
        async with self._client.request(
            request.method,
            URL(self.upstream + target, encoded=True),
            headers=headers,
            # A BytesIO, not bytes: aiohttp warns about large raw bodies.
            data=io.BytesIO(body) if body or request.method in ("PUT", "POST") else None,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            if rule is not None and rule.flip == "response":
                payload = self._flip(payload)
            reply_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
            if rule is not None and rule.cut:
                return await self._cut(request, upstream.status, reply_headers, payload)
            return web.Response(status=upstream.status, headers=reply_headers, body=payload)
