"""The one HTTP edge: every request the engine sends goes through here, on aiohttp.

This module owns the ``aiohttp.ClientSession``; nothing else in the package
imports aiohttp. It

* checks what we send: the URL and the caller's headers (no CR, LF or NUL,
  header names that are tokens, and none of the framing headers that only the
  HTTP client may set, in any spelling);
* picks the proxy (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` as botocore
  reads them, or an explicit one) and the TLS trust (``AWS_CA_BUNDLE``, a CA
  file, an ``SSLContext``) without aiohttp's ``trust_env``, which would also
  read ``~/.netrc`` and add a second authentication S3 refuses;
* checks what the server says before anyone reads it (one Content-Length,
  HTTP/1.x), bounds stalls with a low-speed limit,
* meters bodies through the engine's bandwidth limit (``max_rate``), when set:
  a download's bytes as they are read, an upload's as they are handed to
  aiohttp, and
* translates aiohttp's errors into asyncpresign's, here and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import re
import ssl as ssl_module
import urllib.request
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, Final, Literal, TypeAlias

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._bandwidth import TokenBucket
from ._config import Timeout
from ._exceptions import (
    AsyncPresignError,
    HTTPStatusError,
    InvalidArgumentError,
    TransferTimeoutError,
    TransportError,
)
from ._redact import redact_url
from ._s3errors import MAX_ERROR_BODY, status_error
from ._validation import check_http_url

__all__ = [
    "FORBIDDEN_HEADERS",
    "ProxySetting",
    "Response",
    "SSLSetting",
    "Transport",
    "check_headers",
]

#: Framing and connection headers: the HTTP client sets these from the body and
#: the URL. One sent by a caller beside the client's own would frame the request
#: twice (a truncated body stored, the connection desynchronised).
FORBIDDEN_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade",
     "te", "trailer", "keep-alive", "proxy-connection"}
)
#: Bytes taken from the bandwidth limit at a time: a body, a large chunk or a
#: buffer is paid for in pieces of this size, each waiting its turn behind the
#: other transfers' (first come, first served), so a large one cannot hog the rate.
PIECE = 65536
#: The longest one sleep for the bandwidth limit lasts, so that a rate raised
#: meanwhile is noticed within it.
MAX_HOLD_SLEEP = 0.5
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

ProxySetting: TypeAlias = "str | Literal[False] | None"
SSLSetting: TypeAlias = "bool | str | os.PathLike[str] | ssl_module.SSLContext | None"


def check_headers(headers: Mapping[str, str]) -> None:
    """Raise :class:`InvalidArgumentError` unless every header may be sent as given."""
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidArgumentError(f"invalid HTTP header name {name!r}")
        lower = name.lower()
        if lower in FORBIDDEN_HEADERS:
            raise InvalidArgumentError(
                f"header {name!r} must not be given: the HTTP client sets it from the body and URL"
            )
        if lower in seen:
            raise InvalidArgumentError(f"header {name!r} is given twice (names ignore case)")
        seen.add(lower)
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"header {name!r} must have a str value, not {type(value).__name__}"
            )
        if _BAD_VALUE.search(value):
            raise InvalidArgumentError(f"header {name!r} holds a control character (CR, LF, NUL)")


#: URLs checked lately and how they are shown (redacted): a transfer's URL is
#: checked when it is given, and again by every attempt; redaction is a regex
#: over the whole URL, so it is done once.
_checked_urls: dict[str, str] = {}


def check_url(url: str) -> str:
    """An absolute http(s) URL with no space or control character; returns it redacted."""
    shown = _checked_urls.get(url) if isinstance(url, str) else None
    if shown is not None:
        return shown
    check_http_url(url)
    if _BAD_VALUE.search(url) or " " in url:
        raise InvalidArgumentError(
            f"URL {redact_url(url)[:80]!r} holds a space or a control character"
        )
    shown = redact_url(url)
    if len(_checked_urls) >= 4096:
        _checked_urls.clear()
    _checked_urls[url] = shown
    return shown


class Response:
    """What the engine reads of an answer: status, headers, and the body in pieces."""

    __slots__ = ("_content", "_guard", "_resp", "headers", "reason", "shown", "status")

    def __init__(self, resp: aiohttp.ClientResponse, guard: _Guard | None, shown: str) -> None:
        self._resp = resp
        self._content = resp.content
        self._guard = guard
        self.status: int = resp.status
        self.reason: str | None = resp.reason
        self.headers: CIMultiDictProxy[str] = resp.headers
        self.shown = shown

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the body; ``b""`` at its end."""
        data = await self._content.read(n)
        if self._guard is not None:
            self._guard.moved += len(data)
        return data

    async def read_all(self) -> bytes:
        data = await self._resp.read()
        if self._guard is not None:
            self._guard.moved += len(data)
        return data

    async def status_error(self) -> HTTPStatusError:
        """The error for a non-2xx answer, with S3's code and message from its body."""
        body = b""
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            body = await self._content.read(MAX_ERROR_BODY)
        return status_error(self.status, self.reason, body, self.headers, self.shown)


class _MeteredResponse(Response):
    """A response whose body is paid for, as it is read, from the bandwidth limit
    (a class of its own so that without a limit reading costs nothing more)."""

    __slots__ = ("_bucket",)

    def __init__(
        self, resp: aiohttp.ClientResponse, guard: _Guard | None, shown: str, bucket: TokenBucket
    ) -> None:
        super().__init__(resp, guard, shown)
        self._bucket = bucket

    async def read(self, n: int) -> bytes:
        data = await super().read(n)
        await _pay(self._bucket, len(data), self._guard)
        return data

    async def read_all(self) -> bytes:
        data = await super().read_all()
        await _pay(self._bucket, len(data), self._guard)
        return data


class _Guard:
    """The watch kept on one request: bytes moved, and whether the watchdog fired."""

    __slots__ = ("fired", "held_since", "last_moved", "last_progress", "moved", "reason", "task",
                 "window_moved", "window_start")

    def __init__(self, now: float) -> None:
        self.task = asyncio.current_task()
        self.moved = 0
        self.fired = False
        self.reason = ""
        self.last_moved = 0
        self.last_progress = now
        self.window_start = now
        self.window_moved = 0
        #: Since when the bandwidth limit holds the request (None: it does not).
        self.held_since: float | None = None

    def hold(self, now: float) -> None:
        self.held_since = now

    def resume(self, now: float) -> None:
        """The limit let the request go: the time it was held is not counted as
        silence, nor in the low-speed window (a transfer held by the limit is
        not a stalled one)."""
        if self.held_since is not None:
            held = now - self.held_since
            self.held_since = None
            self.last_progress += held
            self.window_start += held

    def owns_cancellation(self) -> bool:
        """Whether the cancellation in flight is the watchdog's alone (then it is taken back)."""
        if not self.fired:
            return False
        uncancel = getattr(self.task, "uncancel", None)  # 3.11+: count cancellations
        return uncancel is None or uncancel() == 0


class _Watchdog:
    """One timer for every request in flight, instead of timers per request.

    It enforces ``Timeout.read`` (no byte moved for that long, head included)
    and the low-speed limit (fewer than ``min_rate`` bytes a second over each
    ``min_rate_window``), by cancelling the request's task; the transport turns
    that cancellation into a :class:`TransferTimeoutError`. Time a request
    spends held by the bandwidth limit counts toward neither. aiohttp's own read
    timeout would re-arm a timer for every piece of every body; here a request
    costs a dict entry, and the check runs a few times per window.
    """

    def __init__(self, timeout: Timeout) -> None:
        self.read = timeout.read
        self.min_rate = timeout.min_rate
        self.window = timeout.min_rate_window
        spans = [t for t in (self.read, self.window if self.min_rate else None) if t]
        self.enabled = bool(spans)
        self.tick = max(0.02, min(spans) / 4) if spans else 0.0
        self.guards: dict[_Guard, None] = {}
        self._handle: asyncio.TimerHandle | None = None

    def watch(self) -> _Guard | None:
        if not self.enabled:
            return None
        loop = asyncio.get_running_loop()
        guard = _Guard(loop.time())
        self.guards[guard] = None
        if self._handle is None:
            self._handle = loop.call_later(self.tick, self._check, loop)
        return guard

    def release(self, guard: _Guard) -> None:
        self.guards.pop(guard, None)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for guard in list(self.guards):
            if guard.held_since is not None:
                continue  # held by the bandwidth limit; its clocks move on when let go
            if guard.moved != guard.last_moved:
                guard.last_moved, guard.last_progress = guard.moved, now
            elif self.read is not None and now - guard.last_progress >= self.read:
                self._fire(guard, f"no data for {self.read:g} s (Timeout.read)")
                continue
            if self.min_rate is not None and now - guard.window_start >= self.window:
                span = now - guard.window_start
                if guard.moved - guard.window_moved < self.min_rate * span:
                    self._fire(
                        guard,
                        f"slower than {self.min_rate:g} bytes/s over {span:.3g} s "
                        "(Timeout.min_rate)",
                    )
                    continue
                guard.window_start, guard.window_moved = now, guard.moved
        self._handle = loop.call_later(self.tick, self._check, loop) if self.guards else None

    def _fire(self, guard: _Guard, reason: str) -> None:
        self.guards.pop(guard, None)
        guard.fired, guard.reason = True, reason
        if guard.task is not None:
            guard.task.cancel()

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()


class Transport:
    """One aiohttp session and connection pool, shared by every transfer of an engine."""

    def __init__(
        self,
        *,
        timeout: Timeout,
        pool_size: int,
        user_agent: str,
        proxy: ProxySetting = None,
        ssl: SSLSetting = None,
        max_rate: float | None = None,
    ) -> None:
        self.timeout = timeout
        self.pool_size = pool_size
        self._user_agent = user_agent
        self._proxy_setting = _check_proxy(proxy)
        self._ssl: ssl_module.SSLContext | bool = _ssl_from(ssl)
        self._session: aiohttp.ClientSession | None = None
        self._watchdog = _Watchdog(timeout)
        self._proxies: dict[tuple[str, str], tuple[str, Mapping[str, str]] | None] = {}
        self._env_proxies: dict[str, str] = {}
        #: The bandwidth limit every body is paid for from, or None.
        self.bucket: TokenBucket | None = None
        self.set_max_rate(max_rate)

    def set_max_rate(self, max_rate: float | None) -> None:
        """Limit the bytes per second of every body (None: no limit). A change
        applies to the transfers in flight too."""
        if max_rate is None:
            if self.bucket is not None:
                self.bucket.lift()  # what is held now goes at once
            self.bucket = None
        elif self.bucket is None:
            self.bucket = TokenBucket(max_rate)
        else:
            self.bucket.set_rate(max_rate)

    def __repr__(self) -> str:
        return f"Transport(pool_size={self.pool_size})"

    @property
    def is_open(self) -> bool:
        return self._session is not None

    async def open(self) -> None:
        if self._session is not None:
            return
        # Read once, as botocore does when a client is made.
        self._env_proxies = urllib.request.getproxies_environment()
        self._proxies.clear()
        connector = aiohttp.TCPConnector(
            # The pool grows with the concurrency (aiohttp's default of 100 would
            # silently cap a larger setting), twice it: a copy holds a GET and a
            # PUT connection at once, and a pool only as large as the copies
            # would deadlock them.
            limit=self.pool_size,
            limit_per_host=0,
            ttl_dns_cache=300,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The read timeout is the watchdog's (one timer for all requests,
            # not one re-armed per piece of every body).
            # ``total`` bounds a whole transfer, retries included: the engine's.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeout.connect, sock_read=None
            ),
            # Bytes must land as stored: an object saved with Content-Encoding
            # gzip is downloaded as its gzip bytes, and its checksum still matches.
            auto_decompress=False,
            headers={"User-Agent": self._user_agent},
            # A presigned URL carries its whole authority: no cookies, and no
            # trust_env (it would read ~/.netrc and add Authorization: Basic).
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            requote_redirect_url=False,
        )
        # aiohttp re-sends an idempotent request once, on its own, when the
        # server closes the connection before answering (RFC 9112 9.3.1). Our
        # retry loop already does that, with backoff and counted: with both, a
        # PUT went out twice per counted attempt, and twice under attempts=1.
        # aiohttp has no public switch; its own test client sets this one.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False

    async def close(self) -> None:
        self._watchdog.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def form_body(
        self, fields: Mapping[str, str], data: bytes, filename: str, content_type: str
    ) -> tuple[object, str]:
        """A multipart/form-data body: ``fields`` in order, then the file last (S3
        ignores every field after the file). Returns the body and its Content-Type."""
        form = aiohttp.FormData(quote_fields=False)
        for name, value in fields.items():
            form.add_field(name, value)
        form.add_field("file", data, filename=filename, content_type=content_type)
        payload = form()
        return payload, payload.content_type

    @contextlib.asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        extra: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | object | None = None,
        length: int | None = None,
        ok_statuses: tuple[int, ...] = (),
        metered: bool = True,
    ) -> AsyncIterator[Response]:
        """Send one request and yield its response; the body is read inside the block.

        ``headers`` are the caller's (checked here); ``extra`` are the engine's
        own (Range, If-Match), which replace a caller's header of the same
        name. ``length`` is the body's size, sent as Content-Length (a presigned
        PUT needs one: S3 refuses chunked uploads). Errors raised in the block,
        by aiohttp or a stall, come out as asyncpresign's. ``metered=False``:
        nothing of this request is paid for from the bandwidth limit (a copy's
        PUT, whose bytes were paid for as its GET read them).
        """
        session = self._session
        if session is None:
            raise AsyncPresignError(
                "the TransferEngine is not open: use 'async with TransferEngine()'"
            )
        shown = check_url(url)
        check_headers(headers)
        send: CIMultiDict[str] = CIMultiDict(headers)
        if extra:
            send.update(extra)
        # The bytes as stored: a proxy compressing on the fly would hand us bytes
        # the checksum does not describe (aiohttp asks for gzip, and no header
        # at all allows any coding). Given here, not left out through
        # skip_auto_headers, whose handling cost 3% of a small download.
        send.setdefault("Accept-Encoding", "identity")
        if length is not None:
            send["Content-Length"] = str(length)
        target = URL(url, encoded=True)
        proxy_url, proxy_headers = self._route(target, send)
        guard = self._watchdog.watch()
        bucket = self.bucket if metered else None
        try:
            body = (
                _counted_body(body, guard) if bucket is None
                else await _metered(body, bucket, guard)
            )
            async with session.request(
                method,
                target,
                headers=send,
                data=body,
                # No Content-Type unless signed: aiohttp would add octet-stream,
                # and S3 would store it as the object's.
                skip_auto_headers=_NO_CONTENT_TYPE if body is not None else None,
                allow_redirects=False,
                proxy=proxy_url,
                proxy_headers=proxy_headers,
            ) as resp:
                _check_framing(resp, shown)
                response = (
                    Response(resp, guard, shown) if bucket is None
                    else _MeteredResponse(resp, guard, shown, bucket)
                )
                if 300 <= resp.status < 400 and resp.status not in ok_statuses:
                    raise await response.status_error()
                yield response
        except asyncio.CancelledError:
            if guard is not None and guard.owns_cancellation():
                raise TransferTimeoutError(f"timed out: {guard.reason}", url=shown) from None
            raise
        except AsyncPresignError:
            raise
        except Exception as exc:
            translated = _translate(exc, shown)
            if translated is None:
                raise
            raise translated from None
        finally:
            if guard is not None:
                self._watchdog.release(guard)

    def _route(
        self, target: URL, send: CIMultiDict[str]
    ) -> tuple[str | None, Mapping[str, str] | None]:
        """The proxy for ``target`` and the headers for its CONNECT; for an http
        target, the proxy's headers join the request (aiohttp puts them only on
        a CONNECT, and an http request goes to the proxy itself, absolute-form)."""
        proxy = self._proxy_for(target)
        if proxy is None:
            return None, None
        if target.scheme == "https":
            return proxy[0], proxy[1]  # on the CONNECT, never to the origin
        send.update(proxy[1])
        return proxy[0], None

    def _proxy_for(self, url: URL) -> tuple[str, Mapping[str, str]] | None:
        """The proxy for ``url`` and the headers for it (Proxy-Authorization), or None."""
        key = (url.scheme, url.host_port_subcomponent or "")
        try:
            return self._proxies[key]
        except KeyError:
            pass
        chosen: str | None
        setting = self._proxy_setting
        if setting is False:
            chosen = None
        elif setting is not None:
            chosen = setting
        else:
            chosen = self._env_proxies.get(url.scheme)
            host = url.host or ""
            if chosen and _bypassed(host, url.port, self._env_proxies):
                chosen = None
        found = _split_proxy(chosen) if chosen else None
        if len(self._proxies) > 1024:
            self._proxies.clear()
        self._proxies[key] = found
        return found


_NO_CONTENT_TYPE = ("Content-Type",)


def _counted_body(body: Any, guard: _Guard | None) -> Any:
    """The body, counted into the watchdog's guard as it goes."""
    if guard is None:
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        # Credit a buffer up front: it goes out in one write, unseen.
        guard.moved += len(body)
    elif isinstance(body, AsyncIterable):
        body = _counted(body, guard)
    return body


async def _counted(body: AsyncIterable[bytes], guard: _Guard) -> AsyncIterator[bytes]:
    async for piece in body:
        guard.moved += len(piece)
        yield piece


async def _pay(bucket: TokenBucket, n: int, guard: _Guard | None) -> None:
    """Take ``n`` bytes from the bandwidth limit, a :data:`PIECE` at a time,
    waiting for each as long as the limit says; meanwhile the watchdog knows
    the request is held, not stalled."""
    while n > 0:
        piece = min(n, PIECE)
        n -= piece
        ticket = bucket.take(piece)
        if ticket is None:
            continue
        loop = asyncio.get_running_loop()
        if guard is not None:
            guard.hold(loop.time())
        try:
            # Not an Event: the wait is a time the bucket computes, computed
            # again after each sleep so that a rate changed meanwhile applies.
            while (delay := bucket.delay(ticket)) > 0:  # noqa: ASYNC110
                await asyncio.sleep(min(delay, MAX_HOLD_SLEEP))
        finally:
            if guard is not None:
                guard.resume(loop.time())


async def _metered(body: Any, bucket: TokenBucket, guard: _Guard | None) -> Any:
    """The body to send under the bandwidth limit, counted into ``guard``: a
    stream paid for piece by piece as aiohttp pulls it; a buffer of more than
    a piece sent as such a stream (in one write it would go out unpaced); a
    buffer of one piece, or a form (a POST's, which aiohttp frames itself),
    paid for before it goes."""
    if isinstance(body, AsyncIterable):
        return _paced(body, bucket, guard)
    size: object = (
        len(body) if isinstance(body, (bytes, bytearray, memoryview))
        else getattr(body, "size", None)
    )
    if not isinstance(size, int):
        return body
    if size > PIECE and isinstance(body, (bytes, bytearray, memoryview)):
        return _paced(_slices(body), bucket, guard)
    await _pay(bucket, size, guard)
    if guard is not None:
        guard.moved += size
    return body


async def _slices(data: bytes | bytearray | memoryview) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), PIECE):
        yield view[start : start + PIECE]


async def _paced(
    body: AsyncIterable[bytes | memoryview], bucket: TokenBucket, guard: _Guard | None
) -> AsyncIterator[bytes | memoryview]:
    async for piece in body:
        await _pay(bucket, len(piece), guard)
        if guard is not None:
            guard.moved += len(piece)
        yield piece


def _bypassed(host: str, port: int | None, proxies: Mapping[str, str]) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``, read as curl, requests and botocore do:
    comma-separated entries, ``*`` for every host, a domain (with or without a
    leading dot) for itself and its subdomains, ``host:port``, and IP networks."""
    return no_proxy_matches(proxies.get("no", ""), host, port)


def no_proxy_matches(no_proxy: str, host: str, port: int | None) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = entry, None
        if entry.count(":") == 1 and not entry.startswith("["):
            entry_host, _, port_text = entry.partition(":")
            if not port_text.isdigit():
                continue
            entry_port = int(port_text)
        entry_host = entry_host.strip("[]").lstrip(".").rstrip(".")
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry_host, strict=False):
                    return True
            continue
        if host == entry_host or host.endswith("." + entry_host):
            return True
    return False


def _split_proxy(value: str) -> tuple[str, Mapping[str, str]]:
    """A proxy URL without its credentials, and the Proxy-Authorization they make."""
    if "://" not in value:
        value = "http://" + value  # curl's and requests' reading of "host:port"
    try:
        url = URL(value)
    except ValueError:
        raise InvalidArgumentError("the proxy setting is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgumentError(
            f"a proxy must be an http:// or https:// URL with a host, not {url.scheme}://"
        )
    headers: dict[str, str] = {}
    if url.user is not None:
        credentials = f"{url.user}:{url.password or ''}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        url = url.with_user(None)
    return str(url), headers


def _check_proxy(proxy: ProxySetting) -> ProxySetting:
    if proxy is None or proxy is False:
        return proxy
    if not isinstance(proxy, str) or not proxy:
        raise InvalidArgumentError(
            "proxy must be a URL string, False (no proxy), or None (from the environment)"
        )
    _split_proxy(proxy)
    return proxy


def _ssl_from(setting: SSLSetting) -> ssl_module.SSLContext | bool:
    """What the connector verifies TLS with: the given context or CA bundle,
    ``AWS_CA_BUNDLE`` as botocore reads it, or the system's trust store."""
    if isinstance(setting, ssl_module.SSLContext):
        return setting
    if setting is False:
        warnings.warn(
            "TransferEngine(ssl=False): TLS certificates are NOT verified; anyone on the "
            "path can read and change the data",
            stacklevel=4,
        )
        return False
    if setting is None or setting is True:
        bundle = os.environ.get("AWS_CA_BUNDLE")
        if not bundle:
            return True
        return _context_from_bundle(bundle, "AWS_CA_BUNDLE")
    if isinstance(setting, (str, os.PathLike)):
        return _context_from_bundle(os.fspath(setting), "ssl")
    raise InvalidArgumentError(
        "ssl must be an SSLContext, a CA bundle path, True, False or None, "
        f"not {type(setting).__name__}"
    )


def _context_from_bundle(path: str, where: str) -> ssl_module.SSLContext:
    try:
        return ssl_module.create_default_context(cafile=path)
    except (OSError, ssl_module.SSLError) as exc:
        raise InvalidArgumentError(
            f"cannot load the CA bundle {path!r} given by {where}: {exc}"
        ) from None


def _check_framing(resp: aiohttp.ClientResponse, shown: str) -> None:
    """Refuse what aiohttp's pure-Python parser would let through (the C parser
    already refuses it): two Content-Lengths, and versions other than HTTP/1.x."""
    if len(resp.headers.getall("Content-Length", ())) > 1:
        raise TransportError("bad response: more than one Content-Length", url=shown)
    version = resp.version
    if version is not None and (version.major != 1 or version.minor not in (0, 1)):
        raise TransportError(
            f"bad response: HTTP/{version.major}.{version.minor} is not HTTP/1.x", url=shown
        )


def _translate(exc: BaseException, shown: str) -> AsyncPresignError | None:
    """aiohttp's errors (and the OS's, through it) as asyncpresign's. Only here."""
    ours = _our_cause(exc)
    if ours is not None:
        return ours
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidArgumentError(f"invalid URL {shown!r}")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return TransferTimeoutError(f"timed out ({_timeout_phase(exc)})", url=shown)
    unsent = _before_sending(exc, shown)
    if unsent is not None:
        return unsent
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError(f"connection dropped in the middle of the body: {exc}", url=shown)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("server closed the connection", url=shown)
    if isinstance(exc, aiohttp.ClientResponseError):
        lines = str(exc.message).splitlines() if exc.message else []
        first_line = lines[0].rstrip(": ") if lines else "malformed"
        return TransportError(f"bad response: {first_line or 'malformed'}", url=shown)
    if isinstance(exc, (aiohttp.ClientError, ConnectionError)):
        return TransportError(f"connection failed: {exc}", url=shown)
    if isinstance(exc, ValueError) and not isinstance(exc, AsyncPresignError):
        # aiohttp refuses what it cannot send (a header it will not write).
        return InvalidArgumentError(f"cannot send the request to {shown}: {exc}")
    if isinstance(exc, OSError):
        return TransportError(f"connection failed: {exc.strerror or exc}", url=shown)
    return None


def _before_sending(exc: BaseException, shown: str) -> TransportError | None:
    """Failures to connect (directly, to a proxy, or to trust the certificate):
    no byte of the request left, so even a POST may be sent again."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = TransportError(
            "TLS certificate not trusted: give the CA with TransferEngine(ssl=...) or "
            f"AWS_CA_BUNDLE ({exc.certificate_error})",
            url=shown,
        )
        error.retryable = False  # the same certificate fails the same way again
    elif isinstance(exc, aiohttp.ClientProxyConnectionError):
        error = TransportError(f"cannot connect to the proxy: {exc.os_error}", url=shown)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = TransportError(f"cannot connect: {exc.os_error}", url=shown)
    elif isinstance(exc, aiohttp.ClientHttpProxyError):
        error = TransportError(f"the proxy refused the connection: HTTP {exc.status}", url=shown)
    else:
        return None
    error.request_sent = False
    return error


def _our_cause(exc: BaseException) -> AsyncPresignError | None:
    """An error of ours raised while aiohttp pulled the body (a source that
    failed its check, a file that shrank) comes back wrapped: unwrap it."""
    cause: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(4):
        if cause is None or isinstance(cause, AsyncPresignError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _timeout_phase(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connecting"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return "no data within the read timeout"
    return "the total timeout"
