"""What every operation shares: the runtime (transport, limiter, file thread),
the retry loop around one attempt, progress that takes back a failed attempt's
bytes, and re-signing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread

if sys.version_info < (3, 11):  # pragma: no cover - the builtin from 3.11 on
    from exceptiongroup import BaseExceptionGroup

from . import _files
from ._exceptions import (
    AsyncPresignError,
    InvalidArgumentError,
    LocalFileError,
    SourceChangedError,
    TransferError,
    TransferTimeoutError,
)
from ._models import (
    PresignedRequest,
    ProgressCallback,
    ProgressEvent,
    RequestLike,
    SignFunction,
    TransferResult,
)
from ._offload import FileThread
from ._retry import NOT_REPLAYABLE, RetryPolicy, decide_retry
from ._throttle import Endpoints
from ._transport import Transport, check_url

__all__ = [
    "Runtime",
    "Tracker",
    "header",
    "initial_request",
    "run_workers",
]

T = TypeVar("T")
logger = logging.getLogger("asyncpresign")

#: Re-sign a request this long before it expires rather than send a URL that
#: may die in flight.
RESIGN_MARGIN = dt.timedelta(seconds=30)
_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


class Tracker:
    """Reports one transfer's bytes, and takes back a failed attempt's.

    A child (one range or part of a larger object) forwards its bytes to its
    parent, which reports them against the whole object.
    """

    __slots__ = ("attempt_bytes", "callback", "parent", "total", "transferred", "url")

    def __init__(
        self,
        callback: ProgressCallback | None,
        url: str = "",
        total: int | None = None,
        parent: Tracker | None = None,
    ) -> None:
        if callback is not None and not callable(callback):
            # Else a bare TypeError at the first bytes moved, the transfer under way.
            raise InvalidArgumentError(
                f"progress must be a function, not {type(callback).__name__}"
            )
        self.callback = callback
        self.url = url
        self.total = total
        self.parent = parent
        self.transferred = 0
        self.attempt_bytes = 0

    async def add(self, delta: int) -> None:
        self.transferred += delta
        self.attempt_bytes += delta
        if self.parent is not None:
            await self.parent.add(delta)
        elif self.callback is not None and delta:
            await call(self.callback, ProgressEvent(self.url, delta, self.transferred, self.total))

    async def rollback(self) -> None:
        lost = self.attempt_bytes
        if lost:
            await self.add(-lost)
        self.attempt_bytes = 0

    def keep(self) -> None:
        """The attempt's bytes stay (a resumed download keeps what it wrote)."""
        self.attempt_bytes = 0


async def call(callback: Callable[[Any], Any], arg: Any) -> None:
    result = callback(arg)
    if inspect.isawaitable(result):
        await result


class Runtime:
    """The resources of one engine, which every operation works through."""

    def __init__(self, transport: Transport, concurrency: int, checksum: str | None) -> None:
        self.transport = transport
        self.concurrency = concurrency
        #: The flexible checksum taken of uploads ("crc64nvme" …), or "md5"/None.
        self.checksum = checksum
        # Whole small files (an upload's read, a download's last write and
        # rename) go through one batching thread.
        self.files = FileThread()
        self.limiter: asyncio.Semaphore | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._resigning: dict[int, asyncio.Future[PresignedRequest]] = {}
        #: Each endpoint's failure clock and, once throttled, its rate limiter.
        self.endpoints = Endpoints()
        self._checked_folders: dict[str, None] = {}

    def open(self) -> None:
        # asyncio's own primitive: anyio's yields to the loop on every acquire,
        # an extra loop turn per transfer that small objects pay for.
        self.limiter = asyncio.Semaphore(self.concurrency)

    def check_open(self) -> None:
        if not self.transport.is_open:
            raise AsyncPresignError(
                "the TransferEngine is not open: use 'async with TransferEngine()'"
            )

    async def with_retries(
        self,
        request: PresignedRequest | None,
        sign: SignFunction | None,
        policy: RetryPolicy,
        attempt_once: Callable[[PresignedRequest, Tracker], Awaitable[TransferResult]],
        *,
        method: str,
        replayable: bool,
        tracker: Tracker,
        keep_progress: bool = False,
    ) -> TransferResult:
        """Run ``attempt_once`` until it succeeds or the policy gives up.

        Each attempt holds one of the engine's ``concurrency`` slots. The
        request is re-signed when it is about to expire or the server says it
        has. ``method`` is what the request must be (a signing function that
        returns another method is refused); a POST, which must not be sent
        twice, is sent again only when the failure came before any byte left.
        """
        self.check_open()
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            if sign is not None and (request is None or expiring(request)):
                request = await self.resign(sign, method)
            assert request is not None
            url = request.url
            tracker.url = check_url(url)
            try:
                result = await self._attempt(url, partial(attempt_once, request, tracker))
            except (TransferError, LocalFileError) as exc:
                if keep_progress:
                    tracker.keep()
                else:
                    await tracker.rollback()
                decision = decide_retry(
                    policy, exc, attempt, replayable=replayable, can_resign=sign is not None,
                    idempotent=method != "POST", elapsed=self.endpoints.failing_for(url),
                )
                if not decision.retry:
                    exc.attempts = attempt  # type: ignore[union-attr]
                    if decision.reason == NOT_REPLAYABLE and isinstance(exc, TransferError):
                        exc.message += f" (not retried: {NOT_REPLAYABLE})"
                    raise
                logger.info(
                    "retrying %s %s (attempt %d of %d) in %.2f s: %s",
                    request.method, tracker.url, attempt + 1, policy.attempts,
                    decision.delay, exc,
                )
                if decision.resign:
                    assert sign is not None
                    request = await self.resign(sign, method)
                if decision.delay:
                    await anyio.sleep(decision.delay)
                continue
            return replace(result, seconds=time.perf_counter() - started, attempts=attempt)

    async def bounded(self, work: Coroutine[Any, Any, T]) -> T:
        """Run one whole transfer (every attempt and wait) within ``Timeout.total``."""
        total = self.transport.timeout.total
        if total is None:
            return await work
        try:
            with anyio.fail_after(total):
                return await work
        except TimeoutError:
            raise TransferTimeoutError(
                f"the transfer did not finish within the total timeout of {total:g} s"
            ) from None

    async def restarted_if_changed(
        self, upload: Callable[[], Awaitable[T]], tracker: Tracker
    ) -> T:
        """Run an upload; if its source file changed while it was read, run it
        once more from the start (a file being written may have settled by
        then); if it changes again, the upload fails."""
        try:
            return await upload()
        except SourceChangedError as exc:
            logger.debug("%s; starting its upload over", exc)
            await tracker.add(-tracker.transferred)
            return await upload()

    async def _attempt(self, url: str, start: Callable[[], Awaitable[T]]) -> T:
        """One attempt, paced by the endpoint's rate limiter once it has been
        throttled, its outcome recorded in the endpoint's health."""
        limiter = self.endpoints.limiter(url)
        if limiter is not None:
            await limiter.on_sending_request(None)
        sent_at = time.monotonic()
        try:
            result = await self._limited(start)
        except (TransferError, LocalFileError) as exc:
            throttled = self.endpoints.record(url, exc, sent_at)
            if throttled is not None:
                await throttled.hear(exc)
            raise
        throttled = self.endpoints.record(url, None)
        if throttled is not None:
            await throttled.hear(None)
        return result

    async def _limited(self, start: Callable[[], Awaitable[T]]) -> T:
        assert self.limiter is not None
        async with self.limiter:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await start()
            finally:
                self.in_flight -= 1

    async def resign(self, sign: SignFunction, method: str) -> PresignedRequest:
        """Ask for a fresh request; concurrent transfers sharing ``sign`` share one call."""
        key = id(sign)
        pending = self._resigning.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[PresignedRequest] = asyncio.get_running_loop().create_future()
        self._resigning[key] = future
        try:
            signing = sign()
            if not inspect.isawaitable(signing):
                # A plain function: awaiting its result was a bare TypeError.
                raise InvalidArgumentError(
                    "a signing function must be async (an async def, or Signer.sign_later), "
                    f"not one that returns {type(signing).__name__}"
                )
            fresh = await signing
            if not isinstance(fresh, PresignedRequest):
                raise InvalidArgumentError("a signing function must return a PresignedRequest")
            check_method(fresh, method)
            future.set_result(fresh)
            return fresh
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._resigning[key]

    async def check_destination(self, dest: str) -> None:
        """Fail before the request if ``dest`` cannot be written, and remove the
        partial downloads dead writers left in its folder. Done once per folder:
        a thread hop per small file costs more than the file itself, and a
        folder that vanishes later still fails clearly when the file is moved in."""
        folder = os.path.dirname(dest)
        if folder in self._checked_folders:
            return
        await anyio.to_thread.run_sync(_files.prepare_folder, dest)
        if len(self._checked_folders) > 4096:
            self._checked_folders.clear()
        self._checked_folders[folder] = None


async def run_workers(count: int, worker: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``count`` copies of ``worker``; if one fails, the others are cancelled and
    its error is raised as itself, not wrapped in an exception group."""
    with ungrouped():
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(worker)


@contextlib.contextmanager
def ungrouped() -> Iterator[None]:
    """A task group's first real error (not a cancellation) raised as itself."""
    try:
        yield
    except BaseExceptionGroup as group:
        raise _first_error(group) from None


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    errors: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        item = pending.pop(0)
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        else:
            errors.append(item)
    cancelled = anyio.get_cancelled_exc_class()
    real = [e for e in errors if not isinstance(e, cancelled)]
    return real[0] if real else group


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, its name compared without case."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return None


def signs_checksums(sign: SignFunction) -> bool:
    """Whether a signing function takes ``checksum=`` (Signer.sign_later's do)."""
    return bool(getattr(sign, "signs_checksums", False))


def signs_metadata(sign: SignFunction) -> bool:
    """Whether a signing function takes ``metadata=`` (Signer.sign_later's do)."""
    return bool(getattr(sign, "signs_metadata", False))


def check_method(request: PresignedRequest, method: str) -> None:
    if request.method != method:
        action = {"PUT": "an upload", "GET": "a download"}.get(method, method)
        raise InvalidArgumentError(
            f"{action} needs a presigned {method} request, not {request.method}"
        )


def initial_request(
    request: RequestLike | None, sign: SignFunction | None, method: str
) -> PresignedRequest | None:
    """The first request to send: the given one (checked), or None to sign one."""
    if request is None:
        if sign is None:
            raise InvalidArgumentError("give a request (a PresignedRequest or URL) or sign=")
        return None
    if isinstance(request, str):
        check_url(request)
        # A bare URL: we do not know its expiry, so never re-sign early for it.
        return PresignedRequest(
            method=method,  # type: ignore[arg-type]
            url=request,
            expires_at=_FAR_FUTURE,
        )
    if isinstance(request, PresignedRequest):
        check_url(request.url)
        check_method(request, method)
        return request
    raise InvalidArgumentError(
        f"request must be a PresignedRequest or a URL string, not {type(request).__name__}"
    )


def expiring(request: PresignedRequest) -> bool:
    return request.expires_at - dt.datetime.now(dt.timezone.utc) < RESIGN_MARGIN


def fspath(value: Any, what: str) -> str:
    try:
        raw = os.fspath(value)
    except TypeError:
        raise InvalidArgumentError(f"{what} must be a path, not {type(value).__name__}") from None
    path = os.fsdecode(raw) if isinstance(raw, bytes) else raw
    if not path:
        raise InvalidArgumentError(f"{what} must not be empty")
    if "\x00" in path:
        raise InvalidArgumentError(f"{what} must not contain a NUL character")
    return path
