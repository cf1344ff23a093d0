"""Run one transfer job across a Dask cluster; the credentials stay on the driver.

The driver (where the :class:`~asyncpresign.Signer` lives) streams jobs,
groups them into partitions, signs each partition just before submitting it,
and keeps only a bounded window of partitions in flight. Each worker runs a
:class:`~asyncpresign.TransferEngine` over its partition in its own event
loop and sends back compact outcomes. What crosses to a worker is presigned
URLs, the headers they need and local paths: never a key or a token.

Install with the ``dask`` extra (``pip install 'asyncpresign[dask]'``).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio.to_thread

try:
    import distributed
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "asyncpresign.dask needs Dask distributed: pip install 'asyncpresign[dask]'"
    ) from exc

from ._engine import TransferEngine
from ._exceptions import InvalidArgumentError
from ._models import Copy, Download, PresignedRequest, TransferResult, Upload
from ._redact import redact_url
from ._signer import Signer

__all__ = ["DaskSummary", "JobOutcome", "ObjectJob", "transfer_on_dask"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectJob:
    """A job the driver signs itself, just before its partition is sent out."""

    op: Literal["upload", "download"]
    bucket: str
    key: str
    path: str

    def __post_init__(self) -> None:
        if self.op not in ("upload", "download"):
            raise InvalidArgumentError(f"op must be 'upload' or 'download', not {self.op!r}")
        object.__setattr__(self, "path", os.fspath(self.path))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    """What a worker reports for one job: small, picklable, no secrets."""

    index: int
    ok: bool
    url: str  # redacted
    nbytes: int = 0
    status: int | None = None
    attempts: int = 1
    error: str | None = None  # "TypeName: message"
    skipped: bool = False  # done by an earlier attempt of the partition (journal)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaskSummary:
    """The whole job: the same fields the CLI's ``--json`` summary reports."""

    total: int
    succeeded: int
    failed: tuple[JobOutcome, ...]
    skipped: int
    nbytes: int
    seconds: float
    partitions: int

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": len(self.failed),
            "skipped": self.skipped,
            "bytes": self.nbytes,
            "seconds": round(self.seconds, 3),
            "partitions": self.partitions,
            "failures": [
                {"index": o.index, "url": o.url, "status": o.status, "error": o.error}
                for o in self.failed
            ],
        }


JobLike = Upload | Download | Copy | ObjectJob
_distributed_wait: Callable[..., Any] = distributed.wait


async def transfer_on_dask(
    client: Any,
    jobs: Iterable[JobLike] | AsyncIterable[JobLike],
    *,
    signer: Signer | None = None,
    partition_size: int = 500,
    window: int | None = None,
    engine_options: Mapping[str, Any] | None = None,
    journal: str | os.PathLike[str] | None = None,
    expires_in: float = 3600,
    retries: int = 3,
) -> DaskSummary:
    """Run ``jobs`` on the Dask cluster behind ``client``; returns a summary.

    ``jobs`` are presigned :class:`Upload`/:class:`Download`/:class:`Copy`
    jobs (requests or URLs, not signing functions, which would carry the
    signer to the workers), or :class:`ObjectJob` specs that ``signer`` signs
    on the driver, partition by partition, shortly before each one runs so
    that long jobs never hand out stale URLs. At most ``window`` partitions
    (default: twice the workers) are in flight, so the driver's memory does
    not grow with the listing. ``journal`` is a file every worker can reach
    (a shared folder): completed jobs are recorded there, and a partition
    retried after a lost worker skips them. ``engine_options`` are
    :class:`TransferEngine` keyword arguments for the workers.
    """
    if partition_size < 1:
        raise InvalidArgumentError(f"partition_size must be >= 1, got {partition_size}")
    options = dict(engine_options or {})
    TransferEngine(**options)  # validate here, not in a hundred workers
    journal_path = os.fspath(journal) if journal is not None else None
    if window is None:
        workers = await _maybe_await(client.scheduler_info())
        window = max(2, 2 * len(workers.get("workers", {})))
    started = time.perf_counter()
    pending: set[Any] = set()
    totals = {"total": 0, "succeeded": 0, "skipped": 0, "nbytes": 0, "partitions": 0}
    failed: list[JobOutcome] = []

    def absorb(outcomes: list[JobOutcome]) -> None:
        for outcome in outcomes:
            totals["total"] += 1
            if outcome.ok:
                totals["succeeded"] += 1
                totals["nbytes"] += outcome.nbytes
                totals["skipped"] += outcome.skipped
            else:
                failed.append(outcome)

    async def collect(return_when: str) -> None:
        nonlocal pending
        done, pending = await _wait(client, pending, return_when)
        for future in done:
            absorb(await _maybe_await(future.result()))

    counter = itertools.count()
    async for partition in _partitions(jobs, partition_size):
        items = [(next(counter), job) for job in partition]
        payload = await _sign_partition(items, signer, expires_in)
        future = client.submit(
            _run_partition, payload, options, journal_path, pure=False, retries=retries
        )
        pending.add(future)
        totals["partitions"] += 1
        while len(pending) >= window:
            await collect("FIRST_COMPLETED")
    if pending:
        await collect("ALL_COMPLETED")
    failed.sort(key=lambda o: o.index)
    return DaskSummary(
        total=totals["total"],
        succeeded=totals["succeeded"],
        failed=tuple(failed),
        skipped=totals["skipped"],
        nbytes=totals["nbytes"],
        seconds=time.perf_counter() - started,
        partitions=totals["partitions"],
    )


async def _partitions(
    jobs: Iterable[JobLike] | AsyncIterable[JobLike], size: int
) -> AsyncIterator[list[JobLike]]:
    batch: list[JobLike] = []
    if isinstance(jobs, AsyncIterable):
        async for job in jobs:
            batch.append(job)
            if len(batch) == size:
                yield batch
                batch = []
    else:
        for job in jobs:
            batch.append(job)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


async def _sign_partition(
    items: Sequence[tuple[int, JobLike]], signer: Signer | None, expires_in: float
) -> list[tuple[int, Upload | Download | Copy]]:
    """Presigned jobs for the workers: ObjectJobs signed here, the rest checked."""
    payload: list[tuple[int, Upload | Download | Copy]] = []
    for index, job in items:
        if isinstance(job, ObjectJob):
            if signer is None:
                raise InvalidArgumentError(
                    "ObjectJob needs signer= on the driver to be signed before it is sent"
                )
            if job.op == "upload":
                request = await signer.presign_put(job.bucket, job.key, expires_in=expires_in)
                payload.append((index, Upload(request, job.path)))
            else:
                request = await signer.presign_get(job.bucket, job.key, expires_in=expires_in)
                payload.append((index, Download(request, job.path)))
        elif isinstance(job, (Upload, Download, Copy)):
            if any(
                getattr(job, name, None) is not None
                for name in ("sign", "source_sign", "dest_sign")
            ):
                raise InvalidArgumentError(
                    "jobs sent to Dask workers cannot carry signing functions (they would "
                    "carry the signer and its credentials): give presigned requests, or "
                    "ObjectJobs and signer="
                )
            payload.append((index, job))
        else:
            raise InvalidArgumentError(
                f"a Dask job must be an Upload, Download, Copy or ObjectJob, "
                f"not {type(job).__name__}"
            )
    return payload


async def _wait(client: Any, futures: set[Any], return_when: str) -> tuple[set[Any], set[Any]]:
    wait = _distributed_wait
    if getattr(client, "asynchronous", False):
        result = await wait(list(futures), return_when=return_when)
    else:
        result = await anyio.to_thread.run_sync(
            lambda: wait(list(futures), return_when=return_when)
        )
    return set(result.done), set(result.not_done)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# -- on the workers ------------------------------------------------------------------------


def _run_partition(
    items: list[tuple[int, Upload | Download | Copy]],
    engine_options: dict[str, Any],
    journal: str | None,
) -> list[JobOutcome]:
    """A Dask task: run one partition in a fresh event loop on the worker."""
    return asyncio.run(_run_partition_async(items, engine_options, journal))


async def _run_partition_async(
    items: list[tuple[int, Upload | Download | Copy]],
    engine_options: dict[str, Any],
    journal: str | None,
) -> list[JobOutcome]:
    done = await anyio.to_thread.run_sync(_read_journal, journal) if journal else set()
    outcomes = [
        JobOutcome(index=i, ok=True, url=_url_of(job), skipped=True) for i, job in items
        if i in done
    ]
    todo = [(i, job) for i, job in items if i not in done]
    recorder = _JournalWriter(journal)
    async with TransferEngine(**engine_options) as engine:

        async def record(result: TransferResult) -> None:
            index = todo[result.index or 0][0]
            outcomes.append(_outcome(index, result))
            if result.ok:
                await recorder.add(index)

        await engine.run(
            (job for _, job in todo), on_result=record, keep_results=False
        )
    await recorder.flush()
    return outcomes


def _outcome(index: int, result: TransferResult) -> JobOutcome:
    error = None
    if result.error is not None:
        error = f"{type(result.error).__name__}: {result.error}"
    return JobOutcome(
        index=index,
        ok=result.ok,
        url=result.url,
        nbytes=result.nbytes,
        status=result.status,
        attempts=result.attempts,
        error=error,
    )


def _url_of(job: Upload | Download | Copy) -> str:
    request = job.dest if isinstance(job, Copy) else job.request
    if isinstance(request, PresignedRequest):
        return redact_url(request.url)
    return redact_url(request) if isinstance(request, str) else ""


@dataclass
class _JournalWriter:
    """Appends completed job numbers to a shared file, a few at a time."""

    path: str | None
    batch: list[int] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)

    async def add(self, index: int) -> None:
        if self.path is None:
            return
        self.batch.append(index)
        if len(self.batch) >= 64 or time.monotonic() - self.last_flush > 0.5:
            await self.flush()

    async def flush(self) -> None:
        if self.path is None or not self.batch:
            return
        lines, self.batch = self.batch, []
        self.last_flush = time.monotonic()
        await anyio.to_thread.run_sync(_append_journal, self.path, lines)


def _append_journal(path: str, indexes: list[int]) -> None:
    # One O_APPEND write per batch: appends from several workers never interleave
    # inside a line on a local or POSIX shared filesystem.
    data = "".join(f"{i}\n" for i in indexes).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_journal(path: str | None) -> set[int]:
    if path is None:
        return set()
    try:
        with open(path, encoding="ascii") as f:
            return {int(line) for line in f if line.strip().isdigit()}
    except FileNotFoundError:
        return set()

