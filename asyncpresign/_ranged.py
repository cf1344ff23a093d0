"""The rest of a ranged download: parallel byte ranges written at their offsets,
each checked against the object's size and ETag, then the whole file checked."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace

import anyio
import anyio.to_thread

from . import _files
from ._attempts import Runtime, Tracker, run_workers
from ._checks import check_part_answer
from ._checksums import Crc, encode
from ._download import DownloadState, receive_at
from ._exceptions import HTTPStatusError, IntegrityError
from ._models import PresignedRequest, SignFunction, TransferResult
from ._retry import RetryPolicy
from ._transport import Response

__all__ = ["check_range_status", "fetch_ranges"]


async def fetch_ranges(
    rt: Runtime,
    first: TransferResult,
    *,
    partial: _files.PartialFile,
    state: DownloadState,
    sign: SignFunction | None,
    policy: RetryPolicy,
    chunk: int,
    tracker: Tracker,
) -> TransferResult:
    """Fetch the ranges after the first in parallel, then check and commit the file."""
    started = time.perf_counter()
    ranges = iter(state.ranges)
    most_attempts = first.attempts

    async def fetch(first_byte: int, last_byte: int) -> None:
        nonlocal most_attempts

        async def attempt(req: PresignedRequest, child: Tracker) -> TransferResult:
            return await _get_range_once(
                rt, req, partial=partial, state=state, first_byte=first_byte,
                last_byte=last_byte, chunk=chunk, tracker=child,
            )

        result = await rt.with_retries(
            state.request, sign, policy, attempt, method="GET", replayable=True,
            tracker=Tracker(None, first.url, parent=tracker),
        )
        most_attempts = max(most_attempts, result.attempts)

    expected_md5 = state.etag.strip('"').lower() if state.verify_md5 and state.etag else None
    md5 = PrefixMd5(partial, state.part_size) if expected_md5 else None

    async def worker() -> None:
        for first_byte, last_byte in ranges:
            await fetch(first_byte, last_byte)
            if md5 is not None:
                await md5.landed(first_byte, last_byte + 1)

    await run_workers(min(rt.concurrency, len(state.ranges)), worker)
    verified = None
    if state.checksum is not None:
        # The ranges' CRCs, combined in order, are the file's: no second pass.
        whole = Crc(state.checksum[0])
        for start in sorted(state.range_crcs):
            whole.extend(state.range_crcs[start])
        if whole.length != state.total or whole.value != state.checksum[1]:
            await anyio.to_thread.run_sync(partial.discard)
            raise WholeFileMismatch(
                f"{whole.algorithm.upper()} of the downloaded bytes {whole.b64} does not match "
                f"the object's {encode(whole.algorithm, state.checksum[1])}",
                url=first.url,
                attempts=most_attempts,
            )
        verified = whole.algorithm
    checked_md5 = None
    if md5 is not None and expected_md5 is not None:
        checked_md5 = (await md5.finish(state.total), expected_md5)
    mismatch = await anyio.to_thread.run_sync(partial.finish_ranged, state.total, checked_md5)
    if mismatch is not None:
        raise WholeFileMismatch(mismatch, url=first.url, attempts=most_attempts)
    return replace(
        first,
        nbytes=state.total,
        seconds=first.seconds + time.perf_counter() - started,
        attempts=most_attempts,
        verified=verified or ("md5" if checked_md5 else None),
    )


class PrefixMd5:
    """The MD5 of a file whose ranges land out of order, taken while they land.

    An MD5 runs front to back and cannot be assembled from pieces (a CRC can),
    so it used to be one read back of the whole file after its last range:
    ~110 ms per 64 MiB with the network idle. Here, whenever the ranges written
    so far extend the prefix already hashed, the worker whose range completed
    it hashes on (a read back from the page cache, in a thread) while the other
    workers keep fetching; :meth:`finish` hashes what is left. One hashes at a
    time: a worker that finds another at it leaves its range to that one."""

    def __init__(self, partial: _files.PartialFile, first_part: int) -> None:
        self._partial = partial
        self._digest = hashlib.md5(usedforsecurity=False)
        self._hashed_to = 0
        self._landed = {0: first_part}  # start -> end (exclusive) of ranges not yet hashed
        self._busy = False

    async def landed(self, start: int, end: int) -> None:
        self._landed[start] = end
        if not self._busy:
            await self._hash_on()

    async def finish(self, total: int) -> str:
        """The file's MD5, once every range has landed."""
        await self._hash_on()
        if self._hashed_to != total:
            raise IntegrityError(
                f"ranges reached byte {self._hashed_to} of {total}", url=self._partial.dest
            )
        return self._digest.hexdigest()

    async def _hash_on(self) -> None:
        self._busy = True
        try:
            while (end := self._landed.pop(self._hashed_to, None)) is not None:
                await anyio.to_thread.run_sync(
                    self._partial.hash_region, self._hashed_to, end - self._hashed_to,
                    self._digest.update,
                )
                self._hashed_to = end
        finally:
            self._busy = False


class WholeFileMismatch(IntegrityError):
    """Internal: a ranged download's assembled file failed its check; which range
    was wrong cannot be told, so the whole download is tried again."""


async def _get_range_once(
    rt: Runtime,
    request: PresignedRequest,
    *,
    partial: _files.PartialFile,
    state: DownloadState,
    first_byte: int,
    last_byte: int,
    chunk: int,
    tracker: Tracker,
) -> TransferResult:
    assert state.etag is not None
    extra = {"Range": f"bytes={first_byte}-{last_byte}", "If-Match": state.etag}
    length = last_byte - first_byte + 1
    async with rt.transport.request("GET", request.url, request.headers, extra=extra) as resp:
        shown = resp.shown
        await check_range_status(resp)
        check_part_answer(resp.status, resp.headers, (first_byte, last_byte), state.total, shown)
        # Room is reserved only now, when this answer shows it carries the range.
        crc = Crc(state.checksum[0]) if state.checksum else None
        # One byte past the range is read, so an answer longer than its
        # Content-Range says fails (RangeWriter refuses to write past the range).
        received = await receive_at(
            resp, partial, first_byte, length, chunk=chunk, tracker=tracker, crc=crc,
            limit=length + 1,
        )
    if received != length:
        raise IntegrityError(
            f"range {first_byte}-{last_byte} ended after {received} bytes", url=shown
        )
    if crc is not None:
        state.range_crcs[first_byte] = crc
    return TransferResult(url=shown, nbytes=received, status=206, etag=state.etag)


async def check_range_status(resp: Response) -> None:
    """A request asked ``If-Match`` an ETag must get a 2xx: a 412 says the object
    was replaced meanwhile; anything else is the server's error."""
    if resp.status == 412:
        raise object_changed(resp.shown)
    if not 200 <= resp.status < 300:
        raise await resp.status_error()


def object_changed(shown: str) -> HTTPStatusError:
    """What a range asked ``If-Match`` the first answer's ETag hears when the
    object was replaced meanwhile: its bytes would not fit the others."""
    return HTTPStatusError(
        "the object changed while it was being downloaded (its ETag no longer "
        "matches); download it again",
        status=412, code="PreconditionFailed", url=shown,
    )
