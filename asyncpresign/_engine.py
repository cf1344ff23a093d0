"""The TransferEngine: many PUTs and GETs through presigned URLs, streamed, bounded, retried.

The engine is the facade that owns the resources (the transport's aiohttp
session, the concurrency limiter, the file thread) and dispatches; each kind
of operation lives in its own module over one retry loop (``_attempts``) and
one transport (``_transport``): ``_upload``, ``_multipart``, ``_download``,
``_ranged``, ``_copy``, ``_post``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from . import _files
from ._attempts import Runtime, Tracker, call, fspath, initial_request, run_workers
from ._bandwidth import rate_text
from ._checksums import check_algorithm
from ._config import Timeout
from ._copy import copy as copy_operation
from ._descriptors import fit_concurrency
from ._download import DownloadState, get_once
from ._exceptions import InvalidArgumentError
from ._models import (
    BatchResult,
    Copy,
    Destination,
    Download,
    Job,
    PresignedPost,
    PresignedRequest,
    ProgressCallback,
    RequestLike,
    SignFunction,
    Source,
    TransferResult,
    Upload,
)
from ._multipart import upload_large as upload_large_operation
from ._parts import DEFAULT_PART_SIZE, DEFAULT_RANGE_SIZE, choose_part_size
from ._post import upload_post as upload_post_operation
from ._ranged import WholeFileMismatch, fetch_ranges
from ._redact import redact_url
from ._retry import RetryPolicy
from ._streams import STREAM_PARTS_IN_FLIGHT, DownloadStream
from ._streams import upload_stream as upload_stream_operation
from ._throttle import ThrottleState, lowest_rate_limit
from ._transport import ProxySetting, SSLSetting, Transport
from ._upload import UploadSource
from ._upload import upload as upload_operation
from ._validation import check_chunk_size, check_positive_int
from ._version import __version__

if TYPE_CHECKING:
    from ._signer import Signer

__all__ = ["EngineStatistics", "Timeout", "TransferEngine"]

T = TypeVar("T")
logger = logging.getLogger("asyncpresign")
DEFAULT_TIMEOUT = Timeout()


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A snapshot of the engine's concurrency and of how each endpoint is treated.

    ``endpoints`` lists every endpoint talked to, with its adaptive rate
    limiter's state; ``rate_limit`` is the lowest limit in force (requests per
    second), or None when no endpoint is being throttled. ``max_rate`` is the
    engine's bandwidth limit (bytes per second), a setting, not a throttle."""

    concurrency: int
    in_flight: int
    max_in_flight: int
    endpoints: tuple[ThrottleState, ...] = ()
    #: The bandwidth limit (bytes per second, every transfer together), or None.
    max_rate: float | None = None

    @property
    def rate_limit(self) -> float | None:
        return lowest_rate_limit(self.endpoints)


class TransferEngine:
    """Moves files through presigned URLs, ``concurrency`` requests at a time.

    Every request goes through one aiohttp session and connection pool owned
    by the engine; use it as an async context manager. A download in flight
    holds at most two file buffers of ``max(chunk_size, 1 MiB)`` plus aiohttp's
    read buffer, so memory stays near ``concurrency * 2.5 MiB`` however large
    the objects. The default of 64 in flight hides the latency of small
    requests; lower it where memory is tight.

    ``part_size``: the parts of multipart uploads (8 MiB unless given) and the
    ranges of downloads larger than ``multipart_threshold`` (16 MiB unless
    given: fewer, longer ranges came down faster here).

    ``proxy``: None (default) reads ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
    (and their lower-case forms) as botocore does; a URL sends every request
    through that proxy; ``False`` uses none. ``~/.netrc`` is never read.
    ``ssl``: None (default) verifies against ``AWS_CA_BUNDLE`` when set, else
    the system's trust store; a path names a CA bundle; an ``ssl.SSLContext``
    is used as given; ``False`` turns verification off (with a warning).

    ``checksum``: the flexible checksum of uploads, "crc64nvme" (default),
    "crc32c" or "crc32": taken of every body as it is read, signed into the
    PUT when the engine signs (``sign=``), and compared with what the server
    says it stored. "md5" or None: none (downloads still check whatever
    checksum or MD5 ETag the server sends, unless ``verify=False``).

    ``max_rate``: the most bytes per second every transfer of the engine moves
    together (None, the default: no limit); it may be changed while transfers
    run. Uploads and downloads share it, and each byte of an object counts
    once, as progress counts it: a copy at 8 MiB/s reads 8 MiB/s from its
    source and writes 8 MiB/s to its destination. Bodies count, not headers.
    """

    def __init__(
        self,
        *,
        concurrency: int = 64,
        chunk_size: int = 65536,
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: bool = True,
        multipart_threshold: int | None = DEFAULT_PART_SIZE,
        part_size: int | None = None,
        proxy: ProxySetting = None,
        ssl: SSLSetting = None,
        checksum: str | None = "crc64nvme",
        max_rate: float | None = None,
    ) -> None:
        self.concurrency = check_positive_int("concurrency", concurrency)
        if multipart_threshold is not None:
            check_positive_int("multipart_threshold", multipart_threshold)
        self.multipart_threshold = multipart_threshold
        given = None if part_size is None else check_positive_int("part_size", part_size)
        self.part_size = choose_part_size(0, given or DEFAULT_PART_SIZE)
        self._range_size = DEFAULT_RANGE_SIZE if given is None else self.part_size
        self.chunk_size = check_chunk_size(chunk_size)
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            timeout = Timeout(read=float(timeout), connect=float(timeout))
        if not isinstance(timeout, Timeout):
            raise InvalidArgumentError("timeout must be seconds or a Timeout")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidArgumentError("retry must be a RetryPolicy")
        if not isinstance(verify, bool):
            # verify=None read as false: downloads went unchecked, yet came back ok.
            raise InvalidArgumentError(f"verify must be True or False, not {verify!r}")
        self.verify = verify
        transport = Transport(
            timeout=timeout,
            # Twice the concurrency: a copy holds a GET and a PUT connection at once.
            pool_size=2 * self.concurrency,
            user_agent=f"asyncpresign/{__version__}",
            proxy=proxy,
            ssl=ssl,
            max_rate=max_rate,
        )
        self.checksum = check_algorithm(checksum)
        self._rt = Runtime(transport, self.concurrency, self.checksum)

    def __repr__(self) -> str:
        limit = "" if self.max_rate is None else f", max_rate={rate_text(self.max_rate)}"
        return (
            f"TransferEngine(concurrency={self.concurrency}, chunk_size={self.chunk_size}"
            f"{limit})"
        )

    @property
    def max_rate(self) -> float | None:
        """The bandwidth limit: bytes per second of every transfer together, or None."""
        bucket = self._rt.transport.bucket
        return None if bucket is None else bucket.rate

    @max_rate.setter
    def max_rate(self, value: float | None) -> None:
        self._rt.transport.set_max_rate(value)

    async def __aenter__(self) -> TransferEngine:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        if self._rt.transport.is_open:
            return
        fitted = fit_concurrency(self.concurrency)
        if fitted < self.concurrency:
            self.concurrency = self._rt.concurrency = fitted
            self._rt.transport.pool_size = 2 * fitted
        await self._rt.transport.open()
        self._rt.open()

    async def aclose(self) -> None:
        await self._rt.transport.close()
        self._rt.files.close()

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            self.concurrency, self._rt.in_flight, self._rt.max_in_flight,
            self._rt.endpoints.states(), self.max_rate,
        )

    def rate_limit(self) -> float | None:
        """The lowest request rate an endpoint's throttling allows now (requests
        per second), or None when no endpoint is being throttled."""
        return self._rt.endpoints.rate_limit()

    def _policy(self, retry: RetryPolicy | None) -> RetryPolicy:
        """A call's retry policy: the engine's for None. Checked before anything is
        sent: a wrong one failed only when a retry was due, a bare AttributeError."""
        if retry is None:
            return self.retry
        if not isinstance(retry, RetryPolicy):
            raise InvalidArgumentError(f"retry must be a RetryPolicy, not {type(retry).__name__}")
        return retry

    def _verify(self, verify: bool | None) -> bool:
        """A call's ``verify``: the engine's for None; anything else must be a bool."""
        if verify is None:
            return self.verify
        if not isinstance(verify, bool):
            raise InvalidArgumentError(f"verify must be True, False or None, not {verify!r}")
        return verify

    def _chunk(self, chunk_size: int | None) -> int:
        return check_chunk_size(chunk_size) if chunk_size is not None else self.chunk_size

    # -- public transfers ------------------------------------------------------------------

    async def upload(
        self,
        request: RequestLike | None,
        source: Source,
        *,
        sign: SignFunction | None = None,
        size: int | None = None,
        content_md5: bool = False,
        chunk_size: int | None = None,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """PUT ``source`` (a path, bytes, or a binary file object) to ``request``.

        ``request`` must be a presigned PUT (a GET or other method is refused
        before anything is sent). The body is streamed with an explicit
        Content-Length. A non-seekable stream needs ``size`` and is not
        retried, since it cannot be replayed; for any other source a ``size``
        given must be its whole size (else nothing is sent), not a length to
        cut it at (a :class:`FilePart` sends part of a file). With ``sign``
        the engine signs just before sending and again when the URL expires.
        ``content_md5=True`` computes the body's MD5 and has it signed in (the
        server then rejects a corrupted body with BadDigest); the returned ETag
        is checked against it.
        """
        tracker = Tracker(progress)
        policy = self._policy(retry)

        def upload() -> Awaitable[TransferResult]:
            return upload_operation(
                self._rt,
                request,
                UploadSource.of(source, size),  # afresh: it learns the file's version
                sign=sign,
                content_md5=content_md5,
                chunk=self._chunk(chunk_size),
                policy=policy,
                tracker=tracker,
            )

        return await self._rt.bounded(self._rt.restarted_if_changed(upload, tracker))

    async def upload_large(
        self,
        signer: Signer,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        part_size: int | None = None,
        content_md5: bool = False,
        expires_in: float | dt.timedelta = 3600,
        chunk_size: int | None = None,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> TransferResult:
        """Upload a file as a multipart upload, its parts in parallel through presigned URLs.

        Each part is read from its offset in the file (never the whole file
        into memory), retried on its own, and re-signed when its URL expires;
        ``content_md5=True`` signs each part's MD5 in. The parts complete in
        order. On failure or cancellation the upload is aborted, so no orphaned
        parts stay behind (and billed). ``options`` go to create_multipart_upload
        (ContentType, Metadata, ServerSideEncryption …).
        """
        tracker = Tracker(progress)
        policy = self._policy(retry)

        def upload() -> Awaitable[TransferResult]:
            return upload_large_operation(
                self._rt, signer, bucket, key, path,
                part_size=part_size or self.part_size,
                content_md5=content_md5,
                expires_in=expires_in,
                chunk=self._chunk(chunk_size),
                policy=policy,
                tracker=tracker,
                **options,
            )

        return await self._rt.bounded(self._rt.restarted_if_changed(upload, tracker))

    async def upload_stream(
        self,
        signer: Signer,
        bucket: str,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        part_size: int | None = None,
        parts_in_flight: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        expires_in: float | dt.timedelta = 3600,
        chunk_size: int | None = None,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Upload a stream of unknown length (an async iterable of bytes) to
        ``bucket/key``: ``pg_dump`` output, a generated report, a socket.

        A stream that ends within its first part goes up as one PUT. A longer
        one goes as a multipart upload whose parts (``part_size``, doubling
        every 1,000 parts so that 10,000 of them reach 7.8 TiB) are held
        in memory and sent as they fill, each checksummed, signed, retried
        and re-signed on its own; memory stays within ``parts_in_flight``
        parts (default: the concurrency, at most 8: 64 MiB with 8 MiB parts).
        The stream is read only as fast as its parts are sent. On failure or
        cancellation the multipart upload is aborted, so nothing is left
        stored or billed and no partial object appears at ``key``.
        """
        self._rt.check_open()  # before a byte of the stream is read: it cannot be read again
        return await self._rt.bounded(upload_stream_operation(
            self._rt, signer, bucket, key, chunks,
            part_size=choose_part_size(0, part_size or self.part_size),
            parts_in_flight=self._parts_in_flight(parts_in_flight),
            content_type=content_type, metadata=metadata, expires_in=expires_in,
            chunk=self._chunk(chunk_size), policy=self._policy(retry),
            tracker=Tracker(progress),
        ))

    def download_stream(
        self,
        request: RequestLike | None,
        *,
        sign: SignFunction | None = None,
        verify: bool | None = None,
        parts_in_flight: int | None = None,
        chunk_size: int | None = None,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
    ) -> DownloadStream:
        """The body of a presigned GET as an async iterator of bytes, in order,
        for a consumer that cannot seek (stdout, a pipe, a hash, a parser)::

            async with engine.download_stream(None, sign=signer.sign_later("GET", b, k)) as s:
                async for data in s:
                    out.write(data)
            s.result.verified  # "crc64nvme", "md5" or None

        An object larger than ``part_size`` is fetched in parallel ranges,
        at most ``parts_in_flight`` of them held in memory (default: the
        concurrency, at most 8), handed out in order. The bytes are checked as
        they pass; a mismatch (or a short body) is raised by the iteration
        after the last bytes, so treat what was received as good only when the
        iteration ends without error. The engine's ``Timeout.total`` bounds the
        whole iteration, the consumer's time included. See :class:`DownloadStream`.
        """
        self._rt.check_open()
        return DownloadStream(
            self._rt, request, sign=sign, verify=self._verify(verify),
            part_size=self.part_size, parts_in_flight=self._parts_in_flight(parts_in_flight),
            chunk=self._chunk(chunk_size), policy=self._policy(retry),
            tracker=Tracker(progress),
        )

    def _parts_in_flight(self, value: int | None) -> int:
        if value is None:
            return min(self.concurrency, STREAM_PARTS_IN_FLIGHT)
        return check_positive_int("parts_in_flight", value)

    async def download(
        self,
        request: RequestLike | None,
        dest: Destination,
        *,
        sign: SignFunction | None = None,
        resume: bool = False,
        verify: bool | None = None,
        chunk_size: int | None = None,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """GET ``request`` into ``dest``. The file appears at ``dest`` only when
        complete and checked; a failure never leaves a partial file there.

        ``request`` must be a presigned GET. With ``resume=True`` an
        interrupted download (this attempt's, or an earlier run's) continues
        where it stopped, if the object is unchanged.

        Objects larger than ``multipart_threshold`` are fetched in parallel
        byte ranges of ``part_size`` (16 MiB unless given; the first request learns the size and
        ETag; every other range must match that ETag), written at their
        offsets into one file. A server that ignores Range is read as a single
        stream. Resumable downloads use a single stream.
        """
        chunk = self._chunk(chunk_size)
        dest_path = fspath(dest, "download destination")
        current = initial_request(request, sign, "GET")
        await self._rt.check_destination(dest_path)
        policy = self._policy(retry)
        partial = _files.PartialFile(dest_path, _files.partial_path(dest_path, unique=not resume))
        state = DownloadState(
            resume=resume,
            verify=self._verify(verify),
            ranged=not resume and self.multipart_threshold is not None,
            part_size=max(self._range_size, self.multipart_threshold or 0),
        )
        tracker = Tracker(progress)
        rt = self._rt

        async def attempt(req: PresignedRequest, attempt_tracker: Tracker) -> TransferResult:
            state.request = req
            return await get_once(
                rt, req, partial=partial, state=state, chunk=chunk, tracker=attempt_tracker
            )

        async def whole() -> TransferResult:
            nonlocal current
            try:
                for round_number in range(1, policy.attempts + 1):
                    result = await rt.with_retries(
                        current, sign, policy, attempt, method="GET", replayable=True,
                        keep_progress=resume, tracker=tracker,
                    )
                    if not state.ranges:
                        return result
                    try:
                        ranged = await fetch_ranges(
                            rt, result, partial=partial, state=state, sign=sign, policy=policy,
                            chunk=chunk, tracker=tracker,
                        )
                        # A round fetched again after a failed check counts as an attempt.
                        return replace(ranged, attempts=max(ranged.attempts, round_number))
                    except WholeFileMismatch as exc:
                        # Which range went wrong cannot be told: fetch the whole
                        # object again, as a retry of the download.
                        if round_number == policy.attempts:
                            exc.attempts = max(exc.attempts, round_number)
                            raise
                        await tracker.add(-tracker.transferred)
                        state.restart()
                        current = state.request
                raise AssertionError("unreachable: the last round returns or raises")
            except BaseException:
                with anyio.CancelScope(shield=True):
                    # Through the file thread: queued after this download's last
                    # write, so the clean-up cannot overtake it.
                    await rt.files.run(partial.close if resume else partial.discard)
                raise

        return await rt.bounded(whole())

    async def upload_post(
        self,
        post: PresignedPost,
        source: Source,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> TransferResult:
        """Send a browser-style multipart form: the policy's fields, then the file last.

        A POST is not idempotent: it is sent again only when it is known not to
        have taken effect (it failed before any byte left, or the server answered
        that it failed), never after a connection broke with its body out."""
        return await self._rt.bounded(upload_post_operation(
            self._rt, post, source, filename=filename, content_type=content_type,
            policy=self._policy(retry),
        ))

    async def copy(
        self,
        source: RequestLike | None,
        dest: RequestLike | None,
        *,
        source_sign: SignFunction | None = None,
        dest_sign: SignFunction | None = None,
        chunk_size: int | None = None,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
        keep_metadata: bool = True,
    ) -> TransferResult:
        """Stream a presigned GET straight into a presigned PUT, with no local file.

        Memory stays at a chunk plus aiohttp's read buffer whatever the object
        size. The source and destination may be different servers with
        different credentials (each signed by its own Signer). When both ETags
        are plain MD5s they must match, which checks the copy end to end.

        With ``dest_sign`` (:meth:`Signer.sign_later`), the copy keeps the
        source's Content-Type, Content-Encoding, Cache-Control,
        Content-Disposition, Content-Language, Expires and ``x-amz-meta-*``
        metadata: read from the GET's answer and signed into the PUT. A value
        that cannot be carried exactly fails the copy (:class:`MetadataError`)
        before the PUT. ``keep_metadata=False`` stores the copy without them. A
        fixed ``dest`` request with no ``dest_sign`` sends the headers it was
        signed with, and no others.
        """
        return await self._rt.bounded(copy_operation(
            self._rt, source, dest, source_sign=source_sign, dest_sign=dest_sign,
            chunk=self._chunk(chunk_size), policy=self._policy(retry),
            tracker=Tracker(progress), keep_metadata=keep_metadata,
        ))

    async def run(
        self,
        jobs: Iterable[Job] | AsyncIterable[Job],
        *,
        progress: ProgressCallback | None = None,
        on_result: Callable[[TransferResult], Awaitable[None] | None] | None = None,
        keep_results: bool = True,
    ) -> BatchResult:
        """Run upload and download jobs, at most ``concurrency`` at a time.

        Jobs are pulled from the iterable as slots free up, so a million jobs
        never means a million tasks. A failed job does not stop the others: its
        result carries the error. With ``keep_results=False`` only the counts
        and the failures are kept, so memory stays flat however many jobs run.
        """
        for name, callback in (("progress", progress), ("on_result", on_result)):
            # Else a bare TypeError once the first job had moved bytes or ended.
            if callback is not None and not callable(callback):
                raise InvalidArgumentError(
                    f"{name} must be a function, not {type(callback).__name__}"
                )
        if isinstance(jobs, (str, bytes)) or not isinstance(jobs, (Iterable, AsyncIterable)):
            # Else a bare TypeError from inside a worker (or, for a str, one
            # failed "job" per character).
            raise InvalidArgumentError(
                f"jobs must be an iterable of Upload, Download and Copy jobs, not "
                f"{type(jobs).__name__}"
            )
        started = time.perf_counter()
        iterator = _aiter(jobs)
        # asyncio's lock: anyio's yields to the loop on every uncontended acquire,
        # an extra loop turn per job that small objects pay for.
        pull_lock = asyncio.Lock()
        index_counter = iter(range(1 << 62))
        kept: list[TransferResult] = []
        failed: list[TransferResult] = []
        counts = {"total": 0, "succeeded": 0, "nbytes": 0}

        async def next_job() -> tuple[int, Job] | None:
            async with pull_lock:
                try:
                    job = await iterator.__anext__()
                except StopAsyncIteration:
                    return None
                return next(index_counter), job

        async def worker() -> None:
            while (item := await next_job()) is not None:
                index, job = item
                result = await self._run_job(index, job, progress)
                counts["total"] += 1
                counts["nbytes"] += result.nbytes
                if result.ok:
                    counts["succeeded"] += 1
                else:
                    failed.append(result)
                if keep_results:
                    kept.append(result)
                if on_result is not None:
                    await call(on_result, result)

        await run_workers(self.concurrency, worker)
        kept.sort(key=lambda r: r.index or 0)
        failed.sort(key=lambda r: r.index or 0)
        return BatchResult(
            results=tuple(kept),
            failed=tuple(failed),
            total=counts["total"],
            succeeded=counts["succeeded"],
            nbytes=counts["nbytes"],
            seconds=time.perf_counter() - started,
        )

    async def _run_job(
        self, index: int, job: Job, progress: ProgressCallback | None
    ) -> TransferResult:
        started = time.perf_counter()
        try:
            if isinstance(job, Upload):
                result = await self.upload(
                    job.request, job.source, sign=job.sign, size=job.size,
                    content_md5=job.content_md5, retry=job.retry, progress=progress,
                )
            elif isinstance(job, Download):
                result = await self.download(
                    job.request, job.dest, sign=job.sign, resume=job.resume,
                    verify=job.verify, retry=job.retry, progress=progress,
                )
            elif isinstance(job, Copy):
                result = await self.copy(
                    job.source, job.dest, source_sign=job.source_sign,
                    dest_sign=job.dest_sign, retry=job.retry, progress=progress,
                    keep_metadata=job.keep_metadata,
                )
            else:
                raise InvalidArgumentError(
                    f"a job must be an Upload, a Download or a Copy, not {type(job).__name__}"
                )
        except Exception as exc:  # noqa: BLE001 - a bad job fails alone; its error is kept
            _compact(exc)
            url = getattr(exc, "url", None)
            return TransferResult(
                # A job signed on demand is named by what it moves
                # (s3://bucket/key, as the bulk helpers name the failures they
                # find themselves), so a summary says which object failed; the
                # redacted URL stays in the error's message. Else the error's
                # own copy when it has one: one string, not two.
                url=_job_target(job)
                or (url if isinstance(url, str) and url else _job_url(job)),
                seconds=time.perf_counter() - started,
                status=getattr(exc, "status", None),
                attempts=getattr(exc, "attempts", 1),
                error=exc,
                index=index,
                op=_JOB_OPS.get(type(job)),
                path=_job_path(job),
            )
        return replace(result, index=index)


def _compact(error: BaseException) -> None:
    """Keep a failed job's error without what it drags along: its traceback's
    frames hold the job's buffers (a 1 MiB body each), and so does the hidden
    ``__context__`` that ``raise ... from None`` still keeps. Measured here:
    1,000 failed 1 MiB uploads to a dead port peaked at 1,078 MiB RSS with
    them, 134 MiB without. The message, type, status, code and attempts stay.
    With the ``asyncpresign`` logger at DEBUG (the CLI's ``--debug``) all is kept."""
    if logger.isEnabledFor(logging.DEBUG):
        return
    error.__traceback__ = None
    error.__context__ = None
    error.__cause__ = None
    error.__suppress_context__ = True


_JOB_OPS: dict[type, str] = {Upload: "upload", Download: "download", Copy: "copy"}


def _job_url(job: Any) -> str:
    """A failed job's URL, redacted; for a job signed on demand whose signing
    failed, ``s3://bucket/key`` of what it was to sign."""
    request = getattr(job, "request", None) or getattr(job, "dest", None)
    if isinstance(request, PresignedRequest):
        return redact_url(request.url)
    if isinstance(request, str) and "://" in request:
        return redact_url(request)
    return _job_target(job)


def _job_target(job: Any) -> str:
    """``s3://bucket/key`` of what a job signed on demand moves (a copy's
    destination), or "" for a job signed elsewhere."""
    sign = getattr(job, "sign", None) or getattr(job, "dest_sign", None)
    target = getattr(sign, "target", None)
    if isinstance(target, tuple):
        return f"s3://{target[0]}/{target[1]}"
    return ""


def _job_path(job: Any) -> str | None:
    """A job's local file, when it has one."""
    local = job.source if isinstance(job, Upload) else getattr(job, "dest", None)
    if isinstance(local, (str, os.PathLike)) and not isinstance(job, Copy):
        return os.fspath(local)
    return None


def _aiter(jobs: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(jobs, AsyncIterable):
        # Its own iterator, not one wrapped in a generator layer per job.
        return aiter(jobs)
    return _from_sync(jobs)


async def _from_sync(jobs: Iterable[T]) -> AsyncIterator[T]:
    for job in jobs:
        yield job
