"""One PUT of a body through a presigned URL: a small file read whole, a large
one streamed through aiofiles, bytes, or a file object; replayed on retry."""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO

import aiofiles
import aiofiles.threadpool.binary
import anyio
import anyio.to_thread

from . import _files
from ._attempts import Runtime, Tracker, fspath, header, initial_request
from ._checks import check_etag, check_stored_md5
from ._exceptions import InvalidArgumentError, LocalFileError
from ._models import FilePart, PresignedRequest, RequestLike, SignFunction, Source, TransferResult
from ._offload import FileThread
from ._retry import RetryPolicy

__all__ = ["SMALL_BODY", "UploadSource", "upload"]

#: Uploads of at most this many bytes are read from disk in one piece and sent
#: as one buffer; larger ones are streamed.
SMALL_BODY = _files.IO_SIZE


async def upload(
    rt: Runtime,
    request: RequestLike | None,
    body: UploadSource,
    *,
    sign: SignFunction | None,
    content_md5: bool,
    chunk: int,
    policy: RetryPolicy,
    tracker: Tracker,
) -> TransferResult:
    """PUT ``body`` to ``request`` (or to what ``sign`` signs), retried as the policy says."""
    current = initial_request(request, sign, "PUT")
    if content_md5:
        if sign is None:
            if current is None or header(current.headers, "Content-MD5") is None:
                raise InvalidArgumentError(
                    "content_md5=True needs sign= (the MD5 must be signed into the URL), "
                    "or a request signed with content_md5"
                )
        else:
            digest = await body.md5_base64()
            sign = functools.partial(sign, content_md5=digest)
            if current is not None and header(current.headers, "Content-MD5") != digest:
                current = None  # signed without this MD5: sign afresh

    async def attempt(req: PresignedRequest, attempt_tracker: Tracker) -> TransferResult:
        return await put_once(rt, req, body, chunk, attempt_tracker)

    if tracker.total is None:
        tracker.total = body.known_size
    return await rt.with_retries(
        current, sign, policy, attempt, method="PUT", replayable=body.replayable,
        tracker=tracker,
    )


async def put_once(
    rt: Runtime, request: PresignedRequest, body: UploadSource, chunk: int, tracker: Tracker
) -> TransferResult:
    payload, size = await body.open(chunk, tracker, rt.files)
    try:
        async with rt.transport.request(
            "PUT", request.url, request.headers, body=payload, length=size
        ) as resp:
            if not 200 <= resp.status < 300:
                raise await resp.status_error()
            etag = check_etag(resp.headers.get("ETag"), resp.shown)
            await resp.read_all()
            shown = resp.shown
    finally:
        await body.close()
    if isinstance(payload, bytes):
        await tracker.add(size)
    result = TransferResult(url=shown, status=resp.status, etag=etag, nbytes=size)
    sent_md5 = header(request.headers, "Content-MD5")
    if sent_md5 is not None:
        check_stored_md5(result, _md5_hex(sent_md5), "the body's MD5")
    return result


def _md5_hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


class UploadSource:
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
        self._open_file: aiofiles.threadpool.binary.AsyncBufferedReader | None = None
        self._md5: str | None = None

    @classmethod
    def of(cls, source: Source, size: int | None) -> UploadSource:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            return cls(data=data, size=len(data))
        if isinstance(source, (str, os.PathLike)):
            return cls(path=fspath(source, "upload source"), size=size)
        if isinstance(source, FilePart):
            return cls(
                path=fspath(source.path, "upload source"), size=source.length,
                offset=source.offset,
            )
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
            _, data = await anyio.to_thread.run_sync(
                _files.open_source, self.path, 1 << 62
            )
            assert data is not None
            return data
        assert self.stream is not None
        if self.replayable:
            await anyio.to_thread.run_sync(self.stream.seek, self._start)
        return await anyio.to_thread.run_sync(self.stream.read)

    async def open(
        self, chunk: int, tracker: Tracker, files: FileThread
    ) -> tuple[bytes | AsyncIterator[bytes | memoryview], int]:
        """The body for one attempt, and its size: a small file read whole through
        ``files`` (one hop), a large one opened with aiofiles and streamed."""
        if self.data is not None:
            if len(self.data) <= SMALL_BODY:
                return self.data, len(self.data)
            # aiohttp warns that one large bytes body blocks the loop while it
            # is written; hand it over in chunks instead.
            return self._memory_stream(self.data, chunk, tracker), len(self.data)
        if self.path is not None:
            size, data = await files.run(
                _files.open_source, self.path, SMALL_BODY, self.offset, self.known_size
            )
            if data is not None:
                return data, size
            try:
                f = await aiofiles.open(self.path, "rb")
                self._open_file = f
                if self.offset:
                    await f.seek(self.offset)
            except OSError as exc:
                raise LocalFileError(
                    f"cannot read upload source {self.path!r}: {_files.describe_os_error(exc)}",
                    self.path,
                ) from None
            return self._file_stream(f, size, chunk, tracker, self.path), size
        assert self.stream is not None
        assert self.known_size is not None
        if self.replayable:
            await anyio.to_thread.run_sync(self.stream.seek, self._start)
        return self._object_stream(self.stream, self.known_size, chunk, tracker), self.known_size

    async def close(self) -> None:
        f, self._open_file = self._open_file, None
        if f is not None:
            with anyio.CancelScope(shield=True):  # close it even when cancelled
                await f.close()

    @staticmethod
    async def _memory_stream(
        data: bytes, chunk: int, tracker: Tracker
    ) -> AsyncIterator[bytes | memoryview]:
        async for piece in _slices(data, chunk, tracker):
            yield piece

    @staticmethod
    async def _file_stream(
        f: aiofiles.threadpool.binary.AsyncBufferedReader,
        size: int,
        chunk: int,
        tracker: Tracker,
        path: str,
    ) -> AsyncIterator[bytes | memoryview]:
        async for piece in _blocks(f.read, size, chunk, tracker, path):
            yield piece

    @staticmethod
    async def _object_stream(
        f: IO[bytes], size: int, chunk: int, tracker: Tracker
    ) -> AsyncIterator[bytes | memoryview]:
        async def read(n: int) -> bytes:
            return await anyio.to_thread.run_sync(_files.read_block, f, n)

        async for piece in _blocks(read, size, chunk, tracker, None):
            yield piece


async def _blocks(
    read: Callable[[int], Awaitable[bytes]],
    size: int,
    chunk: int,
    tracker: Tracker,
    path: str | None,
) -> AsyncIterator[bytes | memoryview]:
    """``size`` bytes read in blocks of at least ``IO_SIZE`` (a thread hop each),
    handed to the network in ``chunk``-sized slices."""
    remaining = size
    block_size = max(chunk, _files.IO_SIZE)
    while remaining > 0:
        try:
            block = await read(min(block_size, remaining))
        except OSError as exc:
            raise LocalFileError(
                f"cannot read upload source: {_files.describe_os_error(exc)}", path
            ) from None
        if not block:
            raise LocalFileError(
                f"upload source ended {remaining} bytes early (it shrank while uploading)", path
            )
        remaining -= len(block)
        async for piece in _slices(block, chunk, tracker):
            yield piece


async def _slices(
    block: bytes, chunk: int, tracker: Tracker
) -> AsyncIterator[bytes | memoryview]:
    """``block`` in ``chunk``-sized views: no copies (aiohttp writes views as they are)."""
    if chunk >= len(block):
        yield block
        await tracker.add(len(block))
        return
    view = memoryview(block)
    for start in range(0, len(block), chunk):
        piece = view[start : start + chunk]
        yield piece
        await tracker.add(len(piece))
