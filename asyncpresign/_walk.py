"""The walk of a folder to upload: every entry sent or accounted for.

``os.walk`` ignores what it cannot read by default, and a naive walk opens
whatever it finds: an unreadable folder's files vanished from a run without a
word, and a FIFO hung it. This walk lists and stats only, never opens, and
reports every entry it will not send with its reason.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._exceptions import LocalFileError
from ._files import describe_os_error, is_partial_name, kind_of
from ._manifest import state_of

if TYPE_CHECKING:
    from ._bulk import Filters

__all__ = ["WalkEntry", "walk_files", "walk_keys", "walk_one", "walk_tree"]


def walk_files(
    directory: str, filters: Filters, *, follow_symlinks: bool = True
) -> Iterator[tuple[str, str, int]]:
    """``(path, relative posix path, size)`` for every file under ``directory``, sorted.

    An entry :func:`walk_tree` will not send comes with size -1, so the job made
    of it fails when it runs (a FIFO or device is refused unopened); prefer
    :func:`walk_tree`, which says why up front. Links not followed are left out."""
    for entry in walk_tree(directory, filters, follow_symlinks=follow_symlinks):
        if not entry.not_followed:
            yield entry.path, entry.relative, entry.size


@dataclass(frozen=True, slots=True)
class WalkEntry:
    """One entry of a folder walk: a file to send, or a path not sent and why."""

    path: str
    relative: str  # posix, relative to the walked folder
    size: int = -1
    state: str | None = None  # size and mtime, as a journal records them
    #: Why this path is not sent (reported as a failed job), or None for a file.
    problem: str | None = None
    #: A symbolic link left alone (``follow_symlinks=False``): reported, not sent.
    not_followed: bool = False
    #: A file's modification time in nanoseconds (0 for anything else): what
    #: sync compares, and stores in ``x-amz-meta-mtime``.
    mtime_ns: int = 0

    def error(self) -> LocalFileError:
        return LocalFileError(f"{self.path!r}: {self.problem}", self.path)


@dataclass(frozen=True, slots=True)
class _Folder:
    """A folder still to walk, and the chain of folders above it (to see loops)."""

    path: str
    relative: str
    ident: tuple[int, int]  # (st_dev, st_ino)
    parent: _Folder | None

    def above(self, ident: tuple[int, int]) -> str | None:
        """The folder on the way down to here that ``ident`` is, if any."""
        folder: _Folder | None = self
        while folder is not None:
            if folder.ident == ident:
                return folder.path
            folder = folder.parent
        return None


def walk_tree(
    directory: str, filters: Filters, *, follow_symlinks: bool = True
) -> Iterator[WalkEntry]:
    """Every entry under ``directory`` that ``filters`` let through, sorted, a
    folder's files before its sub-folders (as ``os.walk`` goes), one folder
    listed at a time, so a walk of millions streams.

    Nothing is opened, only listed and stat'ed (opening a FIFO blocks). Regular
    files come to be sent; everything else comes with its ``problem``: a folder
    that cannot be read, a symbolic link that loops or leads nowhere, a FIFO,
    socket or device, a name that is not UTF-8 (no S3 key can hold it; a folder
    so named is reported once, not walked). Symbolic links are followed, as
    ``rsync -L`` does (a link to a folder is walked; one back to a folder above
    it is a loop, by device and inode), or with ``follow_symlinks=False`` come
    as ``not_followed``. A folder's problem is reported unless the excludes
    drop every name under it. Our partial downloads never come."""
    try:
        info = os.stat(directory)
    except OSError as exc:
        yield WalkEntry(directory, "", problem=f"cannot read folder: {describe_os_error(exc)}")
        return
    stack = [_Folder(directory, "", (info.st_dev, info.st_ino), None)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder.path) as listing:
                items = sorted(listing, key=lambda item: item.name)
        except OSError as exc:
            if not filters.covers_folder(folder.relative):
                yield WalkEntry(folder.path, folder.relative,
                                problem=f"cannot read folder: {describe_os_error(exc)}")
            continue
        below: list[_Folder] = []
        for item in items:
            found = _entry(item, folder, follow_symlinks, filters)
            if isinstance(found, _Folder):
                below.append(found)
            elif found is not None:
                yield found
        stack.extend(reversed(below))


def walk_keys(
    directory: str, filters: Filters, *, follow_symlinks: bool = True, folders_first: bool = False
) -> Iterator[WalkEntry]:
    """What :func:`walk_tree` finds, in the order of the keys the files would
    have, so that it can be merged with a bucket's listing as it streams.

    S3 lists keys in UTF-8 byte order, the order of Python's ``str`` (code
    points sort as their UTF-8 bytes do). A folder's name is the start of its
    files' keys, so within a folder a file sorts by ``name`` and a sub-folder
    by ``name + "/"``, and a sub-folder is walked when it is reached:
    ``a-b`` (``-`` is below ``/``) comes before ``a/x``, and ``a0`` after it.
    ``folders_first=True`` gives the order of servers that list folder by
    folder (SeaweedFS): a sub-folder sorts by its bare ``name``, so ``a/x``
    comes before ``a-b``. The files of each folder are sorted in memory, one
    folder per level of depth, never the whole tree.

    Problems are reported as :func:`walk_tree` reports them, each where its
    path sorts (an unreadable folder where its files would have been): they
    are not files, and a caller merging keys leaves them out of the merge."""
    try:
        info = os.stat(directory)
    except OSError as exc:
        yield WalkEntry(directory, "", problem=f"cannot read folder: {describe_os_error(exc)}")
        return
    mark = "" if folders_first else "/"
    root = _Folder(directory, "", (info.st_dev, info.st_ino), None)
    stack = [iter(_sorted_listing(root, follow_symlinks, filters, mark))]
    while stack:
        found = next(stack[-1], None)
        if found is None:
            stack.pop()
        elif isinstance(found, _Folder):
            stack.append(iter(_sorted_listing(found, follow_symlinks, filters, mark)))
        else:
            yield found


def _sorted_listing(
    folder: _Folder, follow: bool, filters: Filters, mark: str
) -> list[WalkEntry | _Folder]:
    """One folder's entries in key order: sub-folders by ``name + mark``."""
    try:
        with os.scandir(folder.path) as listing:
            items = list(listing)
    except OSError as exc:
        if filters.covers_folder(folder.relative):
            return []
        return [WalkEntry(folder.path, folder.relative,
                          problem=f"cannot read folder: {describe_os_error(exc)}")]
    found = [e for item in items if (e := _entry(item, folder, follow, filters)) is not None]
    found.sort(key=lambda e: e.relative + mark if isinstance(e, _Folder) else e.relative)
    return found


def walk_one(path: str) -> Iterator[WalkEntry]:
    """The one file ``path`` as a walk of it would find it (its relative name is
    its base name): a regular file to send, or what it is instead (stat'ed
    through links, never opened)."""
    relative = os.path.basename(path.rstrip(os.sep)) or path
    try:
        info = os.stat(path)
    except OSError as exc:
        yield WalkEntry(path, relative, problem=f"cannot read: {describe_os_error(exc)}")
        return
    if not stat.S_ISREG(info.st_mode):
        yield WalkEntry(path, relative, problem=f"{kind_of(info.st_mode)}, not a regular file")
        return
    yield WalkEntry(path, relative, info.st_size, state_of(info), mtime_ns=info.st_mtime_ns)


def _entry(
    item: os.DirEntry[str], folder: _Folder, follow: bool, filters: Filters
) -> WalkEntry | _Folder | None:
    """What one listed name is: a file or a problem to report, a folder to walk,
    or nothing (filtered out, or a partial download)."""
    path, name = item.path, item.name
    if is_partial_name(name):
        return None  # a download in progress (or a dead one's): it may vanish any moment
    relative = f"{folder.relative}/{name}" if folder.relative else name
    link = item.is_symlink()
    try:
        info = item.stat()  # through a link: what it leads to
    except OSError as exc:
        if not filters(relative):
            return None
        return WalkEntry(path, relative, not_followed=True) if link and not follow else (
            WalkEntry(path, relative, problem=_unreadable(exc, link))
        )
    if stat.S_ISDIR(info.st_mode):
        ident = (info.st_dev, info.st_ino)
        loop = folder.above(ident)
        if loop is None and _is_utf8(name) and (follow or not link):
            return _Folder(path, relative, ident, folder)
        if filters.covers_folder(relative):
            return None
        if link and not follow:
            return WalkEntry(path, relative, not_followed=True)
        return WalkEntry(path, relative, problem=(
            f"folder loop: it is {loop!r} again (a link or mount back up the tree)" if loop
            else "folder name is not valid UTF-8: no S3 key can hold its files"
        ))
    if not filters(relative):
        return None
    if link and not follow:
        return WalkEntry(path, relative, not_followed=True)
    problem = None
    if not _is_utf8(name):
        problem = "file name is not valid UTF-8, cannot be an S3 key"
    elif not stat.S_ISREG(info.st_mode):
        problem = f"{kind_of(info.st_mode)}, not a regular file: not sent"
    if problem is not None:
        return WalkEntry(path, relative, problem=problem)
    return WalkEntry(path, relative, info.st_size, state_of(info), mtime_ns=info.st_mtime_ns)


def _unreadable(exc: OSError, link: bool) -> str:
    if link and exc.errno == errno.ELOOP:
        return "symbolic link loop (it leads back to itself)"
    if link and exc.errno == errno.ENOENT:
        return "broken symbolic link (what it points to does not exist)"
    return f"cannot read: {describe_os_error(exc)}"


def _is_utf8(name: str) -> bool:
    """Whether a name listed by the OS was valid UTF-8 (Python keeps the bytes of
    one that was not as lone surrogates, which no S3 key can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
