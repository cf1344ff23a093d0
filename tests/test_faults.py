"""Faults injected on purpose by a real local server, driven through the engine."""

from __future__ import annotations

import asyncio
import io
import os
import random
import time
from pathlib import Path

import pytest

from asyncpresign import (
    Download,
    HTTPStatusError,
    IntegrityError,
    PresignedRequest,
    ProgressEvent,
    RequestExpiredError,
    RetryPolicy,
    Timeout,
    TransferEngine,
    TransferTimeoutError,
    TransportError,
    Upload,
)

from .conftest import FAST_RETRY
from .fault_server import Fault, FaultServer

pytestmark = pytest.mark.anyio

BODY = os.urandom(3 * 1024 * 1024 + 123)  # several flushes to disk, not a round number


def only_the_file(folder: Path, name: str) -> None:
    """Exactly the finished file in the folder: no partial or temporary beside it."""
    assert sorted(os.listdir(folder)) == [name]


class Recorder:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    @property
    def total(self) -> int:
        return sum(e.delta for e in self.events)

    @property
    def took_back(self) -> bool:
        return any(e.delta < 0 for e in self.events)


# -- statuses ------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [None, "0"])
async def test_503_slowdown_twice_then_success_completes(
    tmp_path: Path, retry_after: str | None
) -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("status", 503, "SlowDown", retry_after=retry_after)] * 2)
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.attempts == 3
    assert (tmp_path / "f").read_bytes() == BODY
    assert server.requests[("GET", "k")] == 3


async def test_retry_after_is_waited_for(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.script("k", [Fault("status", 503, retry_after="0.4")])
        started = time.monotonic()
        await engine.upload(server.request("PUT", "k"), b"payload")
        waited = time.monotonic() - started
    assert waited >= 0.4
    assert server.objects["k"] == b"payload"


@pytest.mark.parametrize("status", [429, 500, 502, 504])
async def test_each_retryable_status_is_retried(status: int) -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.script("k", [Fault("status", status, "InternalError")])
        result = await engine.upload(server.request("PUT", "k"), b"x")
    assert result.attempts == 2


async def test_persistent_500_raises_the_last_error_with_its_attempts(tmp_path: Path) -> None:
    policy = RetryPolicy(attempts=3, initial_backoff=0, max_backoff=0)
    async with FaultServer() as server, TransferEngine(retry=policy) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("status", 500, "InternalError")] * 5)
        with pytest.raises(HTTPStatusError) as info:
            await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert info.value.status == 500
    assert info.value.code == "InternalError"
    assert info.value.attempts == 3
    assert server.requests[("GET", "k")] == 3
    assert os.listdir(tmp_path) == []


async def test_retry_policy_can_be_overridden_per_call() -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.script("k", [Fault("status", 503)] * 2)
        with pytest.raises(HTTPStatusError) as info:
            await engine.upload(
                server.request("PUT", "k"), b"x", retry=RetryPolicy(attempts=1)
            )
    assert info.value.attempts == 1


# -- bodies cut short ----------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [4096, 65536])
async def test_download_dropped_halfway_is_retried_and_progress_stays_true(
    tmp_path: Path, chunk_size: int
) -> None:
    progress = Recorder()
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("drop", after_bytes=len(BODY) // 2)])
        result = await engine.download(
            server.request("GET", "k"), tmp_path / "f", chunk_size=chunk_size, progress=progress
        )
    assert result.attempts == 2
    assert (tmp_path / "f").read_bytes() == BODY
    only_the_file(tmp_path, "f")
    assert progress.took_back  # the failed attempt's bytes were reported, then taken back
    assert progress.total == len(BODY)
    assert progress.events[-1].transferred == len(BODY)


async def test_download_dropped_every_time_fails_as_transport_error_leaving_nothing(
    tmp_path: Path,
) -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("drop", after_bytes=1000)] * 10)
        with pytest.raises(TransportError) as info:
            await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert isinstance(info.value, ConnectionError)
    assert info.value.attempts == FAST_RETRY.attempts
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("source_kind", ["path", "bytes", "file"])
async def test_upload_reset_midway_is_replayed_from_the_start(
    tmp_path: Path, source_kind: str
) -> None:
    path = tmp_path / "src"
    path.write_bytes(BODY)
    source: object = {
        "path": path,
        "bytes": BODY,
        "file": io.BytesIO(BODY),
    }[source_kind]
    progress = Recorder()
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.script("k", [Fault("reset_upload", after_bytes=len(BODY) // 3)])
        result = await engine.upload(
            server.request("PUT", "k"), source, progress=progress  # type: ignore[arg-type]
        )
    assert result.attempts == 2
    assert server.objects["k"] == BODY
    assert progress.total == len(BODY)


async def test_non_seekable_stream_is_not_retried_and_says_so() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def read(self, size: int = -1) -> bytes:
            return self._data.read(size)

    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.script("k", [Fault("reset_upload", after_bytes=len(BODY) // 3)])
        with pytest.raises(TransportError, match="cannot be replayed") as info:
            await engine.upload(
                server.request("PUT", "k"), Pipe(BODY), size=len(BODY)  # type: ignore[arg-type]
            )
    assert info.value.attempts == 1
    assert server.requests[("PUT", "k")] == 1


async def test_stalled_body_times_out_and_leaves_no_file(tmp_path: Path) -> None:
    policy = RetryPolicy(attempts=2, initial_backoff=0, max_backoff=0)
    async with FaultServer() as server, TransferEngine(
        retry=policy, timeout=Timeout(read=0.3)
    ) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("stall", seconds=2)] * 2)
        with pytest.raises(TransferTimeoutError) as info:
            await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert isinstance(info.value, TimeoutError)
    assert info.value.attempts == 2
    assert os.listdir(tmp_path) == []


async def test_a_stall_shorter_than_the_timeout_is_waited_out(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(timeout=Timeout(read=2)) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("stall", seconds=0.3)])
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.attempts == 1
    assert (tmp_path / "f").read_bytes() == BODY


# -- integrity -----------------------------------------------------------------------------


async def test_body_not_matching_its_etag_is_caught_and_retried(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("corrupt")])
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.attempts == 2
    assert (tmp_path / "f").read_bytes() == BODY
    only_the_file(tmp_path, "f")


async def test_always_corrupt_body_raises_integrity_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("corrupt")] * 10)
        with pytest.raises(IntegrityError, match="MD5") as info:
            await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert info.value.attempts == FAST_RETRY.attempts
    assert os.listdir(tmp_path) == []


async def test_md5_check_can_be_turned_off(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(verify=False) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("corrupt")])
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.attempts == 1
    assert (tmp_path / "f").read_bytes() != BODY  # accepted unchecked, as asked


# -- resume --------------------------------------------------------------------------------


async def test_resume_continues_an_interrupted_download_with_a_range(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    once = RetryPolicy(attempts=1)
    async with FaultServer() as server, TransferEngine(retry=once) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("drop", after_bytes=2 * 1024 * 1024 + 5)])
        with pytest.raises(TransportError):
            await engine.download(server.request("GET", "k"), dest, resume=True)
        assert not dest.exists()
        leftovers = os.listdir(tmp_path)
        assert len(leftovers) == 2  # the partial file and its ETag note, hidden beside dest
        assert all(name.startswith(".f") for name in leftovers)

        # A later run (a new engine, as after a restart) continues where it stopped.
        async with TransferEngine(retry=once) as later:
            progress = Recorder()
            result = await later.download(
                server.request("GET", "k"), dest, resume=True, progress=progress
            )
    assert dest.read_bytes() == BODY
    only_the_file(tmp_path, "f")
    assert result.nbytes == len(BODY)
    assert result.status == 206
    # Only what was missing crossed the network the second time.
    assert progress.total < len(BODY) - 2 * 1024 * 1024


async def test_resume_within_one_call_keeps_the_bytes_already_written(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("drop", after_bytes=2 * 1024 * 1024 + 5)])
        result = await engine.download(server.request("GET", "k"), tmp_path / "f", resume=True)
    assert result.attempts == 2
    assert result.status == 206
    assert (tmp_path / "f").read_bytes() == BODY


async def test_resume_of_a_changed_object_starts_over(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    async with FaultServer() as server, TransferEngine(retry=RetryPolicy(attempts=1)) as engine:
        server.objects["k"] = BODY
        server.script("k", [Fault("drop", after_bytes=2 * 1024 * 1024)])
        with pytest.raises(TransportError):
            await engine.download(server.request("GET", "k"), dest, resume=True)
        changed = os.urandom(len(BODY) + 10)
        server.objects["k"] = changed  # new ETag: If-Match fails with 412
        async with TransferEngine(retry=FAST_RETRY) as later:
            result = await later.download(server.request("GET", "k"), dest, resume=True)
    assert dest.read_bytes() == changed
    assert result.attempts == 2
    only_the_file(tmp_path, "f")


async def test_server_that_ignores_range_is_started_over_not_appended(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["k"] = BODY
        server.script(
            "k", [Fault("drop", after_bytes=2 * 1024 * 1024), Fault("ignore_range")]
        )
        result = await engine.download(server.request("GET", "k"), dest, resume=True)
    assert result.status == 200
    assert dest.read_bytes() == BODY


# -- expiry and re-signing -----------------------------------------------------------------


async def test_expired_url_is_re_signed_and_retried(tmp_path: Path) -> None:
    async with FaultServer(expire_after=0.5) as server, TransferEngine() as engine:
        server.objects["k"] = BODY
        signed: list[PresignedRequest] = []

        async def sign() -> PresignedRequest:
            signed.append(server.request("GET", "k"))
            return signed[-1]

        stale = server.request("GET", "k", issued=time.time() - 60)
        result = await engine.download(stale, tmp_path / "f", sign=sign)
    assert result.attempts == 2
    assert len(signed) == 1
    assert (tmp_path / "f").read_bytes() == BODY


async def test_expired_url_without_a_signing_function_fails_at_once(tmp_path: Path) -> None:
    async with FaultServer(expire_after=0.5) as server, TransferEngine() as engine:
        stale = server.request("PUT", "k", issued=time.time() - 60)
        with pytest.raises(RequestExpiredError) as info:
            await engine.upload(stale, b"x")
    assert info.value.attempts == 1


async def test_a_url_about_to_expire_is_re_signed_before_sending() -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        calls = 0

        async def sign() -> PresignedRequest:
            nonlocal calls
            calls += 1
            return server.request("PUT", "k")

        dying = server.request("PUT", "k", expires_in=5)  # inside the re-sign margin
        result = await engine.upload(dying, b"x", sign=sign)
    assert calls == 1
    assert result.attempts == 1
    assert server.requests[("PUT", "k")] == 1


async def test_many_transfers_expiring_together_re_sign_one_at_a_time(tmp_path: Path) -> None:
    async with FaultServer(expire_after=0.5) as server, TransferEngine(concurrency=16) as engine:
        server.objects["k"] = b"shared object"
        calls = 0
        active = 0
        most_active = 0

        async def sign() -> PresignedRequest:
            nonlocal calls, active, most_active
            calls += 1
            active += 1
            most_active = max(most_active, active)
            await asyncio.sleep(0.05)
            active -= 1
            return server.request("GET", "k")

        stale = server.request("GET", "k", issued=time.time() - 60)
        jobs = [Download(stale, tmp_path / f"f{i}", sign=sign) for i in range(32)]
        result = await engine.run(jobs)
    assert result.succeeded == 32
    assert most_active == 1
    assert calls < 32  # concurrent expiries shared one signing


# -- the soak ------------------------------------------------------------------------------


async def test_soak_2000_transfers_at_64_with_10_percent_faults(tmp_path: Path) -> None:
    rng = random.Random(2026)
    kinds = [
        Fault("status", 503, retry_after="0"),
        Fault("status", 500, "InternalError"),
        Fault("drop", after_bytes=3000),
        Fault("corrupt"),
        Fault("reset_upload", after_bytes=2000),
    ]
    objects = {f"o{i}": os.urandom(rng.randint(0, 12_000)) for i in range(1000)}
    policy = RetryPolicy(attempts=6, initial_backoff=0.001, max_backoff=0.01)
    async with FaultServer() as server, TransferEngine(concurrency=64, retry=policy) as engine:
        for key in objects:
            if rng.random() < 0.1:
                server.script(key, [rng.choice(kinds)])
        up = await engine.run(
            Upload(server.request("PUT", key), data) for key, data in objects.items()
        )
        for key in objects:
            if rng.random() < 0.1:
                server.script(key, [rng.choice(kinds[:4])])
        down = await engine.run(
            Download(server.request("GET", key), tmp_path / key) for key in objects
        )
    assert up.succeeded == down.succeeded == 1000
    assert server.objects == objects
    for key, data in objects.items():
        assert (tmp_path / key).read_bytes() == data
    assert len(os.listdir(tmp_path)) == 1000
    retried = sum(r.attempts > 1 for r in (*up.results, *down.results))
    assert retried > 100  # the faults really happened
