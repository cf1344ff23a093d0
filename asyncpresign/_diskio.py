"""Streamed file I/O through aiofiles, in pieces of at least ``IO_SIZE``.

Large downloads are written here: the single stream of a download (appending
for a resume), and each range of a ranged download at its offset. Whole small
files keep the batching file thread (:mod:`._offload`), which the benchmark
shows cheaper for them (``benchmarks/bench_files.py``).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable
from typing import Any

import aiofiles
import aiofiles.os
import anyio.to_thread

from ._checksums import Verifier
from ._exceptions import IntegrityError, LocalFileError
from ._files import PartialFile, describe_os_error, partial_opener, write_sidecar

__all__ = ["RangeWriter", "StreamWriter"]


def _write_error(dest: str, exc: OSError) -> LocalFileError:
    return LocalFileError(
        f"cannot write download destination {dest!r}: {describe_os_error(exc)}",
        dest,
        errno=exc.errno,
    )


class StreamWriter:
    """Writes a download's bytes in order into its partial file, checking them
    (the partial file's verifier: CRC or MD5) in a second thread at the same time."""

    def __init__(self, partial: PartialFile) -> None:
        self.partial = partial
        self._file: Any = None

    @property
    def opened(self) -> bool:
        return self._file is not None

    async def _open(self) -> None:
        partial = self.partial
        try:
            if partial.appending:
                if partial.verifier is not None:
                    await anyio.to_thread.run_sync(partial.hash_existing)
                self._file = await aiofiles.open(partial.path, "ab", opener=partial_opener)
                partial.size = await anyio.to_thread.run_sync(os.path.getsize, partial.path)
            else:
                self._file = await aiofiles.open(partial.path, "wb", opener=partial_opener)
                partial.size = 0
                if partial.resumable:
                    await anyio.to_thread.run_sync(
                        write_sidecar, partial.path, partial.etag, partial.verifier
                    )
        except OSError as exc:
            raise _write_error(partial.dest, exc) from None

    async def write(self, pieces: list[bytes]) -> None:
        if self._file is None:
            await self._open()
        size = sum(map(len, pieces))
        verifier = self.partial.verifier
        at = self.partial.size
        try:
            if verifier is not None and not verifier.inline and size >= 64 * 1024:
                # MD5 (~0.6 GB/s) would hold the loop for ms: hash and write at
                # once, each in its own thread.
                await asyncio.gather(
                    write_at(self._file, pieces, at),
                    anyio.to_thread.run_sync(_update_all, verifier, pieces),
                )
            else:
                # A CRC takes ~0.1 ms per MiB here: less than a thread hop costs.
                if verifier is not None:
                    _update_all(verifier, pieces)
                await write_at(self._file, pieces, at)
        except OSError as exc:
            raise _write_error(self.partial.dest, exc) from None
        self.partial.size += size

    async def close(self) -> None:
        f, self._file = self._file, None
        await _close(f, self.partial.dest)


async def _close(f: Any, dest: str) -> None:
    if f is not None:
        try:
            await f.close()
        except OSError as exc:
            raise _write_error(dest, exc) from None


class RangeWriter:
    """Writes one range of a ranged download at its offset, through its own handle,
    after reserving the disk room the range's (checked) answer says it carries.
    (The range's CRC is taken by :func:`._download.pump` as each piece arrives.)"""

    def __init__(self, partial: PartialFile, offset: int, length: int) -> None:
        self.partial = partial
        self.offset = offset
        self.length = length
        self._file: Any = None
        self._written = 0

    async def open(self, *, create: bool) -> None:
        try:
            self._file = await aiofiles.open(
                self.partial.path, "wb" if create else "r+b", opener=partial_opener
            )
            await anyio.to_thread.run_sync(self._reserve)
            await self._file.seek(self.offset)
        except OSError as exc:
            await self.close()
            raise _write_error(self.partial.dest, exc) from None

    def _reserve(self) -> None:
        """Reserve the room now, so a full disk fails at once, not half-way."""
        if not self.length or not hasattr(os, "posix_fallocate"):
            return
        try:
            os.posix_fallocate(self._file.fileno(), self.offset, self.length)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise LocalFileError(
                    f"cannot make room for {self.length} bytes at {self.partial.dest!r}: "
                    f"{describe_os_error(exc)}",
                    self.partial.dest, errno=exc.errno,
                ) from None

    async def write(self, pieces: list[bytes]) -> None:
        size = sum(map(len, pieces))
        if self._written + size > self.length:
            # An answer longer than its range would write over the next range's
            # bytes (already checked, perhaps): refused before a byte of it lands.
            raise IntegrityError(
                f"the answer for bytes {self.offset}-{self.offset + self.length - 1} ran past "
                f"its {self.length} bytes"
            )
        at = self.offset + self._written
        self._written += size
        try:
            await write_at(self._file, pieces, at)
        except OSError as exc:
            raise _write_error(self.partial.dest, exc) from None

    async def close(self) -> None:
        f, self._file = self._file, None
        await _close(f, self.partial.dest)


def _update_all(check: Verifier, pieces: list[bytes]) -> None:
    for piece in pieces:
        check.update(piece)


def _iov_max() -> int:
    """How many buffers one pwritev may take (Linux: 1,024; POSIX promises 16)."""
    try:
        return max(16, os.sysconf("SC_IOV_MAX"))
    except (AttributeError, ValueError, OSError):  # no sysconf, or no such name here
        return 16


_IOV_MAX = _iov_max()


def _pwrite_all(fd: int, pieces: list[bytes], offset: int) -> None:
    """Write ``pieces`` at ``offset`` with ``pwritev``, as they came off the
    network: no joined copy of them first (that copy was ~10% of a large
    download's CPU). A short write (a signal, a nearly full disk) goes on from
    where it stopped; one that stores nothing is an error, not a loop."""
    buffers: list[bytes | memoryview] = [piece for piece in pieces if piece]
    index = 0
    while index < len(buffers):
        done = os.pwritev(fd, buffers[index : index + _IOV_MAX], offset)
        if done <= 0:
            raise OSError(errno.EIO, "the write stored nothing")
        offset += done
        while done:
            size = len(buffers[index])
            if done < size:
                buffers[index] = memoryview(buffers[index])[done:]
                break
            done -= size
            index += 1


_pwrite_in_thread = aiofiles.os.wrap(_pwrite_all)


async def write_at(file: Any, pieces: list[bytes], offset: int) -> None:
    """Write ``pieces`` at ``offset`` of aiofiles' ``file``, through aiofiles'
    executor: one ``pwritev`` where the platform has it; elsewhere one joined
    write at the file's position (which the callers keep at ``offset``)."""
    if hasattr(os, "pwritev"):
        await _outlive_cancellation(_pwrite_in_thread(file.fileno(), pieces, offset))
    else:
        await _outlive_cancellation(
            file.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        )


async def _outlive_cancellation(write: Awaitable[Any]) -> None:
    """Await a write running in a thread; if the caller is cancelled meanwhile,
    wait for the write to end before passing the cancellation on. A thread
    cannot be stopped: left running, it would write into the descriptor after
    the caller closed it, and the OS may have given that number to another file
    by then (a cancelled range's bytes landing in some other download)."""
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:
                continue  # already on the way out: the first cancellation is raised below
        if not task.cancelled():
            task.exception()  # seen: the cancellation matters more than its outcome
        raise
