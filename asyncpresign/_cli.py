"""The ``asyncpresign`` command line."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from ._engine import TransferEngine
from ._exceptions import AsyncPresignError
from ._models import Download, Upload
from .testing import LocalS3

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncpresign",
        description="Move data through S3 presigned URLs.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="start a local S3 server, move a few hundred files both ways, verify every byte",
    )
    demo.add_argument("--files", type=int, default=300, help="how many files (default 300)")
    demo.add_argument("--concurrency", type=int, default=16)
    demo.add_argument("--seed", type=int, default=7, help="seed for the file sizes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except AsyncPresignError as exc:
        if args.debug:
            raise
        print(f"asyncpresign: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("asyncpresign: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        with tempfile.TemporaryDirectory(prefix="asyncpresign-demo-") as tmp:
            digests = _make_demo_files(Path(tmp, "src"), args.files, args.seed)
            return asyncio.run(_demo(Path(tmp), digests, args.concurrency))
    raise AssertionError(f"unhandled command {args.command!r}")


def _demo_sizes(count: int, seed: int) -> list[int]:
    """Mostly small files, some medium, a few large: what an ingestion job sees."""
    rng = random.Random(seed)
    sizes = []
    for i in range(count):
        if i % 50 == 49:
            sizes.append(rng.randint(2, 6) * 1024 * 1024 + rng.randint(0, 4095))
        elif i % 10 == 9:
            sizes.append(rng.randint(64, 512) * 1024)
        else:
            sizes.append(rng.randint(0, 32 * 1024))
    return sizes


def _make_demo_files(folder: Path, count: int, seed: int) -> dict[str, str]:
    """Write the demo's files; return their SHA-256 by name."""
    folder.mkdir()
    digests = {}
    for i, size in enumerate(_demo_sizes(count, seed)):
        data = os.urandom(size)
        name = f"file-{i:05d}.bin"
        (folder / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def _verify_demo_files(folder: Path, digests: dict[str, str]) -> list[str]:
    """Names of the files that are missing or differ."""
    return [
        name
        for name, digest in digests.items()
        if not (folder / name).is_file()
        or hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest
    ]


async def _demo(root: Path, digests: dict[str, str], concurrency: int) -> int:
    bucket = "asyncpresign-demo"
    src, out = root / "src", root / "out"
    await anyio.Path(out).mkdir()
    names = sorted(digests)
    count = len(names)
    total = sum(r.st_size for r in [await anyio.Path(src / n).stat() for n in names])
    print(f"asyncpresign demo: {count} files, {total / 1e6:.1f} MB")
    started = time.perf_counter()
    async with LocalS3() as s3:
        print(
            f"local S3 (SeaweedFS, signatures enforced) at {s3.endpoint_url}, "
            f"up in {time.perf_counter() - started:.1f} s"
        )
        async with s3.signer() as signer, TransferEngine(concurrency=concurrency) as engine:
            await signer.ensure_bucket(bucket)

            t = time.perf_counter()
            puts = [await signer.presign_put(bucket, f"demo/{n}") for n in names]
            sign_seconds = time.perf_counter() - t
            t = time.perf_counter()
            up = await engine.run(Upload(p, src / n) for p, n in zip(puts, names, strict=True))
            up_seconds = time.perf_counter() - t

            gets = [await signer.presign_get(bucket, f"demo/{n}") for n in names]
            t = time.perf_counter()
            down = await engine.run(
                Download(g, out / n) for g, n in zip(gets, names, strict=True)
            )
            down_seconds = time.perf_counter() - t
    bad = await anyio.to_thread.run_sync(_verify_demo_files, out, digests)
    print(f"signed     {count} PUT URLs, {sign_seconds / count * 1e6:.0f} µs per URL")
    _report("uploaded  ", up.succeeded, count, up.nbytes, up_seconds)
    _report("downloaded", down.succeeded, count, down.nbytes, down_seconds)
    for failure in (*up.failed, *down.failed):
        print(f"  failed: {failure.url}: {failure.error}")
    if bad or not (up.ok and down.ok):
        print(f"FAILED: {len(bad)} files missing or different")
        return EXIT_FAILED
    print(f"verified   {count} files byte for byte (SHA-256): all identical")
    return EXIT_OK


def _report(what: str, done: int, count: int, nbytes: int, seconds: float) -> None:
    print(
        f"{what} {done}/{count} files, {nbytes / 1e6:.1f} MB in {seconds:.2f} s: "
        f"{done / seconds:.0f} files/s, {nbytes / 1e6 / seconds:.0f} MB/s"
    )
