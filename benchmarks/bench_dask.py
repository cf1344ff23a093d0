"""One engine against a 2-worker local Dask cluster, same files, same server, one run.

    python benchmarks/bench_dask.py [--files 2000] [--size 65536]

Uploads then downloads ``--files`` objects with (a) one TransferEngine in this
process and (b) transfer_on_dask over a LocalCluster of 2 worker processes,
against a local SeaweedFS, and prints objects/s and MB/s for each. On one
machine the cluster cannot add network cards, so this shows the overhead and
the CPU headroom, not the scale-out a real cluster gives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import distributed

from asyncpresign import Download, TransferEngine, Upload
from asyncpresign.dask import ObjectJob, transfer_on_dask
from asyncpresign.testing import LocalS3


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64 * 1024)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="asyncpresign-bench-dask-"))
    try:
        src = root / "src"
        src.mkdir()
        names = [f"f{i:05d}" for i in range(args.files)]
        for name in names:
            (src / name).write_bytes(os.urandom(args.size))
        total_mb = args.files * args.size / 1e6
        rows = []
        with LocalS3() as s3, distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0",
            local_directory=str(root / "dask"),
        ) as cluster, distributed.Client(cluster) as client:
            async with s3.signer() as signer:
                await signer.ensure_bucket("bench")
                for label in ("one engine", "dask, 2 workers"):
                    out = root / label.replace(" ", "-").replace(",", "")
                    out.mkdir()
                    for op in ("upload", "download"):
                        started = time.perf_counter()
                        if label == "one engine":
                            async with TransferEngine(concurrency=16) as engine:
                                if op == "upload":
                                    jobs = [
                                        Upload(await signer.presign_put("bench", n), src / n)
                                        for n in names
                                    ]
                                else:
                                    jobs = [
                                        Download(await signer.presign_get("bench", n), out / n)
                                        for n in names
                                    ]
                                result = await engine.run(jobs)
                                ok = result.ok
                        else:
                            summary = await transfer_on_dask(
                                client,
                                (
                                    ObjectJob(
                                        op=op,  # type: ignore[arg-type]
                                        bucket="bench",
                                        key=n,
                                        path=str((src if op == "upload" else out) / n),
                                    )
                                    for n in names
                                ),
                                signer=signer,
                                partition_size=250,
                                engine_options={"concurrency": 8},
                            )
                            ok = summary.ok
                        seconds = time.perf_counter() - started
                        rows.append((label, op, ok, args.files / seconds, total_mb / seconds))
        print(f"{args.files} objects of {args.size} bytes, local SeaweedFS, 2 cores shared")
        print("| client | op | ok | objects/s | MB/s |")
        print("|---|---|---|---|---|")
        for label, op, ok, rate, mbs in rows:
            print(f"| {label} | {op} | {ok} | {rate:.0f} | {mbs:.1f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
