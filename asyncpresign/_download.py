"""A GET into a local file: one stream (resumable), or the first range of a
ranged download (whose other ranges :mod:`._ranged` fetches)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from . import _files
from ._attempts import Runtime, Tracker
from ._checks import check_etag, expected_total, is_plain_md5, is_range
from ._diskio import RangeWriter, StreamWriter
from ._exceptions import IntegrityError
from ._models import PresignedRequest, TransferResult
from ._parts import DEFAULT_PART_SIZE, plan_ranges
from ._transport import Response

__all__ = ["AskAgain", "DownloadState", "get_once", "pump"]


class AskAgain(Exception):
    """Internal: the attempt learnt it must send its request differently, at once."""


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
    verify_md5: bool = False
    ranges: list[tuple[int, int]] = field(default_factory=list)


async def get_once(
    rt: Runtime,
    request: PresignedRequest,
    *,
    partial: _files.PartialFile,
    state: DownloadState,
    chunk: int,
    tracker: Tracker,
) -> TransferResult:
    """One attempt: GET the object (or, for a ranged download, its first range)."""
    extra: dict[str, str] = {}
    offset = 0
    if state.ranged:
        extra["Range"] = f"bytes=0-{state.part_size - 1}"
    if state.resume:
        offset, etag = await anyio.to_thread.run_sync(_files.read_sidecar, partial.path)
        if offset and etag:
            extra["Range"] = f"bytes={offset}-"
            extra["If-Match"] = etag
        else:
            offset = 0
    try:
        async with rt.transport.request("GET", request.url, request.headers, extra=extra) as resp:
            shown = resp.shown
            if state.ranged and resp.status == 416:
                # S3 answers a range of an empty object with 416: ask plainly.
                state.ranged = False
                raise AskAgain
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
                raise await resp.status_error()
            ranged_answer = is_range(resp.status, resp.headers)
            if (
                state.ranged
                and not ranged_answer
                and resp.headers.get("Content-Length") == str(state.part_size)
            ):
                # A 200 to a range request should be the whole object, but a
                # server may send just the range with a 200 and no
                # Content-Range. A body exactly the range's length cannot tell
                # which: ask plainly.
                state.ranged = False
                raise AskAgain
            etag = check_etag(resp.headers.get("ETag"), shown)
            total = expected_total(resp.status, resp.headers, offset, shown)
            tracker.total = total
            if state.ranged and ranged_answer and total and total > state.part_size:
                return await _receive_first_range(
                    resp, partial=partial, state=state, chunk=chunk, tracker=tracker,
                    etag=etag, total=total,
                )
            appending = ranged_answer and offset > 0
            partial.prepare(
                appending=appending,
                etag=etag,
                verify=state.verify and is_plain_md5(etag, resp.headers),
                resumable=state.resume,
            )
            return await _receive(
                rt, resp, partial=partial, chunk=chunk, tracker=tracker,
                etag=etag, total=total, offset=offset if appending else 0,
            )
    except AskAgain:
        return await get_once(
            rt, request, partial=partial, state=state, chunk=chunk, tracker=tracker
        )


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
    expected = etag.strip('"').lower() if partial.verify and etag else None
    if total is not None and total - offset <= _files.IO_SIZE and not partial.resumable:
        body = await resp.read_all()
        await tracker.add(len(body))
        _check_total(offset + len(body), total, shown)
        mismatch = await rt.files.run(partial.finish, [body], expected)
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
                mismatch = await rt.files.run(partial.commit_checked, expected)
            else:  # a body of unknown length that turned out small: one hop
                mismatch = await rt.files.run(partial.finish, tail, expected)
        finally:
            with anyio.CancelScope(shield=True):
                await writer.close()
    if mismatch is not None:
        raise IntegrityError(
            f"MD5 of the downloaded bytes {mismatch} does not match the ETag {expected}",
            url=shown,
        )
    return TransferResult(url=shown, nbytes=offset + received, status=resp.status, etag=etag)


def _check_total(received: int, total: int | None, shown: str) -> None:
    if total is not None and received != total:
        raise IntegrityError(f"body ended after {received} of {total} bytes", url=shown)


async def _receive_first_range(
    resp: Response,
    *,
    partial: _files.PartialFile,
    state: DownloadState,
    chunk: int,
    tracker: Tracker,
    etag: str | None,
    total: int,
) -> TransferResult:
    """The first range of a large object: write it, and leave the other ranges to
    :func:`._ranged.fetch_ranges`. Nothing is reserved for the ranges yet: each
    reserves its own room once its answer shows it carries those bytes."""
    shown = resp.shown
    if etag is None:
        raise IntegrityError(
            "a ranged download needs the object's ETag to check the ranges agree", url=shown
        )
    state.total, state.etag = total, etag
    state.verify_md5 = state.verify and is_plain_md5(etag, resp.headers)
    partial.prepare(appending=False, etag=etag, verify=False, resumable=False)
    received = await receive_at(
        resp, partial, 0, state.part_size, chunk=chunk, tracker=tracker, create=True
    )
    if received != state.part_size:
        raise IntegrityError(
            f"first range ended after {received} of {state.part_size} bytes", url=shown
        )
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
) -> int:
    """Write a range's body at ``offset`` in ``IO_SIZE`` pieces through its own
    handle; return how many bytes came."""
    writer = RangeWriter(partial, offset, length)
    await writer.open(create=create)
    try:
        received, _ = await pump(
            resp, chunk, tracker, lambda _, pieces: writer.write(pieces), flush_tail=True
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
) -> tuple[int, list[bytes]]:
    """Read a body in ``chunk``-sized pieces and hand them to ``write(position, pieces)``
    (which writes through aiofiles' thread), ``IO_SIZE`` at a time, in order.

    One write is in flight while the next piece is read, so the network and the
    disk (and the MD5) overlap instead of taking turns; and the connection is
    not paused for the length of a thread hop every MiB. Returns the bytes
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
    try:
        while data := await read(chunk):
            pending.append(data)
            pending_size += len(data)
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
