"""Client CPU per small GET: aiohttp against asyncpresign's lean HTTP/1.1 client.

    python benchmarks/bench_http.py [--requests 3000] [--rounds 5]

Both fetch the same presigned 1 KiB objects from rclone ``serve s3`` on
127.0.0.1, 16 requests at once, alternating round by round in one process;
printed are requests per second and the client's CPU (user + system) per
request, with their medians. aiohttp is set up as the engine set it up before
(no cookies, no auto headers, no decompression), so the difference is the
request path itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import bench_transfers as bt

CONCURRENT = 16


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _timed(urls: list[str], fetch: Callable[[str], Awaitable[None]]) -> tuple[float, float]:
    pending = iter(urls)

    async def worker() -> None:
        for url in pending:
            await fetch(url)

    started, cpu = time.perf_counter(), _cpu()
    await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
    return time.perf_counter() - started, _cpu() - cpu


async def with_aiohttp(urls: list[str]) -> tuple[float, float]:
    import aiohttp
    from yarl import URL

    async with aiohttp.ClientSession(
        skip_auto_headers=("Content-Type", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    ) as session:

        async def fetch(url: str) -> None:
            async with session.get(URL(url, encoded=True), allow_redirects=False) as resp:
                await resp.read()

        return await _timed(urls, fetch)


async def with_lean(urls: list[str]) -> tuple[float, float]:
    from asyncpresign._http1 import HTTP1Pool

    pool = HTTP1Pool(connect_timeout=30, read_timeout=60, total_timeout=None,
                     max_idle=2 * CONCURRENT, user_agent="bench")

    async def fetch(url: str) -> None:
        async with pool.open("GET", url, {}) as resp:
            await resp.read()

    try:
        return await _timed(urls, fetch)
    finally:
        pool.close()


async def sign(endpoint: str, count: int) -> list[str]:
    from asyncpresign import Signer

    async with Signer(endpoint_url=endpoint, region=bt.REGION, access_key=bt.AK,
                      secret_key=bt.SK, addressing_style="path") as signer:
        return [(await signer.presign_get(bt.BUCKET, f"p/o{i}")).url for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="asyncpresign-bench-http-"))
    server = bt.Server("rclone", root)
    try:
        folder = root / "server" / bt.BUCKET / "p"
        folder.mkdir(parents=True)
        for i in range(args.requests):
            (folder / f"o{i}").write_bytes(os.urandom(1024))
        urls = asyncio.run(sign(server.endpoint, args.requests))
        results: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "lean": []}
        for _ in range(args.rounds):
            for name, client in (("aiohttp", with_aiohttp), ("lean", with_lean)):
                seconds, cpu = asyncio.run(client(urls))
                results[name].append((args.requests / seconds, cpu / args.requests * 1e6))
                print(f"{name:8} {results[name][-1][0]:7.0f} req/s "
                      f"{results[name][-1][1]:6.0f} µs CPU/request", flush=True)
        for name, runs in results.items():
            print(f"median {name:8} {statistics.median(r[0] for r in runs):7.0f} req/s "
                  f"{statistics.median(r[1] for r in runs):6.0f} µs CPU/request")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
