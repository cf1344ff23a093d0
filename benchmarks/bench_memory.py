"""Peak memory of the engine for 10,000 and 100,000 small jobs: it must not grow,
and jobs that fail must cost about what jobs that succeed do; nor may a
listing's length grow the ``copy`` command or a Dask download's driver.

    python benchmarks/bench_memory.py [--jobs 5000 50000]   (pairs: 10,000 and 100,000 jobs)

A trivial aiohttp server in another process answers every PUT and GET at
once; each job count runs in a fresh client process (uploads of 100 bytes
from memory, then as many downloads to files, signed-URL jobs pulled lazily
from a generator, ``keep_results=False``) and reports its peak RSS. The same
runs again with every job failing (the server answers 403 AccessDenied to
each), whose failures the batch keeps: the row "all fail" shows what that
costs (a kept failure is about half a kilobyte: its result, its error, its
URL and path).

The server also answers ListObjectsV2 with synthetic keys (prefix ``n<N>/``
lists N keys of 100 bytes, 1,000 a page, 1,000 a folder), so two more rows
run what a user runs over a bucket of N keys: ``asyncpresign copy`` (the
command itself, in the client process: listing, filters, signing and the
copies) and the driver's side of ``download --dask-scheduler`` (the listing
streamed into download specs, their folders made, signed partition by
partition as ``transfer_on_dask`` does; no cluster, so no bytes move).

A last row needs no server: ``sync`` of 1,000,000 keys (``--sync-keys``) in
a dry run with ``--delete``, its two sides stub listings generated in key order
(the source's keys, the destination missing one in ten, one in seven of another
size, and one extra key in thirteen): the merge, the comparison and the plan
(to /dev/null), which must stay flat however many keys there are.
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
PAGE = 1000
def listing(request):
    prefix = request.query.get("prefix", "")
    count = int(prefix.strip("n/") or 0)
    start = int(request.query.get("continuation-token", "0"))
    stop = min(start + PAGE, count)
    items = "".join(
        f"<Contents><Key>{prefix}d{i // 1000:03d}/k{i:07d}</Key>"
        "<LastModified>2026-01-01T00:00:00.000Z</LastModified>"
        '<ETag>"0123456789abcdef0123456789abcdef"</ETag><Size>100</Size>'
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for i in range(start, stop)
    )
    more = stop < count
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>bench</Name><Prefix>{prefix}</Prefix><KeyCount>{stop - start}</KeyCount>"
        f"<MaxKeys>{PAGE}</MaxKeys><IsTruncated>{'true' if more else 'false'}</IsTruncated>"
        + (f"<NextContinuationToken>{stop}</NextContinuationToken>" if more else "")
        + items + "</ListBucketResult>"
    )
    return web.Response(body=body.encode(), content_type="application/xml")
async def handle(request):
    if "list-type" in request.query:
        return listing(request)
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


def fake_credentials(port: int) -> None:
    """This process's AWS settings: the trivial server, credentials of its own."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })


def copy_client(port: int, keys: int) -> dict[str, float]:
    """``asyncpresign copy`` of a listing of ``keys`` keys, the command itself."""
    import contextlib
    import io

    from asyncpresign._cli import main as cli

    fake_credentials(port)
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cli(["copy", f"s3://bench/n{keys}/", "s3://bench/copied/", "--json",
                    "--concurrency", "64", "--checksum", "none"])
    summary = json.loads(out.getvalue())
    if code != 0 or summary["succeeded"] != keys:
        raise SystemExit(f"unexpected: exit {code}, {summary['succeeded']} of {keys} copied")
    return {
        "jobs": float(keys),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def sign_manifest_client(port: int, keys: int) -> dict[str, float]:
    """``asyncpresign sign get --manifest`` over a listing of ``keys`` keys: the
    entries stream into the manifest's file, so memory must not grow with them."""
    import contextlib
    import io

    from asyncpresign._cli import main as cli

    fake_credentials(port)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        manifest = os.path.join(folder, "jobs.jsonl")
        with contextlib.redirect_stderr(io.StringIO()):
            code = cli(["sign", "get", f"s3://bench/n{keys}/", "--manifest", manifest,
                        "--from", os.path.join(folder, "out")])
        with open(manifest, "rb") as f:
            lines = sum(1 for _ in f)
    if code != 0 or lines != keys:
        raise SystemExit(f"unexpected: exit {code}, {lines} of {keys} entries")
    return {
        "jobs": float(keys),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def dask_download_client(port: int, keys: int) -> dict[str, float]:
    """The driver's side of ``download --dask-scheduler`` over ``keys`` keys."""
    from asyncpresign import Filters, Signer
    from asyncpresign._cli_args import _parser
    from asyncpresign._cli_dask import _dask_downloads
    from asyncpresign.dask import _partitions, _sign_partition

    fake_credentials(port)

    async def run() -> int:
        signed = 0
        with tempfile.TemporaryDirectory() as folder:
            args = _parser().parse_args(["download", f"s3://bench/n{keys}/", folder])
            bad: list[tuple[str, str]] = []
            async with Signer() as signer:
                specs = _dask_downloads(args, signer, Filters(), bad)
                async for partition in _partitions(specs, 500):
                    payload, _ = await _sign_partition(list(enumerate(partition)), signer, 3600)
                    signed += len(payload)
            if bad:
                raise SystemExit(f"unexpected: {bad[:3]}")
        return signed

    start = time.perf_counter()
    signed = asyncio.run(run())
    if signed != keys:
        raise SystemExit(f"unexpected: {signed} of {keys} download specs signed")
    return {
        "jobs": float(keys),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def sync_client(keys: int) -> dict[str, float]:
    """A dry-run ``sync --delete`` of ``keys`` keys against two stub listings."""
    from collections.abc import AsyncIterator
    from typing import Any

    from asyncpresign import Filters, Journal, Plan
    from asyncpresign._sync import Listed, _Place, _Sync, s3_order

    def key(i: int) -> str:
        return f"d{i // 1000:03d}/k{i:07d}"

    async def source_side() -> AsyncIterator[Listed]:
        for i in range(keys):
            yield Listed(key(i), 100, 1_700_000_000.0, key(i))

    async def dest_side() -> AsyncIterator[Listed]:
        for i in range(keys):
            if i % 10:
                yield Listed(key(i), 101 if i % 7 == 0 else 100, 1_700_000_000.0, key(i))
            if i % 13 == 0:  # "k0000013x" sorts after "k0000013", before "k0000014"
                yield Listed(key(i) + "x", 100, 1_700_000_000.0, key(i) + "x")

    class StubSides(_Sync):
        def _side(self, place: _Place, signer: Any, *, source: bool) -> AsyncIterator[Listed]:
            return source_side() if source else dest_side()

    with open(os.devnull, "w") as devnull:
        run = StubSides(
            signer=None, dest_signer=None, engine=None,  # type: ignore[arg-type] # a dry run
            src=_Place("a", ""), dst=_Place("b", ""), delete=True, checksum=False,
            filters=Filters(), journal=Journal(None), expires_in=3600, progress=None,
            on_result=None, on_skip=None, dry_run=True, plan=Plan(devnull), order=s3_order,
        )
        start = time.perf_counter()
        result = asyncio.run(run.run())
    if result.new != len(range(0, keys, 10)) or result.deleted != len(range(0, keys, 13)):
        raise SystemExit(f"unexpected: {result}")
    return {
        "jobs": float(keys),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "new": result.new, "changed": result.changed, "unchanged": result.unchanged,
        "deleted": result.deleted,
    }


def sync_row(keys: int) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--listing-client", "sync", "0", str(keys)],
        capture_output=True, text=True, check=True,
    )
    row = json.loads(out.stdout)
    print(f"| {keys:,} | `sync --delete --dry-run`, stub listings (merge, compare, plan) "
          f"| {row['seconds']} | {row['peak_rss_mib']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, nargs="+", default=[5_000, 50_000],
                        help="upload+download pairs per row (default: 10,000 and 100,000 jobs)")
    parser.add_argument("--client", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--listing-client", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--sync-keys", type=int, nargs="+", default=[1_000_000],
                        help="keys in the sync row (default: 1,000,000)")
    parser.add_argument("--sync-only", action="store_true",
                        help="only the sync row (it needs no server)")
    args = parser.parse_args()
    if args.client:
        port, jobs, failing = args.client
        print(json.dumps(client(port, jobs, bool(failing))))
        return
    if args.listing_client:
        kind, port, keys = args.listing_client
        if kind == "sync":
            print(json.dumps(sync_client(int(keys))))
            return
        run = {"copy": copy_client, "sign-manifest": sign_manifest_client}.get(
            kind, dask_download_client
        )
        print(json.dumps(run(int(port), int(keys))))
        return
    if args.sync_only:
        print("| keys listed | what runs | seconds | client peak RSS (MiB) |")
        print("|---|---|---|---|")
        for keys in args.sync_keys:
            sync_row(keys)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        time.sleep(1.5)
        # An engine job is one transfer: N pairs are 2N jobs, half uploads.
        print("| jobs (uploads + downloads) | outcome | seconds | client peak RSS (MiB) "
              "| vs all succeed |")
        print("|---|---|---|---|---|")
        for jobs in args.jobs:
            succeeded = 0.0
            for failing in (False, True):
                out = subprocess.run(
                    [sys.executable, __file__, "--client", str(port), str(jobs), str(int(failing))],
                    capture_output=True, text=True, check=True,
                )
                row = json.loads(out.stdout)
                outcome = "all fail (403, failures kept)" if failing else "all succeed"
                rss = row["peak_rss_mib"]
                ratio = f"{rss / succeeded - 1:+.1%}" if failing else ""
                succeeded = rss
                print(f"| {2 * jobs:,} ({jobs:,} + {jobs:,}) | {outcome} | {row['seconds']} "
                      f"| {rss} | {ratio} |")
        print()
        print("| keys listed | what runs | seconds | client peak RSS (MiB) |")
        print("|---|---|---|---|")
        for kind, what in (("copy", "`asyncpresign copy` (list, sign, copy)"),
                           ("sign-manifest", "`sign get --manifest` (list, sign, write)"),
                           ("dask-download", "Dask download, the driver (list, folders, sign)")):
            for keys in (2 * jobs for jobs in args.jobs):  # as many keys as jobs above
                out = subprocess.run(
                    [sys.executable, __file__, "--listing-client", kind, str(port), str(keys)],
                    capture_output=True, text=True, check=True,
                )
                row = json.loads(out.stdout)
                print(f"| {keys:,} | {what} | {row['seconds']} | {row['peak_rss_mib']} |")
        for keys in args.sync_keys:
            sync_row(keys)
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
