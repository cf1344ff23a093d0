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
import dataclasses
import inspect
import itertools
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.to_thread

try:
    import distributed
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "asyncpresign.dask needs Dask distributed: pip install 'asyncpresign[dask]'"
    ) from exc

from ._engine import TransferEngine
from ._exceptions import InvalidArgumentError
from ._manifest import Journal, ManifestEntry, job_id, journal_state, written_state
from ._models import Copy, Download, PresignedRequest, TransferResult, Upload
from ._signer import Signer
from ._validation import check_positive_int

__all__ = ["DaskSummary", "JobOutcome", "ObjectJob", "transfer_on_dask"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectJob:
    """A job the driver signs itself, just before its partition is sent out."""

    op: Literal["upload", "download"]
    bucket: str
    key: str
    path: str
    #: The object's ETag when it is known (from a listing): a journal skips the
    #: download again only while the object keeps it. Without one, it never does.
    etag: str | None = None

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
    etag: str | None = None  # what the server answered (a part's, for ``complete``)
    #: The check the bytes passed (``TransferResult.verified``): None, none could.
    verified: str | None = None
    #: A failed job's operation ("upload", "download", "copy"), the object's
    #: bucket and key where the job names them (an ObjectJob, a manifest line
    #: that has them), its local file, and the server's error code: what a
    #: script needs to retry it, as the CLI's ``--json`` gives for a local run.
    op: str | None = None
    bucket: str | None = None
    key: str | None = None
    path: str | None = None
    code: str | None = None


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
    #: Of those succeeded, how many passed no check (the server sent no
    #: checksum and the ETag is no MD5, or checks are off).
    unverified: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        """The CLI's ``--json`` fields: succeeded, skipped and failed are disjoint."""
        return {
            "total": self.total,
            "succeeded": self.succeeded - self.skipped,
            "failed": len(self.failed),
            "skipped": self.skipped,
            "bytes": self.nbytes,
            "unverified": self.unverified,
            "seconds": round(self.seconds, 3),
            "partitions": self.partitions,
            "failures": [
                {
                    "index": o.index, "op": o.op, "bucket": o.bucket, "key": o.key,
                    "path": o.path, "url": o.url, "status": o.status, "code": o.code,
                    "attempts": o.attempts, "error": o.error,
                }
                for o in self.failed
            ],
        }


JobLike = Upload | Download | Copy | ObjectJob | ManifestEntry
_distributed_wait: Callable[..., Any] = distributed.wait


async def transfer_on_dask(
    client: Any,
    jobs: Iterable[JobLike] | AsyncIterable[JobLike],
    *,
    signer: Signer | None = None,
    partition_size: int = 500,
    window: int | None = None,
    engine_options: Mapping[str, Any] | None = None,
    journal: str | os.PathLike[str] | Journal | None = None,
    expires_in: float = 3600,
    retries: int = 3,
) -> DaskSummary:
    """Run ``jobs`` on the Dask cluster behind ``client``; returns a summary.

    ``jobs`` are presigned :class:`Upload`/:class:`Download`/:class:`Copy`
    jobs (requests or URLs, not signing functions, which would carry the
    signer to the workers), manifest entries, or :class:`ObjectJob` specs that
    ``signer`` signs on the driver, partition by partition, shortly before each
    one runs so that long jobs never hand out stale URLs. At most ``window``
    partitions (default: twice the workers) are in flight, so the driver's
    memory does not grow with the listing. ``engine_options`` are
    :class:`TransferEngine` keyword arguments for the workers.

    ``journal`` is a file on the driver (the format of :class:`Journal`): the
    driver records each finished job by what it moves as its partition comes
    back, and skips it on a re-run only while that is unchanged: an upload's
    file with the size and mtime it had; a download's object with the ETag it
    had (an ObjectJob's ``etag``, a manifest's), its file still the one
    written (size, mtime, ctime, inode). Jobs with nothing to compare (a
    download without an ETag, a copy, an upload from memory) always run. A
    partition retried after a lost worker runs whole again. Given a path, the
    journal is closed at the end (a record that could not be written raises
    :class:`LocalFileError` then); given a :class:`Journal`, the caller closes
    it, and can still have the summary when the journal's disk is full.
    """
    # A window of 0 waited for ever on no task, spinning the caller's loop; a
    # partition size of 1.5 was never reached, putting every job in one.
    check_positive_int("partition_size", partition_size)
    if window is not None:
        check_positive_int("window", window)
    if isinstance(jobs, (str, bytes)):
        raise InvalidArgumentError(f"jobs must be an iterable of jobs, not {type(jobs).__name__}")
    options = dict(engine_options or {})
    TransferEngine(**options)  # validate here, not in a hundred workers
    if isinstance(journal, Journal):
        owned, tally = False, _Tally(journal)  # the caller closes it
    else:
        journal_path = os.fspath(journal) if journal is not None else None
        owned, tally = True, _Tally(await anyio.to_thread.run_sync(Journal, journal_path))
    if window is None:
        workers = await _maybe_await(client.scheduler_info())
        window = max(2, 2 * len(workers.get("workers", {})))
    started = time.perf_counter()
    pending: set[Any] = set()

    async def collect(return_when: str) -> None:
        nonlocal pending
        done, pending = await _wait(client, pending, return_when)
        for future in done:
            outcomes = await _maybe_await(future.result())
            await anyio.to_thread.run_sync(tally.absorb, outcomes)

    try:
        async for partition in _partitions(jobs, partition_size):
            items = await anyio.to_thread.run_sync(tally.admit, partition)
            if not items:
                continue
            payload, refused = await _sign_partition(items, signer, expires_in)
            if refused:  # bad jobs fail alone, on the driver; the rest go out
                await anyio.to_thread.run_sync(tally.absorb, refused)
            if not payload:
                continue
            future = client.submit(_run_partition, payload, options, pure=False, retries=retries)
            pending.add(future)
            tally.partitions += 1
            while len(pending) >= window:
                await collect("FIRST_COMPLETED")
        if pending:
            await collect("ALL_COMPLETED")
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(tally.journal.close if owned else tally.journal.flush)
    return tally.summary(time.perf_counter() - started)


@dataclass
class _Tally:
    """The driver's account of a run: counts, failures, and the journal records
    of the jobs in flight (only those, so memory stays flat)."""

    journal: Journal
    total: int = 0
    succeeded: int = 0
    skipped: int = 0
    nbytes: int = 0
    partitions: int = 0
    unverified: int = 0
    failed: list[JobOutcome] = field(default_factory=list)
    #: index -> (job id, its state, a part?, a download's destination) for each
    #: job in flight the journal records
    recording: dict[int, tuple[str, str, bool, str | None]] = field(default_factory=dict)
    #: index -> (operation, bucket, key, local path) of each job in flight, to
    #: name a failure by (popped as its outcome comes back)
    described: dict[int, _Described] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def admit(self, partition: Sequence[JobLike]) -> list[tuple[int, JobLike]]:
        """The jobs of ``partition`` the journal does not skip, numbered (stats
        files: in a thread). Any doubt, and the job runs."""
        items: list[tuple[int, JobLike]] = []
        for job in partition:
            identity = _identity(job) if self.journal.path is not None else None
            state, done = None, False
            if identity is not None:
                job_id, op, path, etag = identity
                state, done = journal_state(self.journal, job_id, op, path, etag)
            if done:
                self.total += 1
                self.succeeded += 1
                self.skipped += 1
                continue
            index = next(self.numbers)
            items.append((index, job))
            self.described[index] = _describe(job)
            if identity is not None and state is not None:
                part = isinstance(job, ManifestEntry) and job.part is not None
                self.recording[index] = (
                    identity[0], state, part, identity[2] if identity[1] == "get" else None
                )
        return items

    def absorb(self, outcomes: list[JobOutcome]) -> None:
        """Count a partition's outcomes and journal its finished jobs (in a thread)."""
        for outcome in outcomes:
            self.total += 1
            record = self.recording.pop(outcome.index, None)
            described = self.described.pop(outcome.index, None)
            if not outcome.ok:
                self.failed.append(_named(outcome, described))
                continue
            self.succeeded += 1
            self.nbytes += outcome.nbytes
            self.unverified += outcome.verified is None
            if record is not None:
                job_id, state, part, dest = record
                if self.journal.record(
                    job_id, state, outcome.nbytes, outcome.etag if part else None,
                    written=None if dest is None else written_state(dest),
                ):
                    self.journal.flush()  # in this thread, as absorb runs

    def summary(self, seconds: float) -> DaskSummary:
        return DaskSummary(
            total=self.total,
            succeeded=self.succeeded,
            failed=tuple(sorted(self.failed, key=lambda o: o.index)),
            skipped=self.skipped,
            nbytes=self.nbytes,
            seconds=seconds,
            partitions=self.partitions,
            unverified=self.unverified,
        )


#: (operation, bucket, key, local path) of a job, each None where it does not say.
_Described = tuple[str | None, str | None, str | None, str | None]

_OPS = {"put": "upload", "get": "download", "upload": "upload", "download": "download"}


def _describe(job: object) -> _Described:
    """What names a job in a failure report, from the job as the driver holds it."""
    if isinstance(job, ObjectJob):
        return _OPS[job.op], job.bucket, job.key, job.path
    if isinstance(job, ManifestEntry):
        return _OPS[job.op], job.bucket, job.key, job.path
    if isinstance(job, Upload):
        path = job.source if isinstance(job.source, (str, os.PathLike)) else None
        return "upload", None, None, os.fspath(path) if path is not None else None
    if isinstance(job, Download):
        return "download", None, None, os.fspath(job.dest)
    if isinstance(job, Copy):
        return "copy", None, None, None
    return None, None, None, None


def _named(outcome: JobOutcome, described: _Described | None) -> JobOutcome:
    """A failed outcome with the job's operation, bucket, key and path filled in
    where the worker could not know them (it sees URLs, not keys). A job with a
    bucket and key is shown as ``s3://bucket/key``, as the CLI shows it."""
    if described is None:
        return outcome
    op, bucket, key, path = described
    path = outcome.path or path
    shown = (
        f"s3://{bucket}/{key}".encode("utf-8", "backslashreplace").decode()
        if bucket is not None and key is not None else outcome.url
    )
    return dataclasses.replace(
        outcome, op=outcome.op or op, bucket=bucket, key=key, url=shown,
        path=None if path is None else path.encode("utf-8", "backslashreplace").decode(),
    )


def _identity(job: JobLike) -> tuple[str, Literal["put", "get"], str, str | None] | None:
    """What a job moves, as a journal names it (the same ids as the CLI's and the
    bulk helpers'): ``(id, op, local path, the object's ETag)``; None for a job
    the journal cannot tell apart from another (it always runs)."""
    if isinstance(job, ManifestEntry):
        return job.id, job.op, job.path, job.etag
    if isinstance(job, ObjectJob):
        op: Literal["put", "get"] = "put" if job.op == "upload" else "get"
        return job_id(op, job.bucket, job.key, job.path), op, job.path, job.etag
    if isinstance(job, Upload) and isinstance(job.source, (str, os.PathLike)):
        # A presigned URL without its query names the bucket and the key.
        request = job.request
        url = request.url if isinstance(request, PresignedRequest) else request
        if isinstance(url, str):
            path = os.fspath(job.source)
            return f"put {url.split('?', 1)[0]} {path}", "put", path, None
    return None


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
) -> tuple[list[tuple[int, Upload | Download | Copy]], list[JobOutcome]]:
    """Presigned jobs for the workers (ObjectJobs signed here, the rest checked),
    and the outcomes of the jobs that cannot be sent: a key or bucket the signer
    refuses, something that is not a job. Those fail alone; a run that cannot
    sign at all (no signer, no credentials) or that would send signing
    functions to the workers stops with the error."""
    payload: list[tuple[int, Upload | Download | Copy]] = []
    refused: list[JobOutcome] = []
    for index, job in items:
        if isinstance(job, ManifestEntry):
            payload.append((index, job.job()))
        elif isinstance(job, ObjectJob):
            if signer is None:
                raise InvalidArgumentError(
                    "ObjectJob needs signer= on the driver to be signed before it is sent"
                )
            try:
                if job.op == "upload":
                    request = await signer.presign_put(job.bucket, job.key, expires_in=expires_in)
                    payload.append((index, Upload(request, job.path)))
                else:
                    request = await signer.presign_get(job.bucket, job.key, expires_in=expires_in)
                    payload.append((index, Download(request, job.path)))
            except InvalidArgumentError as exc:
                refused.append(_refused(index, f"s3://{job.bucket}/{job.key}", exc))
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
        else:  # not a job at all: the type says it cannot be, but a run takes any iterable
            refused.append(_refused(index, "", InvalidArgumentError(  # type: ignore[unreachable]
                f"a Dask job must be an Upload, Download, Copy, ObjectJob or manifest entry, "
                f"not {type(job).__name__}"
            )))
    return payload, refused


def _refused(index: int, url: str, error: InvalidArgumentError) -> JobOutcome:
    return JobOutcome(index=index, ok=False, url=url, attempts=0,
                      error=f"{type(error).__name__}: {error}")


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
    items: list[tuple[int, Upload | Download | Copy]], engine_options: dict[str, Any]
) -> list[JobOutcome]:
    """A Dask task: run one partition in a fresh event loop on the worker."""
    return asyncio.run(_run_partition_async(items, engine_options))


async def _run_partition_async(
    items: list[tuple[int, Upload | Download | Copy]], engine_options: dict[str, Any]
) -> list[JobOutcome]:
    outcomes: list[JobOutcome] = []
    async with TransferEngine(**engine_options) as engine:

        def record(result: TransferResult) -> None:
            outcomes.append(_outcome(items[result.index or 0][0], result))

        await engine.run((job for _, job in items), on_result=record, keep_results=False)
    return outcomes


def _outcome(index: int, result: TransferResult) -> JobOutcome:
    error = None
    if result.error is not None:
        error = f"{type(result.error).__name__}: {result.error}"
    code = getattr(result.error, "code", None)
    path = result.path or getattr(result.error, "path", None)
    return JobOutcome(
        index=index,
        ok=result.ok,
        url=result.url,
        nbytes=result.nbytes,
        status=result.status,
        attempts=result.attempts,
        error=error,
        etag=result.etag,
        verified=result.verified,
        op=result.op if result.error is not None else None,
        path=os.fsdecode(path) if result.error is not None and path else None,
        code=code if isinstance(code, str) else None,
    )
