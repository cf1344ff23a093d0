"""Peak memory of the engine for 10,000 and 100,000 small jobs: it must not grow,
and jobs that fail must cost about what jobs that succeed do.

    python benchmarks/bench_memory.py [--jobs 10000 100000]

A trivial aiohttp server in another process answers every PUT and GET at
once; each job count runs in a fresh client process (uploads of 100 bytes
from memory, then as many downloads to files, signed-URL jobs pulled lazily
from a generator, ``keep_results=False``) and reports its peak RSS. The same
runs again with every job failing (the server answers 403 AccessDenied to
each), whose failures the batch keeps: the row "failing" shows what that
costs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

SERVER = """
import sys
from aiohttp import web
BODY = b"y" * 100
DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
          b'<Message>Access Denied</Message></Error>')
async def handle(request):
    if request.path.startswith("/fail/"):
        await request.read()
        return web.Response(status=403, body=DENIED, content_type="application/xml")
    if request.method == "PUT":
        await request.read()
        return web.Response(status=200, headers={"ETag": '"0"'})
    return web.Response(body=BODY)
app = web.Application()
app.router.add_route("*", "/{k:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def client(port: int, jobs: int, failing: bool) -> dict[str, float]:
    from asyncpresign import Download, PresignedRequest, TransferEngine, Upload

    far = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)

    def request(method: str, i: int) -> PresignedRequest:
        return PresignedRequest(
            method=method,  # type: ignore[arg-type]
            url=f"http://127.0.0.1:{port}/{'fail/' if failing else ''}k{i}?X-Amz-Signature=x",
            expires_at=far,
        )

    async def run() -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as folder:
            async with TransferEngine(concurrency=64) as engine:
                start = time.perf_counter()
                up = await engine.run(
                    (Upload(request("PUT", i), b"x" * 100) for i in range(jobs)),
                    keep_results=False,
                )
                down = await engine.run(
                    (Download(request("GET", i), os.path.join(folder, str(i % 1000)))
                     for i in range(jobs)),
                    keep_results=False,
                )
                failures = len(up.failed) + len(down.failed)
                if failures != (2 * jobs if failing else 0):
                    raise SystemExit(f"unexpected: {failures} failures of {2 * jobs} jobs")
                return time.perf_counter() - start, float(up.total + down.total)

    seconds, total = asyncio.run(run())
    return {
        "jobs": float(jobs),
        "transfers": total,
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--client", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, jobs, failing = args.client
        print(json.dumps(client(port, jobs, bool(failing))))
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        time.sleep(1.5)
        print("| jobs (each: one upload and one download) | outcome | seconds "
              "| client peak RSS (MiB) |")
        print("|---|---|---|---|")
        for jobs in args.jobs:
            for failing in (False, True):
                out = subprocess.run(
                    [sys.executable, __file__, "--client", str(port), str(jobs), str(int(failing))],
                    capture_output=True, text=True, check=True,
                )
                row = json.loads(out.stdout)
                outcome = "all fail (403, failures kept)" if failing else "all succeed"
                print(f"| {jobs:,} | {outcome} | {row['seconds']} | {row['peak_rss_mib']} |")
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
