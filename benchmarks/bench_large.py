"""One large object: single-stream vs multipart upload, single-stream vs ranged
download, and what each download check costs: CRC64NVME (the default), MD5, none.

    python benchmarks/bench_large.py [--mib 512] [--rounds 2]

Against a local SeaweedFS (signatures enforced), in one run, alternating the
methods each round; prints MB/s and the client's CPU seconds per GB (this
process's user + system time). The server shares the 2 cores, and SeaweedFS
spends about 9.5 CPU s per GB ingested, so uploads measure the server too.

The downloads read two objects: a multipart one (FULL_OBJECT CRC64NVME; its
ETag is no MD5) and a single-part one, uploaded with its CRC64NVME signed in
(so it has both a CRC and an MD5 ETag). "MD5" reads the latter through a
Signer without ChecksumMode, so only its ETag can be checked: as a stream,
hashed as it lands; in ranges, read back after (MD5 cannot be assembled).
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
            async with s3.signer() as signer, s3.signer(checksum=None) as md5_only:
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
                        sign = signer.sign_later("PUT", "large", "checked")
                        await single.upload(None, source, sign=sign)
                        get = await signer.presign_get("large", "multi")
                        md5_get = await md5_only.presign_get("large", "checked")
                        downloads: dict[str, Callable[[], Awaitable[object]]] = {
                            "download, single stream, CRC64NVME": lambda g=get: single.download(
                                g, Path(tmp, "d1")
                            ),
                            "download, ranged (8 MiB), CRC64NVME": lambda g=get: (
                                parallel.download(g, Path(tmp, "d2"))
                            ),
                            "download, single stream, MD5": lambda g=md5_get: single.download(
                                g, Path(tmp, "d3")
                            ),
                            "download, ranged (8 MiB), MD5": lambda g=md5_get: (
                                parallel.download(g, Path(tmp, "d4"))
                            ),
                            "download, ranged (8 MiB), no check": lambda g=get: (
                                parallel.download(g, Path(tmp, "d5"), verify=False)
                            ),
                        }
                        for name, fn in downloads.items():
                            results.setdefault(name, []).append(await measure(fn, size))
                        for name in ("d1", "d2", "d3", "d4", "d5"):
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
