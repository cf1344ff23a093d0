"""What production object stores do every day, against SeaweedFS behind the
fault proxy: a restart, throttling storms (with and without Retry-After), a low
descriptor limit, SIGTERM mid-run and a trickling server. Each run must end
with every job done, or in bounded time with typed errors and nothing left
behind."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from asyncpresign import (
    RetryPolicy,
    Signer,
    Timeout,
    TransferEngine,
    TransferTimeoutError,
    Upload,
)
from asyncpresign._bulk import Filters, upload_tree, walk_files
from asyncpresign.testing import LocalS3

from .proxy import Rule, S3Proxy
from .rawserver import Reply, Request, Serve, fixed, head_bytes, trickle
from .test_cli import base_env, cli, make_tree, read_tree

pytestmark = pytest.mark.anyio

PARTIALS = "*.asyncpresign-partial*"


def small_uploads(
    signer: Signer, bucket: str, prefix: str, until: float | None = None, count: int = 10**9
) -> Iterator[Upload]:
    """Upload jobs of 1 KiB, ``count`` of them or as many as start before ``until``."""
    for i in range(count):
        if until is not None and time.monotonic() > until:
            return
        yield Upload(None, os.urandom(1024),
                     sign=signer.sign_later("PUT", bucket, f"{prefix}/{i:06d}"))


async def stored(signer: Signer, bucket: str, prefix: str) -> int:
    paginator = signer.client.get_paginator("list_objects_v2")
    count = 0
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix + "/"):
        count += len(page.get("Contents", []))
    return count


def rate(times: list[float], start: float, end: float) -> float:
    return sum(1 for t in times if start <= t < end) / (end - start)


async def test_a_server_down_for_five_seconds_mid_run_fails_no_job(
    proxied: Signer, proxy: S3Proxy, bucket: str
) -> None:
    jobs = 1500
    async with TransferEngine(concurrency=32) as engine, anyio.create_task_group() as tg:
        async def outage() -> None:
            while len(proxy.times) < 300:  # noqa: ASYNC110 - the proxy counts
                await anyio.sleep(0.01)
            await proxy.outage(5.0)

        tg.start_soon(outage)
        started = time.monotonic()
        batch = await engine.run(small_uploads(proxied, bucket, "restart", count=jobs))
    assert time.monotonic() - started > 5.0  # the outage did happen inside the run
    assert batch.failed == ()
    assert batch.succeeded == jobs
    assert any(result.attempts > 1 for result in batch.results)
    assert await stored(proxied, bucket, "restart") == jobs


async def throttling_storm(
    proxied: Signer, proxy: S3Proxy, bucket: str, prefix: str, retry_after: str | None
) -> tuple[TransferEngine, list[float], float, float, int]:
    """1 s of normal traffic, then 5 s in which half of all requests get 503
    SlowDown, then 2 s more of new jobs. Returns the engine, the request
    times, the storm's start and end, and the jobs' failures."""
    async with TransferEngine(concurrency=64) as engine:
        started = time.monotonic()
        storm_start, storm_end = started + 1.0, started + 6.0
        proxy.add(Rule("*", f"/{bucket}/{prefix}/", times=10**9, status=503, code="SlowDown",
                       message="Please reduce your request rate.", probability=0.5,
                       retry_after=retry_after))
        rule = proxy.rules[-1]
        rule.times = 0  # armed below, once normal traffic has been measured

        async def arm() -> None:
            await anyio.sleep(storm_start - time.monotonic())
            rule.until, rule.times = storm_end, 10**9

        async with anyio.create_task_group() as tg:
            tg.start_soon(arm)
            batch = await engine.run(
                small_uploads(proxied, bucket, prefix, until=storm_end + 2.0),
                keep_results=False,
            )
        return engine, list(proxy.times), storm_start, storm_end, len(batch.failed)


async def test_a_throttling_storm_without_retry_after_is_slowed_down_and_fails_no_job(
    proxied: Signer, proxy: S3Proxy, bucket: str
) -> None:
    engine, times, start, end, failed = await throttling_storm(
        proxied, proxy, bucket, "storm", retry_after=None
    )
    assert failed == 0
    before = rate(times, start - 0.8, start)
    during = rate(times, start + 1.0, end)
    # The adaptive limiter cuts the rate to well under what it was.
    after = rate(times, end + 1.0, end + 2.0)
    print(f"requests/s before the storm {before:.0f}, during {during:.0f}, after {after:.0f}")
    assert during < 0.6 * before, (before, during)
    (state,) = engine.statistics().endpoints
    assert state.throttle_responses >= 5


async def test_a_throttling_storm_with_retry_after_spreads_the_retries_and_fails_no_job(
    proxied: Signer, proxy: S3Proxy, bucket: str
) -> None:
    _, times, start, end, failed = await throttling_storm(
        proxied, proxy, bucket, "after", retry_after="1"
    )
    assert failed == 0
    # In lock-step every worker would come back in the same instant each
    # second (Retry-After: 1), silent between: a few tenths of a second would
    # hold nearly every request. Spread out, no tenth holds many of them.
    tenths = [0] * int((end - start - 1.0) * 10)
    for t in times:
        slot = int((t - start - 1.0) * 10)
        if 0 <= slot < len(tenths):
            tenths[slot] += 1
    print("requests per tenth of a second in the storm:", tenths)
    total = sum(tenths)
    assert total >= 5
    assert max(tenths) <= max(3, total // 4), tenths
    assert sum(1 for count in tenths if count) >= min(total, len(tenths)) // 2, tenths


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def test_a_descriptor_limit_of_256_with_concurrency_512_fails_no_job(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 800)
    env = {**base_env(tmp_path), **s3.env()}
    cli("upload", str(tmp_path / "src"), f"s3://{bucket}/fd", "--quiet", env=env)

    def download() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asyncpresign", "download", f"s3://{bucket}/fd",
             str(tmp_path / "out"), "--concurrency", "512", "--json"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
            preexec_fn=_low_descriptor_limit,
        )

    done = await anyio.to_thread.run_sync(download)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["failed"] == 0
    assert "open-file limit" in done.stderr  # it said why it ran fewer at a time
    assert read_tree(tmp_path / "out") == files


async def _sigterm_when(
    command: list[str], env: dict[str, str], ready: Callable[[], bool],
    signum: int = signal.SIGTERM,
) -> tuple[int, str]:
    # A suite run under nohup (or started in the background) has SIGHUP (SIGINT)
    # ignored, and a child inherits that: it would rightly go on through the
    # signal. A handled signal is reset to the default at exec instead.
    previous = {s: signal.signal(s, signal.default_int_handler)
                for s in (signal.SIGHUP, signal.SIGINT)}
    try:
        process = await anyio.open_process(command, env=env)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    deadline = time.monotonic() + 60
    while not ready():
        assert time.monotonic() < deadline, "the run never reached the point to stop it"
        await anyio.sleep(0.05)
    process.send_signal(signum)
    with anyio.fail_after(30):
        code = await process.wait()
    assert process.stderr is not None
    stderr = (await process.stderr.receive(65536)).decode() if code else ""
    return code, stderr


async def stalled_large_objects(
    signer: Signer, proxy: S3Proxy, bucket: str, prefix: str, count: int
) -> Rule:
    """``count`` objects of 20 MiB under ``prefix``, whose downloads through the
    proxy get their first part and then hang on every other range."""
    async with TransferEngine() as engine:
        for i in range(count):
            await engine.upload(await signer.presign_put(bucket, f"{prefix}/big{i}"),
                                os.urandom(20 * 1024 * 1024))
    rule = Rule("GET", f"/{bucket}/{prefix}/big", times=100, delay=120.0, ranged=True)
    proxy.add(rule)
    return rule


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"]
)
async def test_sigterm_or_sighup_mid_download_exits_128_plus_it_and_leaves_no_partial_file(
    s3: LocalS3, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path,
    signum: int, code: int,
) -> None:
    # SIGHUP (the terminal closed) used to kill the run on the spot, leaving
    # its partial files and open multipart uploads behind.
    await stalled_large_objects(signer, proxy, bucket, "t", 3)
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    out = tmp_path / "out"
    exit_code, stderr = await _sigterm_when(
        [sys.executable, "-m", "asyncpresign", "download", f"s3://{bucket}/t", str(out),
         "--journal", str(tmp_path / "j")],
        env,
        lambda: len(list(out.rglob(PARTIALS))) >= 3,
        signum,
    )
    assert exit_code == code
    assert f"terminated ({signal.Signals(signum).name})" in stderr
    assert "--journal" in stderr  # how to resume
    assert list(out.rglob(PARTIALS)) == []
    assert "Traceback" not in stderr


async def test_sigterm_mid_multipart_upload_aborts_it_and_exits_143(
    s3: LocalS3, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(os.urandom(24 * 1024 * 1024))
    proxy.add(Rule("PUT", "partNumber=2", times=100, delay=120.0))
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    code, stderr = await _sigterm_when(
        [sys.executable, "-m", "asyncpresign", "upload", str(tmp_path / "src"),
         f"s3://{bucket}/mp"],
        env,
        lambda: proxy.count(lambda m, t: m == "PUT" and "partNumber=2" in t) > 0,
    )
    assert code == 143
    assert "terminated" in stderr
    listing = await signer.client.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []


async def test_a_run_under_nohup_goes_on_through_sighup(
    s3: LocalS3, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 300)
    # Each PUT held 20 ms: the run lasts seconds, so the signal finds it running
    # (unheld, it could end before a fixed wait did, and the signal found no process).
    proxy.add(Rule("PUT", f"/{bucket}/nohup/", times=10_000, delay=0.02))
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}

    process = await anyio.open_process(
        ["nohup", sys.executable, "-m", "asyncpresign", "upload", str(tmp_path / "src"),
         f"s3://{bucket}/nohup", "--json", "--concurrency", "2"],
        env=env,
    )
    with anyio.fail_after(60):  # uploading, so its handlers are in place
        while proxy.count(lambda m, t: m == "PUT") < 20:  # noqa: ASYNC110 - another process
            await anyio.sleep(0.02)
    assert process.returncode is None
    process.send_signal(signal.SIGHUP)
    with anyio.fail_after(120):
        assert await process.wait() == 0
    listing = await signer.client.list_objects_v2(Bucket=bucket, Prefix="nohup/")
    assert listing["KeyCount"] == len(files)


async def test_partial_files_of_a_killed_run_are_removed_by_the_next_one(
    s3: LocalS3, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    rule = await stalled_large_objects(signer, proxy, bucket, "k", 2)
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    out = tmp_path / "out"
    process = await anyio.open_process(
        [sys.executable, "-m", "asyncpresign", "download", f"s3://{bucket}/k", str(out)],
        env=env,
    )
    while len(list(out.rglob(PARTIALS))) < 2:  # noqa: ASYNC110 - another process
        await anyio.sleep(0.05)
    process.kill()  # SIGKILL: no clean-up at all
    await process.wait()
    left = list(out.rglob(PARTIALS))
    assert len(left) == 2
    rule.times = 0
    again = await anyio.to_thread.run_sync(
        lambda: cli("download", f"s3://{bucket}/k", str(out), "--quiet", env=env)
    )
    assert again.returncode == 0
    assert list(out.rglob(PARTIALS)) == []
    assert sorted(p.name for p in out.rglob("*")) == ["big0", "big1"]


async def test_upload_tree_never_sends_partial_downloads(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.txt").write_bytes(b"real")
    (src / ".photo.jpg.asyncpresign-partial").write_bytes(b"half a photo")
    (src / ".photo.jpg.asyncpresign-partial.json").write_text("{}")
    (src / ".other.bin.4242-0123abcd7.asyncpresign-partial").write_bytes(b"half")
    assert [rel for _, rel, _ in walk_files(str(src), Filters())] == ["real.txt"]
    async with TransferEngine() as engine:
        batch = await upload_tree(signer, engine, src, bucket, "tree")
    assert batch.succeeded == 1
    assert await stored(signer, bucket, "tree") == 1


# -- a trickling server: bounded by the total timeout and the low-speed limit --------------


def trickling(_: Request) -> Reply:
    """One byte every 0.2 s: never silent long enough for the read timeout."""
    body = b"y" * 1000
    return Reply([head_bytes("HTTP/1.1 200 OK", f"Content-Length: {len(body)}"),
                  *trickle(body)], pause=0.2)


async def test_a_trickling_download_ends_at_the_total_timeout_typed_and_leaves_nothing(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(trickling)
    # The low-speed limit off: only the total bounds it here.
    async with TransferEngine(timeout=Timeout(total=1.5, read=10, min_rate=None)) as engine:
        started = time.monotonic()
        with pytest.raises(TransferTimeoutError, match=r"total timeout of 1\.5 s"):
            await engine.download(server.url + "/k", tmp_path / "k")
        elapsed = time.monotonic() - started
    assert elapsed < 4.0
    assert await anyio.to_thread.run_sync(os.listdir, tmp_path) == []


async def test_the_total_timeout_covers_the_retries_too(serve: Serve, tmp_path: Path) -> None:
    server = await serve(fixed(503, b"<Error><Code>SlowDown</Code></Error>", "Retry-After: 1"))
    async with TransferEngine(timeout=Timeout(total=2.0)) as engine:
        started = time.monotonic()
        with pytest.raises(TransferTimeoutError):
            await engine.upload(server.url + "/k", b"data")
    assert time.monotonic() - started < 4.0
    assert 1 <= len(server.requests) <= 3


async def test_the_cli_timeout_fails_a_trickling_transfer_in_bounded_time(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(trickling)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(
        {"op": "get", "url": server.url + "/k?X-Amz-Signature=x", "path": str(tmp_path / "k")}
    ) + "\n")
    started = time.monotonic()
    done = await anyio.to_thread.run_sync(lambda: cli(
        "transfer", str(manifest), "--timeout", "2", "--json",
        env=base_env(tmp_path), check=1,
    ))
    assert time.monotonic() - started < 30
    summary = json.loads(done.stdout)
    assert summary["failed"] == 1
    assert "total timeout" in done.stdout
    assert not (tmp_path / "k").exists()


async def test_retries_stop_early_for_every_job_once_the_endpoint_has_been_down_long() -> None:
    """A dead endpoint costs ``max_elapsed`` once, not once per wave of jobs."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = holder.getsockname()[1]
        policy = RetryPolicy(max_elapsed=1.0, initial_backoff=0.05, max_backoff=0.2)
        async with TransferEngine(concurrency=4, retry=policy) as engine:
            started = time.monotonic()
            batch = await engine.run(
                Upload(f"http://127.0.0.1:{port}/b/k{i}?X-Amz-Signature=x", b"x")
                for i in range(40)
            )
            elapsed = time.monotonic() - started
    assert len(batch.failed) == 40
    # Ten waves of four: without the shared clock, ten times the budget.
    assert elapsed < 4.0
    assert max(r.attempts for r in batch.failed) > 2
    assert min(r.attempts for r in batch.failed) == 1
