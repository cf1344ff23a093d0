"""Progress for people: a live display on a terminal, plain lines elsewhere.

The display is fed the engine's two callbacks: ``on_bytes`` (each
:class:`ProgressEvent`, negative when a retry takes bytes back) and
``on_result`` (each finished :class:`TransferResult`). It keeps counters and
the failures, never the state of jobs done, so ten million successes cost what
ten do; an interrupted run's summary is made of them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from ._models import BatchResult, ProgressEvent, TransferResult


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a batch stands."""

    done: int
    failed: int
    total: int | None
    nbytes: int
    seconds: float

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.nbytes / self.seconds if self.seconds > 0 else 0.0


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop always returns


class ProgressDisplay:
    """``mode`` is ``"rich"`` (a live bar; needs a terminal and the rich package),
    ``"plain"`` (a line every ``interval`` seconds) or ``"quiet"``."""

    def __init__(
        self,
        what: str,
        *,
        mode: str = "auto",
        total: int | None = None,
        interval: float = 2.0,
        stream: TextIO | None = None,
    ) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "rich" if self.stream.isatty() else "plain"
        self.mode = mode
        self.total = total
        self.interval = interval
        self.done = 0
        self.failed = 0
        self.skipped = 0  # done by an earlier run (the journal's)
        #: Transfers done whose bytes no check could confirm (``verified`` None).
        self.unverified = 0
        self.nbytes = 0
        #: The jobs that ended, for the summary of a run stopped before its end:
        #: the bytes of those done, and the failures.
        self.done_bytes = 0
        self.failures: list[TransferResult] = []
        #: Whether ``total`` is the whole run's (counted ahead), not a count so far.
        self.total_final = total is not None
        self.started = time.monotonic()
        # The first plain line comes after 0.5 s, the next every ``interval``.
        self._last_line = self.started - interval + min(interval, 0.5)
        self._rich: Any = None
        self._task: Any = None
        #: How many transfers are in flight now (set by whoever owns the engine).
        self.in_flight: Callable[[], int] | None = None
        #: The request rate an endpoint's throttling allows now, or None.
        self.rate_limit: Callable[[], float | None] | None = None
        #: The engine's bandwidth limit (bytes per second), or None: a setting,
        #: shown beside the rate, not a throttle.
        self.max_rate: float | None = None

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.done, self.failed, self.total, self.nbytes, time.monotonic() - self.started
        )

    def __enter__(self) -> ProgressDisplay:
        if self.mode == "rich":
            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[nbytes]}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[flight]}"),
                TimeRemainingColumn(),
                console=None,
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(
                self.what, total=self.total, nbytes="0 B", rate="", flight=""
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()

    def set_total(self, total: int, *, final: bool) -> None:
        """The number of jobs counted so far (``final``: all of them), counted
        ahead of the transfers; a percentage and an ETA show once it is final."""
        self.total, self.total_final = total, final
        if self._rich is not None:
            self._rich.update(self._task, total=total if final else None)

    def on_skipped(self) -> None:
        self.skipped += 1
        self._tick()

    def eta(self) -> float | None:
        """Seconds left, from the rate of jobs so far, once the total is final."""
        if not self.total_final or self.total is None:
            return None
        processed = self.done + self.failed
        elapsed = time.monotonic() - self.started
        if processed == 0 or elapsed <= 0:
            return None
        left = max(0, self.total - processed - self.skipped)
        return left / (processed / elapsed)

    def on_bytes(self, event: ProgressEvent) -> None:
        self.nbytes += event.delta
        self._tick()

    def on_result(self, result: TransferResult) -> None:
        if result.ok:
            self.done += 1
            self.done_bytes += result.nbytes
            if result.verified is None:
                self.unverified += 1
        else:
            self.failed += 1
            self.failures.append(result)
        self._tick()

    def so_far(self) -> BatchResult:
        """What the jobs that ended add up to: a run's result before its end."""
        return BatchResult(
            results=(), failed=tuple(self.failures),
            total=self.done + self.failed + self.skipped,
            succeeded=self.done + self.skipped, nbytes=self.done_bytes,
            seconds=time.monotonic() - self.started, skipped=self.skipped,
        )

    def _tick(self) -> None:
        if self.mode == "rich" and self._rich is not None:
            snap = self.snapshot()
            self._rich.update(
                self._task,
                completed=self.done + self.failed + self.skipped,
                nbytes=human_bytes(self.nbytes),
                rate=f"{human_bytes(snap.rate)}/s{self._limited()}",
                flight=(f"{self.in_flight()} in flight" if self.in_flight else "")
                + self._throttled(),
            )
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self._last_line >= self.interval:
                self._last_line = now
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def _limited(self) -> str:
        return "" if self.max_rate is None else f", limit {human_bytes(self.max_rate)}/s"

    def _throttled(self) -> str:
        limit = self.rate_limit() if self.rate_limit is not None else None
        return "" if limit is None else f", throttled: {limit:.0f} req/s"

    def line(self) -> str:
        snap = self.snapshot()
        finished = snap.done + snap.failed + self.skipped
        if snap.total is not None and self.total_final and snap.total > 0:
            share = f" ({min(100.0, 100.0 * finished / snap.total):.0f}%)"
            total = f"/{snap.total}{share}"
        elif snap.total is not None:
            total = f"/{snap.total}+"  # still counting
        else:
            total = ""
        rate = snap.done / snap.seconds if snap.seconds > 0 else 0.0
        flight = f", {self.in_flight()} in flight" if self.in_flight else ""
        skipped = f", {self.skipped} already done" if self.skipped else ""
        eta = self.eta()
        left = f", ETA {_duration(eta)}" if eta is not None else ""
        return (
            f"{self.what}: {finished}{total}: {snap.done} done{skipped}, {snap.failed} failed"
            f"{flight}{self._throttled()}, "
            f"{human_bytes(snap.nbytes)} ({human_bytes(snap.rate)}/s{self._limited()}, "
            f"{rate:.0f} objects/s)"
            f"{left}"
        )


def _duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``4000`` → ``1h06m``."""
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"

