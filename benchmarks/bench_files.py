"""Whole small files: the engine's batching file thread against aiofiles, side by side.

    python benchmarks/bench_files.py [--files 2000] [--rounds 5]

The file work of workloads A (16 KiB objects) and C (1 KiB objects), without
the network: an upload reads each file whole; a download writes each body to
a hidden partial file and renames it into place. ``concurrency`` tasks run at
once, as in the engine. Each variant runs in the same process, alternating
per round, and reports the CPU per file (process time, all threads) and the
files per second; the ratio is aiofiles / file thread (above 1: aiofiles costs
more). The engine keeps the file thread for whole small files only while it
wins here; streams (large files, ranges) go through aiofiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import aiofiles
import aiofiles.os

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncpresign import _files
from asyncpresign._offload import FileThread

WORKLOADS = {"A": 16 * 1024, "C": 1024}
CONCURRENCY = 64


async def run_tasks(count: int, job: Callable[[int], Awaitable[None]]) -> None:
    pending = iter(range(count))

    async def worker() -> None:
        for index in pending:
            await job(index)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def thread_read(folder: Path, count: int, files: FileThread) -> None:
    async def job(i: int) -> None:
        size, data = await files.run(_files.open_source, str(folder / f"f{i}"), 1 << 20)
        assert data is not None
        assert len(data) == size

    await run_tasks(count, job)


async def aiofiles_read(folder: Path, count: int) -> None:
    async def job(i: int) -> None:
        async with aiofiles.open(folder / f"f{i}", "rb") as f:
            data = await f.read()
        assert data

    await run_tasks(count, job)


async def thread_write(folder: Path, count: int, body: bytes, files: FileThread) -> None:
    async def job(i: int) -> None:
        dest = str(folder / f"d{i}")
        partial = _files.PartialFile(dest, _files.partial_path(dest, unique=True))
        partial.prepare(appending=False, etag=None, verify=False, resumable=False)
        await files.run(partial.finish, [body], None)

    await run_tasks(count, job)


async def aiofiles_write(folder: Path, count: int, body: bytes) -> None:
    async def job(i: int) -> None:
        dest = folder / f"d{i}"
        partial = folder / f".d{i}.partial"
        async with aiofiles.open(partial, "wb") as f:
            await f.write(body)
        await aiofiles.os.replace(partial, dest)

    await run_tasks(count, job)


def measure(run: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    async def main() -> None:
        await run()

    asyncio.run(main())
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.files} files per run, {CONCURRENCY} at once, {args.rounds} rounds; "
          "median CPU per file (all threads) and files/s\n")
    print("| workload | operation | file thread | aiofiles | aiofiles / thread (CPU) |")
    print("|---|---|---|---|---|")
    for name, size in WORKLOADS.items():
        body = os.urandom(size)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for i in range(args.files):
                (folder / f"f{i}").write_bytes(body)
            results: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(args.rounds):
                files = FileThread()
                variants: list[tuple[tuple[str, str], Callable[[], Awaitable[None]]]] = [
                    (("read", "thread"), partial(thread_read, folder, args.files, files)),
                    (("read", "aiofiles"), partial(aiofiles_read, folder, args.files)),
                    (("write", "thread"), partial(thread_write, folder, args.files, body, files)),
                    (("write", "aiofiles"), partial(aiofiles_write, folder, args.files, body)),
                ]
                for key, run in variants:
                    results.setdefault(key, []).append(measure(run))
                files.close()
            for op in ("read", "write"):
                cells = []
                cpu_per_file = {}
                for variant in ("thread", "aiofiles"):
                    runs = results[(op, variant)]
                    cpu = statistics.median(c for c, _ in runs) / args.files * 1e3
                    rate = args.files / statistics.median(w for _, w in runs)
                    cpu_per_file[variant] = cpu
                    cells.append(f"{cpu:.3f} ms, {rate:,.0f}/s")
                ratio = cpu_per_file["aiofiles"] / cpu_per_file["thread"]
                label = "upload (read whole)" if op == "read" else "download (write, rename)"
                print(f"| {name} ({size // 1024} KiB) | {label} | {cells[0]} | {cells[1]} "
                      f"| {ratio:.2f}x |")


if __name__ == "__main__":
    main()
