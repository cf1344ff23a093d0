"""Microseconds per presigned URL: botocore, aiobotocore, obstore, and asyncpresign.

One process pinned to one core, 20,000 keys, expiry 3600 s, each method timed
over several rounds in the same run; the table gives the median per URL and
the speed-up over aiobotocore measured in this run. No network: signing only.

    python benchmarks/bench_sign.py [--keys 20000] [--rounds 5] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiobotocore
import botocore
import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config

import asyncpresign
from asyncpresign import Signer

BUCKET = "bench-bucket"
REGION = "eu-west-1"
ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
EXPIRES = 3600


def keys(n: int) -> list[str]:
    return [f"ingest/2026/11/28/object-{i:07d}.json" for i in range(n)]


async def time_async(fn: Callable[[list[str]], Awaitable[int]], names: list[str]) -> float:
    start = time.perf_counter()
    produced = await fn(names)
    elapsed = time.perf_counter() - start
    assert produced == len(names)
    return elapsed / len(names) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    names = keys(args.keys)
    config = {"signature_version": "s3v4", "s3": {"addressing_style": "virtual"}}

    sync_client = botocore.session.get_session().create_client(
        "s3", region_name=REGION, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
        config=Config(**config),  # type: ignore[arg-type]
    )

    async def run_botocore(ks: list[str]) -> int:
        for k in ks:
            sync_client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=EXPIRES
            )
        return len(ks)

    methods: dict[str, Callable[[list[str]], Awaitable[int]]] = {"botocore": run_botocore}
    async with AioSession().create_client(
        "s3", region_name=REGION, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
        config=AioConfig(**config),  # type: ignore[arg-type]
    ) as aio_client, Signer(
        region=REGION, access_key=ACCESS, secret_key=SECRET
    ) as signer:

        async def run_aiobotocore(ks: list[str]) -> int:
            for k in ks:
                await aio_client.generate_presigned_url(
                    "get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=EXPIRES
                )
            return len(ks)

        async def run_fast(ks: list[str]) -> int:
            for k in ks:
                await signer.presign_get(BUCKET, k, expires_in=EXPIRES)
            return len(ks)

        async def run_many(ks: list[str]) -> int:
            return len(await signer.presign_many("GET", BUCKET, ks, expires_in=EXPIRES))

        methods["aiobotocore"] = run_aiobotocore
        obstore_version = _add_obstore(methods)
        methods["asyncpresign presign_get (one by one)"] = run_fast
        methods["asyncpresign presign_many"] = run_many

        await run_fast(names[:100])  # learn the endpoint once, outside the timing
        samples: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.rounds):
            for name, fn in methods.items():  # interleaved, so drift hits all alike
                sample_keys = names if name not in ("botocore", "aiobotocore") else names[:4000]
                samples[name].append(await time_async(fn, sample_keys))

    base = statistics.median(samples["aiobotocore"])
    lines = [
        f"Signing one presigned GET URL, µs per URL (median of {args.rounds} rounds, "
        f"{args.keys} keys; botocore and aiobotocore timed on 4,000), one core, "
        f"{dt.date.today().isoformat()}, Python {platform.python_version()}, "
        f"botocore {botocore.__version__}, aiobotocore {aiobotocore.__version__}, "
        f"obstore {obstore_version or 'not installed'}, asyncpresign {asyncpresign.__version__}",
        "",
        "| method | µs per URL (median) | range | URLs per second | vs aiobotocore |",
        "|---|---|---|---|---|",
    ]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(
            f"| {name} | {median:.2f} | {min(values):.2f} to {max(values):.2f} | "
            f"{1e6 / median:,.0f} | {base / median:.1f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n", encoding="utf-8")


def _add_obstore(methods: dict[str, Callable[[list[str]], Awaitable[int]]]) -> str | None:
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return None
    store = S3Store(
        BUCKET, region=REGION, access_key_id=ACCESS, secret_access_key=SECRET,
        virtual_hosted_style_request=True,
    )

    async def run_obstore(ks: list[str]) -> int:
        return len(obstore.sign(store, "GET", ks, dt.timedelta(seconds=EXPIRES)))

    methods["obstore sign (list of keys)"] = run_obstore
    return str(getattr(obstore, "__version__", "?"))


if __name__ == "__main__":
    asyncio.run(main())
