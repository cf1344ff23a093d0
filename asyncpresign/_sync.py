"""Sync: make a destination like its source, moving only what differs.

Three directions: a folder to a bucket (uploads), a bucket to a folder
(downloads), and a bucket to a bucket (each object's presigned GET streamed
into its presigned PUT, through :func:`copy_objects`; the two buckets may be on
two servers, with two Signers).

At bucket scale nothing holds all the keys: both sides come sorted by key (a
bucket's listing as the server pages it, a folder walked in the same order by
:func:`walk_keys`) and are merged as two streams (:func:`merge_join`), each
key seen once, its decision made and forgotten. What a ``delete`` run will
remove is spooled to an unnamed temporary file (0600, gone once closed), and
removed only after every transfer of the run succeeded.

The default comparison needs no request beyond the listings: an object is
transferred when it is new, its size differs, or the source is newer than the
destination, to the second (the listing's ``LastModified`` has whole seconds):

========================  ===================================================
upload (folder → bucket)  the file's mtime > the object's ``LastModified``
download (bucket → folder) the object's ``LastModified`` > the file's mtime
bucket → bucket           the source's ``LastModified`` > the destination's
========================  ===================================================

Uploads store the file's mtime in ``x-amz-meta-mtime`` (seconds, as rclone
writes it, so rclone sees it too); downloads set the file's mtime to the
object's ``LastModified``, so the next run finds it unchanged. The listing
carries ``LastModified``; reading ``x-amz-meta-mtime`` back would cost a HEAD
per object, which is what a default run must not cost. ``checksum=True``
compares content instead for objects whose sizes match: the CRC64NVME of the
local file against the one the server keeps (a HEAD with
``ChecksumMode=ENABLED``; bucket → bucket: a HEAD on each side). An object
whose server keeps none is transferred: in doubt, the work is done again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import stat
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

import anyio.to_thread

from ._bulk import (
    Filters,
    FolderCache,
    ResultCallback,
    _in_thread_batches,
    _merge,
    _notify,
    _Tracker,
    copy_objects,
    is_folder_marker,
    is_key_too_long,
    listed_items,
    record_done,
)
from ._engine import TransferEngine
from ._exceptions import (
    AsyncPresignError,
    InvalidArgumentError,
    ListingOrderError,
    LocalFileError,
    TransferError,
)
from ._files import describe_os_error, file_checksum, unlinked
from ._manifest import Journal, job_id
from ._models import BatchResult, Download, ProgressCallback, TransferResult, Upload
from ._plan import Plan
from ._signer import Signer
from ._targets import parse_s3_uri
from ._validation import expires_seconds
from ._walk import WalkEntry, walk_keys

__all__ = [
    "Listed", "SyncResult", "differs", "folder_order", "merge_join", "s3_order", "same_server",
    "sync",
]

#: Objects per DeleteObjects request: S3's limit.
DELETE_BATCH = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncResult(BatchResult):
    """A :class:`BatchResult` (every transfer and every deletion of the run,
    failures listed) and what the comparison found, in objects and bytes.

    ``new`` and ``changed`` count what was found to transfer (those that
    failed too: they are in ``failed``); ``unchanged`` what was left alone;
    ``deleted`` what was removed from the destination (in a dry run: what
    would be). ``not_deleted`` counts the deletions held back because a
    transfer failed: deletes happen only once every transfer succeeded."""

    new: int = 0
    new_bytes: int = 0
    changed: int = 0
    changed_bytes: int = 0
    unchanged: int = 0
    unchanged_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    not_deleted: int = 0


@dataclass(frozen=True, slots=True)
class Listed:
    """One file or object of a side, as its listing or walk gives it."""

    relative: str  # the key below the prefix, or the posix path below the folder
    size: int
    mtime: float  # seconds: a file's mtime, or an object's LastModified
    name: str  # the object's key, or the file's path
    etag: str | None = None
    state: str | None = None  # a file's size and mtime, as a journal records them
    mtime_ns: int = 0  # a file's mtime, exactly


def s3_order(relative: str) -> str:
    """S3's order: UTF-8 bytes, which is the order of Python's ``str`` (code
    points sort as their UTF-8 encodings do)."""
    return relative


def folder_order(relative: str) -> tuple[str, ...]:
    """The order of a server that lists folder by folder (SeaweedFS): name by
    name, so ``a/x`` comes before ``a-b`` (in S3's order, after it)."""
    return tuple(relative.split("/"))


OrderKey = Callable[[str], Any]


async def _in_order(
    items: AsyncIterable[Listed], side: str, order: OrderKey
) -> AsyncIterator[tuple[Any, Listed]]:
    """``items`` with their sort keys, checked: each strictly after the last."""
    previous: tuple[Any, Listed] | None = None
    async for item in items:
        key = order(item.relative)
        if previous is not None and not previous[0] < key:
            raise ListingOrderError(side, previous[1].relative, item.relative)
        previous = (key, item)
        yield previous


async def merge_join(
    source: AsyncIterable[Listed], dest: AsyncIterable[Listed], *, order: OrderKey = s3_order
) -> AsyncIterator[tuple[str, Listed | None, Listed | None]]:
    """``(relative, source entry or None, destination entry or None)`` for every
    relative key on either side, once, in ``order``; both sides must come in
    that order (each key strictly after the previous one), or
    :class:`ListingOrderError` is raised as soon as one does not. Holds one
    entry per side."""
    src = _in_order(source, "source", order)
    dst = _in_order(dest, "destination", order)
    s = await anext(src, None)
    d = await anext(dst, None)
    while s is not None or d is not None:
        if d is None or (s is not None and s[0] < d[0]):
            assert s is not None
            yield s[1].relative, s[1], None
            s = await anext(src, None)
        elif s is None or d[0] < s[0]:
            yield d[1].relative, None, d[1]
            d = await anext(dst, None)
        else:
            yield s[1].relative, s[1], d[1]
            s, d = await anext(src, None), await anext(dst, None)


def differs(source: Listed, dest: Listed) -> bool:
    """The default rule: sizes differ, or the source is newer, to the second
    (a listing's LastModified has whole seconds)."""
    return source.size != dest.size or math.floor(source.mtime) > math.floor(dest.mtime)


def mtime_metadata(mtime_ns: int) -> dict[str, str]:
    """``x-amz-meta-mtime`` as rclone writes it: seconds, nine decimals."""
    return {"mtime": f"{mtime_ns // 1_000_000_000}.{mtime_ns % 1_000_000_000:09d}"}


def is_plain_path(relative: str) -> bool:
    """Whether a key below the prefix names a file path one to one: no empty,
    ``.`` or ``..`` segment (``a//b``, ``a/./b`` and ``../x`` do not), and no
    NUL, which no file name can hold (the OS calls raise ValueError on it)."""
    return "\0" not in relative and all(part not in ("", ".", "..") for part in relative.split("/"))


@dataclass(frozen=True, slots=True)
class _Place:
    """One side: a bucket and a folder prefix ("" or ending in "/"), or a folder."""

    bucket: str | None
    path: str  # the prefix, or the local folder

    def uri(self, relative: str) -> str:
        if self.bucket is None:
            return os.path.join(self.path, *relative.split("/"))
        return f"s3://{self.bucket}/{self.path}{relative}"


def _place(where: str | os.PathLike[str]) -> _Place:
    if isinstance(where, str) and where.startswith("s3://"):
        bucket, prefix = parse_s3_uri(where)
        if not bucket:
            raise InvalidArgumentError(f"{where!r} names no bucket")
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # s3://b/photos is the folder photos/, as everywhere
        return _Place(bucket, prefix)
    try:
        path = os.fspath(where)
    except TypeError:  # a bare TypeError for, say, a number
        raise InvalidArgumentError(
            f"a side to sync is a folder or s3://bucket/prefix, not {type(where).__name__}"
        ) from None
    if not path:
        # os.path.join("", "a", "b") is "a/b": files would land in the working folder.
        raise InvalidArgumentError("the folder to sync is an empty name (use '.' for this one)")
    return _Place(None, path)


class _Spool:
    """What to delete, spooled to an unnamed temporary file (created 0600 and
    unlinked at once, so nothing is left behind), never held in memory."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self.count = 0
        self.nbytes = 0

    def add(self, name: str, size: int) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        # JSON: a key may hold a newline; a path may hold lone surrogates.
        self._file.write(json.dumps([name, size]) + "\n")
        self.count += 1
        self.nbytes += size

    def batches(self, size: int) -> Iterator[list[tuple[str, int]]]:
        """The spooled entries, ``size`` at a time (blocking reads: in a thread)."""
        if self._file is None:
            return
        self._file.flush()
        self._file.seek(0)
        batch: list[tuple[str, int]] = []
        for line in self._file:
            name, nbytes = json.loads(line)
            batch.append((name, nbytes))
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class _Tally:
    new: int = 0
    new_bytes: int = 0
    changed: int = 0
    changed_bytes: int = 0
    unchanged: int = 0
    unchanged_bytes: int = 0


Direction = Literal["upload", "download", "copy"]
Decision = tuple[Literal["new", "changed"], Listed]


async def sync(
    signer: Signer,
    engine: TransferEngine,
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    dest_signer: Signer | None = None,
    delete: bool = False,
    checksum: bool = False,
    filters: Filters | None = None,
    journal: Journal | None = None,
    expires_in: float = 3600,
    progress: ProgressCallback | None = None,
    on_result: ResultCallback | None = None,
    on_skip: Callable[[], None] | None = None,
    dry_run: bool = False,
    plan: Plan | None = None,
) -> SyncResult:
    """Make ``dest`` like ``source``: transfer what is new or changed there.

    Each side is a local folder or ``"s3://bucket/prefix"`` (the folder
    ``prefix/``; pass a folder named like that as a ``pathlib.Path``): folder
    to bucket, bucket to folder, or bucket to bucket. ``signer`` signs for
    the buckets, ``dest_signer`` for the destination bucket when it is on
    another server or account. The comparison (by size and modification
    time, or with ``checksum=True`` by CRC64NVME where the sizes match) is
    described in this module's docstring; ``filters`` apply to both sides,
    so what they leave out is neither sent nor deleted.

    With ``delete=True``, what the destination has and the source does not
    is deleted (objects in batches of 1,000 by the Signer's credentials;
    files unlinked, never a folder, never outside ``dest``) but only after
    every transfer succeeded; otherwise nothing is deleted and
    ``not_deleted`` says how much was held back. A listing out of key order
    raises :class:`ListingOrderError` before anything is deleted.

    ``journal``, ``progress``, ``on_result`` and ``on_skip`` are as for
    :func:`upload_tree`; the comparison alone makes a re-run skip what a
    finished run moved. ``dry_run=True`` changes nothing: each transfer and
    deletion goes to ``plan`` (a line on stdout by default) and the result's
    counts say what would be new, changed, unchanged and deleted.

    Raises :class:`InvalidArgumentError` before anything moves for two
    local folders, a bucket folder synced with itself or inside itself, a
    source folder that does not exist, or a source prefix with nothing under
    it (most often a typo, which with ``delete`` would empty the destination).
    """
    src, dst = _place(source), _place(dest)
    # At the call: each transfer checks it only when signed, so a sync with
    # nothing to move (or only deletions) took any expiry and said ok.
    expires_seconds(expires_in)
    dest_signer = dest_signer or signer
    if src.bucket is None and dst.bucket is None:
        raise InvalidArgumentError("sync needs a bucket on one side at least: s3://bucket/prefix")
    if (
        src.bucket is not None and src.bucket == dst.bucket
        and same_server(signer, dest_signer)
        and (src.path.startswith(dst.path) or dst.path.startswith(src.path))
    ):
        raise InvalidArgumentError(
            f"s3://{src.bucket}/{src.path} and s3://{dst.bucket}/{dst.path} overlap: a sync "
            "from a folder into itself (or into a folder inside it) would chase its own copies"
        )
    if src.bucket is None and not await anyio.to_thread.run_sync(os.path.isdir, src.path):
        raise InvalidArgumentError(f"{src.path!r} is not a folder")
    folders_first = False
    if src.bucket is not None:
        listed, folders_first = await _probe(signer, src.bucket, src.path)
        if not listed:
            raise InvalidArgumentError(
                f"nothing is stored under s3://{src.bucket}/{src.path} (a typo? a sync from "
                "nothing would change nothing, or with delete empty the destination)"
            )
    if dst.bucket is not None:
        dest_folders_first = (await _probe(dest_signer, dst.bucket, dst.path))[1]
        if src.bucket is None:
            folders_first = dest_folders_first
    return await _Sync(
        signer=signer, dest_signer=dest_signer, engine=engine, src=src, dst=dst,
        delete=delete, checksum=checksum, filters=filters or Filters(),
        journal=journal or Journal(None), expires_in=expires_in, progress=progress,
        on_result=on_result, on_skip=on_skip, dry_run=dry_run, plan=plan or Plan(),
        order=folder_order if folders_first else s3_order,
    ).run()


def same_server(a: Signer, b: Signer) -> bool:
    """Whether two Signers sign for one server (so one bucket name is one bucket)."""
    return a is b or a.client.meta.endpoint_url == b.client.meta.endpoint_url


async def _probe(signer: Signer, bucket: str, prefix: str) -> tuple[bool, bool]:
    """One listing of one key: whether anything is under ``prefix``, and
    whether the server lists folder by folder. S3 lists keys in UTF-8 byte
    order; SeaweedFS lists a folder's keys before the names beside it that
    sort before ``/`` (``a/x`` before ``a-b``), and says so only by its name
    in the ``Server`` header. The merge checks every key's order anyway: a
    wrong guess stops the sync before any deletion."""
    with signer._translate(f"list s3://{bucket}/{prefix}"):
        page = await signer.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    server = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("server", "")
    return bool(page.get("Contents")), str(server).lower().startswith("seaweedfs")


@dataclass
class _Sync:
    """One sync run: the two sides, the decisions, the jobs, the deletions."""

    signer: Signer
    dest_signer: Signer
    engine: TransferEngine
    src: _Place
    dst: _Place
    delete: bool
    checksum: bool
    filters: Filters
    journal: Journal
    expires_in: float
    progress: ProgressCallback | None
    on_result: ResultCallback | None
    on_skip: Callable[[], None] | None
    dry_run: bool
    plan: Plan
    order: OrderKey

    def __post_init__(self) -> None:
        self.direction: Direction = (
            "upload" if self.src.bucket is None
            else "download" if self.dst.bucket is None else "copy"
        )
        self.tally = _Tally()
        self.spool = _Spool()
        self.refused: list[TransferResult] = []
        self.tracker = _Tracker(self.journal, self.on_result, self.on_skip)

    async def run(self) -> SyncResult:
        try:
            if self.dry_run:
                async for _, entry in self._decisions():
                    self.plan.add(self.direction, self.src.uri(entry.relative),
                                  self.dst.uri(entry.relative), entry.size)
                batch = _merge(_EMPTY, self.refused, 0)
                if batch.failed:  # held back, as a real run would: not listed
                    return self._result(batch, 0, 0, self.spool.count)
                return await self._deletions(batch, dry_run=True)
            if self.direction == "upload":
                batch = await self._uploads()
            elif self.direction == "download":
                batch = await self._downloads()
            else:
                batch = await self._copies()
            if not self.spool.count:
                return self._result(batch, 0, 0, 0)
            if batch.failed:
                return self._result(batch, 0, 0, self.spool.count)
            return await self._deletions(batch)
        finally:
            self.spool.close()

    def _result(
        self, batch: BatchResult, deleted: int, deleted_bytes: int, not_deleted: int
    ) -> SyncResult:
        fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(BatchResult)}
        return SyncResult(
            **fields, **dataclasses.asdict(self.tally), deleted=deleted,
            deleted_bytes=deleted_bytes, not_deleted=not_deleted,
        )

    # -- the two sides, merged ---------------------------------------------------------

    async def _refuse(self, result: TransferResult) -> None:
        self.refused.append(result)
        await _notify(self.on_result, result)

    def _side(self, place: _Place, signer: Signer, *, source: bool) -> AsyncIterator[Listed]:
        if place.bucket is None:
            return self._local_side(place.path, source=source)
        return self._bucket_side(signer, place.bucket, place.path,
                                 plain_only=source and self.direction == "download")

    async def _bucket_side(
        self, signer: Signer, bucket: str, prefix: str, *, plain_only: bool
    ) -> AsyncIterator[Listed]:
        """The objects under ``prefix``, page by page, as the server lists them
        (a listing cut short, going round or leaving the prefix stops the sync
        before any deletion: see ``listed_items``)."""
        async for item in listed_items(signer, bucket, prefix):
            key, size = item["Key"], item["Size"]
            relative = key[len(prefix):]
            if is_folder_marker(key, size) or not relative or not self.filters(relative):
                continue
            if plain_only and (not is_plain_path(relative) or is_key_too_long(key)):
                # a//b or a/./b lands where a/b does: the two could never
                # both be kept in step with one file. A key over S3's limit can
                # nest folders deeper than os.makedirs recurses.
                await self._refuse(TransferResult(
                    url=f"s3://{bucket}/{key}", op="download", error=InvalidArgumentError(
                        f"object key {key!r} does not name one file path (an empty, "
                        "'.' or '..' segment, a NUL, or over 1,024 bytes): not synced"
                    )))
                continue
            yield Listed(relative, size, item["LastModified"].timestamp(), key,
                         item.get("ETag"))

    async def _local_side(self, root: str, *, source: bool) -> AsyncIterator[Listed]:
        """The folder's files in key order. What the walk cannot send fails as a
        job on the source side; on the destination side it is no file to compare
        (a missing destination folder is an empty side)."""
        walk = walk_keys(root, self.filters, folders_first=self.order is folder_order)
        async for entry in _in_thread_batches(walk):
            if entry.problem is not None:
                if source:
                    await self._refuse(self._problem(entry))
                continue
            if not entry.not_followed:
                yield Listed(entry.relative, entry.size, entry.mtime_ns / 1e9, entry.path,
                             state=entry.state, mtime_ns=entry.mtime_ns)

    def _problem(self, entry: WalkEntry) -> TransferResult:
        shown = self.dst.uri(entry.relative).encode("utf-8", "backslashreplace").decode()
        return TransferResult(url=shown, error=entry.error(), op="upload", path=entry.path)

    async def _decisions(self) -> AsyncIterator[Decision]:
        """What to transfer, from the merge; the rest counted, or spooled to delete."""
        tally = self.tally
        pairs = merge_join(
            self._side(self.src, self.signer, source=True),
            self._side(self.dst, self.dest_signer, source=False),
            order=self.order,
        )
        async for _, src, dst in pairs:
            if src is None:
                assert dst is not None
                if self.delete:  # a dry run lists them once it knows none is held back
                    self.spool.add(dst.name, dst.size)
            elif dst is None:
                tally.new += 1
                tally.new_bytes += src.size
                yield "new", src
            elif await self._same(src, dst):
                tally.unchanged += 1
                tally.unchanged_bytes += src.size
            else:
                tally.changed += 1
                tally.changed_bytes += src.size
                yield "changed", src

    async def _same(self, src: Listed, dst: Listed) -> bool:
        if not self.checksum or src.size != dst.size:
            return not differs(src, dst)
        mine = await self._checksum_of(self.src, self.signer, src)
        theirs = await self._checksum_of(self.dst, self.dest_signer, dst)
        return mine is not None and mine == theirs

    async def _checksum_of(self, place: _Place, signer: Signer, entry: Listed) -> str | None:
        """The CRC64NVME of a file (read whole, in a thread), or of an object as
        its server keeps it (a HEAD); None when there is none to compare."""
        if place.bucket is None:
            try:
                return await anyio.to_thread.run_sync(file_checksum, entry.name, "crc64nvme")
            except OSError:  # LocalFileError is one: the transfer reports it
                return None
        try:
            with signer._translate(f"look up s3://{place.bucket}/{entry.name}"):
                answer = await signer.client.head_object(
                    Bucket=place.bucket, Key=entry.name, ChecksumMode="ENABLED"
                )
        except AsyncPresignError:
            return None
        value = answer.get("ChecksumCRC64NVME")
        return value if isinstance(value, str) else None

    # -- the transfers -----------------------------------------------------------------

    async def _uploads(self) -> BatchResult:
        bucket, prefix = self.dst.bucket, self.dst.path
        assert bucket is not None
        threshold = self.engine.multipart_threshold
        large: list[tuple[Listed, str]] = []
        tracker = self.tracker

        async def jobs() -> AsyncIterator[Upload]:
            index = 0
            async for _, entry in self._decisions():
                key = prefix + entry.relative
                job = job_id("put", bucket, key, entry.name)
                # No journal skip: the comparison of the two sides decided this
                # file must go (the object is missing, or differs), and a journal
                # knows only this machine's runs, not what the bucket holds now.
                if threshold is not None and entry.size > threshold:
                    large.append((entry, key))
                    continue
                tracker.pending[index] = (job, entry.state, None)
                index += 1
                yield Upload(None, entry.name, sign=self.dest_signer.sign_later(
                    "PUT", bucket, key, expires_in=self.expires_in,
                    metadata=mtime_metadata(entry.mtime_ns),
                ))

        batch = await self.engine.run(jobs(), progress=self.progress, on_result=tracker,
                                      keep_results=False)
        extra = list(self.refused)
        for entry, key in large:
            try:
                result = await self.engine.upload_large(
                    self.dest_signer, bucket, key, entry.name, expires_in=self.expires_in,
                    progress=self.progress, Metadata=mtime_metadata(entry.mtime_ns),
                )
            except Exception as exc:  # noqa: BLE001 - one failed file is reported, not fatal
                result = TransferResult(url=f"s3://{bucket}/{key}", error=exc, op="upload",
                                        path=entry.name, attempts=getattr(exc, "attempts", 1))
            else:
                await record_done(self.journal, job_id("put", bucket, key, entry.name),
                                  entry.state, result.nbytes)
            extra.append(result)
            await _notify(self.on_result, result)
        return _merge(batch, extra, tracker.skipped)

    async def _downloads(self) -> BatchResult:
        bucket = self.src.bucket
        assert bucket is not None
        tracker = self.tracker
        folders = FolderCache(self.dst.path)
        #: job index -> (file, the object's LastModified in ns): set once written
        times: dict[int, tuple[str, int]] = {}

        async def jobs() -> AsyncIterator[Download]:
            index = 0
            async for _, entry in self._decisions():
                path = self.dst.uri(entry.relative)
                state = f"etag={entry.etag} size={entry.size}" if entry.etag else None
                job = job_id("get", bucket, entry.name, path)
                # No journal skip: the comparison decided (see _uploads).
                problem = await folders.make(os.path.dirname(path))
                if problem is not None:
                    await self._refuse(TransferResult(
                        url=f"s3://{bucket}/{entry.name}", op="download", path=path,
                        error=LocalFileError(f"{problem}, so {path!r} cannot be written", path),
                    ))
                    continue
                tracker.pending[index] = (job, state, path)
                times[index] = (path, round(entry.mtime * 1e9))
                index += 1
                yield Download(None, path, sign=self.signer.sign_later(
                    "GET", bucket, entry.name, expires_in=self.expires_in))

        async def done(result: TransferResult) -> None:
            path, mtime_ns = times.pop(result.index or 0, ("", 0))
            if result.ok and path:
                # The object's LastModified, so the next run sees it unchanged;
                # if this fails, the next run downloads it again: no harm.
                await anyio.to_thread.run_sync(_set_mtime, path, mtime_ns)
            await tracker(result)

        batch = await self.engine.run(jobs(), progress=self.progress, on_result=done,
                                      keep_results=False)
        await tracker.record_queued()
        return _merge(batch, self.refused, tracker.skipped)

    async def _copies(self) -> BatchResult:
        src_bucket, dst_bucket = self.src.bucket, self.dst.bucket
        assert src_bucket is not None
        assert dst_bucket is not None

        async def pairs() -> AsyncIterator[tuple[tuple[str, str], tuple[str, str], str | None]]:
            async for _, entry in self._decisions():
                # No ETag, so copy_objects' journal skips nothing the comparison
                # decided to copy (see _uploads).
                yield ((src_bucket, entry.name), (dst_bucket, self.dst.path + entry.relative),
                       None)

        batch = await copy_objects(
            self.signer, self.dest_signer, self.engine, pairs(), journal=self.journal,
            expires_in=self.expires_in, progress=self.progress, on_result=self.on_result,
            on_skip=self.on_skip,
        )
        skipped = batch.skipped
        batch = dataclasses.replace(batch, total=batch.total - skipped,
                                    succeeded=batch.succeeded - skipped)
        return _merge(batch, self.refused, skipped)

    # -- the deletions -----------------------------------------------------------------

    async def _deletions(self, batch: BatchResult, *, dry_run: bool = False) -> SyncResult:
        """Delete what was spooled; every transfer of the run succeeded. A dry
        run lists each deletion instead, after the same checks of a local file
        (a link leading outside the destination, a folder): what the real run
        would refuse is a failure there too."""
        deleted = deleted_bytes = 0
        failed: list[TransferResult] = []
        batches = self.spool.batches(DELETE_BATCH)
        while names := await anyio.to_thread.run_sync(next, batches, None):
            if self.dst.bucket is None:
                done, bad = await anyio.to_thread.run_sync(
                    functools.partial(_delete_files, self.dst.path, names, unlink=not dry_run)
                )
            elif dry_run:
                done, bad = names, []
            else:
                done, bad = await _delete_objects(self.dest_signer, self.dst.bucket, names)
            if dry_run:
                for name, size in done:
                    self.plan.delete(name if self.dst.bucket is None
                                     else f"s3://{self.dst.bucket}/{name}", size)
            deleted += len(done)
            deleted_bytes += sum(size for _, size in done)
            for result in bad:
                failed.append(result)
                await _notify(self.on_result, result)
        counted = 0 if dry_run else deleted  # a planned deletion is no transfer done
        batch = dataclasses.replace(
            batch, failed=batch.failed + tuple(failed),
            total=batch.total + counted + len(failed), succeeded=batch.succeeded + counted,
        )
        return self._result(batch, deleted, deleted_bytes, 0)

_EMPTY = BatchResult(results=(), failed=(), total=0, succeeded=0, nbytes=0, seconds=0.0)


def _set_mtime(path: str, mtime_ns: int) -> None:
    with contextlib.suppress(OSError):
        os.utime(path, ns=(mtime_ns, mtime_ns))


async def _delete_objects(
    signer: Signer, bucket: str, names: list[tuple[str, int]]
) -> tuple[list[tuple[str, int]], list[TransferResult]]:
    """One DeleteObjects request (at most 1,000 keys): those deleted, and a
    failed result for each key the server would not delete."""
    try:
        with signer._translate(f"delete {len(names)} objects from s3://{bucket}"):
            answer = await signer.client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k, _ in names], "Quiet": True}
            )
    except AsyncPresignError as exc:
        return [], [TransferResult(url=f"s3://{bucket}/{k}", error=exc, op="delete")
                    for k, _ in names]
    errors = {e.get("Key"): e for e in answer.get("Errors", [])}
    failed = []
    for key, _ in names:
        if key in errors:
            uri = f"s3://{bucket}/{key}"
            code, message = errors[key].get("Code"), errors[key].get("Message")
            failed.append(TransferResult(url=uri, op="delete", error=TransferError(
                f"not deleted: {code}: {message}", url=uri)))
    return [(k, s) for k, s in names if k not in errors], failed


def _delete_files(
    root: str, names: list[tuple[str, int]], *, unlink: bool = True
) -> tuple[list[tuple[str, int]], list[TransferResult]]:
    """Unlink files under ``root``: never a folder, and never a file reached
    through a link to a folder (inside the destination or out of it): the
    walk follows such links, so the file is another path's, one the source
    may well have (``latest -> v2`` lists ``v2/a`` twice, once as ``latest/a``).
    With ``unlink=False`` (a dry run), only the checks: what would be
    deleted, and what refused."""
    inside = os.path.realpath(root)
    done, failed = [], []
    for path, size in names:
        try:
            parent = os.path.dirname(path)
            folder = os.path.realpath(parent)
            if os.path.commonpath([inside, folder]) != inside:
                raise LocalFileError(f"{path!r} is outside {root!r} (a link leads there): "
                                     "not deleted", path)
            if folder != unlinked(inside, root, parent):
                raise LocalFileError(
                    f"{path!r} is reached through a link to a folder in {root!r} (it is "
                    f"{os.path.join(folder, os.path.basename(path))!r}): not deleted", path)
            if stat.S_ISDIR(os.lstat(path).st_mode):
                raise LocalFileError(f"{path!r} is a folder: not deleted", path)
            if unlink:
                os.unlink(path)
        except FileNotFoundError:
            pass  # gone already: what a deletion wanted
        except LocalFileError as exc:
            failed.append(TransferResult(url=path, error=exc, op="delete", path=path))
            continue
        except OSError as exc:
            failed.append(TransferResult(url=path, op="delete", path=path, error=LocalFileError(
                f"cannot delete {path!r}: {describe_os_error(exc)}", path, errno=exc.errno)))
            continue
        done.append((path, size))
    return done, failed

