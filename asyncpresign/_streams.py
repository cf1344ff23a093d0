"""Objects to and from streams: an upload of unknown length (``pg_dump |``) as a
multipart upload with its parts held in memory, and a download handed out in
order (``| psql``) while its ranges arrive in parallel. Memory is bounded by
the parts in flight, whatever the object's size."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from ._attempts import Runtime, Tracker, initial_request, ungrouped
from ._checks import (
    check_etag,
    check_part_answer,
    expected_total,
    is_range,
    refuse_signed_range,
)
from ._checksums import Verifier
from ._download import verifier_for
from ._exceptions import (
    AsyncPresignError,
    IntegrityError,
    InvalidArgumentError,
    TransferTimeoutError,
)
from ._models import PresignedRequest, RequestLike, SignFunction, TransferResult
from ._multipart import MultipartUpload
from ._parts import plan_ranges, stream_part_size
from ._ranged import check_range_status
from ._retry import RetryPolicy
from ._upload import UploadSource, upload

if TYPE_CHECKING:
    from ._signer import Signer

__all__ = ["DownloadStream", "upload_stream"]

T = TypeVar("T")

#: Parts a stream holds in flight at most (fewer when the engine's concurrency
#: is lower): with 8 MiB parts, a stream's memory stays near 72 MiB.
STREAM_PARTS_IN_FLIGHT = 8


async def upload_stream(
    rt: Runtime,
    signer: Signer,
    bucket: str,
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    part_size: int,
    parts_in_flight: int,
    content_type: str | None,
    metadata: Mapping[str, str] | None,
    expires_in: float | dt.timedelta,
    chunk: int,
    policy: RetryPolicy,
    tracker: Tracker,
) -> TransferResult:
    """A stream that ends within its first part goes up as one PUT; a longer one
    as a multipart upload whose parts are sent as they fill, at most
    ``parts_in_flight`` at a time (the next part is read only when one is
    done), and which is aborted if anything fails or the task is cancelled."""
    tracker.url = f"s3://{bucket}/{key}"
    started = time.perf_counter()
    async with contextlib.aclosing(_parts_of(chunks, part_size)) as parts:
        # Only a list holds the first two parts, so that sending can let go of them.
        head: list[bytes] = []
        async for part in parts:
            head.append(part)
            if len(head) == 2:
                return await _multipart(
                    rt, signer, bucket, key, head=head, rest=parts, parts_in_flight=parts_in_flight,
                    content_type=content_type, metadata=metadata, expires_in=expires_in,
                    chunk=chunk, policy=policy, tracker=tracker, started=started,
                )
    options: dict[str, Any] = {}
    if content_type is not None:
        options["content_type"] = content_type
    if metadata:
        options["metadata"] = metadata
    sign = signer.sign_later("PUT", bucket, key, expires_in=expires_in, **options)
    return await upload(
        rt, None, UploadSource.of(head.pop() if head else b"", None), sign=sign,
        content_md5=False, chunk=chunk, policy=policy, tracker=tracker,
    )


async def _multipart(
    rt: Runtime,
    signer: Signer,
    bucket: str,
    key: str,
    *,
    head: list[bytes],
    rest: AsyncIterator[bytes],
    parts_in_flight: int,
    content_type: str | None,
    metadata: Mapping[str, str] | None,
    expires_in: float | dt.timedelta,
    chunk: int,
    policy: RetryPolicy,
    tracker: Tracker,
    started: float,
) -> TransferResult:
    options: dict[str, Any] = {}
    if content_type is not None:
        options["ContentType"] = content_type
    if metadata:
        options["Metadata"] = dict(metadata)
    upload = MultipartUpload(
        rt, signer, bucket, key, content_md5=False, expires_in=expires_in, chunk=chunk,
        policy=policy, tracker=tracker,
    )
    await upload.create(**options)
    slots = asyncio.Semaphore(parts_in_flight)

    async def send(number: int, data: bytes) -> None:
        try:
            await upload.send(number, UploadSource.of(data, None), len(data))
        finally:
            slots.release()

    async def next_part() -> bytes | None:
        if head:
            return head.pop(0)
        return await anext(rest, None)

    try:
        with ungrouped():
            async with anyio.create_task_group() as tg:
                number = 0
                while True:
                    # A slot first, then the next part: at most parts_in_flight
                    # parts are in memory, the one being read included.
                    await slots.acquire()
                    data = await next_part()
                    if data is None:
                        slots.release()
                        break
                    number += 1
                    tg.start_soon(send, number, data)
                    del data  # the task holds the part now
        return await upload.complete(started)
    except BaseException:
        await upload.abort()
        raise


async def _parts_of(
    chunks: AsyncIterable[bytes], preferred: int
) -> AsyncGenerator[bytes, None]:
    """The stream cut into parts of :func:`stream_part_size` bytes (the last shorter)."""
    if not isinstance(chunks, AsyncIterable):
        raise InvalidArgumentError(
            f"a stream to upload must be an async iterable of bytes, not {type(chunks).__name__}"
        )
    number, size = 1, stream_part_size(1, preferred)
    pending: list[bytes] = []
    held = 0
    async for data in chunks:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(
                f"a stream to upload must yield bytes, not {type(data).__name__}"
            )
        view = memoryview(data).cast("B")
        while view:
            if not pending and held == 0:
                size = stream_part_size(number, preferred)  # raises past 10,000 parts
            piece, view = view[: size - held], view[size - held:]
            pending.append(bytes(piece))
            held += len(piece)
            if held == size:
                yield b"".join(pending)
                pending, held, number = [], 0, number + 1
    if held:
        yield b"".join(pending)


@dataclass
class _Object:
    """What the first answer told of the object a stream downloads."""

    etag: str | None = None
    total: int | None = None
    verifier: Verifier | None = None
    ranged: bool = False
    request: PresignedRequest | None = None
    delivered: int = 0
    attempts: int = 1
    status: int = 0
    shown: str = ""
    #: Bytes put in the queue by the first answer's attempts (a retry resumes after them).
    queued: int = 0
    #: The ranges after the first: those not started, and those being fetched, in order.
    ranges: Iterator[tuple[int, int]] = field(default_factory=lambda: iter(()))
    fetching: collections.deque[asyncio.Future[bytes]] = field(
        default_factory=collections.deque
    )


class DownloadStream:
    """An object's bytes, in order, as an async iterator (from
    :meth:`TransferEngine.download_stream`).

    Its ranges are fetched in parallel, at most ``parts_in_flight`` parts of
    ``part_size`` held at once, and handed out in order; a connection that
    breaks is resumed where it stopped (asked ``If-Match`` the object's ETag,
    so a replaced object fails rather than mixes). The bytes are checked
    against the object's full checksum (or an ETag that is its MD5) as they
    pass: a mismatch is raised by the last iteration, after the bytes were
    handed out, so whoever consumes them must treat the stream as good only
    when the iteration ends without error. ``result`` says, once it has,
    what was checked (``verified``). Use it as ``async with`` (or
    ``contextlib.aclosing``) to stop its transfers at once when leaving early.
    """

    def __init__(
        self,
        rt: Runtime,
        request: RequestLike | None,
        *,
        sign: SignFunction | None,
        verify: bool,
        part_size: int,
        parts_in_flight: int,
        chunk: int,
        policy: RetryPolicy,
        tracker: Tracker,
    ) -> None:
        self._request = initial_request(request, sign, "GET")
        self._rt, self._sign, self._verify = rt, sign, verify
        self._part_size, self._parts_in_flight = part_size, parts_in_flight
        self._chunk, self._policy, self._tracker = chunk, policy, tracker
        self._iterator: AsyncGenerator[bytes, None] | None = None
        self._closed = False
        #: Set when the whole object has been handed out and checked.
        self.result: TransferResult | None = None

    def __repr__(self) -> str:
        # From the stream's own state: its tracker never learns the URL (the
        # attempts have trackers of their own), so a finished stream read
        # "(not started)".
        if self.result is not None:
            return f"<DownloadStream {self.result.url} (done, {self.result.nbytes} bytes)>"
        if self._iterator is None and not self._closed:
            return "<DownloadStream (not started)>"
        return f"<DownloadStream ({'closed' if self._closed else 'in progress'})>"

    def __aiter__(self) -> AsyncIterator[bytes]:
        # Once only: a second loop over a spent stream would end at once without
        # error, which reads as a whole, checked object of no bytes (a loop that
        # retries after an error would take its nothing for good).
        if self._iterator is not None or self._closed:
            raise AsyncPresignError(
                "a DownloadStream is iterated once; call download_stream() again for "
                "another pass"
            )
        self._iterator = self._stream()
        return self._iterator

    async def __aenter__(self) -> DownloadStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream's transfers; the bytes not yet handed out are dropped."""
        self._closed = True
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _within(self, obj: _Object, deadline: float | None, work: Awaitable[T]) -> T:
        """``work`` awaited until the engine's total timeout, counted from the
        stream's start, runs out. Only waits are bounded, never a yield (a
        cancel scope must not span one), so time the consumer holds a piece
        counts too, as a file's writes count for a download."""
        if deadline is None:
            return await work
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0.0)) as scope:
            return await work
        assert scope.cancelled_caught
        raise TransferTimeoutError(
            "the stream did not finish within the total timeout of "
            f"{self._rt.transport.timeout.total:g} s",
            url=obj.shown or None,
        )

    async def _stream(self) -> AsyncGenerator[bytes, None]:
        started = time.perf_counter()
        total = self._rt.transport.timeout.total
        deadline = None if total is None else anyio.current_time() + total
        obj = _Object()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
        producer = asyncio.ensure_future(self._first(obj, queue))
        try:
            while (data := await self._within(obj, deadline, _next(queue, producer))) is not None:
                await self._hand_out(obj, data)
                yield data
            await producer  # its error, if it failed after its last piece
            if obj.ranged:
                async with contextlib.aclosing(self._ranges(obj, deadline)) as ranges:
                    async for data in ranges:
                        await self._hand_out(obj, data)
                        yield data
        finally:
            await _cancel([producer, *obj.fetching])
        await self._finish(obj, started)

    async def _hand_out(self, obj: _Object, data: bytes) -> None:
        obj.delivered += len(data)
        if obj.verifier is not None:
            if obj.verifier.inline or len(data) < 65536:
                obj.verifier.update(data)
            else:  # MD5 of a part: off the loop
                await anyio.to_thread.run_sync(obj.verifier.update, data)
        await self._tracker.add(len(data))

    async def _finish(self, obj: _Object, started: float) -> None:
        if obj.total is not None and obj.delivered != obj.total:
            raise IntegrityError(
                f"body ended after {obj.delivered} of {obj.total} bytes", url=obj.shown
            )
        mismatch = obj.verifier.mismatch() if obj.verifier is not None else None
        if mismatch is not None:
            raise IntegrityError(
                mismatch + " (the bytes were already handed out: discard them)",
                url=obj.shown, attempts=obj.attempts,
            )
        self.result = TransferResult(
            url=obj.shown, nbytes=obj.delivered, seconds=time.perf_counter() - started,
            status=obj.status, etag=obj.etag, attempts=obj.attempts,
            verified=obj.verifier.kind if obj.verifier is not None else None,
        )

    # -- the first answer ----------------------------------------------------------------

    async def _first(self, obj: _Object, queue: asyncio.Queue[bytes | None]) -> None:
        """GET the whole object (only a whole answer carries its checksum). A
        small object, or a large one that can be fetched in ranges, is read up
        to ``part_size`` and the rest left to :meth:`_ranges`; anything else is
        streamed through ``queue``, resumed after the bytes already queued."""

        async def attempt(req: PresignedRequest, _: Tracker) -> TransferResult:
            refuse_signed_range(req.headers, "streamed")
            obj.request = req
            return await self._first_once(req, obj, queue)

        result = await self._rt.with_retries(
            self._request, self._sign, self._policy, attempt, method="GET", replayable=True,
            tracker=Tracker(None), keep_progress=True,
        )
        obj.attempts = result.attempts
        if obj.ranged:
            self._start_ranges(obj)
        await queue.put(None)

    async def _first_once(
        self, req: PresignedRequest, obj: _Object, queue: asyncio.Queue[bytes | None]
    ) -> TransferResult:
        queued = obj.queued
        resuming = obj.status != 0
        extra = {"Range": f"bytes={queued}-", "If-Match": obj.etag} if (
            resuming and queued and obj.etag
        ) else {}
        async with self._rt.transport.request(
            "GET", req.url, req.headers, extra=extra
        ) as resp:
            shown = resp.shown
            await check_range_status(resp)
            etag = check_etag(resp.headers.get("ETag"), shown)
            if resuming:
                skip = _resumed_at(
                    resp.status, resp.headers, obj, etag, queued=queued, shown=shown
                )
            else:
                skip = 0
                self._learn(obj, resp.status, resp.headers, etag, shown)
            if obj.ranged or (obj.total is not None and obj.total <= self._part_size):
                # Read into memory: the answer never waits on the consumer.
                limit = min(self._part_size, obj.total or 0) - skip
                data = await _read(resp, limit, self._chunk)
                if len(data) != limit:
                    raise IntegrityError(
                        f"body ended after {queued + len(data) - skip} of {obj.total} bytes",
                        url=shown,
                    )
                if data:  # an empty object has no piece to hand out
                    obj.queued += len(data)
                    await queue.put(data)
                return TransferResult(url=shown, status=resp.status, etag=etag)
            # A large object without ranges (or of unknown length): stream it.
            while data := await resp.read(self._chunk):
                if skip:
                    dropped = min(skip, len(data))
                    data, skip = data[dropped:], skip - dropped
                    if not data:
                        continue
                obj.queued += len(data)
                await queue.put(data)
            return TransferResult(url=shown, status=resp.status, etag=etag)

    def _learn(
        self, obj: _Object, status: int, headers: Mapping[str, str], etag: str | None, shown: str
    ) -> None:
        """What the first answer tells of the object: size, ETag, the check its
        bytes get, and whether it can be fetched in ranges."""
        total = expected_total(status, headers, 0, shown)
        obj.etag, obj.total, obj.status, obj.shown = etag, total, status, shown
        if self._verify:
            obj.verifier = verifier_for(headers, etag)
        obj.ranged = (
            total is not None and total > self._part_size and etag is not None
            and headers.get("Accept-Ranges", "").strip().lower() == "bytes"
        )

    # -- the other ranges ----------------------------------------------------------------

    def _start_ranges(self, obj: _Object) -> None:
        """Start fetching the ranges after the first, ``parts_in_flight`` of them,
        as soon as the first answer shows the object can be fetched so."""
        assert obj.total is not None
        obj.ranges = iter(plan_ranges(obj.total, self._part_size, start=self._part_size))
        for _ in range(self._parts_in_flight):
            self._start_next(obj)

    def _start_next(self, obj: _Object) -> None:
        span = next(obj.ranges, None)
        if span is not None:
            obj.fetching.append(asyncio.ensure_future(self._fetch(obj, *span)))

    async def _ranges(
        self, obj: _Object, deadline: float | None
    ) -> AsyncGenerator[bytes, None]:
        """The ranges after the first, handed out in order; each one taken starts
        the next, so at most ``parts_in_flight`` are held."""
        try:
            while obj.fetching:
                data = await self._within(obj, deadline, obj.fetching[0])
                obj.fetching.popleft()
                self._start_next(obj)
                yield data
        finally:
            await _cancel(obj.fetching)

    async def _fetch(self, obj: _Object, first_byte: int, last_byte: int) -> bytes:
        got: list[bytes] = []
        assert obj.total is not None
        assert obj.etag is not None
        total, etag = obj.total, obj.etag

        async def attempt(req: PresignedRequest, _: Tracker) -> TransferResult:
            extra = {"Range": f"bytes={first_byte}-{last_byte}", "If-Match": etag}
            async with self._rt.transport.request(
                "GET", req.url, req.headers, extra=extra
            ) as resp:
                shown = resp.shown
                await check_range_status(resp)
                check_part_answer(resp.status, resp.headers, (first_byte, last_byte), total, shown)
                length = last_byte - first_byte + 1
                data = await _read(resp, length, self._chunk)
            if len(data) != length:
                raise IntegrityError(
                    f"range {first_byte}-{last_byte} ended after {len(data)} bytes", url=shown
                )
            got.append(data)
            return TransferResult(url=shown, nbytes=length, status=206, etag=etag)

        result = await self._rt.with_retries(
            obj.request, self._sign, self._policy, attempt, method="GET", replayable=True,
            tracker=Tracker(None),
        )
        obj.attempts = max(obj.attempts, result.attempts)
        return got[0]


def _resumed_at(
    status: int, headers: Mapping[str, str], obj: _Object, etag: str | None, *, queued: int,
    shown: str,
) -> int:
    """How many bytes of a resumed answer to drop: it must be the same object,
    either the range asked for (a 206, or a 200 with a Content-Range, as
    rclone answers), starting where the queued bytes end, or the whole object
    from byte 0 (a server that ignores Range), whose first ``queued`` bytes
    are dropped."""
    if etag != obj.etag or obj.etag is None:
        raise IntegrityError(
            f"the object changed while it was being streamed (its ETag is {etag!r}, was "
            f"{obj.etag!r}); download it again",
            url=shown,
        )
    if not is_range(status, headers):
        return queued
    # The file download's check: a range must start at the byte asked for, its
    # Content-Length agree and its total be known. A 200 read as starting at
    # byte 0 lost the first ``queued`` bytes of a body that starts after them.
    total = expected_total(status, headers, queued, shown)
    if obj.total is not None and total != obj.total:
        raise IntegrityError(
            f"the object changed while it was being streamed (its size is {total}, was "
            f"{obj.total}); download it again",
            url=shown,
        )
    return 0


async def _read(resp: Any, length: int, chunk: int) -> bytes:
    """Up to ``length`` bytes of a body, read ``chunk`` at a time."""
    pieces: list[bytes] = []
    left = length
    while left > 0 and (data := await resp.read(min(chunk, left))):
        pieces.append(data)
        left -= len(data)
    return b"".join(pieces)


async def _next(queue: asyncio.Queue[bytes | None], producer: asyncio.Future[None]) -> bytes | None:
    """The next piece from ``queue`` (None after the last), or, once the queue is
    drained, the producer's error if it failed."""
    while True:
        if not queue.empty():
            return queue.get_nowait()
        if producer.done():
            producer.result()  # its error; a producer that succeeded queued None last
            return None
        getter: asyncio.Future[bytes | None] = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait((getter, producer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()


async def _cancel(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel what is still running and wait for it (shielded: this runs while
    the stream itself is being closed or cancelled)."""
    futures = list(futures)
    running = [future for future in futures if not future.done()]
    for future in running:
        future.cancel()
    if running:
        with anyio.CancelScope(shield=True):
            await asyncio.wait(running)
    for future in futures:
        if not future.cancelled():
            future.exception()  # retrieved: the stream's own error is what counts
