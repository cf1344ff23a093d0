"""A small real HTTP server (aiohttp.web on 127.0.0.1) that misbehaves on purpose.

It stores objects like a tiny S3 (PUT, GET with Range and If-Match, ETag = MD5)
and, per key, plays a script of faults on successive requests: error statuses
with or without Retry-After, connections dropped part-way through a body,
stalls, a 200 where a 206 was asked for, a body that does not match its ETag,
and "expired" answers for URLs issued too long ago. It also counts requests
and how many are in flight at once.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from awscrt import checksums

from asyncpresign import PresignedRequest

from .sites import start_local_site

FaultKind = Literal[
    "pass", "status", "drop", "stall", "ignore_range", "range_as_200",
    "range_as_200_with_content_range", "corrupt", "reset_upload",
]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    retry_after: str | None = None
    after_bytes: int = 0
    seconds: float = 0.0


def error_xml(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
    ).encode()


@dataclass
class FaultServer:
    delay: float = 0.0  # every request waits this long before answering (to overlap them)
    expire_after: float | None = None  # URLs whose ?issued= is older get 403 expired
    #: Whole answers carry the object's CRC64NVME, as S3 does for ChecksumMode.
    checksums: bool = False
    objects: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, collections.deque[Fault]] = field(default_factory=dict)
    requests: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    # -- control ---------------------------------------------------------------------------

    def script(self, key: str, faults: Iterable[Fault]) -> None:
        self.faults.setdefault(key, collections.deque()).extend(faults)

    def url(self, key: str, issued: float | None = None) -> str:
        issued = time.time() if issued is None else issued
        return f"http://127.0.0.1:{self.port}/{key}?issued={issued:.3f}&X-Amz-Signature=s3cr3t"

    def request(self, method: Literal["GET", "PUT"], key: str, issued: float | None = None,
                expires_in: float = 3600) -> PresignedRequest:
        issued = time.time() if issued is None else issued
        return PresignedRequest(
            method=method,
            url=self.url(key, issued),
            expires_at=dt.datetime.fromtimestamp(issued + expires_in, dt.timezone.utc),
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FaultServer:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{key:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        self.port = await start_local_site(self._runner)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handling --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        self.requests[(request.method, key)] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            issued = float(request.query.get("issued", time.time()))
            if self.expire_after is not None and time.time() - issued > self.expire_after:
                return web.Response(
                    status=403, body=error_xml("AccessDenied", "Request has expired")
                )
            queue = self.faults.get(key)
            fault = queue.popleft() if queue else None
            if request.method == "PUT":
                return await self._put(request, key, fault)
            if request.method == "GET":
                return await self._get(request, key, fault)
            return web.Response(status=405)
        finally:
            self.in_flight -= 1

    async def _put(self, request: web.Request, key: str, fault: Fault | None) -> web.StreamResponse:
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return web.Response(status=411, body=error_xml("MissingContentLength", "chunked"))
        if fault is not None and fault.kind == "reset_upload":
            await request.content.readexactly(min(fault.after_bytes, request.content_length or 0))
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        body = await request.read()
        if fault is not None and fault.kind == "status":
            return _status(fault)
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
        self.objects[key] = body
        return web.Response(status=200, headers={"ETag": _etag(body)})

    async def _get(self, request: web.Request, key: str, fault: Fault | None) -> web.StreamResponse:
        if fault is not None and fault.kind == "status":
            return _status(fault)
        if key not in self.objects:
            return web.Response(status=404, body=error_xml("NoSuchKey", "The key does not exist"))
        body = self.objects[key]
        etag = _etag(body)
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != etag:
            return web.Response(status=412, body=error_xml("PreconditionFailed", "If-Match"))
        start = 0
        status = 200
        ignores_ranges = fault is not None and fault.kind == "ignore_range"
        # As S3 does, say that ranges work (a server that ignores them does not).
        headers = {"ETag": etag} if ignores_ranges else {"ETag": etag, "Accept-Ranges": "bytes"}
        range_header = request.headers.get("Range")
        if range_header and not ignores_ranges:
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last), len(body) - 1) if last else len(body) - 1
            if start >= len(body):
                return web.Response(status=416)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
            body = body[: end + 1]
        payload = body[start:]
        if self.checksums and status == 200:
            crc = checksums.crc64nvme(body).to_bytes(8, "big")
            headers["x-amz-checksum-crc64nvme"] = base64.b64encode(crc).decode()
            headers["x-amz-checksum-type"] = "FULL_OBJECT"
        if fault is not None and fault.kind == "corrupt":
            payload = bytes([payload[0] ^ 0xFF]) + payload[1:] if payload else b"x"
        if fault is not None and fault.kind == "range_as_200" and status == 206:
            status = 200  # the range's bytes, but labelled as the whole object
            del headers["Content-Range"]
        if fault is not None and fault.kind == "range_as_200_with_content_range":
            status = 200  # the range's bytes and its Content-Range, with a 200 (rclone)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(payload)
        await response.prepare(request)
        if fault is not None and fault.kind == "drop":
            await response.write(payload[: fault.after_bytes])
            await asyncio.sleep(0.01)
            assert request.transport is not None
            request.transport.abort()
            return response
        if fault is not None and fault.kind == "stall":
            half = len(payload) // 2
            await response.write(payload[:half])
            await asyncio.sleep(fault.seconds)
            payload = payload[half:]
        await response.write(payload)
        await response.write_eof()
        return response


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def _status(fault: Fault) -> web.Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    return web.Response(
        status=fault.status, headers=headers, body=error_xml(fault.code, fault.message)
    )
