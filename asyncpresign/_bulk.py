"""Bulk helpers: whole folders, whole prefixes, bucket-to-bucket copies.

They sign as they go: each job carries a signing function that the engine
calls just before the transfer starts (and again if the URL expires), so
signing stays ahead of the transfers by at most the engine's concurrency and
a listing of millions is never signed, or held, all at once.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import TextIO, TypeVar

import anyio.to_thread

from ._engine import TransferEngine, _aiter
from ._exceptions import InvalidArgumentError
from ._files import is_partial_name
from ._manifest import Journal, has_size, state_of
from ._models import BatchResult, Copy, Download, ProgressCallback, TransferResult, Upload
from ._signer import Signer

__all__ = ["Filters", "copy_objects", "download_prefix", "upload_tree"]

T = TypeVar("T")
ResultCallback = Callable[[TransferResult], Awaitable[None] | None]
Pair = tuple[tuple[str, str], tuple[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Glob patterns on the relative path (``*.csv``, ``logs/**``); excludes win."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()

    def __call__(self, relative: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(relative, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(relative, p) for p in self.exclude)


@dataclass
class _Tracker:
    """Maps results back to job ids for the journal, holding only jobs in flight."""

    journal: Journal
    on_result: ResultCallback | None
    #: index -> (job id, the state it is done in)
    pending: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    skipped: int = 0

    async def __call__(self, result: TransferResult) -> None:
        job_id, state = self.pending.pop(result.index or 0, ("", None))
        if result.ok and job_id:
            self.journal.record(job_id, state, result.nbytes)
        if self.on_result is not None:
            outcome = self.on_result(result)
            if outcome is not None:
                await outcome


def walk_files(directory: str, filters: Filters) -> Iterator[tuple[str, str, int]]:
    """``(path, relative posix path, size)`` for every file under ``directory``, sorted."""
    for path, relative, size, _ in walk_states(directory, filters):
        yield path, relative, size


def walk_states(directory: str, filters: Filters) -> Iterator[tuple[str, str, int, str | None]]:
    """As :func:`walk_files`, with each file's state for a journal (size and mtime)."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if is_partial_name(name):
                continue  # a download in progress (or a dead one's), never an object
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if filters(relative):
                try:
                    info = os.stat(path)
                except OSError:
                    yield path, relative, -1, None  # vanished: the job reports it when it runs
                    continue
                yield path, relative, info.st_size, state_of(info)


def object_key(prefix: str, relative: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{relative}" if prefix else relative


def relative_key(prefix: str, key: str) -> str:
    """``key`` relative to ``prefix``, as a folder would see it.

    ``photos`` lists ``photos/a.jpg`` as ``a.jpg``; a prefix that is a whole
    key (``photos/a.jpg``) gives its name (``a.jpg``); a partial name
    (``logs/2026-``) is relative to its folder (``logs/2026-01.gz`` gives
    ``2026-01.gz``)."""
    folder = prefix.rstrip("/")
    if folder and key.startswith(folder + "/"):
        return key[len(folder) + 1 :].lstrip("/")
    return key[prefix.rfind("/") + 1 :].lstrip("/")


def local_path(directory: str, prefix: str, key: str) -> str:
    """Where ``key`` lands under ``directory``; refuses keys that would escape it."""
    relative = relative_key(prefix, key)
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or key.endswith("/"):
        raise InvalidArgumentError(
            f"object key {key!r} does not map to a file inside {directory!r}"
        )
    return os.path.join(directory, *parts)


async def _in_thread_batches(items: Iterator[T]) -> AsyncIterator[T]:
    """Walk a folder in a worker thread, 500 entries per hop, never on the loop."""
    def take() -> list[T]:
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) == 500:
                break
        return batch

    while batch := await anyio.to_thread.run_sync(take):
        for item in batch:
            yield item


async def upload_tree(
    signer: Signer,
    engine: TransferEngine,
    directory: str | os.PathLike[str],
    bucket: str,
    prefix: str = "",
    *,
    filters: Filters = Filters(),
    journal: Journal | None = None,
    expires_in: float = 3600,
    progress: ProgressCallback | None = None,
    on_result: ResultCallback | None = None,
    dry_run: bool = False,
    plan: TextIO | None = None,
) -> BatchResult:
    """Upload every file under ``directory`` to ``bucket`` under ``prefix``.

    Files above the engine's ``multipart_threshold`` go as multipart uploads.
    With a ``journal``, files it records as uploaded (same size) are skipped.
    """
    root = os.fspath(directory)
    plan = plan or sys.stdout  # where a dry run says what it would do
    if not await anyio.to_thread.run_sync(os.path.isdir, root):
        raise InvalidArgumentError(f"{root!r} is not a folder")
    journal = journal or Journal(None)
    tracker = _Tracker(journal, on_result)
    large: list[tuple[str, str, str | None]] = []
    threshold = engine.multipart_threshold

    async def jobs() -> AsyncIterator[Upload]:
        index = 0
        async for path, relative, size, state in _in_thread_batches(walk_states(root, filters)):
            key = object_key(prefix, relative)
            job_id = f"put {bucket}/{key} {path}"
            if journal.is_done(job_id, state):
                tracker.skipped += 1
                continue
            if threshold is not None and size > threshold:
                large.append((path, key, state))
                continue
            if dry_run:
                print(f"would upload {path} to s3://{bucket}/{key}", file=plan)
                continue
            tracker.pending[index] = (job_id, state)
            index += 1
            yield Upload(None, path, sign=signer.sign_later("PUT", bucket, key,
                                                            expires_in=expires_in))

    batch = await engine.run(jobs(), progress=progress, on_result=tracker, keep_results=False)
    extra: list[TransferResult] = []
    for path, key, state in large:
        if dry_run:
            print(f"would upload {path} to s3://{bucket}/{key} (multipart)", file=plan)
            continue
        try:
            result = await engine.upload_large(
                signer, bucket, key, path, expires_in=expires_in, progress=progress
            )
        except Exception as exc:  # noqa: BLE001 - one failed file is reported, not fatal
            result = TransferResult(url=f"s3://{bucket}/{key}", error=exc,
                                    attempts=getattr(exc, "attempts", 1))
        else:
            journal.record(f"put {bucket}/{key} {path}", state, result.nbytes)
        extra.append(result)
        if on_result is not None:
            outcome = on_result(result)
            if outcome is not None:
                await outcome
    return _merge(batch, extra, tracker.skipped)


async def download_prefix(
    signer: Signer,
    engine: TransferEngine,
    bucket: str,
    prefix: str,
    directory: str | os.PathLike[str],
    *,
    filters: Filters = Filters(),
    journal: Journal | None = None,
    expires_in: float = 3600,
    progress: ProgressCallback | None = None,
    on_result: ResultCallback | None = None,
    dry_run: bool = False,
    plan: TextIO | None = None,
) -> BatchResult:
    """Download every object under ``prefix`` into ``directory`` (listing paginated)."""
    root = os.fspath(directory)
    plan = plan or sys.stdout  # where a dry run says what it would do
    journal = journal or Journal(None)
    tracker = _Tracker(journal, on_result)
    folders = FolderCache()
    bad: list[TransferResult] = []

    async def jobs() -> AsyncIterator[Download]:
        index = 0
        paginator = signer.client.get_paginator("list_objects_v2")
        with signer._translate(f"list s3://{bucket}/{prefix}"):
            pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
            async for page in pages:
                for item in page.get("Contents", []):
                    key, size, etag = item["Key"], item["Size"], item.get("ETag")
                    relative = relative_key(prefix, key)
                    if key.endswith("/") and size == 0:
                        continue  # a "folder" marker, not a file
                    if not filters(relative):
                        continue
                    state = f"etag={etag} size={size}" if etag else None
                    try:
                        dest = local_path(root, prefix, key)
                    except InvalidArgumentError as exc:
                        bad.append(TransferResult(url=f"s3://{bucket}/{key}", error=exc))
                        continue
                    job_id = f"get {bucket}/{key} {dest}"
                    if journal.is_done(job_id, state) and await anyio.to_thread.run_sync(
                        has_size, dest, size
                    ):
                        tracker.skipped += 1
                        continue
                    if dry_run:
                        print(f"would download s3://{bucket}/{key} to {dest}", file=plan)
                        continue
                    await folders.make(os.path.dirname(dest))
                    tracker.pending[index] = (job_id, state)
                    index += 1
                    yield Download(
                        None, dest, sign=signer.sign_later("GET", bucket, key,
                                                           expires_in=expires_in)
                    )

    batch = await engine.run(jobs(), progress=progress, on_result=tracker, keep_results=False)
    return _merge(batch, bad, tracker.skipped)


async def copy_objects(
    source_signer: Signer,
    dest_signer: Signer,
    engine: TransferEngine,
    pairs: Iterable[Pair] | AsyncIterable[Pair],
    *,
    journal: Journal | None = None,
    expires_in: float = 3600,
    progress: ProgressCallback | None = None,
    on_result: ResultCallback | None = None,
) -> BatchResult:
    """Copy ``((src_bucket, src_key), (dst_bucket, dst_key))`` pairs, streaming each
    GET into its PUT with no local file. The signers may be different servers.
    ``pairs`` may be an async iterable (a listing): copies start as it is read."""
    journal = journal or Journal(None)
    tracker = _Tracker(journal, on_result)

    async def jobs() -> AsyncIterator[Copy]:
        index = 0
        async for (src_bucket, src_key), (dst_bucket, dst_key) in _aiter(pairs):
            # No source ETag is known here, so a journal cannot tell a changed
            # source from the copied one: every pair is copied again.
            job_id = f"copy {src_bucket}/{src_key} {dst_bucket}/{dst_key}"
            tracker.pending[index] = (job_id, None)
            index += 1
            yield Copy(
                None, None,
                source_sign=source_signer.sign_later("GET", src_bucket, src_key,
                                                     expires_in=expires_in),
                dest_sign=dest_signer.sign_later("PUT", dst_bucket, dst_key,
                                                 expires_in=expires_in),
            )

    batch = await engine.run(jobs(), progress=progress, on_result=tracker, keep_results=False)
    return _merge(batch, [], tracker.skipped)


async def list_keys(signer: Signer, bucket: str, prefix: str) -> AsyncIterator[str]:
    async for key, _, _ in list_objects(signer, bucket, prefix):
        yield key


async def list_objects(
    signer: Signer, bucket: str, prefix: str
) -> AsyncIterator[tuple[str, int, str | None]]:
    """``(key, size, ETag)`` of every object under ``prefix``, page by page."""
    paginator = signer.client.get_paginator("list_objects_v2")
    with signer._translate(f"list s3://{bucket}/{prefix}"):
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"], item.get("ETag")


def make_folder(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)


@dataclass
class FolderCache:
    """Makes the folders downloads land in, each in a thread and once; it
    remembers at most ``limit`` (then starts over), so memory stays flat."""

    limit: int = 10_000
    made: set[str] = field(default_factory=set)

    async def make(self, folder: str) -> None:
        if folder in self.made:
            return
        await anyio.to_thread.run_sync(make_folder, folder)
        if len(self.made) >= self.limit:
            self.made.clear()
        self.made.add(folder)


def _merge(batch: BatchResult, extra: Sequence[TransferResult], skipped: int) -> BatchResult:
    failed = tuple(batch.failed) + tuple(r for r in extra if not r.ok)
    return BatchResult(
        results=batch.results + tuple(extra),
        failed=failed,
        total=batch.total + len(extra) + skipped,
        succeeded=batch.succeeded + sum(1 for r in extra if r.ok) + skipped,
        nbytes=batch.nbytes + sum(r.nbytes for r in extra),
        seconds=batch.seconds,
        skipped=skipped,
    )

