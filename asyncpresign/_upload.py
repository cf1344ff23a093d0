"""One PUT of a body through a presigned URL: a small file read whole, a large
one streamed through aiofiles, bytes, or a file object; replayed on retry."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

import aiofiles
import aiofiles.threadpool.binary
import anyio
import anyio.to_thread

from . import _files
from ._attempts import Runtime, Tracker, fspath, header, initial_request, signs_checksums
from ._checks import check_etag, check_stored_md5, is_plain_md5
from ._checksums import ALGORITHMS, Crc, header_name
from ._checksums import of as checksum_of
from ._exceptions import (
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    LocalFileError,
    SourceChangedError,
)
from ._models import FilePart, PresignedRequest, RequestLike, SignFunction, Source, TransferResult
from ._offload import FileThread
from ._redact import redact_url
from ._retry import BODY_DIGEST_CODES, RetryPolicy

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
    algorithm = rt.checksum if rt.checksum in ALGORITHMS else None
    body.algorithm = algorithm
    if algorithm and sign is not None and body.replayable and signs_checksums(sign):
        # Signed in, the checksum makes the server refuse a corrupted body.
        value = await body.checksum_b64(algorithm, rt.files)
        sign = functools.partial(sign, checksum=(algorithm, value))
        if current is not None and header(current.headers, header_name(algorithm)) != value:
            current = None

    async def attempt(req: PresignedRequest, attempt_tracker: Tracker) -> TransferResult:
        # A request that carries no checksum of ours is checked afterwards: by the
        # checksum the server says it stored, else by an ETag that is an MD5.
        body.track_md5 = rt.checksum == "md5" or (
            algorithm is not None and header(req.headers, header_name(algorithm)) is None
        )
        if (content_md5 := header(req.headers, "Content-MD5")) is not None:
            _md5_hex(content_md5)  # malformed: refused before a byte is sent, not retried
        return await put_once(rt, req, body, chunk, attempt_tracker)

    if tracker.total is None:
        tracker.total = body.known_size if body.known_size is not None else body.expected_size
    return await rt.with_retries(
        current, sign, policy, attempt, method="PUT", replayable=body.replayable,
        tracker=tracker,
    )


async def put_once(
    rt: Runtime, request: PresignedRequest, body: UploadSource, chunk: int, tracker: Tracker
) -> TransferResult:
    payload, size = await body.open(chunk, tracker, rt.files)
    signed = (
        header(request.headers, header_name(body.algorithm)) if body.algorithm else None
    )
    try:
        if signed is not None and isinstance(payload, bytes):
            _check_signed_checksum(body, signed, request)  # read whole: before sending
        async with rt.transport.request(
            "PUT", request.url, request.headers, body=payload, length=size
        ) as resp:
            if not 200 <= resp.status < 300:
                error = await resp.status_error()
                if error.code in BODY_DIGEST_CODES:
                    # Streamed: its checksum is known now. Not the signed one: the
                    # source itself differs, and no retry can cure that (the
                    # server's refusal stays attached, as the cause).
                    try:
                        if signed is not None:
                            _check_signed_checksum(body, signed, request)
                        await _check_signed_md5(body, request)
                    except LocalFileError as changed:
                        raise changed from error
                raise _with_checksum_hint(error, request)
            etag = check_etag(resp.headers.get("ETag"), resp.shown)
            answer = resp.headers
            stored = (
                resp.headers.get(header_name(body.algorithm)) if body.algorithm else None
            )
            await resp.read_all()
            shown = resp.shown
    finally:
        await body.close()
    if isinstance(payload, bytes):
        await tracker.add(size)
    verified = None
    sent = body.sent_checksum()
    if stored is not None and sent is not None:
        # The server says what it stored: a body corrupted on the way in, that
        # no signed checksum stopped, is caught here (and sent again).
        if stored.strip() != sent:
            raise IntegrityError(
                f"server stored {str(body.algorithm).upper()} {stored.strip()[:40]} but the "
                f"body sent has {sent}",
                url=shown,
            )
        verified = body.algorithm
    elif body.track_md5 and is_plain_md5(etag, answer):
        sent_md5 = await body.sent_md5()
        if sent_md5 is not None:
            check_stored_md5(
                TransferResult(url=shown, etag=etag), sent_md5, "the MD5 of the body sent",
                answer,
            )
            verified = "md5"
    result = TransferResult(
        url=shown, status=resp.status, etag=etag, nbytes=size, verified=verified
    )
    sent_md5 = header(request.headers, "Content-MD5")
    if sent_md5 is not None:
        check_stored_md5(result, _md5_hex(sent_md5), "the body's MD5", answer)
    return result



#: Answers with which a server that does not know S3's flexible checksums
#: refuses a request carrying one (a corrupted body is BadDigest instead).
_UNSUPPORTED = frozenset({"InvalidArgument", "NotImplemented", "InvalidRequest", "InvalidHeader"})


def _check_signed_checksum(body: UploadSource, signed: str, request: PresignedRequest) -> None:
    """Raise when the body's checksum is not the one signed into ``request``: the
    source changed since it was signed (a manifest line signed yesterday), and
    the server would refuse it on every attempt as a corruption in transit."""
    sent = body.sent_checksum()
    if sent is not None and sent != signed.strip():
        raise _not_as_signed(body, str(body.algorithm).upper(), sent, signed.strip(), request)


async def _check_signed_md5(body: UploadSource, request: PresignedRequest) -> None:
    """As :func:`_check_signed_checksum`, for a request signed with a Content-MD5."""
    signed = header(request.headers, "Content-MD5")
    if signed is None:
        return
    expected = _md5_hex(signed)
    sent = await body.sent_md5()
    if sent is not None and sent != expected:
        raise _not_as_signed(body, "MD5", sent, expected, request)


def _not_as_signed(
    body: UploadSource, kind: str, sent: str, signed: str, request: PresignedRequest
) -> LocalFileError:
    what = repr(body.path) if body.path is not None else "the upload body"
    return LocalFileError(
        f"{what} has {kind} {sent}, not the {signed[:40]} signed into its request "
        f"({redact_url(request.url)[:120]}): it changed since the request was signed; "
        "sign it again",
        body.path or "-",
    )


def _with_checksum_hint(error: HTTPStatusError, request: PresignedRequest) -> HTTPStatusError:
    """Say which option to change when a server refuses the checksum header itself."""
    signed = any(name.lower().startswith("x-amz-checksum-") for name in request.headers)
    if signed and (error.status == 501 or (error.status == 400 and error.code in _UNSUPPORTED)):
        error.message += (
            " (the request carried an x-amz-checksum-* header: if this server does not "
            "support S3's flexible checksums, use TransferEngine(checksum='md5') and "
            "Signer(checksum=None), or the CLI's --checksum md5)"
        )
    return error


def _md5_hex(b64: str) -> str:
    """The hex of a Content-MD5 value: the base64 of a 16-byte MD5, else an
    InvalidArgumentError. A malformed one was retried 20 times on the server's
    InvalidDigest, or failed as a bare binascii.Error after the object was
    stored, or read as a body 'changed since the request was signed'."""
    try:
        digest = base64.b64decode(b64.strip(), validate=True)
    except ValueError:
        digest = b""
    if len(digest) != 16:
        raise InvalidArgumentError(
            f"Content-MD5 {b64.strip()[:40]!r} is not the base64 of a 16-byte MD5"
        )
    return digest.hex()


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
        version: _files.Version | None = None,
        expected_size: int | None = None,
    ) -> None:
        self.path = path
        #: The size a caller said a whole file has (``upload(path, size=...)``).
        self.expected_size = expected_size
        #: The source file's (size, mtime) when its upload began: a file read at
        #: another version changed while being uploaded.
        self.version = version
        self.offset = offset
        self.data = data
        self.stream = stream
        self.known_size = size
        self.replayable = replayable
        self._start = 0
        self._open_file: aiofiles.threadpool.binary.AsyncBufferedReader | None = None
        self._md5: str | None = None
        #: The flexible checksum taken of what is sent, when one is asked for.
        self.algorithm: str | None = None
        self._checksum: str | None = None  # of the whole body, once known
        self._sending: Crc | None = None  # of the attempt in flight, as it streams
        self._first_data: bytes | None = None  # read with the checksum, for the first send
        #: Take the MD5 of what is sent too (for a request with no checksum signed in).
        self.track_md5 = False
        self._sending_md5: Any = None
        self._sent_small: bytes | None = None

    @classmethod
    def of(
        cls, source: Source, size: int | None, version: _files.Version | None = None
    ) -> UploadSource:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidArgumentError(f"size must be an int >= 0, got {size!r}")
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if size is not None and size != len(data):
                raise InvalidArgumentError(f"size={size} but the data holds {len(data)} bytes")
            return cls(data=data, size=len(data))
        if isinstance(source, (str, os.PathLike)):
            # A claim to check, as for a stream, not a length to cut at: the
            # first ``size`` bytes of a longer file went up as a success.
            return cls(path=fspath(source, "upload source"), expected_size=size)
        if isinstance(source, io.TextIOBase):
            # Its str chunks failed in aiohttp, reported as a connection failure.
            raise InvalidArgumentError(
                "an upload source must be a binary file: open it with 'rb', not as text"
            )
        if isinstance(source, FilePart):
            return cls(
                path=fspath(source.path, "upload source"), size=source.length,
                offset=source.offset, version=version or source.version,
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

    def _check_expected_size(self, size: int) -> None:
        """Refuse, before a byte is sent, a file whose size is not the one claimed."""
        if self.expected_size is not None and size != self.expected_size:
            raise InvalidArgumentError(
                f"size={self.expected_size} but upload source {self.path!r} holds {size} bytes"
            )

    async def md5_base64(self) -> str:
        """The body's MD5, base64 as Content-MD5 wants it (hashed in a thread)."""
        if self._md5 is None:
            if self.stream is not None and not self.replayable:
                raise InvalidArgumentError(
                    "content_md5=True needs a source that can be read twice "
                    "(a path, bytes, or a seekable file)"
                )
            self._md5 = await self._md5_now()
        return self._md5

    async def _md5_now(self) -> str:
        """The MD5 of the body as it is now (read again), base64, in a thread."""
        if self.data is not None:
            return await anyio.to_thread.run_sync(_files.md5_base64_of_bytes, self.data)
        if self.path is not None:
            return await anyio.to_thread.run_sync(
                _files.md5_base64_of_file, self.path, self.offset, self.known_size
            )
        assert self.stream is not None
        return await anyio.to_thread.run_sync(
            _files.md5_base64_of_stream, self.stream, self._start
        )

    async def checksum_b64(self, algorithm: str, files: FileThread) -> str:
        """The whole body's checksum, before the first send (a small file's read
        is kept for that send, so it is read once)."""
        if self._checksum is None:
            if self.data is not None:
                self._checksum = checksum_of(algorithm, self.data)
            elif self.path is not None:
                read = functools.partial(
                    _files.read_with_checksum, self.path, SMALL_BODY, algorithm, self.offset,
                    self.known_size, before=self.version,
                )
                if self.known_size is not None and self.known_size > SMALL_BODY:
                    # A long read: the shared pool, not the small files' thread.
                    size, data, value, self.version = await anyio.to_thread.run_sync(read)
                else:
                    size, data, value, self.version = await files.run(read)
                self._check_expected_size(size)
                self._first_data, self._checksum = data, value
            else:
                assert self.stream is not None
                data = await self.read_all()
                self._checksum = checksum_of(algorithm, data)
        return self._checksum

    def sent_checksum(self) -> str | None:
        """The checksum of what the last attempt sent (None when not taken)."""
        if self._sending is not None:
            return self._sending.b64
        return None

    async def sent_md5(self) -> str | None:
        """The MD5 (hex) of what the last attempt sent: asked for only when the
        server's answer leaves nothing else to check it by, so a large file is
        read again for it (in a thread) rather than hashed on the loop as it goes."""
        if self._sent_small is not None:
            return hashlib.md5(self._sent_small, usedforsecurity=False).hexdigest()
        if self._sending_md5 is not None:
            return str(self._sending_md5.hexdigest())
        if not self.replayable:
            return None
        return _md5_hex(await self._md5_now())

    async def read_all(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            _, data, _ = await anyio.to_thread.run_sync(
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
        self._sending = Crc(self.algorithm) if self.algorithm else None
        self._sent_small = None
        # Hashed as it streams only when it cannot be read again afterwards.
        self._sending_md5 = (
            hashlib.md5(usedforsecurity=False)
            if self.track_md5 and self.stream is not None and not self.replayable
            else None
        )
        if self.data is not None:
            if len(self.data) <= SMALL_BODY:
                self._feed(self.data)
                return self.data, len(self.data)
            # aiohttp warns that one large bytes body blocks the loop while it
            # is written; hand it over in chunks instead.
            stream = self._memory_stream(self.data, chunk, tracker, self._hashes())
            return stream, len(self.data)
        if self.path is not None:
            if self._first_data is not None:
                first, self._first_data = self._first_data, None
                self._feed(first)
                return first, len(first)
            size, data, self.version = await files.run(functools.partial(
                _files.open_source, self.path, SMALL_BODY, self.offset, self.known_size,
                before=self.version,
            ))
            self._check_expected_size(size)
            if data is not None:
                self._feed(data)
                return data, size
            try:
                # It was a regular file a moment ago; a FIFO put in its place
                # must not block this open either.
                f = await aiofiles.open(self.path, "rb", opener=_files.regular_opener)
                self._open_file = f
                if self.offset:
                    await f.seek(self.offset)
            except LocalFileError:
                raise
            except OSError as exc:
                raise LocalFileError(
                    f"cannot read upload source {self.path!r}: {_files.describe_os_error(exc)}",
                    self.path, errno=exc.errno,
                ) from None
            stream = self._file_stream(
                f, size, chunk, tracker, self.path, hashes=self._hashes(),
                last=functools.partial(self._check_unchanged, f),
            )
            return stream, size
        assert self.stream is not None
        assert self.known_size is not None
        if self.replayable:
            await anyio.to_thread.run_sync(self.stream.seek, self._start)
        stream = self._object_stream(
            self.stream, self.known_size, chunk, tracker, self._hashes(),
            whole=not self.replayable,
        )
        return stream, self.known_size

    async def _check_unchanged(self, f: aiofiles.threadpool.binary.AsyncBufferedReader) -> None:
        """After the last block is read and before it is sent: a file written to
        while it streamed shows another version, and its last bytes never
        leave, so the server stores nothing torn."""
        assert self.path is not None
        info = await anyio.to_thread.run_sync(os.fstat, f.fileno())
        _files.check_version(self.path, self.version, _files.version_of(info))

    def _feed(self, data: bytes) -> None:
        """A whole small body, sent in one piece: its CRC now, its MD5 only if asked."""
        if self._sending is not None:
            self._sending.update(data)
        self._sending_md5 = None
        self._sent_small = data if self.track_md5 else None

    def _hashes(self) -> _Hashes | None:
        if self._sending is None and self._sending_md5 is None:
            return None
        return _Hashes(self._sending, self._sending_md5)

    async def close(self) -> None:
        f, self._open_file = self._open_file, None
        if f is not None:
            with anyio.CancelScope(shield=True):  # close it even when cancelled
                await f.close()

    @staticmethod
    async def _memory_stream(
        data: bytes, chunk: int, tracker: Tracker, hashes: _Hashes | None
    ) -> AsyncIterator[bytes | memoryview]:
        if hashes is not None:
            hashes.update(data)
        async for piece in _slices(data, chunk, tracker):
            yield piece

    @staticmethod
    async def _file_stream(
        f: aiofiles.threadpool.binary.AsyncBufferedReader,
        size: int,
        chunk: int,
        tracker: Tracker,
        path: str,
        *,
        hashes: _Hashes | None,
        last: Callable[[], Awaitable[None]],
    ) -> AsyncIterator[bytes | memoryview]:
        async for piece in _blocks(f.read, size, chunk, tracker, path, hashes=hashes, last=last):
            yield piece

    @staticmethod
    async def _object_stream(
        f: IO[bytes], size: int, chunk: int, tracker: Tracker, hashes: _Hashes | None,
        *, whole: bool = False,
    ) -> AsyncIterator[bytes | memoryview]:
        """``size`` bytes of ``f``; with ``whole`` (a stream whose length only
        ``size`` tells), the stream must end there: one holding more was cut
        at ``size`` and stored so, reported done. Its last bytes never leave
        then, so the server stores nothing."""
        async def read(n: int) -> bytes:
            try:
                data = await anyio.to_thread.run_sync(_files.read_block, f, n)
            except ValueError as exc:  # closed, or not open for reading: _blocks says so
                raise OSError(str(exc)) from None
            if not isinstance(data, bytes):
                raise InvalidArgumentError(
                    f"the upload stream's read() gave {type(data).__name__}, not bytes: "
                    "open it in binary mode"
                )
            return data

        async def ended() -> None:
            if await read(1):
                raise LocalFileError(
                    f"the upload stream holds more than the size given ({size} bytes): "
                    "size= must be its whole length", None,
                )

        async for piece in _blocks(
            read, size, chunk, tracker, None, hashes=hashes, last=ended if whole else None
        ):
            yield piece


class _Hashes:
    """What is taken of a streamed body as it goes: its CRC, and its MD5 when asked."""

    __slots__ = ("crc", "md5")

    def __init__(self, crc: Crc | None, md5: Any) -> None:
        self.crc, self.md5 = crc, md5

    def update(self, data: bytes) -> None:
        if self.crc is not None:
            self.crc.update(data)
        if self.md5 is not None:
            self.md5.update(data)


async def _blocks(
    read: Callable[[int], Awaitable[bytes]],
    size: int,
    chunk: int,
    tracker: Tracker,
    path: str | None,
    *,
    hashes: _Hashes | None,
    last: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes | memoryview]:
    """``size`` bytes read in blocks of at least ``IO_SIZE`` (a thread hop each),
    handed to the network in ``chunk``-sized slices; ``last`` runs once the last
    block is read, before it is handed on."""
    remaining = size
    block_size = max(chunk, _files.IO_SIZE)
    while remaining > 0:
        try:
            block = await read(min(block_size, remaining))
        except OSError as exc:
            raise LocalFileError(
                f"cannot read upload source: {_files.describe_os_error(exc)}", path, errno=exc.errno
            ) from None
        if not block:
            message = f"upload source ended {remaining} bytes early (it shrank while uploading)"
            if path is None:
                raise LocalFileError(message, path)
            # A file that shrank is at a new version: start over, as for any change.
            raise SourceChangedError(f"{message}: it changed while being uploaded", path)
        remaining -= len(block)
        if not remaining and last is not None:
            await last()
        if hashes is not None:
            hashes.update(block)
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
