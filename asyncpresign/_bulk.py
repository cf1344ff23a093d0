"""Bulk helpers: whole folders, whole prefixes, bucket-to-bucket copies.

They sign as they go: each job carries a signing function that the engine
calls just before the transfer starts (and again if the URL expires), so
signing stays ahead of the transfers by at most the engine's concurrency and
a listing of millions is never signed, or held, all at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import tempfile
import unicodedata
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
from typing import Any, TypeVar

import anyio.to_thread

from ._attempts import fspath
from ._checks import PageChecks
from ._engine import TransferEngine, _aiter
from ._exceptions import (
    AsyncPresignError,
    HTTPStatusError,
    InvalidArgumentError,
    LocalFileError,
    TransferError,
)
from ._files import describe_os_error, unlinked
from ._manifest import Journal, job_id
from ._models import BatchResult, Copy, Download, ProgressCallback, TransferResult, Upload
from ._offload import FileThread
from ._plan import Plan
from ._signer import Signer
from ._validation import check_bucket, expires_seconds
from ._walk import WalkEntry, walk_files, walk_one, walk_tree

# walk_files and walk_tree live in _walk, and are imported from here too.
__all__ = ["Filters", "copy_objects", "download_prefix", "upload_tree", "walk_files", "walk_tree"]

T = TypeVar("T")
ResultCallback = Callable[[TransferResult], Awaitable[None] | None]
#: ((source bucket, key), (target bucket, key)), optionally with the source's
#: ETag as listed, which lets a journal skip a copy of an unchanged source.
Pair = tuple[tuple[str, str], tuple[str, str]] | tuple[tuple[str, str], tuple[str, str], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Glob patterns on the relative path (``*.csv``, ``logs/**``); excludes win."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):
            patterns = getattr(self, name)
            # A str is a sequence of one-character patterns: exclude=".env"
            # excluded files named ".", "e", "n" and "v", and sent .env itself;
            # include="*.txt" had "*" among them, and took every file.
            if isinstance(patterns, (str, bytes)):
                raise InvalidArgumentError(
                    f"Filters {name} is a list of glob patterns, not one: "
                    f"{name}=[{patterns!r:.60}]"
                )
            try:
                patterns = tuple(patterns)
            except TypeError:
                raise InvalidArgumentError(
                    f"Filters {name} must be a list of glob patterns, not "
                    f"{type(patterns).__name__}"
                ) from None
            for pattern in patterns:
                if not isinstance(pattern, str):
                    raise InvalidArgumentError(
                        f"Filters {name} patterns must be str, not {type(pattern).__name__}"
                    )
            object.__setattr__(self, name, patterns)

    def __call__(self, relative: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(relative, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(relative, p) for p in self.exclude)

    def covers_folder(self, relative: str) -> bool:
        """Whether one exclude drops every name under the folder ``relative``, so
        a problem with the folder itself need not be reported: tried on names no
        pattern spells out, of every shape (one character or many, deep or not,
        any last character), which only a pattern such as ``*`` or ``dir/*``
        matches all of. When in doubt, the folder is reported."""
        base = f"{relative}/" if relative else ""
        probes = [f"{base}\0", f"{base}\0\0/\0.v", f"{base}Z/\x01/a", f"{base}.x"]
        return any(all(fnmatch.fnmatchcase(probe, p) for probe in probes) for p in self.exclude)


@dataclass
class _Tracker:
    """Maps results back to job ids for the journal, holding only jobs in flight."""

    journal: Journal
    on_result: ResultCallback | None
    on_skip: Callable[[], None] | None = None
    #: index -> (job id, the state it is done in, a download's destination)
    pending: dict[int, tuple[str, str | None, str | None]] = field(default_factory=dict)
    skipped: int = 0

    def skip(self) -> None:
        """A job the journal says is done: counted, and told to ``on_skip``."""
        self.skipped += 1
        if self.on_skip is not None:
            self.on_skip()

    async def record_queued(self) -> None:
        """Record the downloads still queued (at the end of a run, so a caller
        who never closes the journal loses none of them)."""
        if self.journal.queued:
            await anyio.to_thread.run_sync(self.journal.flush)

    async def __call__(self, result: TransferResult) -> None:
        job, state, dest = self.pending.pop(result.index or 0, ("", None, None))
        if result.ok and job:
            await record_done(self.journal, job, state, result.nbytes, dest=dest)
        await _notify(self.on_result, result)


async def record_done(
    journal: Journal, job: str, state: str | None, nbytes: int, *,
    etag: str | None = None, dest: str | None = None,
) -> None:
    """Record a finished job in ``journal``: a download (to ``dest``) queued
    until its file is stat'ed, anything else appended. When a flush is due, it
    runs in a thread: it stats those files and syncs the journal to disk."""
    due = (
        journal.record(job, state, nbytes, etag) if dest is None
        else journal.record_download(job, state, nbytes, dest)
    )
    if due:
        await anyio.to_thread.run_sync(journal.flush)


def copy_id(src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> str:
    """A copy's identity in a journal: what is copied where."""
    return f"copy {src_bucket}/{src_key} {dst_bucket}/{dst_key}"


def is_folder_marker(key: str, size: int) -> bool:
    """An empty ``photos/`` object, made by consoles to show a folder: not a file."""
    return size == 0 and key.endswith("/")


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


def local_relative(prefix: str, key: str) -> str:
    """Where ``key`` lands under the destination folder, as a posix path: its
    path relative to ``prefix`` without empty or ``.`` segments (a file system
    has no ``a//b``); refuses keys that would escape the folder, and keys no
    S3 holds (a NUL, which no file name can hold; over S3's 1,024 bytes, which a
    hostile listing could nest deeper than ``os.makedirs`` recurses)."""
    check_key_length(key)
    return _relative_path(prefix, key)


def _relative_path(prefix: str, key: str) -> str:
    parts = [p for p in relative_key(prefix, key).split("/") if p not in ("", ".")]
    if not parts or ".." in parts or key.endswith("/") or "\0" in key:
        raise InvalidArgumentError(f"object key {key!r} does not map to a file in the folder")
    return "/".join(parts)


def is_key_too_long(key: str) -> bool:
    """Whether ``key`` is over S3's limit: no key S3 holds, only a hostile listing's."""
    return len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES


def check_key_length(key: str) -> None:
    if is_key_too_long(key):
        raise InvalidArgumentError(
            f"object key {key[:60]!r}... is over S3's {MAX_KEY_BYTES} bytes: not a key S3 holds"
        )


#: The longest object key S3 accepts, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


def local_path(directory: str, prefix: str, key: str) -> str:
    """Where ``key`` lands under ``directory``; refuses keys that would escape it."""
    check_key_length(key)  # its own message: the one below would show the whole key
    try:
        relative = _relative_path(prefix, key)
    except InvalidArgumentError:
        raise InvalidArgumentError(
            f"object key {key!r} does not map to a file inside {directory!r}"
        ) from None
    return os.path.join(directory, *relative.split("/"))


class SamePath:
    """Finds the keys of one listing that land on the same local path (``a/b``,
    ``a//b``, ``a/./b``; and ``A/B`` too on a file system that ignores case):
    one of them is downloaded, each other one fails, and none overwrites another.

    Holding every path of a listing of ten million keys would take gigabytes,
    so only keys that *need* normalising are held. Every local path ``p`` has
    one *plain* key, :meth:`plain` (``prefix/p``, or for keys beside a prefix
    that is not a folder, like ``logs/2026-`` listing ``logs/2026-01.gz``,
    ``logs/p``), and a key that is its path's plain key has nothing to
    normalise: two plain keys never share a path. Every other key (``a//b``,
    ``a/./b``, ``logs/2026-/2026-01.gz`` which lands where ``logs/2026-01.gz``
    does; with ``fold_case`` any key with a capital) is remembered by its path,
    and a collision is one of:

    - an earlier remembered key: found in the table;
    - a later plain key: it looks itself up in the table;
    - an earlier plain key: S3 lists keys in UTF-8 byte order, so it was listed
      before only if it sorts before; then :meth:`check` names it and the
      caller asks the server whether it exists (one HEAD, for a rare key). A
      server listing in another order (SeaweedFS goes folder by folder) may
      miss only this case.

    Memory grows with the keys that need normalising, not with the listing;
    with ``fold_case`` (a case-insensitive destination) with the keys that
    have capitals."""

    def __init__(self, prefix: str, *, fold_case: bool = False) -> None:
        self.prefix = prefix
        self.fold_case = fold_case
        folder = prefix.rstrip("/")
        self._beside = prefix[: prefix.rfind("/") + 1]  # the folder of a prefix's last name
        #: A prefix that is not a folder lists keys in its folder and beside it;
        #: those beside it land on paths starting with its last name.
        self._name = prefix[len(self._beside):] if folder and not prefix.endswith("/") else None
        self._inside = prefix if prefix.endswith("/") or not folder else folder + "/"
        self._held: dict[str, str] = {}  # path (folded) -> the first key landing there

    def __len__(self) -> int:
        """How many keys are held (those that needed normalising)."""
        return len(self._held)

    def plain(self, relative: str) -> str:
        """The one key that lands on ``relative`` with nothing to normalise."""
        if self._name is not None and relative.startswith(self._name):
            return self._beside + relative
        return self._inside + relative

    def folded(self, relative: str) -> str:
        """A path as the destination compares names: folded, if it ignores case
        (and then, as macOS does, Unicode composition too)."""
        if not self.fold_case:
            return relative
        return unicodedata.normalize("NFC", relative.casefold())

    def check(self, key: str, relative: str) -> tuple[str | None, str | None]:
        """``key``, landing on ``relative`` (from :func:`local_relative`), is new:
        returns an earlier key that lands there too, or the plain key to ask the
        server about (if it exists, :meth:`found` it), or ``(None, None)``."""
        path = self.folded(relative)
        earlier = self._held.get(path)
        if earlier == key:
            return None, None  # the plain key a later one was found to collide with
        if earlier is not None:
            return earlier, None
        if path == relative and key == self.plain(relative):
            return None, None
        self._held[path] = key
        twin = self.plain(path)
        if twin.encode() < key.encode() and self._is_plain(twin, path):
            return None, twin
        return None, None

    def found(self, key: str, relative: str) -> None:
        """The plain key :meth:`check` named exists: it holds the path."""
        self._held[self.folded(relative)] = key

    def _is_plain(self, key: str, path: str) -> bool:
        if not key.startswith(self.prefix):
            return False  # not in this listing
        try:
            relative = local_relative(self.prefix, key)
        except InvalidArgumentError:
            return False
        return relative == path and key == self.plain(relative)


def ignores_case(folder: str, *, dry_run: bool = False) -> bool:
    """Whether file names in ``folder`` (or the nearest folder above it that
    exists) ignore case: probed once, by a temporary file whose name is looked
    up with its case swapped. A dry run creates nothing: it looks up the
    folder's own name instead, if it has letters."""
    path = os.path.abspath(folder)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not dry_run:
        with contextlib.suppress(OSError):
            fd, probe = tempfile.mkstemp(prefix=".asyncpresign-case-", dir=path)
            os.close(fd)
            try:
                head, name = os.path.split(probe)
                return os.path.exists(os.path.join(head, name.swapcase()))
            finally:
                os.unlink(probe)
    head, name = os.path.split(path)
    try:
        return name != name.swapcase() and os.path.samestat(
            os.stat(path), os.stat(os.path.join(head, name.swapcase()))
        )
    except OSError:
        return False


def listed_by(
    signer: Signer, bucket: str, prefix: str, filters: Filters
) -> Callable[[str], Awaitable[bool]]:
    """Whether a key is in the listing being downloaded: it passes ``filters``
    and the server has it (a HEAD). Any answer but 404 counts as yes: in doubt,
    a later key does not overwrite an earlier one's file."""
    async def listed(key: str) -> bool:
        if not filters(relative_key(prefix, key)):
            return False
        try:
            with signer._translate(f"look up s3://{bucket}/{key}"):
                await signer.client.head_object(Bucket=bucket, Key=key)
        except HTTPStatusError as exc:
            return exc.status != 404
        except AsyncPresignError:
            return True
        return True

    return listed


async def same_path_as(
    paths: SamePath, key: str, listed: Callable[[str], Awaitable[bool]]
) -> str | None:
    """The key listed before ``key`` that lands on the same local path, if any;
    ``listed`` says whether a key is in the listing (:func:`listed_by`)."""
    relative = local_relative(paths.prefix, key)
    earlier, twin = paths.check(key, relative)
    if twin is not None and await listed(twin):
        paths.found(twin, relative)
        return twin
    return earlier


def same_path_error(bucket: str, key: str, earlier: str, dest: str) -> LocalFileError:
    return LocalFileError(
        f"s3://{bucket}/{key} lands on {dest!r}, as s3://{bucket}/{earlier} does: not "
        "downloaded, so neither overwrites the other",
        dest,
    )


def folder_problem(folder: str) -> str | None:
    """Make ``folder`` and those above it; None, or why it cannot be made. The
    folder "" (of a bare file name) is the current one."""
    try:
        os.makedirs(folder or os.curdir, exist_ok=True)
    except OSError as exc:
        reason = describe_os_error(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            blocker = folder  # the file in the way: the nearest path that exists
            while not os.path.exists(blocker) and os.path.dirname(blocker) != blocker:
                blocker = os.path.dirname(blocker)
            if not os.path.isdir(blocker):
                reason = f"{blocker!r} is a file, not a folder"
        return f"cannot create folder {folder!r}: {reason}"
    return None


async def _in_thread_batches(
    items: Iterator[T], thread: FileThread | None = None
) -> AsyncIterator[T]:
    """Walk a folder in a worker thread, 500 entries per hop, never on the loop.
    With ``thread`` (a manifest that may be a pipe, whose read can wait for
    ever), the hops go to that daemon thread instead, which a cancelled run
    leaves behind rather than waits for."""
    def take() -> list[T]:
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) == 500:
                break
        return batch

    while batch := await (
        anyio.to_thread.run_sync(take) if thread is None else thread.run(take)
    ):
        for item in batch:
            yield item


def _check_run(bucket: str, prefix: str, expires_in: float) -> None:
    """Check at the call what each job would check only when signed: over an
    empty folder or prefix a bad bucket or expiry was never looked at, and the
    run said ok; a prefix that is no str failed deep inside, a bare error."""
    check_bucket(bucket)
    if not isinstance(prefix, str):
        raise InvalidArgumentError(f"prefix must be a str, not {type(prefix).__name__}")
    expires_seconds(expires_in)


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
    on_skip: Callable[[], None] | None = None,
    dry_run: bool = False,
    plan: Plan | None = None,
    follow_symlinks: bool = True,
) -> BatchResult:
    """Upload every file under ``directory`` to ``bucket`` under ``prefix``.

    Files above the engine's ``multipart_threshold`` go as multipart uploads.
    With a ``journal``, files it records as uploaded (same size and mtime) are
    skipped (each told to ``on_skip``). What the walk will not send (see
    :func:`walk_tree`: an unreadable folder, a link loop, a FIFO, a name that
    is not UTF-8 ...) fails as its own job; symbolic links are followed, or
    with ``follow_symlinks=False`` listed in the result's ``not_followed``.
    With ``dry_run=True`` nothing is sent: each upload it would make goes to
    ``plan`` (by default, a line on stdout).
    """
    root = fspath(directory, "upload folder")
    _check_run(bucket, prefix, expires_in)
    if not await anyio.to_thread.run_sync(os.path.isdir, root):
        raise InvalidArgumentError(f"{root!r} is not a folder")
    return await _upload_entries(
        signer, engine, walk_tree(root, filters, follow_symlinks=follow_symlinks), bucket,
        lambda relative: object_key(prefix, relative), journal=journal,
        expires_in=expires_in, progress=progress, on_result=on_result, on_skip=on_skip,
        dry_run=dry_run, plan=plan,
    )


async def upload_file(
    signer: Signer,
    engine: TransferEngine,
    path: str | os.PathLike[str],
    bucket: str,
    key: str,
    *,
    journal: Journal | None = None,
    expires_in: float = 3600,
    progress: ProgressCallback | None = None,
    on_result: ResultCallback | None = None,
    on_skip: Callable[[], None] | None = None,
    dry_run: bool = False,
    plan: Plan | None = None,
) -> BatchResult:
    """Upload one file to ``bucket/key`` as :func:`upload_tree` uploads each of
    its files: the journal, a dry run's plan, multipart above the threshold;
    a path that is not a regular file fails as the run's one job."""
    return await _upload_entries(
        signer, engine, walk_one(fspath(path, "upload source")), bucket, lambda _: key,
        journal=journal, expires_in=expires_in, progress=progress, on_result=on_result,
        on_skip=on_skip, dry_run=dry_run, plan=plan,
    )


async def _upload_entries(
    signer: Signer,
    engine: TransferEngine,
    walk: Iterator[WalkEntry],
    bucket: str,
    key_of: Callable[[str], str],
    *,
    journal: Journal | None,
    expires_in: float,
    progress: ProgressCallback | None,
    on_result: ResultCallback | None,
    on_skip: Callable[[], None] | None,
    dry_run: bool,
    plan: Plan | None,
) -> BatchResult:
    """Upload what ``walk`` finds (read in a thread) to ``bucket`` at ``key_of(relative)``."""
    plan = plan or Plan()  # where a dry run says what it would do
    journal = journal or Journal(None)
    tracker = _Tracker(journal, on_result, on_skip)
    large: list[tuple[str, str, str | None, int]] = []
    refused: list[TransferResult] = []
    not_followed: list[str] = []
    threshold = engine.multipart_threshold

    async def jobs() -> AsyncIterator[Upload]:
        index = 0
        async for entry in _in_thread_batches(walk):
            path, size, state = entry.path, entry.size, entry.state
            key = key_of(entry.relative)
            if entry.not_followed:
                not_followed.append(path)
                continue
            if entry.problem is not None:
                shown = f"s3://{bucket}/{key}".encode("utf-8", "backslashreplace").decode()
                refused.append(TransferResult(url=shown, error=entry.error()))
                await _notify(on_result, refused[-1])
                continue
            job = job_id("put", bucket, key, path)
            if journal.is_done(job, state):
                tracker.skip()
                continue
            if threshold is not None and size > threshold:
                large.append((path, key, state, size))
                continue
            if dry_run:
                plan.add("upload", path, f"s3://{bucket}/{key}", size)
                continue
            tracker.pending[index] = (job, state, None)
            index += 1
            yield Upload(None, path, sign=signer.sign_later("PUT", bucket, key,
                                                            expires_in=expires_in))

    batch = await engine.run(jobs(), progress=progress, on_result=tracker, keep_results=False)
    extra: list[TransferResult] = refused
    for path, key, state, size in large:
        if dry_run:
            plan.add("upload", path, f"s3://{bucket}/{key}", size)
            continue
        try:
            result = await engine.upload_large(
                signer, bucket, key, path, expires_in=expires_in, progress=progress
            )
        except Exception as exc:  # noqa: BLE001 - one failed file is reported, not fatal
            result = TransferResult(url=f"s3://{bucket}/{key}", error=exc, op="upload",
                                    path=path, attempts=getattr(exc, "attempts", 1))
        else:
            await record_done(journal, job_id("put", bucket, key, path), state, result.nbytes)
        extra.append(result)
        await _notify(on_result, result)
    return _merge(batch, extra, tracker.skipped, not_followed)


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
    on_skip: Callable[[], None] | None = None,
    dry_run: bool = False,
    plan: Plan | None = None,
) -> BatchResult:
    """Download every object under ``prefix`` into ``directory`` (listing paginated).

    Keys that land on the same local path (``a/b``, ``a//b``, ``a/./b``; on a
    file system that ignores case, ``A/b``) do not overwrite each other: one is
    downloaded, each other one fails naming it (:class:`SamePath`). A key whose
    folder cannot be made fails alone."""
    root = fspath(directory, "download folder")
    _check_run(bucket, prefix, expires_in)
    fold_case = await anyio.to_thread.run_sync(lambda: ignores_case(root, dry_run=dry_run))
    return await _download_listed(
        signer, engine, bucket, list_objects(signer, bucket, prefix), None,
        prefix=prefix, root=root, filters=filters, fold_case=fold_case, journal=journal,
        expires_in=expires_in, progress=progress, on_result=on_result, on_skip=on_skip,
        dry_run=dry_run, plan=plan,
    )


async def download_object(
    signer: Signer,
    engine: TransferEngine,
    bucket: str,
    key: str,
    dest: str | os.PathLike[str],
    *,
    journal: Journal | None = None,
    expires_in: float = 3600,
    progress: ProgressCallback | None = None,
    on_result: ResultCallback | None = None,
    on_skip: Callable[[], None] | None = None,
    dry_run: bool = False,
    plan: Plan | None = None,
) -> BatchResult:
    """Download the one object ``bucket/key`` to the file ``dest``, as
    :func:`download_prefix` downloads each of its objects (journal, dry run)."""
    path = fspath(dest, "download destination")

    async def listing() -> AsyncIterator[tuple[str, int, str | None]]:
        async for found in list_objects(signer, bucket, key):
            if found[0] == key:  # listed first: the shortest key with this prefix
                yield found
                return
            break
        # Not listed: its GET fails with the server's own word (404 NoSuchKey).
        yield key, -1, None

    return await _download_listed(
        # A bare file name ("copy.pdf") is in the current folder, not in "".
        signer, engine, bucket, listing(), path, prefix=key,
        root=os.path.dirname(path) or os.curdir,
        filters=Filters(), fold_case=False, journal=journal, expires_in=expires_in,
        progress=progress, on_result=on_result, on_skip=on_skip, dry_run=dry_run, plan=plan,
    )


async def _download_listed(
    signer: Signer,
    engine: TransferEngine,
    bucket: str,
    listing: AsyncIterator[tuple[str, int, str | None]],
    single: str | None,
    *,
    prefix: str,
    root: str,
    filters: Filters,
    fold_case: bool,
    journal: Journal | None,
    expires_in: float,
    progress: ProgressCallback | None,
    on_result: ResultCallback | None,
    on_skip: Callable[[], None] | None,
    dry_run: bool,
    plan: Plan | None,
) -> BatchResult:
    """Download the objects ``listing`` yields: under ``root`` by their keys
    below ``prefix``, or the one object to the file ``single``."""
    plan = plan or Plan()  # where a dry run says what it would do
    journal = journal or Journal(None)
    tracker = _Tracker(journal, on_result, on_skip)
    folders = FolderCache(root)
    bad: list[TransferResult] = []
    paths = SamePath(prefix, fold_case=fold_case)
    listed = listed_by(signer, bucket, prefix, filters)

    async def refuse(key: str, error: AsyncPresignError) -> None:
        bad.append(TransferResult(url=f"s3://{bucket}/{key}", error=error))
        await _notify(on_result, bad[-1])

    async def jobs() -> AsyncIterator[Download]:
        index = 0
        async for key, size, etag in listing:
            if single is None:
                if is_folder_marker(key, size):
                    continue  # a "folder" marker, not a file
                if not filters(relative_key(prefix, key)):
                    continue
            state = f"etag={etag} size={size}" if etag else None
            try:
                dest = local_path(root, prefix, key) if single is None else single
            except InvalidArgumentError as exc:
                await refuse(key, exc)
                continue
            earlier = await same_path_as(paths, key, listed) if single is None else None
            if earlier is not None:
                await refuse(key, same_path_error(bucket, key, earlier, dest))
                continue
            job = job_id("get", bucket, key, dest)
            if journal.is_done(job, state) and await anyio.to_thread.run_sync(
                journal.download_done, job, state, dest
            ):
                tracker.skip()
                continue
            if dry_run:
                plan.add("download", f"s3://{bucket}/{key}", dest, size)
                continue
            problem = await folders.make(os.path.dirname(dest))
            if problem is not None:
                await refuse(key, LocalFileError(f"{problem}, so {dest!r} cannot be written",
                                                 dest))
                continue
            tracker.pending[index] = (job, state, dest)
            index += 1
            yield Download(
                None, dest, sign=signer.sign_later("GET", bucket, key,
                                                   expires_in=expires_in)
            )

    batch = await engine.run(jobs(), progress=progress, on_result=tracker, keep_results=False)
    await tracker.record_queued()
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
    on_skip: Callable[[], None] | None = None,
    keep_metadata: bool = True,
) -> BatchResult:
    """Copy ``((src_bucket, src_key), (dst_bucket, dst_key))`` pairs, streaming each
    GET into its PUT with no local file. The signers may be different servers.
    ``pairs`` may be an async iterable (a listing): copies start as it is read.
    A pair may carry the source's ETag as a third item: with a ``journal``, a
    copy it records of that same ETag is skipped; a pair without one is
    always copied again (a changed source could not be told apart).

    Each copy keeps its source's Content-Type, Content-Encoding,
    Cache-Control, Content-Disposition, Content-Language, Expires and
    ``x-amz-meta-*`` metadata, taken from the GET's answer (no HEAD) and
    signed into the PUT; a source whose metadata cannot be carried exactly
    fails alone (:class:`MetadataError`). ``keep_metadata=False`` drops it."""
    expires_seconds(expires_in)  # at the call, not at the first pair (or never)
    journal = journal or Journal(None)
    tracker = _Tracker(journal, on_result, on_skip)

    async def jobs() -> AsyncIterator[Copy]:
        index = 0
        async for pair in _aiter(pairs):
            (src_bucket, src_key), (dst_bucket, dst_key), etag = _pair(pair)
            state = f"etag={etag}" if etag else None
            job = copy_id(src_bucket, src_key, dst_bucket, dst_key)
            if journal.is_done(job, state):
                tracker.skip()
                continue
            tracker.pending[index] = (job, state, None)
            index += 1
            yield Copy(
                None, None,
                source_sign=source_signer.sign_later("GET", src_bucket, src_key,
                                                     expires_in=expires_in),
                dest_sign=dest_signer.sign_later("PUT", dst_bucket, dst_key,
                                                 expires_in=expires_in),
                keep_metadata=keep_metadata,
            )

    batch = await engine.run(jobs(), progress=progress, on_result=tracker, keep_results=False)
    return _merge(batch, [], tracker.skipped)


def _pair(pair: Any) -> tuple[tuple[str, str], tuple[str, str], str | None]:
    """A copy pair's parts. One pair given where a list of them was meant
    (``copy_objects(..., ((b, k), (b2, k2)))``) unpacked a bucket name into a
    bucket and key: a bare ValueError from inside the run."""
    try:
        (src_bucket, src_key), (dst_bucket, dst_key) = pair[0], pair[1]
        etag = pair[2] if len(pair) > 2 else None
    except (TypeError, ValueError, IndexError):
        raise InvalidArgumentError(
            f"a copy pair is ((src_bucket, src_key), (dst_bucket, dst_key)), not {pair!r:.80}"
            " (pairs is a list of them)"
        ) from None
    return (src_bucket, src_key), (dst_bucket, dst_key), etag


async def list_keys(signer: Signer, bucket: str, prefix: str) -> AsyncIterator[str]:
    async for key, _, _ in list_objects(signer, bucket, prefix):
        yield key


async def object_exists(signer: Signer, bucket: str, key: str) -> bool:
    """Whether ``key`` is an object (a HEAD); not found, or not allowed to tell, is no."""
    try:
        with signer._translate(f"look up s3://{bucket}/{key}"):
            await signer.client.head_object(Bucket=bucket, Key=key)
    except HTTPStatusError as exc:
        if exc.status in (403, 404):
            return False
        raise
    return True


async def any_object(signer: Signer, bucket: str, prefix: str) -> bool:
    """Whether anything at all is listed under ``prefix`` (one short listing)."""
    with signer._translate(f"list s3://{bucket}/{prefix}"):
        page = await signer.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(page.get("Contents"))


async def list_objects(
    signer: Signer, bucket: str, prefix: str
) -> AsyncIterator[tuple[str, int, str | None]]:
    """``(key, size, ETag)`` of every object under ``prefix``, page by page."""
    async for item in listed_items(signer, bucket, prefix):
        yield item["Key"], item["Size"], item.get("ETag")


async def listed_items(signer: Signer, bucket: str, prefix: str) -> AsyncIterator[Any]:
    """The ``Contents`` items of a ListObjectsV2 of ``prefix``, page by page, each
    page checked first. A listing cut short (truncated with no continuation
    token: botocore's paginator just stops), one going round (a token given
    again: botocore only notices the same token twice in a row), or one holding
    keys outside the prefix (a server that ignores Prefix) would make a run
    report "done" for part of the objects, or a sync take what it never reached
    for deleted: each is a ``TransferError`` before the page is used
    (:class:`PageChecks`). So is a listing that goes back (a key listed twice
    would be fetched twice into one file and counted twice)."""
    where = f"s3://{bucket}/{prefix}"
    checks = PageChecks(f"the listing of {where}", where, prefix, "continuation token")
    order = KeyOrder()
    with signer._translate(f"list {where}"):
        async for page in ahead(_object_pages(signer, bucket, prefix)):
            items = page.get("Contents", [])
            checks.check(bool(page.get("IsTruncated")), page.get("NextContinuationToken"),
                         [item["Key"] for item in items])
            for item in items:
                key = item["Key"]
                if not order.follows(key):
                    raise TransferError(
                        f"the listing of {where} went back: {key!r} came after "
                        f"{order.previous!r} (a key listed twice, or a server that lists "
                        "in no order): stopped before acting on it", url=where,
                    )
            for item in items:
                yield item


async def _object_pages(signer: Signer, bucket: str, prefix: str) -> AsyncIterator[Any]:
    """The ListObjectsV2 pages of ``prefix``, asked for one by one with the token
    of the page before. Not botocore's paginator: its first use in a process
    loads the paginator models after listing every service botocore knows
    (~30 ms of CPU, in the timed part of a run), and the checks that matter
    here are :class:`PageChecks`', made on each page as it arrives."""
    token: str | None = None
    while True:
        page = await signer.client.list_objects_v2(
            Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {})
        )
        yield page
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


class KeyOrder:
    """Checks that a listing's keys only go forward: in S3's order (UTF-8 bytes)
    or, all along, in the order of a server that lists folder by folder
    (SeaweedFS: ``a/x`` before ``a-b``). A listing that keeps to one of them
    never gives a key twice. Holds two keys, whatever the listing's length."""

    def __init__(self) -> None:
        self.previous: str | None = None
        self._previous_names: tuple[str, ...] = ()
        self._bytewise = self._by_folder = True

    def follows(self, key: str) -> bool:
        """Whether ``key`` may come next; False once it breaks both orders."""
        names = tuple(key.split("/"))
        if self.previous is not None:
            self._bytewise = self._bytewise and self.previous < key
            self._by_folder = self._by_folder and self._previous_names < names
        self.previous, self._previous_names = key, names
        return self._bytewise or self._by_folder


async def ahead(pages: AsyncIterator[T]) -> AsyncIterator[T]:
    """``pages``, each fetched while the one before is used.

    A listing page is 1,000 keys, and the next one is asked for only once the
    run has taken the last job of this one: every transfer slot then waits for
    the LIST (~0.1-0.3 s on S3). Here one page is read ahead in a task of its
    own; its errors come out where the page would have. Closing this stops it."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=1)

    async def read() -> None:
        try:
            async for page in pages:
                await queue.put((True, page))
        except Exception as exc:  # noqa: BLE001 - handed to the reader, raised there
            await queue.put((False, exc))
        else:
            await queue.put((False, None))
        finally:
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()  # the paginator's own clean-up, now, not at collection

    reader = asyncio.ensure_future(read())
    try:
        while True:
            more, item = await queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


@dataclass
class FolderCache:
    """Makes the folders downloads land in, each in a thread and once, and
    remembers why one could not be made; it remembers at most ``limit`` (then
    starts over), so memory stays flat.

    With ``root`` (the destination), a folder that a link makes one with
    another is refused: a link inside the destination to a folder in it
    (``latest -> v2``), or two links to one folder. Keys of both would land on
    one file, each overwriting the other and each reported done."""

    root: str | None = None
    limit: int = 10_000
    made: dict[str, str | None] = field(default_factory=dict)
    #: Each folder made, by where it really is: the first path that reached it.
    reached: dict[str, str] = field(default_factory=dict)
    #: The root's realpath, learnt with the first folder made under it.
    real_root: str | None = None

    async def make(self, folder: str) -> str | None:
        """Make ``folder``: None once it is there, else why it cannot be."""
        if folder not in self.made:
            if len(self.made) >= self.limit:
                self.made.clear()
                self.reached.clear()
            self.made[folder] = await anyio.to_thread.run_sync(self._make, folder)
        return self.made[folder]

    def _make(self, folder: str) -> str | None:
        problem = folder_problem(folder)
        if problem is not None or self.root is None:
            return problem
        folder_path = folder or os.curdir
        real = os.path.realpath(folder_path)
        if self.real_root is None:
            self.real_root = os.path.realpath(self.root)
        inside = self.real_root
        if real != unlinked(inside, self.root, folder_path) and (
            os.path.commonpath([inside, real]) == inside
        ):
            return (f"{folder!r} is reached through a link to a folder in {self.root!r} "
                    f"(it is {real!r}), where other keys land too")
        first = self.reached.setdefault(real, folder)
        if first != folder:
            return f"{folder!r} is the folder {first!r} is too (links lead both to {real!r})"
        return None


async def _notify(on_result: ResultCallback | None, result: TransferResult) -> None:
    """Tell ``on_result`` of a result the engine did not produce."""
    if on_result is not None:
        outcome = on_result(result)
        if outcome is not None:
            await outcome


def _merge(
    batch: BatchResult, extra: Sequence[TransferResult], skipped: int,
    not_followed: Sequence[str] = (),
) -> BatchResult:
    failed = tuple(batch.failed) + tuple(r for r in extra if not r.ok)
    return BatchResult(
        results=batch.results + tuple(extra),
        failed=failed,
        total=batch.total + len(extra) + skipped,
        succeeded=batch.succeeded + sum(1 for r in extra if r.ok) + skipped,
        nbytes=batch.nbytes + sum(r.nbytes for r in extra),
        seconds=batch.seconds,
        skipped=skipped,
        not_followed=tuple(not_followed),
    )

