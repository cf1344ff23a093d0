"""``asyncpresign demo``: the main job (sign, upload, download, verify) against a
local SeaweedFS, and the browser-upload example."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from pathlib import Path

import anyio
import anyio.to_thread

from ._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
)
from ._engine import TransferEngine
from ._exceptions import InvalidArgumentError
from ._models import (
    Download,
    Upload,
)
from ._progress import ProgressDisplay
from .testing import LocalS3


def _demo_web() -> int:
    """The browser-upload example from a source checkout (examples/web_upload.py)."""
    import runpy  # noqa: PLC0415 - only for this option

    example = Path(__file__).resolve().parent.parent / "examples" / "web_upload.py"
    if not example.is_file():
        raise InvalidArgumentError(
            "demo --web runs examples/web_upload.py from a source checkout of asyncpresign"
        )
    namespace = runpy.run_path(str(example))
    try:
        asyncio.run(namespace["serve"]())
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


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


async def _demo(root: Path, digests: dict[str, str], concurrency: int, quiet: bool) -> int:
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
            mode = "quiet" if quiet else "auto"
            t = time.perf_counter()
            with ProgressDisplay("upload", mode=mode, total=count, interval=0.5) as shown:
                up = await engine.run(
                    (Upload(p, src / n) for p, n in zip(puts, names, strict=True)),
                    progress=shown.on_bytes, on_result=shown.on_result,
                )
            up_seconds = time.perf_counter() - t

            gets = [await signer.presign_get(bucket, f"demo/{n}") for n in names]
            t = time.perf_counter()
            with ProgressDisplay("download", mode=mode, total=count, interval=0.5) as shown:
                down = await engine.run(
                    (Download(g, out / n) for g, n in zip(gets, names, strict=True)),
                    progress=shown.on_bytes, on_result=shown.on_result,
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
