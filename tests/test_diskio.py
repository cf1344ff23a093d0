"""Streamed writes at an offset (``_diskio.write_at``): the pieces land as given,
in order, whatever the kernel does with one pwritev."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import aiofiles
import anyio.to_thread
import pytest

from asyncpresign import _diskio


def _pieces(count: int, size: int) -> list[bytes]:
    return [bytes([n % 251]) * size for n in range(count)]


async def _write(path: Path, pieces: list[bytes], offset: int) -> None:
    async with aiofiles.open(path, "r+b") as f:
        await _diskio.write_at(f, pieces, offset)


@pytest.mark.anyio
async def test_pieces_land_at_the_offset_in_order(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    pieces = _pieces(40, 1000)
    await _write(path, pieces, 10)
    assert path.read_bytes() == b"x" * 10 + b"".join(pieces)


@pytest.mark.anyio
async def test_more_pieces_than_one_pwritev_takes_all_land(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.touch()
    pieces = _pieces(3 * _diskio._IOV_MAX + 7, 3)
    await _write(path, pieces, 0)
    assert path.read_bytes() == b"".join(pieces)


@pytest.mark.anyio
async def test_short_writes_go_on_from_where_they_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwritev
    calls = []

    def stingy(fd: int, buffers: list[bytes], offset: int) -> int:
        # Store at most 700 bytes per call, often mid-piece, as a kernel may.
        data = b"".join(bytes(b) for b in buffers)[:700]
        calls.append(len(buffers))
        return real(fd, [data], offset)

    monkeypatch.setattr(os, "pwritev", stingy)
    path = tmp_path / "f"
    path.touch()
    pieces = [*_pieces(9, 1000), b"", *_pieces(3, 10)]
    await _write(path, pieces, 0)
    assert path.read_bytes() == b"".join(pieces)
    assert len(calls) == -(-9030 // 700)


@pytest.mark.anyio
async def test_a_write_that_stores_nothing_is_an_error_not_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "pwritev", lambda fd, buffers, offset: 0)
    path = tmp_path / "f"
    path.touch()
    with pytest.raises(OSError, match="stored nothing"):
        await _write(path, _pieces(2, 10), 0)


@pytest.mark.parametrize("answer", [ValueError("unknown name"), -1])
def test_a_platform_without_iov_max_gets_posixs_16(
    monkeypatch: pytest.MonkeyPatch, answer: Exception | int
) -> None:
    def sysconf(name: str) -> int:
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(os, "sysconf", sysconf)
    assert _diskio._iov_max() == 16


@pytest.mark.anyio
async def test_a_cancelled_range_write_lands_before_its_file_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A thread cannot be stopped: if write_at gave up at once when cancelled,
    # its caller would close the descriptor while the thread still writes into
    # it, and the OS may have handed that number to another file meanwhile.
    real = os.pwritev
    started, release = threading.Event(), threading.Event()
    landed: list[int] = []

    def slow(fd: int, buffers: list[bytes], offset: int) -> int:
        started.set()
        release.wait(10)
        done = real(fd, buffers, offset)
        landed.append(done)
        return done

    monkeypatch.setattr(os, "pwritev", slow)
    path = tmp_path / "f"
    path.touch()
    async with aiofiles.open(path, "r+b") as f:
        write = asyncio.ensure_future(_diskio.write_at(f, _pieces(3, 100), 0))
        await anyio.to_thread.run_sync(started.wait, 10)
        write.cancel()
        try:
            await asyncio.sleep(0.05)
            assert not write.done(), "write_at returned while its thread was still writing"
        finally:
            release.set()
        with pytest.raises(asyncio.CancelledError):
            await write
        assert landed == [300]
    assert path.read_bytes() == b"".join(_pieces(3, 100))
