"""A GET into a local file: one stream (resumable), or the first range of a
ranged download (whose other ranges :mod:`._ranged` fetches)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from . import _files
from ._attempts import Runtime, Tracker
from ._checks import (
    RangeSpec,
    check_etag,
    check_range_answer,
    expected_total,
    is_plain_md5,
    is_range,
    signed_range,
    unsatisfied_size,
)
from ._checksums import Crc, Verifier, full_object_checksum
from ._diskio import RangeWriter, StreamWriter
from ._exceptions import IntegrityError, InvalidArgumentError
from ._models import PresignedRequest, TransferResult
from ._parts import DEFAULT_PART_SIZE, plan_ranges
from ._transport import Response

__all__ = ["DownloadState", "get_once", "pump", "receive_at", "verifier_for"]


@dataclass
class DownloadState:
    resume: bool
    verify: bool
    ranged: bool = False
    part_size: int = DEFAULT_PART_SIZE
    # Learnt by the first request of a ranged download:
    request: PresignedRequest | None = None
    total: int = 0
    etag: str | None = None
    checksum: tuple[str, int] | None = None  # the object's, to combine the ranges' CRCs into
    verify_md5: bool = False
    ranges: Sequence[tuple[int, int]] = ()
    range_crcs: dict[int, Crc] = field(default_factory=dict)

    def restart(self) -> None:
        """Forget what the first request learnt: the download starts over."""
        self.total, self.etag, self.checksum, self.verify_md5 = 0, None, None, False
        self.ranges, self.range_crcs = (), {}


async def get_once(
    rt: Runtime,
    request: PresignedRequest,
    *,
    partial: _files.PartialFile,
    state: DownloadState,
    chunk: int,
    tracker: Tracker,
) -> TransferResult:
    """One attempt: GET the object; for a large object that can be fetched in
    ranges, keep only its first ``part_size`` bytes (the other ranges follow in
    parallel). The first request asks for the whole object, not a range, since
    only a whole answer carries the object's checksum (S3 leaves it off ranges)."""
    spec = signed_range(request.headers)
    if spec is not None:
        if state.resume:
            raise InvalidArgumentError(
                "a presigned GET signed for a Range cannot be resumed: resuming asks "
                "for a range of its own, which the signature does not cover"
            )
        return await _get_signed_range(
            rt, request, spec, partial=partial, chunk=chunk, tracker=tracker
        )
    extra: dict[str, str] = {}
    offset = 0
    remembered: Verifier | None = None
    if state.resume:
        offset, etag, remembered = await anyio.to_thread.run_sync(
            _files.read_sidecar, partial.path
        )
        if offset and etag:
            extra["Range"] = f"bytes={offset}-"
            extra["If-Match"] = etag
        else:
            offset, remembered = 0, None
    async with rt.transport.request("GET", request.url, request.headers, extra=extra) as resp:
        shown = resp.shown
        whole = (
            _whole_partial_check(state, remembered, extra["If-Match"], resp.headers)
            if resp.status == 416 and offset and unsatisfied_size(resp.headers) == offset
            else None
        )
        if whole is not None:
            # Asked If-Match for the bytes after the partial file's, the unchanged
            # object (If-Match is judged before Range) says it has no more: a run
            # stopped after its last write, before the rename. Check the file and
            # keep it; "object changed" would fetch it all again, or fail.
            return await _complete_partial(
                rt, resp, partial=partial, verifier=whole, etag=extra["If-Match"],
                size=offset, tracker=tracker,
            )
        if resp.status in {412, 416} and extra:
            # The object changed (or the partial file is not a prefix of it):
            # start over from zero on the next attempt, at once. (Asked for
            # neither, the server's answer is its own: a status error below.)
            await anyio.to_thread.run_sync(partial.discard)
            raise IntegrityError(
                "object changed since the partial download began "
                f"(HTTP {resp.status}); restarting from zero",
                url=shown,
            )
        if not 200 <= resp.status < 300:
            raise await resp.status_error()
        ranged_answer = is_range(resp.status, resp.headers)
        etag = check_etag(resp.headers.get("ETag"), shown)
        total = expected_total(resp.status, resp.headers, offset, shown)
        tracker.total = total
        appending = ranged_answer and offset > 0
        if (
            state.ranged
            and not ranged_answer
            and total is not None
            and total > state.part_size
            and etag is not None
            and resp.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
        ):
            return await _receive_first_part(
                resp, partial=partial, state=state, chunk=chunk, tracker=tracker,
                etag=etag, total=total,
            )
        verifier = None
        if state.verify:
            verifier = remembered if appending else verifier_for(resp.headers, etag)
            if appending and verifier is None and is_plain_md5(etag, resp.headers):
                verifier = Verifier.md5(str(etag).strip('"'))
        partial.prepare(
            appending=appending, etag=etag, verifier=verifier, resumable=state.resume
        )
        return await _receive(
            rt, resp, partial=partial, chunk=chunk, tracker=tracker,
            etag=etag, total=total, offset=offset if appending else 0,
        )


def _whole_partial_check(
    state: DownloadState, remembered: Verifier | None, etag: str, headers: Mapping[str, str]
) -> Verifier | None:
    """What checks a partial file that holds the whole object: the remembered
    checksum, else an ETag that is its MD5. None when nothing can (or checks
    are off): then the object is fetched again, as a file kept unchecked would
    be a doubt."""
    if not state.verify:
        return None
    if remembered is not None:
        return remembered
    return Verifier.md5(etag.strip('"')) if is_plain_md5(etag, headers) else None


async def _complete_partial(
    rt: Runtime,
    resp: Response,
    *,
    partial: _files.PartialFile,
    verifier: Verifier,
    etag: str,
    size: int,
    tracker: Tracker,
) -> TransferResult:
    """A resumed download whose partial file already holds all ``size`` bytes of
    the object: checked by ``verifier`` as an append of nothing would be, then
    moved into place. A file that fails the check is discarded and the
    download retried from zero."""
    tracker.total = size
    partial.prepare(appending=True, etag=etag, verifier=verifier, resumable=True)
    mismatch = await rt.files.run(partial.finish, [])
    if mismatch is not None:
        raise IntegrityError(mismatch, url=resp.shown)
    return TransferResult(
        url=resp.shown, nbytes=size, status=resp.status, etag=etag, verified=verifier.kind,
    )


async def _get_signed_range(
    rt: Runtime,
    request: PresignedRequest,
    spec: RangeSpec,
    *,
    partial: _files.PartialFile,
    chunk: int,
    tracker: Tracker,
) -> TransferResult:
    """A GET signed for one byte range: exactly that range becomes the file, as
    one stream, once the answer's Content-Range shows it is that range. Its
    length is checked; no checksum can be (S3 sends the object's, not the
    range's), so the result says it is unverified."""
    async with rt.transport.request("GET", request.url, request.headers) as resp:
        if not 200 <= resp.status < 300:
            raise await resp.status_error()  # 416: the range is past the end
        etag = check_etag(resp.headers.get("ETag"), resp.shown)
        length = check_range_answer(spec, resp.status, resp.headers, resp.shown)
        tracker.total = length
        partial.prepare(appending=False, etag=etag, verifier=None, resumable=False)
        return await _receive(
            rt, resp, partial=partial, chunk=chunk, tracker=tracker,
            etag=etag, total=length, offset=0,
        )


def verifier_for(headers: Mapping[str, str], etag: str | None) -> Verifier | None:
    """The strongest check a whole answer allows: its full-object checksum, else
    an ETag that is the object's MD5, else none."""
    checksum = full_object_checksum(headers)
    if checksum is not None:
        return Verifier.crc(*checksum)
    if is_plain_md5(etag, headers):
        return Verifier.md5(str(etag).strip('"'))
    return None


async def _receive(
    rt: Runtime,
    resp: Response,
    *,
    partial: _files.PartialFile,
    chunk: int,
    tracker: Tracker,
    etag: str | None,
    total: int | None,
    offset: int,
) -> TransferResult:
    """Stream the body to disk: ``chunk``-sized reads, ``IO_SIZE`` writes through
    aiofiles. A small body is read whole, then written, checked and renamed in
    one hop of the file thread."""
    shown = resp.shown
    if total is not None and total - offset <= _files.IO_SIZE and not partial.resumable:
        body = await resp.read_all()
        await tracker.add(len(body))
        _check_total(offset + len(body), total, shown)
        mismatch = await rt.files.run(partial.finish, [body])
        received = len(body)
    else:
        writer = StreamWriter(partial)
        try:
            # What arrived before a failure is a valid prefix of the object: a
            # resumable download keeps it, so the resume asks only for the rest.
            received, tail = await pump(
                resp, chunk, tracker, lambda _, pieces: writer.write(pieces),
                flush_tail=False, keep_on_failure=partial.resumable,
            )
            _check_total(offset + received, total, shown)
            if writer.opened:
                if tail:
                    await writer.write(tail)
                await writer.close()
                mismatch = await rt.files.run(partial.commit_checked)
            else:  # a body of unknown length that turned out small: one hop
                mismatch = await rt.files.run(partial.finish, tail)
        finally:
            with anyio.CancelScope(shield=True):
                await writer.close()
    if mismatch is not None:
        raise IntegrityError(mismatch, url=shown)
    verified = partial.verifier.kind if partial.verifier is not None else None
    return TransferResult(
        url=shown, nbytes=offset + received, status=resp.status, etag=etag, verified=verified
    )


def _check_total(received: int, total: int | None, shown: str) -> None:
    if total is not None and received != total:
        raise IntegrityError(f"body ended after {received} of {total} bytes", url=shown)


async def _receive_first_part(
    resp: Response,
    *,
    partial: _files.PartialFile,
    state: DownloadState,
    chunk: int,
    tracker: Tracker,
    etag: str,
    total: int,
) -> TransferResult:
    """The first ``part_size`` bytes of a large object's whole answer: write them,
    note the object's checksum, and leave the rest to :func:`._ranged.fetch_ranges`
    (the answer's unread remainder is dropped with its connection). Nothing is
    reserved for the other ranges yet: each reserves its own room once its
    answer shows it carries those bytes."""
    shown = resp.shown
    state.total, state.etag = total, etag
    state.checksum = full_object_checksum(resp.headers) if state.verify else None
    state.verify_md5 = state.verify and state.checksum is None and is_plain_md5(
        etag, resp.headers
    )
    state.range_crcs = {}
    partial.prepare(appending=False, etag=etag, verifier=None, resumable=False)
    crc = Crc(state.checksum[0]) if state.checksum else None
    received = await receive_at(
        resp, partial, 0, state.part_size, chunk=chunk, tracker=tracker, create=True,
        crc=crc, limit=state.part_size,
    )
    if received != state.part_size:
        raise IntegrityError(
            f"first part ended after {received} of {state.part_size} bytes", url=shown
        )
    if crc is not None:
        state.range_crcs[0] = crc
    state.ranges = plan_ranges(total, state.part_size, start=state.part_size)
    return TransferResult(url=shown, nbytes=received, status=resp.status, etag=etag)


async def receive_at(
    resp: Response,
    partial: _files.PartialFile,
    offset: int,
    length: int,
    *,
    chunk: int,
    tracker: Tracker,
    create: bool = False,
    crc: Crc | None = None,
    limit: int | None = None,
) -> int:
    """Write a range's body (its first ``limit`` bytes, if given) at ``offset`` in
    ``IO_SIZE`` pieces through its own handle, CRC'd into ``crc`` piece by piece
    as they arrive (while still in the CPU's cache: measured cheaper than at
    the write, a MiB later); return how many bytes came."""
    writer = RangeWriter(partial, offset, length)
    await writer.open(create=create)
    try:
        received, _ = await pump(
            resp, chunk, tracker, lambda _, pieces: writer.write(pieces), flush_tail=True,
            limit=limit, take=None if crc is None else crc.update,
        )
    finally:
        with anyio.CancelScope(shield=True):
            await writer.close()
    return received


async def pump(
    resp: Response,
    chunk: int,
    tracker: Tracker,
    write: Callable[[int, list[bytes]], Awaitable[None]],
    *,
    flush_tail: bool,
    keep_on_failure: bool = False,
    limit: int | None = None,
    take: Callable[[bytes], None] | None = None,
) -> tuple[int, list[bytes]]:
    """Read a body in ``chunk``-sized pieces and hand them to ``write(position, pieces)``
    (which writes through aiofiles' thread), ``IO_SIZE`` at a time, in order.

    One write is in flight while the next piece is read, so the network and the
    disk (and the MD5) overlap instead of taking turns; and the connection is
    not paused for the length of a thread hop every MiB. ``take`` is given each
    piece as it arrives (a range's CRC). Returns the bytes
    received and the tail not yet written (written here when ``flush_tail``).
    On failure the write in flight is waited for, so no thread still holds the
    file when the caller cleans up; with ``keep_on_failure`` the tail is
    written too, unless an earlier write failed (that would leave a gap).
    """
    pending: list[bytes] = []
    pending_size = written = 0
    in_flight: asyncio.Future[None] | None = None
    ensure_future = asyncio.ensure_future
    read = resp.read
    left = limit if limit is not None else -1
    try:
        while left and (data := await read(chunk if left < 0 else min(chunk, left))):
            left -= len(data) if left > 0 else 0
            pending.append(data)
            pending_size += len(data)
            if take is not None:
                take(data)
            await tracker.add(len(data))
            if pending_size >= _files.IO_SIZE:
                if in_flight is not None:
                    await asyncio.shield(in_flight)
                in_flight = ensure_future(write(written, pending))
                written += pending_size
                pending, pending_size = [], 0
        if in_flight is not None:
            await asyncio.shield(in_flight)
        if flush_tail and pending:
            await write(written, pending)
            written += pending_size
            pending, pending_size = [], 0
    except BaseException:
        with anyio.CancelScope(shield=True):
            write_failed = False
            if in_flight is not None:
                await asyncio.wait([in_flight])  # never raises; never cancels the write
                write_failed = in_flight.exception() is not None
            if keep_on_failure and pending and not write_failed:
                await write(written, pending)
        raise
    return written + pending_size, pending
