"""The batching file thread that small transfers share: order, errors, cancellation."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from types import SimpleNamespace

import pytest

from asyncpresign import _offload
from asyncpresign._offload import FileThread

pytestmark = pytest.mark.anyio


async def test_operations_run_in_the_order_submitted_off_the_event_loop() -> None:
    files = FileThread()
    seen: list[tuple[int, str]] = []

    def record(i: int) -> int:
        time.sleep(0.001 * (5 - i % 5))  # later ones are quicker: order must not depend on it
        seen.append((i, threading.current_thread().name))
        return i * 10

    results = await asyncio.gather(*(files.run(record, i) for i in range(20)))
    files.close()
    assert results == [i * 10 for i in range(20)]
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"asyncpresign-files"}


async def test_an_operations_exception_reaches_its_caller_only() -> None:
    files = FileThread()

    def fail() -> None:
        raise FileNotFoundError("gone")

    results = await asyncio.gather(
        files.run(int, "1"), files.run(fail), files.run(int, "3"), return_exceptions=True
    )
    files.close()
    assert results[0] == 1
    assert isinstance(results[1], FileNotFoundError)
    assert results[2] == 3


async def test_a_cancelled_caller_does_not_stop_its_operation_or_the_next() -> None:
    files = FileThread()
    started, ran = threading.Event(), []

    def slow() -> None:
        started.set()
        time.sleep(0.05)
        ran.append("slow")

    task = asyncio.ensure_future(files.run(slow))
    await asyncio.to_thread(started.wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await files.run(lambda: ran.append("next") or len(ran)) == 2
    files.close()
    assert ran == ["slow", "next"]  # the queued clean-up ran after the cancelled write


def test_one_file_thread_serves_successive_event_loops() -> None:
    files = FileThread()
    assert asyncio.run(files.run(sum, [1, 2])) == 3
    assert asyncio.run(files.run(sum, [3, 4])) == 7  # a new loop gets a new thread
    files.close()


async def test_close_ends_the_thread_after_its_queue() -> None:
    files = FileThread(name="asyncpresign-files-closing")
    await files.run(int, "0")
    files.close()
    for _ in range(200):
        if not any(t.name == "asyncpresign-files-closing" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.01)
    assert not any(t.name == "asyncpresign-files-closing" for t in threading.enumerate())


class _CountingQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    puts: list[object]

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        type(self).puts.append(item)
        super().put(item, block, timeout)


async def test_operations_submitted_in_one_turn_wake_the_thread_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _CountingQueue.puts = []
    monkeypatch.setattr(_offload, "queue", SimpleNamespace(SimpleQueue=_CountingQueue,
                                                           Empty=queue.Empty))
    files = FileThread()
    results = await asyncio.gather(*(files.run(int, str(i)) for i in range(20)))
    files.close()
    assert results == list(range(20))
    batches = [item for item in _CountingQueue.puts if item is not None]
    assert len(batches) == 1  # one hand-over, not one wake-up per operation
    assert len(batches[0]) == 20  # type: ignore[arg-type]


async def test_close_right_after_a_submission_still_runs_it() -> None:
    files = FileThread()
    task = asyncio.ensure_future(files.run(int, "5"))
    await asyncio.sleep(0)  # the task has submitted; its hand-over is not yet due
    files.close()
    assert await task == 5
