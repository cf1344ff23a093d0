"""One large object: single-stream vs multipart upload, single-stream vs ranged download.

    python benchmarks/bench_large.py [--mib 512] [--rounds 2]

Against a local SeaweedFS (signatures enforced), in one run, alternating the
methods each round; prints MB/s and the client's CPU seconds per GB (this
process's user + system time). The server shares the 2 cores, and SeaweedFS
spends about 9.5 CPU s per GB ingested, so uploads measure the server too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from asyncpresign import TransferEngine
from asyncpresign.testing import LocalS3


def _write_random(path: Path, mib: int) -> None:
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1024 * 1024))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(fn: Callable[[], Awaitable[object]], size: int) -> tuple[float, float]:
    start_cpu, start = cpu(), time.perf_counter()
    await fn()
    seconds, used = time.perf_counter() - start, cpu() - start_cpu
    return size / 1e6 / seconds, used / (size / 1e9)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="asyncpresign-bench-large-") as tmp:
        source = Path(tmp, "source")
        await asyncio.to_thread(_write_random, source, args.mib)
        results: dict[str, list[tuple[float, float]]] = {}
        with LocalS3() as s3:
            async with s3.signer() as signer:
                await signer.ensure_bucket("large")
                single = TransferEngine(multipart_threshold=None)
                parallel = TransferEngine()  # 8 MiB parts and ranges, 16 at a time
                async with single, parallel:
                    for _ in range(args.rounds):
                        put = await signer.presign_put("large", "single")
                        methods: dict[str, Callable[[], Awaitable[object]]] = {
                            "upload, single stream": lambda p=put: single.upload(p, source),
                            "upload, multipart (8 MiB parts)": lambda: parallel.upload_large(
                                signer, "large", "multi", source
                            ),
                        }
                        for name, fn in methods.items():
                            results.setdefault(name, []).append(await measure(fn, size))
                        get = await signer.presign_get("large", "multi")
                        downloads: dict[str, Callable[[], Awaitable[object]]] = {
                            "download, single stream": lambda g=get: single.download(
                                g, Path(tmp, "d1")
                            ),
                            "download, ranged (8 MiB ranges)": lambda g=get: parallel.download(
                                g, Path(tmp, "d2")
                            ),
                        }
                        for name, fn in downloads.items():
                            results.setdefault(name, []).append(await measure(fn, size))
                        for name in ("d1", "d2"):
                            await anyio.Path(tmp, name).unlink()
    print(f"One {args.mib} MiB object, local SeaweedFS, {args.rounds} rounds (median)")
    print("| method | MB/s | client CPU s/GB |")
    print("|---|---|---|")
    for name, rows in results.items():
        print(
            f"| {name} | {statistics.median(r[0] for r in rows):.0f} | "
            f"{statistics.median(r[1] for r in rows):.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
