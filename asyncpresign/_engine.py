"""The TransferEngine: many PUTs and GETs through presigned URLs, streamed, bounded, retried.

aiohttp's exceptions are translated into asyncpresign's here and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import inspect
import logging
import os
import sys
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import aiohttp
import anyio
import anyio.to_thread

if sys.version_info < (3, 11):  # pragma: no cover - the builtin from 3.11 on
    from exceptiongroup import BaseExceptionGroup
from multidict import CIMultiDictProxy
from yarl import URL

from . import _files, _http1
from ._exceptions import (
    AsyncPresignError,
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    LocalFileError,
    RequestExpiredError,
    TransferError,
    TransferTimeoutError,
    TransportError,
)
from ._models import (
    BatchResult,
    Copy,
    Destination,
    Download,
    FilePart,
    Job,
    PresignedPost,
    PresignedRequest,
    ProgressCallback,
    ProgressEvent,
    RequestLike,
    SignFunction,
    Source,
    TransferResult,
    Upload,
)
from ._offload import FileThread
from ._parts import DEFAULT_PART_SIZE, choose_part_size, plan_parts, plan_ranges
from ._redact import redact_url
from ._retry import NOT_REPLAYABLE, RetryPolicy, decide_retry
from ._s3errors import MAX_ERROR_BODY, status_error
from ._validation import check_chunk_size, check_http_url, check_positive_int
from ._version import __version__

if TYPE_CHECKING:
    from ._signer import Signer

__all__ = ["EngineStatistics", "Timeout", "TransferEngine"]

T = TypeVar("T")
logger = logging.getLogger("asyncpresign")

#: Uploads of at most this many bytes are read from disk in one piece and sent
#: as one buffer; larger ones are streamed.
SMALL_BODY = _files.IO_SIZE
#: Re-sign a request this long before it expires rather than send a URL that
#: may die in flight.
RESIGN_MARGIN = dt.timedelta(seconds=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """Seconds to wait. ``read`` bounds the gap between two pieces of data, not the
    whole transfer, so a large object on a slow link is not cut off while it moves."""

    connect: float | None = 30.0
    read: float | None = 60.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise InvalidArgumentError(f"timeout {name} must be a positive number or None")

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, sock_connect=self.connect, sock_read=self.read
        )


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A snapshot of the engine's concurrency."""

    concurrency: int
    in_flight: int
    max_in_flight: int


class _Progress:
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
        parent: _Progress | None = None,
    ) -> None:
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
            await _call(
                self.callback, ProgressEvent(self.url, delta, self.transferred, self.total)
            )

    async def rollback(self) -> None:
        lost = self.attempt_bytes
        if lost:
            await self.add(-lost)
        self.attempt_bytes = 0

    def keep(self) -> None:
        """The attempt's bytes stay (a resumed download keeps what it wrote)."""
        self.attempt_bytes = 0


async def _call(callback: Callable[[Any], Any], arg: Any) -> None:
    result = callback(arg)
    if inspect.isawaitable(result):
        await result


class TransferEngine:
    """Moves files through presigned URLs, ``concurrency`` requests at a time.

    Owns its connections (a lean HTTP/1.1 pool, and an aiohttp session for
    streamed uploads, forms and copies); use it as an async context manager.
    A download in flight holds at most two file buffers of ``max(chunk_size,
    1 MiB)`` and 512 KiB unread from the socket, so memory stays below
    ``concurrency * (2 * max(chunk_size, 1 MiB) + 512 KiB)`` however large the
    objects. The default of 64 in flight hides the latency of small requests
    (against SeaweedFS, 1 KiB objects: 1.4x uploads, 1.5x downloads of 16); lower it
    where memory is tight.
    """

    def __init__(
        self,
        *,
        concurrency: int = 64,
        chunk_size: int = 65536,
        timeout: float | Timeout = Timeout(),
        retry: RetryPolicy | None = None,
        verify: bool = True,
        multipart_threshold: int | None = DEFAULT_PART_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        self.concurrency = check_positive_int("concurrency", concurrency)
        if multipart_threshold is not None:
            check_positive_int("multipart_threshold", multipart_threshold)
        self.multipart_threshold = multipart_threshold
        self.part_size = choose_part_size(0, check_positive_int("part_size", part_size))
        self.chunk_size = check_chunk_size(chunk_size)
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            timeout = Timeout(read=float(timeout), connect=float(timeout))
        if not isinstance(timeout, Timeout):
            raise InvalidArgumentError("timeout must be seconds or a Timeout")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidArgumentError("retry must be a RetryPolicy")
        self.verify = verify
        self._session: aiohttp.ClientSession | None = None
        # GETs and PUTs of a buffer take the lean HTTP/1.1 client; streamed
        # uploads, POST forms and copies take aiohttp.
        self._lean: _http1.HTTP1Pool | None = None
        self._limiter: asyncio.Semaphore | None = None
        self._in_flight = 0
        self._max_in_flight = 0
        self._checked_folders: dict[str, None] = {}
        self._resigning: dict[int, asyncio.Future[PresignedRequest]] = {}
        # Whole small files (an upload's read, a download's last write and
        # rename) go through one batching thread; streams use anyio's pool.
        self._files = FileThread()

    def __repr__(self) -> str:
        return f"TransferEngine(concurrency={self.concurrency}, chunk_size={self.chunk_size})"

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
        if self._session is not None:
            return
        # The pool grows with the concurrency: aiohttp's default of 100 would
        # silently cap a larger setting, and a smaller pool starves it.
        connector = aiohttp.TCPConnector(
            # Twice the concurrency: a copy holds a GET and a PUT connection at
            # once, and a pool only as large as the copies would deadlock them.
            limit=2 * self.concurrency, limit_per_host=0, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout.to_aiohttp(),
            # Bytes must land as stored: an object saved with Content-Encoding
            # gzip is downloaded as its gzip bytes, and its MD5 still matches.
            auto_decompress=False,
            # No Content-Type unless signed: aiohttp would add octet-stream. No
            # Accept-Encoding either: a proxy that compressed on the fly would
            # hand us bytes the ETag does not describe.
            skip_auto_headers=("Content-Type", "Accept-Encoding"),
            # A presigned URL carries its whole authority; cookies only cost a
            # jar lookup per request and an update per response.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._lean = _http1.HTTP1Pool(
            connect_timeout=self.timeout.connect,
            read_timeout=self.timeout.read,
            total_timeout=self.timeout.total,
            max_idle=2 * self.concurrency,
            user_agent=f"asyncpresign/{__version__}",
        )
        # asyncio's own primitives: anyio's yield to the loop on every acquire,
        # an extra loop turn per transfer that small objects pay for.
        self._limiter = asyncio.Semaphore(self.concurrency)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        lean, self._lean = self._lean, None
        if lean is not None:
            lean.close()
        self._files.close()

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(self.concurrency, self._in_flight, self._max_in_flight)

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise AsyncPresignError(
                "the TransferEngine is not open: use 'async with TransferEngine()'"
            )
        return self._session

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

        The body is streamed with an explicit Content-Length. A non-seekable
        stream needs ``size`` and is not retried, since it cannot be replayed.
        With ``sign`` the engine signs just before sending and again when the
        URL expires. ``content_md5=True`` computes the body's MD5 and has it
        signed in (the server then rejects a corrupted body with BadDigest);
        the returned ETag is checked against it.
        """
        return await self._upload_source(
            request,
            _UploadSource.of(source, size),
            sign=sign,
            content_md5=content_md5,
            chunk=check_chunk_size(chunk_size) if chunk_size is not None else self.chunk_size,
            policy=retry or self.retry,
            progress=progress,
        )

    async def _upload_source(
        self,
        request: RequestLike | None,
        body: _UploadSource,
        *,
        sign: SignFunction | None,
        content_md5: bool,
        chunk: int,
        policy: RetryPolicy,
        progress: ProgressCallback | None,
        tracker: _Progress | None = None,
    ) -> TransferResult:
        current = _initial(request, sign, "PUT")
        if content_md5:
            if sign is None:
                if current is None or _header(current.headers, "Content-MD5") is None:
                    raise InvalidArgumentError(
                        "content_md5=True needs sign= (the MD5 must be signed into the URL), "
                        "or a request signed with content_md5"
                    )
            else:
                digest = await body.md5_base64()
                sign = functools.partial(sign, content_md5=digest)
                if current is not None and _header(current.headers, "Content-MD5") != digest:
                    current = None  # signed without this MD5: sign afresh

        async def attempt(req: PresignedRequest, tracker: _Progress) -> TransferResult:
            return await self._put_once(req, body, chunk, tracker)

        return await self._with_retries(
            current, sign, policy, attempt, progress, replayable=body.replayable,
            total=body.known_size, tracker=tracker,
        )

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
        source = _fspath(path, "upload source")
        chunk = check_chunk_size(chunk_size) if chunk_size is not None else self.chunk_size
        policy = retry or self.retry
        size = await anyio.to_thread.run_sync(_files.file_size, source)
        parts = plan_parts(size, part_size or self.part_size)
        tracker = _Progress(progress, f"s3://{bucket}/{key}", size)
        started = time.perf_counter()
        upload_id = await signer.create_multipart_upload(bucket, key, **options)
        etags: dict[int, str] = {}
        most_attempts = 1
        try:
            pending = iter(parts)

            async def worker() -> None:
                nonlocal most_attempts
                for part in pending:
                    sign = functools.partial(
                        signer.presign_upload_part, bucket, key, upload_id, part.number,
                        expires_in=expires_in,
                    )
                    result = await self._upload_source(
                        None,
                        _UploadSource.of(FilePart(source, part.offset, part.length), None),
                        sign=sign,
                        content_md5=content_md5,
                        chunk=chunk,
                        policy=policy,
                        progress=None,
                        tracker=_Progress(None, tracker.url, part.length, parent=tracker),
                    )
                    if not result.etag:
                        raise IntegrityError(
                            f"part {part.number} was stored without an ETag", url=result.url
                        )
                    etags[part.number] = result.etag
                    most_attempts = max(most_attempts, result.attempts)

            await _run_workers(min(self.concurrency, len(parts)), worker)
            etag = await signer.complete_multipart_upload(
                bucket, key, upload_id, sorted(etags.items())
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await signer.abort_multipart_upload(bucket, key, upload_id)
                except AsyncPresignError as exc:
                    logger.warning(
                        "could not abort multipart upload of s3://%s/%s: %s", bucket, key, exc
                    )
            raise
        return TransferResult(
            url=tracker.url,
            nbytes=size,
            seconds=time.perf_counter() - started,
            status=200,
            etag=etag,
            attempts=most_attempts,
        )

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

        With ``resume=True`` an interrupted download (this attempt's, or an
        earlier run's) continues where it stopped, if the object is unchanged.

        Objects larger than ``multipart_threshold`` are fetched in parallel
        byte ranges of ``part_size`` (the first request learns the size and
        ETag; every other range must match that ETag), written at their
        offsets into one preallocated file. A server that ignores Range is
        read as a single stream. Resumable downloads use a single stream.
        """
        chunk = check_chunk_size(chunk_size) if chunk_size is not None else self.chunk_size
        dest_path = _fspath(dest, "download destination")
        await self._check_destination(dest_path)
        policy = retry or self.retry
        current = _initial(request, sign, "GET")
        partial = _files.PartialFile(dest_path, _files.partial_path(dest_path, unique=not resume))
        state = _DownloadState(
            resume=resume,
            verify=self.verify if verify is None else verify,
            ranged=not resume and self.multipart_threshold is not None,
            part_size=max(self.part_size, self.multipart_threshold or 0),
        )
        tracker = _Progress(progress)

        async def attempt(req: PresignedRequest, attempt_tracker: _Progress) -> TransferResult:
            state.request = req
            return await self._get_once(req, partial, state, chunk, attempt_tracker)

        try:
            result = await self._with_retries(
                current, sign, policy, attempt, progress, replayable=True, total=None,
                keep_progress=resume, tracker=tracker,
            )
            if state.ranges:
                result = await self._fetch_ranges(
                    result, partial=partial, state=state, sign=sign, policy=policy,
                    chunk=chunk, tracker=tracker,
                )
            return result
        except BaseException:
            with anyio.CancelScope(shield=True):
                # Through the file thread: queued after this download's last
                # write, so the clean-up cannot overtake it.
                await self._files.run(partial.close if resume else partial.discard)
            raise

    async def upload_post(
        self,
        post: PresignedPost,
        source: Source,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> TransferResult:
        """Send a browser-style multipart form: the policy's fields, then the file last."""
        if not isinstance(post, PresignedPost):
            raise InvalidArgumentError("upload_post needs a PresignedPost from Signer.presign_post")
        check_http_url(post.url)
        body = _UploadSource.of(source, None)
        if filename is None and body.path is not None:
            filename = os.path.basename(body.path)
        policy = retry or self.retry
        fields = dict(post.fields)
        if content_type is None:
            content_type = fields.get("Content-Type") or fields.get("content-type")

        async def attempt(_: PresignedRequest, tracker: _Progress) -> TransferResult:
            data = await body.read_all()
            form = aiohttp.FormData(quote_fields=False)
            for name, value in fields.items():
                form.add_field(name, value)
            # S3 ignores every field after the file, so the file goes last.
            form.add_field(
                "file",
                data,
                filename=filename or "upload",
                content_type=content_type or "application/octet-stream",
            )
            payload = form()
            # The session skips automatic Content-Types, so name the form's own
            # (with its boundary) or the server cannot parse it.
            headers = {"Content-Type": payload.content_type}
            result = await self._send(
                "POST", post.url, headers, payload, tracker, expect_redirect=True
            )
            await tracker.add(len(data))
            return replace(result, nbytes=len(data))

        placeholder = PresignedRequest(method="PUT", url=post.url, expires_at=post.expires_at)
        return await self._with_retries(
            placeholder, None, policy, attempt, None, replayable=body.replayable, total=None
        )

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
    ) -> TransferResult:
        """Stream a presigned GET straight into a presigned PUT, with no local file.

        Memory stays at a chunk plus aiohttp's read buffer whatever the object
        size. The source and destination may be different servers with
        different credentials (each signed by its own Signer). When both ETags
        are plain MD5s they must match, which checks the copy end to end.
        """
        chunk = check_chunk_size(chunk_size) if chunk_size is not None else self.chunk_size
        policy = retry or self.retry
        get = _initial(source, source_sign, "GET")
        put = _initial(dest, dest_sign, "PUT")

        async def attempt(put_request: PresignedRequest, tracker: _Progress) -> TransferResult:
            nonlocal get
            if source_sign is not None and (get is None or _expiring(get)):
                get = await self._resign(source_sign)
            assert get is not None
            try:
                return await self._copy_once(get, put_request, chunk, tracker)
            except RequestExpiredError as exc:
                # The GET expired before a byte moved (the PUT's own expiry is
                # handled by the retry loop): sign it afresh and go again.
                if source_sign is None or exc.url != redact_url(get.url):
                    raise
                get = await self._resign(source_sign)
                return await self._copy_once(get, put_request, chunk, tracker)

        return await self._with_retries(
            put, dest_sign, policy, attempt, progress, replayable=True, total=None
        )

    async def _copy_once(
        self, get: PresignedRequest, put: PresignedRequest, chunk: int, tracker: _Progress
    ) -> TransferResult:
        source_shown = redact_url(check_http_url(get.url))
        check_http_url(put.url)
        with _translate(source_shown):
            async with self._http.get(
                URL(get.url, encoded=True), headers=dict(get.headers), allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise await _status_error(resp, source_shown)
                length = resp.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    raise IntegrityError(
                        "the source answered without a Content-Length; a presigned PUT needs one",
                        url=source_shown,
                    )
                size = int(length)
                tracker.total = size
                source_etag = resp.headers.get("ETag")
                check_md5 = _is_plain_md5(source_etag, resp.headers)

                async def body() -> AsyncIterator[bytes]:
                    sent = 0
                    while data := await resp.content.read(chunk):
                        sent += len(data)
                        yield data
                        await tracker.add(len(data))
                    if sent != size:
                        raise IntegrityError(
                            f"source body ended after {sent} of {size} bytes", url=source_shown
                        )

                headers = dict(put.headers)
                headers["Content-Length"] = str(size)
                result = await self._send(put.method, put.url, headers, body(), tracker)
        if check_md5 and source_etag is not None:
            _check_stored_md5(result, source_etag.strip('"').lower(), "the source's ETag")
        return replace(result, nbytes=size)

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
        started = time.perf_counter()
        iterator = _aiter(jobs)
        pull_lock = anyio.Lock()
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
                    await _call(on_result, result)

        await _run_workers(self.concurrency, worker)
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
                )
            else:
                raise InvalidArgumentError(
                    f"a job must be an Upload, a Download or a Copy, not {type(job).__name__}"
                )
        except Exception as exc:  # noqa: BLE001 - a bad job fails alone; its error is kept
            return TransferResult(
                url=_job_url(job),
                seconds=time.perf_counter() - started,
                status=getattr(exc, "status", None),
                attempts=getattr(exc, "attempts", 1),
                error=exc,
                index=index,
            )
        return replace(result, index=index)

    # -- the retry loop --------------------------------------------------------------------

    async def _with_retries(
        self,
        request: PresignedRequest | None,
        sign: SignFunction | None,
        policy: RetryPolicy,
        attempt_once: Callable[[PresignedRequest, _Progress], Awaitable[TransferResult]],
        progress: ProgressCallback | None,
        *,
        replayable: bool,
        total: int | None,
        keep_progress: bool = False,
        tracker: _Progress | None = None,
    ) -> TransferResult:
        _ = self._http  # raises a clear error if the engine is not open
        started = time.perf_counter()
        if tracker is None:
            tracker = _Progress(progress, "", total)
        attempt = 0
        while True:
            attempt += 1
            if sign is not None and (request is None or _expiring(request)):
                request = await self._resign(sign)
            assert request is not None
            tracker.url = redact_url(request.url)
            try:
                result = await self._limited(attempt_once(request, tracker))
            except TransferError as exc:
                if keep_progress:
                    tracker.keep()
                else:
                    await tracker.rollback()
                decision = decide_retry(
                    policy, exc, attempt, replayable=replayable, can_resign=sign is not None
                )
                if not decision.retry:
                    exc.attempts = attempt
                    if decision.reason == NOT_REPLAYABLE:
                        exc.message += f" (not retried: {NOT_REPLAYABLE})"
                    raise
                logger.info(
                    "retrying %s %s (attempt %d of %d) in %.2f s: %s",
                    request.method, tracker.url, attempt + 1, policy.attempts,
                    decision.delay, exc.message,
                )
                if decision.resign:
                    assert sign is not None
                    request = await self._resign(sign)
                if decision.delay:
                    await anyio.sleep(decision.delay)
                continue
            return replace(result, seconds=time.perf_counter() - started, attempts=attempt)

    async def _limited(self, work: Awaitable[T]) -> T:
        assert self._limiter is not None
        async with self._limiter:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            try:
                return await work
            finally:
                self._in_flight -= 1

    async def _resign(self, sign: SignFunction) -> PresignedRequest:
        """Ask for a fresh request; concurrent transfers sharing ``sign`` share one call."""
        key = id(sign)
        pending = self._resigning.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[PresignedRequest] = asyncio.get_running_loop().create_future()
        self._resigning[key] = future
        try:
            fresh = await sign()
            if not isinstance(fresh, PresignedRequest):
                raise InvalidArgumentError("a signing function must return a PresignedRequest")
            future.set_result(fresh)
            return fresh
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._resigning[key]

    # -- one attempt -----------------------------------------------------------------------

    async def _put_once(
        self, request: PresignedRequest, body: _UploadSource, chunk: int, tracker: _Progress
    ) -> TransferResult:
        payload, size = await body.open(chunk, tracker, self._files)
        headers = dict(request.headers)
        headers["Content-Length"] = str(size)
        try:
            result = await self._send(request.method, request.url, headers, payload, tracker)
        finally:
            await body.close()
        if isinstance(payload, (bytes, bytearray, memoryview)):
            await tracker.add(size)
        sent_md5 = _header(request.headers, "Content-MD5")
        if sent_md5 is not None:
            _check_stored_md5(result, base64.b64decode(sent_md5).hex(), "the body's MD5")
        return replace(result, nbytes=size)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: Any,
        tracker: _Progress,
        *,
        expect_redirect: bool = False,
    ) -> TransferResult:
        check_http_url(url)
        shown = redact_url(url)
        with _translate(shown):
            async with self._exchange(method, url, headers, data) as resp:
                if not (200 <= resp.status < 300 or (expect_redirect and resp.status == 303)):
                    raise await _status_error(resp, shown)
                await resp.read()
                return TransferResult(url=shown, status=resp.status, etag=resp.headers.get("ETag"))

    def _exchange(
        self, method: str, url: str, headers: dict[str, str], data: Any = None
    ) -> contextlib.AbstractAsyncContextManager[_Response]:
        """One request, by the lean client when it can carry it, else by aiohttp."""
        if self._lean is not None and (data is None or isinstance(data, _http1.BODY_TYPES)):
            return self._lean.open(method, url, headers, data)
        return self._http.request(
            method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
        )

    async def _get_once(
        self,
        request: PresignedRequest,
        partial: _files.PartialFile,
        state: _DownloadState,
        chunk: int,
        tracker: _Progress,
    ) -> TransferResult:
        shown = redact_url(check_http_url(request.url))
        headers = dict(request.headers)
        offset = 0
        if state.ranged:
            headers["Range"] = f"bytes=0-{state.part_size - 1}"
        if state.resume:
            offset, etag = await anyio.to_thread.run_sync(_files.read_sidecar, partial.path)
            if offset and etag:
                headers["Range"] = f"bytes={offset}-"
                headers["If-Match"] = etag
            else:
                offset = 0
        try:
            with _translate(shown):
                async with self._exchange("GET", request.url, headers) as resp:
                    if state.ranged and resp.status == 416:
                        # S3 answers a range of an empty object with 416: ask plainly.
                        state.ranged = False
                        raise _AskAgain
                    if resp.status in {412, 416}:
                        # The object changed (or the partial file is not a prefix of
                        # it): start over from zero on the next attempt, at once.
                        await anyio.to_thread.run_sync(partial.discard)
                        raise IntegrityError(
                            "object changed since the partial download began "
                            f"(HTTP {resp.status}); restarting from zero",
                            url=shown,
                        )
                    if not 200 <= resp.status < 300:
                        raise await _status_error(resp, shown)
                    is_range = _is_range(resp)
                    if (
                        state.ranged
                        and not is_range
                        and resp.headers.get("Content-Length") == str(state.part_size)
                    ):
                        # A 200 to a range request should be the whole object, but
                        # a server may send just the range with a 200 and no
                        # Content-Range. A body exactly the range's length cannot
                        # tell which: ask plainly.
                        state.ranged = False
                        raise _AskAgain
                    etag = resp.headers.get("ETag")
                    total = _expected_total(resp, offset, shown, is_range=is_range)
                    tracker.total = total
                    if state.ranged and is_range and total and total > state.part_size:
                        return await self._receive_first_range(
                            resp, partial=partial, state=state, chunk=chunk, tracker=tracker,
                            shown=shown, etag=etag, total=total,
                        )
                    appending = is_range and offset > 0
                    partial.prepare(
                        appending=appending,
                        etag=etag,
                        verify=state.verify and _is_plain_md5(etag, resp.headers),
                        resumable=state.resume,
                    )
                    return await self._receive(
                        resp, partial=partial, chunk=chunk, tracker=tracker, shown=shown,
                        etag=etag, total=total, offset=offset if appending else 0,
                    )
        except _AskAgain:
            return await self._get_once(request, partial, state, chunk, tracker)

    async def _receive_first_range(
        self,
        resp: _Response,
        *,
        partial: _files.PartialFile,
        state: _DownloadState,
        chunk: int,
        tracker: _Progress,
        shown: str,
        etag: str | None,
        total: int,
    ) -> TransferResult:
        """The first range of a large object: preallocate the file, write the range,
        and leave the other ranges to :meth:`_fetch_ranges`."""
        if etag is None:
            raise IntegrityError(
                "a ranged download needs the object's ETag to check the ranges agree",
                url=shown,
            )
        state.total, state.etag = total, etag
        state.verify_md5 = state.verify and _is_plain_md5(etag, resp.headers)
        partial.prepare(appending=False, etag=etag, verify=False, resumable=False)
        await anyio.to_thread.run_sync(partial.allocate, total)
        received = await self._receive_at(resp, partial, 0, chunk, tracker)
        if received != state.part_size:
            raise IntegrityError(
                f"first range ended after {received} of {state.part_size} bytes", url=shown
            )
        state.ranges = plan_ranges(total, state.part_size, start=state.part_size)
        return TransferResult(url=shown, nbytes=received, status=resp.status, etag=etag)

    async def _receive_at(
        self,
        resp: _Response,
        partial: _files.PartialFile,
        offset: int,
        chunk: int,
        tracker: _Progress,
    ) -> int:
        """Write a body at ``offset`` in ``IO_SIZE`` pieces; return how many bytes came."""

        def write(at: int, pieces: list[bytes]) -> None:
            partial.write_at(offset + at, pieces)

        received, _ = await _pump(resp, chunk, tracker, write, flush_tail=True)
        return received

    async def _fetch_ranges(
        self,
        first: TransferResult,
        *,
        partial: _files.PartialFile,
        state: _DownloadState,
        sign: SignFunction | None,
        policy: RetryPolicy,
        chunk: int,
        tracker: _Progress,
    ) -> TransferResult:
        """Fetch the rest of a large object in parallel ranges, then check and commit it."""
        started = time.perf_counter()
        ranges = iter(state.ranges)
        most_attempts = first.attempts

        async def fetch(first_byte: int, last_byte: int) -> None:
            nonlocal most_attempts

            async def attempt(req: PresignedRequest, child: _Progress) -> TransferResult:
                return await self._get_range_once(
                    req, partial=partial, state=state, first_byte=first_byte,
                    last_byte=last_byte, chunk=chunk, tracker=child,
                )

            result = await self._with_retries(
                state.request, sign, policy, attempt, None, replayable=True, total=None,
                tracker=_Progress(None, first.url, parent=tracker),
            )
            most_attempts = max(most_attempts, result.attempts)

        async def worker() -> None:
            for first_byte, last_byte in ranges:
                await fetch(first_byte, last_byte)

        await _run_workers(min(self.concurrency, len(state.ranges)), worker)
        expected = state.etag.strip('"').lower() if state.verify_md5 and state.etag else None
        mismatch = await anyio.to_thread.run_sync(partial.finish_ranged, state.total, expected)
        if mismatch is not None:
            raise IntegrityError(
                f"MD5 of the downloaded bytes {mismatch} does not match the ETag {expected}",
                url=first.url,
                attempts=most_attempts,
            )
        return replace(
            first,
            nbytes=state.total,
            seconds=first.seconds + time.perf_counter() - started,
            attempts=most_attempts,
        )

    async def _get_range_once(
        self,
        request: PresignedRequest,
        *,
        partial: _files.PartialFile,
        state: _DownloadState,
        first_byte: int,
        last_byte: int,
        chunk: int,
        tracker: _Progress,
    ) -> TransferResult:
        shown = redact_url(check_http_url(request.url))
        headers = dict(request.headers)
        headers["Range"] = f"bytes={first_byte}-{last_byte}"
        assert state.etag is not None
        headers["If-Match"] = state.etag
        with _translate(shown):
            async with self._exchange("GET", request.url, headers) as resp:
                if resp.status == 412:
                    raise HTTPStatusError(
                        "the object changed while it was being downloaded (its ETag no "
                        "longer matches); download it again",
                        status=412, code="PreconditionFailed", url=shown,
                    )
                if not 200 <= resp.status < 300:
                    raise await _status_error(resp, shown)
                parsed = _parse_content_range(resp.headers.get("Content-Range", ""))
                if not _is_range(resp) or parsed != (first_byte, last_byte, state.total):
                    raise IntegrityError(
                        f"asked for bytes {first_byte}-{last_byte}/{state.total}, got HTTP "
                        f"{resp.status} Content-Range {resp.headers.get('Content-Range')!r}",
                        url=shown,
                    )
                received = await self._receive_at(resp, partial, first_byte, chunk, tracker)
        if received != last_byte - first_byte + 1:
            raise IntegrityError(
                f"range {first_byte}-{last_byte} ended after {received} bytes", url=shown
            )
        return TransferResult(url=shown, nbytes=received, status=206, etag=state.etag)

    async def _receive(
        self,
        resp: _Response,
        *,
        partial: _files.PartialFile,
        chunk: int,
        tracker: _Progress,
        shown: str,
        etag: str | None,
        total: int | None,
        offset: int,
    ) -> TransferResult:
        """Stream the body to disk: ``chunk``-sized reads, ``IO_SIZE`` writes in a thread."""

        def write(_: int, pieces: list[bytes]) -> None:
            partial.write(pieces)

        # What arrived before a failure is a valid prefix of the object: a
        # resumable download keeps it, so the resume asks only for the rest.
        received, pending = await _pump(
            resp, chunk, tracker, write, flush_tail=False, keep_on_failure=partial.resumable
        )
        if total is not None and offset + received != total:
            raise IntegrityError(
                f"body ended after {offset + received} of {total} bytes", url=shown
            )
        expected = etag.strip('"').lower() if partial.verify and etag else None
        mismatch = await self._files.run(partial.finish, pending, expected)
        if mismatch is not None:
            raise IntegrityError(
                f"MD5 of the downloaded bytes {mismatch} does not match the ETag {expected}",
                url=shown,
            )
        return TransferResult(url=shown, nbytes=offset + received, status=resp.status, etag=etag)

    async def _check_destination(self, dest: str) -> None:
        """Fail before the request if ``dest`` cannot be written. Checked once per
        folder: a thread hop per small file costs more than the file itself, and a
        folder that vanishes later still fails clearly when the file is moved in."""
        folder = os.path.dirname(dest)
        if folder in self._checked_folders:
            return
        await anyio.to_thread.run_sync(_files.check_destination, dest)
        if len(self._checked_folders) > 4096:
            self._checked_folders.clear()
        self._checked_folders[folder] = None


class _Body(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class _Response(Protocol):
    """What the engine reads of a response: aiohttp's, or the lean client's."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def headers(self) -> CIMultiDictProxy[str]: ...
    @property
    def content(self) -> _Body: ...
    async def read(self) -> bytes: ...


class _AskAgain(Exception):
    """Internal: the attempt learnt it must send its request differently, at once."""


@dataclass
class _DownloadState:
    resume: bool
    verify: bool
    ranged: bool = False
    part_size: int = DEFAULT_PART_SIZE
    # Learnt by the first request of a ranged download:
    request: PresignedRequest | None = None
    total: int = 0
    etag: str | None = None
    verify_md5: bool = False
    ranges: list[tuple[int, int]] = field(default_factory=list)


class _UploadSource:
    """An upload body that can be opened once per attempt (replayed on retry)."""

    def __init__(
        self,
        *,
        path: str | None = None,
        data: bytes | None = None,
        stream: IO[bytes] | None = None,
        size: int | None = None,
        replayable: bool = True,
        offset: int = 0,
    ) -> None:
        self.path = path
        self.offset = offset
        self.data = data
        self.stream = stream
        self.known_size = size
        self.replayable = replayable
        self._start = 0
        self._open_file: IO[bytes] | None = None
        self._md5: str | None = None

    @classmethod
    def of(cls, source: Source, size: int | None) -> _UploadSource:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            return cls(data=data, size=len(data))
        if isinstance(source, (str, os.PathLike)):
            return cls(path=_fspath(source, "upload source"), size=size)
        if isinstance(source, FilePart):
            return cls(path=os.fspath(source.path), size=source.length, offset=source.offset)
        if hasattr(source, "read"):
            known = _files.stream_size(source)
            if known is None:
                if size is None:
                    raise InvalidArgumentError(
                        "cannot tell the size of a non-seekable stream: pass size=, since a "
                        "presigned PUT needs a Content-Length"
                    )
                return cls(stream=source, size=size, replayable=False)
            if size is not None and size != known:
                raise InvalidArgumentError(f"size={size} but the stream holds {known} bytes")
            source_obj = cls(stream=source, size=known)
            source_obj._start = source.tell()
            return source_obj
        raise InvalidArgumentError(
            f"an upload source must be a path, bytes or a binary file, not {type(source).__name__}"
        )

    async def md5_base64(self) -> str:
        """The body's MD5, base64 as Content-MD5 wants it (hashed in a thread)."""
        if self._md5 is None:
            if self.data is not None:
                self._md5 = await anyio.to_thread.run_sync(_files.md5_base64_of_bytes, self.data)
            elif self.path is not None:
                self._md5 = await anyio.to_thread.run_sync(
                    _files.md5_base64_of_file, self.path, self.offset, self.known_size
                )
            else:
                assert self.stream is not None
                if not self.replayable:
                    raise InvalidArgumentError(
                        "content_md5=True needs a source that can be read twice "
                        "(a path, bytes, or a seekable file)"
                    )
                self._md5 = await anyio.to_thread.run_sync(
                    _files.md5_base64_of_stream, self.stream, self._start
                )
        return self._md5

    async def read_all(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            _, data, f = await anyio.to_thread.run_sync(
                _files.open_source, self.path, 1 << 62
            )
            assert data is not None
            assert f is None
            return data
        assert self.stream is not None
        if self.replayable:
            await anyio.to_thread.run_sync(self.stream.seek, self._start)
        return await anyio.to_thread.run_sync(self.stream.read)

    async def open(self, chunk: int, tracker: _Progress, files: FileThread) -> tuple[Any, int]:
        """The body for one attempt, and its size (a small file read whole through
        ``files``, a large one opened there and then streamed)."""
        if self.data is not None:
            if len(self.data) <= SMALL_BODY:
                return self.data, len(self.data)
            # aiohttp warns that one large bytes body blocks the loop while it
            # is written; hand it over in chunks instead.
            return self._memory_stream(self.data, chunk, tracker), len(self.data)
        if self.path is not None:
            size, data, f = await files.run(
                _files.open_source, self.path, SMALL_BODY, self.offset, self.known_size
            )
            if data is not None:
                return data, size
            assert f is not None
            self._open_file = f
            return self._stream(f, size, chunk, tracker, self.path), size
        assert self.stream is not None
        assert self.known_size is not None
        if self.replayable:
            await anyio.to_thread.run_sync(self.stream.seek, self._start)
        return self._stream(self.stream, self.known_size, chunk, tracker, None), self.known_size

    async def close(self) -> None:
        f, self._open_file = self._open_file, None
        if f is not None:
            with anyio.CancelScope(shield=True):  # close it even when cancelled
                await anyio.to_thread.run_sync(f.close)

    @staticmethod
    async def _memory_stream(data: bytes, chunk: int, tracker: _Progress) -> AsyncIterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(data), chunk):
            piece = view[start : start + chunk]
            yield piece.tobytes()
            await tracker.add(len(piece))

    @staticmethod
    async def _stream(
        f: IO[bytes], size: int, chunk: int, tracker: _Progress, path: str | None
    ) -> AsyncIterator[bytes]:
        remaining = size
        block_size = max(chunk, _files.IO_SIZE)
        while remaining > 0:
            try:
                block = await anyio.to_thread.run_sync(
                    _files.read_block, f, min(block_size, remaining)
                )
            except OSError as exc:
                raise LocalFileError(
                    f"cannot read upload source: {_files.describe_os_error(exc)}", path
                ) from None
            if not block:
                raise LocalFileError(
                    f"upload source ended {remaining} bytes early (it shrank while uploading)",
                    path,
                )
            remaining -= len(block)
            view = memoryview(block)
            for start in range(0, len(block), chunk):
                piece = view[start : start + chunk]
                yield piece.tobytes() if chunk < len(block) else block
                await tracker.add(len(piece))


async def _pump(
    resp: _Response,
    chunk: int,
    tracker: _Progress,
    write: Callable[[int, list[bytes]], None],
    *,
    flush_tail: bool,
    keep_on_failure: bool = False,
) -> tuple[int, list[bytes]]:
    """Read a body in ``chunk``-sized pieces and hand them to ``write(position, pieces)``
    in a worker thread, ``IO_SIZE`` at a time, in order.

    One write is in flight while the next piece is read, so the network and the
    disk (and the MD5) overlap instead of taking turns; and the connection is
    not paused for the length of a thread hop every MiB. Returns the bytes
    received and the tail not yet written (written here when ``flush_tail``).
    On failure the write in flight is waited for, so no thread still holds the
    file when the caller cleans up; with ``keep_on_failure`` the tail is
    written too, unless an earlier write failed (that would leave a gap).
    """
    loop = asyncio.get_running_loop()
    pending: list[bytes] = []
    pending_size = written = 0
    in_flight: asyncio.Future[None] | None = None
    read = resp.content.read
    try:
        while data := await read(chunk):
            pending.append(data)
            pending_size += len(data)
            await tracker.add(len(data))
            if pending_size >= _files.IO_SIZE:
                if in_flight is not None:
                    await asyncio.shield(in_flight)
                in_flight = loop.run_in_executor(None, write, written, pending)
                written += pending_size
                pending, pending_size = [], 0
        if in_flight is not None:
            await asyncio.shield(in_flight)
        if flush_tail and pending:
            await anyio.to_thread.run_sync(write, written, pending)
            written += pending_size
            pending, pending_size = [], 0
    except BaseException:
        with anyio.CancelScope(shield=True):
            write_failed = False
            if in_flight is not None:
                await asyncio.wait([in_flight])  # never raises; never cancels the write
                write_failed = in_flight.exception() is not None
            if keep_on_failure and pending and not write_failed:
                await anyio.to_thread.run_sync(write, written, pending)
        raise
    return written + pending_size, pending


async def _run_workers(count: int, worker: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``count`` copies of ``worker``; if one fails, the others are cancelled and
    its error is raised as itself, not wrapped in an exception group."""
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(worker)
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


def _check_stored_md5(result: TransferResult, expected: str, what: str) -> None:
    """Raise if the server's ETag is a plain MD5 (single part) other than ``expected``."""
    if result.etag is None or not _is_plain_md5(result.etag, {}):
        return
    stored = result.etag.strip('"').lower()
    if stored != expected:
        raise IntegrityError(
            f"server stored ETag {stored} but {what} is {expected}", url=result.url
        )


def _header(headers: Any, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return None


def _initial(
    request: RequestLike | None, sign: SignFunction | None, method: Literal["GET", "PUT"]
) -> PresignedRequest | None:
    if request is None:
        if sign is None:
            raise InvalidArgumentError("give a request (a PresignedRequest or URL) or sign=")
        return None
    if isinstance(request, str):
        check_http_url(request)
        # A bare URL: we do not know its expiry, so never re-sign early for it.
        return PresignedRequest(method=method, url=request, expires_at=_FAR_FUTURE)
    if isinstance(request, PresignedRequest):
        check_http_url(request.url)
        return request
    raise InvalidArgumentError(
        f"request must be a PresignedRequest or a URL string, not {type(request).__name__}"
    )


_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def _expiring(request: PresignedRequest) -> bool:
    return request.expires_at - dt.datetime.now(dt.timezone.utc) < RESIGN_MARGIN


def _fspath(value: Any, what: str) -> str:
    try:
        raw = os.fspath(value)
    except TypeError:
        raise InvalidArgumentError(f"{what} must be a path, not {type(value).__name__}") from None
    path = os.fsdecode(raw) if isinstance(raw, bytes) else raw
    if not path:
        raise InvalidArgumentError(f"{what} must not be empty")
    return path


def _job_url(job: Any) -> str:
    request = getattr(job, "request", None)
    if isinstance(request, PresignedRequest):
        return redact_url(request.url)
    if isinstance(request, str):
        return redact_url(request)
    return ""


async def _aiter(jobs: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(jobs, AsyncIterable):
        async for job in jobs:
            yield job
    else:
        for job in jobs:
            yield job


def _is_plain_md5(etag: str | None, headers: Any) -> bool:
    """Whether an ETag is the object's MD5: single-part, and not SSE-KMS or SSE-C."""
    if not etag:
        return False
    value = etag.strip('"')
    if len(value) != 32 or any(c not in "0123456789abcdefABCDEF" for c in value):
        return False
    if headers.get("x-amz-server-side-encryption") == "aws:kms":
        return False
    return "x-amz-server-side-encryption-customer-algorithm" not in headers


def _is_range(resp: _Response) -> bool:
    """Whether the body is a byte range: a 206, or a 200 that says so with a
    Content-Range (rclone's ``serve s3`` answers every Range request that way)."""
    return resp.status == 206 or (resp.status == 200 and "Content-Range" in resp.headers)


def _expected_total(
    resp: _Response, offset: int, shown: str, *, is_range: bool
) -> int | None:
    """The full object size the body must add up to, checking the Content-Range of a range."""
    length = resp.headers.get("Content-Length")
    if is_range:
        content_range = resp.headers.get("Content-Range", "")
        parsed = _parse_content_range(content_range)
        if parsed is None or parsed[0] != offset:
            raise IntegrityError(
                f"server answered a range request from byte {offset} with "
                f"Content-Range {content_range!r}",
                url=shown,
            )
        start, end, size = parsed
        if length is not None and int(length) != end - start + 1:
            raise IntegrityError(
                f"Content-Length {length} does not match Content-Range {content_range!r}", url=shown
            )
        return size if size is not None else end + 1
    return int(length) if length is not None and length.isdigit() else None


def _parse_content_range(value: str) -> tuple[int, int, int | None] | None:
    """``bytes START-END/SIZE`` (SIZE may be ``*``) → numbers, or None if malformed."""
    unit, _, rest = value.strip().partition(" ")
    if unit != "bytes":
        return None
    span, _, size = rest.partition("/")
    first, _, last = span.partition("-")
    if not (first.isdigit() and last.isdigit()) or not (size.isdigit() or size == "*"):
        return None
    start, end = int(first), int(last)
    total = int(size) if size.isdigit() else None
    if end < start or (total is not None and end >= total):
        return None
    return start, end, total


async def _status_error(resp: _Response, shown: str) -> TransferError:
    body = b""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, *_http1.LEAN_ERRORS):
        body = await resp.content.read(MAX_ERROR_BODY)
    return status_error(resp.status, resp.reason, body, resp.headers.get("Retry-After"), shown)


def _from_lean(exc: Exception, shown: str) -> AsyncPresignError:
    if isinstance(exc, _http1.HTTPTimeout):
        return TransferTimeoutError(str(exc), url=shown)
    if isinstance(exc, _http1.ConnectFailed):
        return TransportError(f"cannot connect: {exc}", url=shown)
    if isinstance(exc, _http1.BadResponse):
        return TransportError(f"bad response: {exc}", url=shown)
    if isinstance(exc, _http1.InvalidRequest):
        return InvalidArgumentError(str(exc))
    return TransportError(str(exc), url=shown)


@contextlib.contextmanager
def _translate(shown: str) -> Any:
    """aiohttp's errors → ours. Only here."""
    try:
        yield
    except AsyncPresignError:
        raise
    except _http1.LEAN_ERRORS as exc:
        raise _from_lean(exc, shown) from None
    except aiohttp.InvalidURL as exc:
        raise InvalidArgumentError(f"invalid URL {shown!r}: {exc}") from None
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise TransferTimeoutError(
            f"timed out ({type(exc).__name__})", url=shown
        ) from None
    except aiohttp.ClientPayloadError as exc:
        raise TransportError(
            f"connection dropped in the middle of the body: {exc}", url=shown
        ) from None
    except aiohttp.ServerDisconnectedError:
        raise TransportError("server closed the connection", url=shown) from None
    except aiohttp.ClientConnectorError as exc:
        raise TransportError(f"cannot connect: {exc.os_error}", url=shown) from None
    except aiohttp.ClientResponseError as exc:
        raise TransportError(f"bad response: {exc.message}", url=shown) from None
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise TransportError(f"connection failed: {exc}", url=shown) from None
