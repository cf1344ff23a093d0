"""The engine's concurrency bound, measured by a server that counts open requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asyncpresign import Download, TransferEngine, Upload

from .fault_server import FaultServer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("concurrency", [1, 4, 24])
async def test_run_reaches_but_never_exceeds_the_concurrency(
    concurrency: int, tmp_path: Path
) -> None:
    async with FaultServer(delay=0.05) as server, TransferEngine(concurrency=concurrency) as engine:
        jobs = [Upload(server.request("PUT", f"k{i}"), b"x" * 100) for i in range(concurrency * 4)]
        result = await engine.run(jobs)
    assert result.ok
    assert server.max_in_flight == concurrency
    assert engine.statistics().max_in_flight == concurrency


async def test_concurrency_above_aiohttps_default_pool_of_100_is_reached(tmp_path: Path) -> None:
    # Each request held 1 s: long enough for all 150 to start on a loaded machine.
    async with FaultServer(delay=1.0) as server, TransferEngine(concurrency=150) as engine:
        result = await engine.run(
            Upload(server.request("PUT", f"k{i}"), b"x") for i in range(300)
        )
    assert result.ok
    assert server.max_in_flight == 150


async def test_direct_calls_share_the_engines_bound() -> None:
    async with FaultServer(delay=0.05) as server, TransferEngine(concurrency=3) as engine:
        await asyncio.gather(
            *(engine.upload(server.request("PUT", f"k{i}"), b"abc") for i in range(12))
        )
    assert server.max_in_flight == 3


async def test_a_large_job_stream_is_pulled_lazily_not_turned_into_tasks(
    tmp_path: Path,
) -> None:
    pulled = 0
    most_tasks = 0

    def jobs(server: FaultServer) -> Iterator[Upload]:
        nonlocal pulled, most_tasks
        for i in range(3000):
            pulled += 1
            most_tasks = max(most_tasks, len(asyncio.all_tasks()))
            yield Upload(server.request("PUT", f"k{i % 50}"), b"y")

    async with FaultServer() as server, TransferEngine(concurrency=8) as engine:
        result = await engine.run(jobs(server), keep_results=False)
    assert pulled == 3000
    assert result.total == result.succeeded == 3000
    assert result.results == ()
    # 8 workers plus the test's own and the server's tasks; never one per job.
    assert most_tasks < 40


@pytest.mark.parametrize("iterable", ["sync", "async"])
async def test_the_workers_take_their_first_jobs_in_one_turn_of_the_loop(iterable: str) -> None:
    """Taking a job costs no turn of the event loop: the workers start their first
    transfers together. With a lock that yielded on every acquire, each job was
    taken a turn after the one before, one per turn; small objects paid for it in
    CPU (a turn of the loop per object) as well as in a slow start."""
    loop = asyncio.get_running_loop()
    turn = 0

    def tick() -> None:
        nonlocal turn
        turn += 1
        loop.call_soon(tick)

    taken_at: list[int] = []

    async with FaultServer(delay=0.05) as server, TransferEngine(concurrency=16) as engine:
        requests = [server.request("PUT", f"k{i}") for i in range(32)]

        def sync_jobs() -> Iterator[Upload]:
            for request in requests:
                taken_at.append(turn)
                yield Upload(request, b"x")

        async def async_jobs() -> AsyncIterator[Upload]:
            for job in sync_jobs():
                yield job

        loop.call_soon(tick)
        result = await engine.run(sync_jobs() if iterable == "sync" else async_jobs())
    assert result.succeeded == 32
    first = taken_at[:16]
    assert max(first) - min(first) <= 2, taken_at


async def test_one_failed_job_does_not_stop_the_others(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(concurrency=4) as engine:
        server.objects["there"] = b"content"
        jobs = [
            Download(server.request("GET", "there"), tmp_path / "a"),
            Download(server.request("GET", "missing"), tmp_path / "b"),
            Download(server.request("GET", "there"), tmp_path / "c"),
        ]
        result = await engine.run(jobs)
    assert result.succeeded == 2
    assert [r.index for r in result.failed] == [1]
    assert result.failed[0].status == 404
    assert (tmp_path / "a").read_bytes() == (tmp_path / "c").read_bytes() == b"content"
    assert not (tmp_path / "b").exists()


async def test_async_iterables_of_jobs_are_accepted(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(concurrency=2) as engine:

        async def jobs() -> object:
            for i in range(10):
                yield Upload(server.request("PUT", f"a{i}"), f"{i}".encode())

        result = await engine.run(jobs())  # type: ignore[arg-type]
    assert result.succeeded == 10
    assert server.objects["a7"] == b"7"


async def test_a_failed_jobs_error_keeps_its_facts_but_not_its_frames() -> None:
    """Failures are kept in the batch: without this, each one's traceback (and the
    hidden __context__) held the frames with the job's body buffer alive."""
    import socket

    from asyncpresign import RetryPolicy, TransportError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # nothing listens once closed
    async with TransferEngine(retry=RetryPolicy(attempts=2, initial_backoff=0)) as engine:
        batch = await engine.run(
            Upload(f"http://127.0.0.1:{dead}/k{i}", b"x" * (1 << 20)) for i in range(3)
        )
    assert batch.succeeded == 0
    for failed in batch.failed:
        error = failed.error
        assert isinstance(error, TransportError)
        assert error.attempts == 2
        assert "cannot connect" in str(error)
        assert error.__traceback__ is None
        assert error.__context__ is None
        assert error.__cause__ is None


async def test_a_kept_failure_costs_about_half_a_kilobyte(tmp_path: Path) -> None:
    """A batch keeps every failed job's result and error for the rest of the run:
    each must stay small: ~465 B per kept 404 (error 152 B and its args 48 B,
    result 120 B, redacted URL ~130 B, path ~70 B, seconds ~24 B). Before the
    errors kept their fields in slots and shared their message and status, the
    same failure cost ~800 B. The figure is the slope between two batch sizes,
    so the bounded caches a run fills (yarl's, urllib's, ours) cancel out."""
    import gc
    import tracemalloc

    from asyncpresign import HTTPStatusError

    async def kept_bytes(engine: TransferEngine, server: FaultServer, jobs: int) -> int:
        requests = [server.request("GET", f"missing-{jobs}-{i:05d}") for i in range(jobs)]
        # The in-process server's own allocations (logs, request counts) are not ours.
        theirs = [tracemalloc.Filter(False, "*/aiohttp/web*"),
                  tracemalloc.Filter(False, "*fault_server.py")]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot().filter_traces(theirs)
            batch = await engine.run(
                (Download(r, tmp_path / f"d{i % 10}") for i, r in enumerate(requests)),
                keep_results=False,
            )
            gc.collect()
            after = tracemalloc.take_snapshot().filter_traces(theirs)
            kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        finally:
            tracemalloc.stop()
        assert len(batch.failed) == jobs
        assert all(isinstance(f.error, HTTPStatusError) and f.status == 404 for f in batch.failed)
        return kept

    async with FaultServer() as server, TransferEngine(concurrency=16) as engine:
        small = await kept_bytes(engine, server, 400)
        large = await kept_bytes(engine, server, 1600)
    per_failure = (large - small) / 1200
    assert per_failure < 650, f"{per_failure:.0f} bytes per kept failure"
