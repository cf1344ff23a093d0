"""Local file work for the engine, done in worker threads in large pieces.

Every function here is blocking and meant to run through ``anyio.to_thread``;
each one does as much as it can per call, since a thread hop costs tens of
microseconds and small objects are dominated by them.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ._checksums import Crc, Verifier, verifier_from
from ._checksums import of as checksum_of
from ._exceptions import LocalFileError, SourceChangedError

#: Disk reads and writes are batched to at least this size whatever the network
#: chunk size is: measured, one thread hop per 4 KiB made downloads 16x slower.
IO_SIZE = 1024 * 1024
PARTIAL_SUFFIX = ".asyncpresign-partial"


def describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- sources -------------------------------------------------------------------------------


#: What tells one version of a file from the next: its size, modification time,
#: change time (ns) and inode. The ctime and inode catch what size and mtime
#: miss: a file edited in place with its mtime put back (``touch -r``), whose
#: parts would make a torn object, or one replaced by another (``mv``).
Version = tuple[int, ...]


def version_of(info: os.stat_result) -> Version:
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def check_version(path: str, before: Version | None, now: Version) -> Version:
    """``now``, if it is the version ``before`` was (or nothing was seen before);
    else the file changed while being uploaded. A ``before`` of two fields
    ``(size, mtime_ns)``, from a manifest signed by an earlier release, is
    compared on those."""
    if before is not None and now[: len(before)] != before:
        raise SourceChangedError(
            f"upload source {path!r} changed while being uploaded (size {before[0]} -> "
            f"{now[0]} bytes, or its modification or change time, or its inode): what "
            "was read may mix two versions of it",
            path,
        )
    return now


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is (from its ``st_mode``), for messages."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _not_regular(path: str, mode: int) -> LocalFileError:
    if stat.S_ISDIR(mode):
        return LocalFileError(f"upload source {path!r} is a directory, not a file", path)
    return not_a_regular_file("upload source", path, mode, ": not read")


def not_replaceable(
    path: str,
    what: str = "download destination",
    advice: str = ": not replaced (to write into it, download to - and redirect stdout)",
) -> LocalFileError | None:
    """Why a file of ours may not be moved over ``path`` (a device, a FIFO: run
    as root, a download to /dev/null would replace the device), or None. A
    symlink is replaced itself, not what it points to; nothing there is fine."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # not there yet (or the move itself says what is wrong)
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return None
    return not_a_regular_file(what, path, mode, advice)


def not_a_regular_file(what: str, path: str, mode: int, advice: str = "") -> LocalFileError:
    """``what`` at ``path`` is a device, FIFO, socket or folder: a LocalFileError saying so."""
    return LocalFileError(f"{what} {path!r} is {kind_of(mode)}, not a regular file{advice}", path)


def open_regular(path: str) -> int:
    """A descriptor of ``path`` for reading, only if it is a regular file (see
    :func:`open_regular_stat`)."""
    return open_regular_stat(path)[0]


def open_regular_stat(path: str) -> tuple[int, os.stat_result]:
    """A descriptor of ``path`` for reading, only if it is a regular file, and its
    ``fstat``. Opened with O_NONBLOCK, so a FIFO does not block the thread
    waiting for a writer (nor a device), and refused by its ``fstat``;
    O_NONBLOCK changes nothing for reads of a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        mode = None
        with contextlib.suppress(OSError):
            mode = os.stat(path).st_mode
        if mode is not None and not stat.S_ISREG(mode):
            # A socket cannot be opened (ENXIO): say what it is.
            raise _not_regular(path, mode) from None
        raise LocalFileError(
            f"cannot read upload source {path!r}: {describe_os_error(exc)}", path, errno=exc.errno
        ) from None
    try:
        info = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise LocalFileError(
            f"cannot read upload source {path!r}: {describe_os_error(exc)}", path, errno=exc.errno
        ) from None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _not_regular(path, info.st_mode)
    return fd, info


#: Partial downloads and their sidecars are only ever our own files: a link at
#: one of their (predictable, for resumable downloads) names was put there by
#: someone else, to make us write, append or truncate where it points.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def partial_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open` (and aiofiles) of a partial download or
    its sidecar: never through a symbolic link, and only a regular file (a
    FIFO there would block the thread until someone read it)."""
    fd = os.open(path, flags | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), 0o644)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{kind_of(mode)} is there, not a regular file")
    return fd


def _create_partial(path: str) -> int:
    """A descriptor of a new, empty partial download at ``path``. Usually nothing
    is there: made with O_EXCL, it is a new regular file, with no ``fstat`` to
    ask (one system call fewer for each small download). Else (a partial file
    left by an earlier run) it is truncated, through :func:`partial_opener`."""
    try:
        return os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644
        )
    except FileExistsError:
        return partial_opener(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)


def regular_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open` (and aiofiles) in read mode: :func:`open_regular`."""
    return open_regular(path)


def open_source(
    path: str,
    small_limit: int,
    offset: int = 0,
    length: int | None = None,
    *,
    before: Version | None = None,
) -> tuple[int, bytes | None, Version]:
    """Size up ``path`` (or its ``length`` bytes from ``offset``) for an upload: the
    size, the whole content when it is at most ``small_limit`` bytes (so a
    small file costs one hop), and the file's version, which must be
    ``before`` when given (and must not change during the read). Only a
    regular file is read (:func:`open_regular`)."""
    fd, info = open_regular_stat(path)
    try:
        version = check_version(path, before, version_of(info))
        file_size = info.st_size
        size = file_size - offset if length is None else length
        if offset + size > file_size:
            raise LocalFileError(
                f"upload source {path!r} has {file_size} bytes, fewer than the "
                f"{offset + size} this upload needs (did it shrink?)",
                path,
            )
        if size > small_limit:
            return size, None, version
        # Read to its end, one byte more: a file holding more than its size
        # says (/proc, /sys: size 0) would else go up empty, or cut, as a success.
        want = size + 1 if length is None else size
        data = os.pread(fd, want, offset) if want else b""
        if len(data) < size:
            raise LocalFileError(f"upload source {path!r} changed size while being read", path)
        # A write during the read shows in the version: what was read may be torn.
        check_version(path, version, version_of(os.fstat(fd)))
        if len(data) > size:
            raise LocalFileError(
                f"upload source {path!r} holds more than the {file_size} bytes its size "
                "says (a /proc or /sys file?): not sent; upload what it reads as a stream "
                "(cat FILE | asyncpresign upload - s3://bucket/key)",
                path,
            )
        return size, data, version
    except OSError as exc:
        if isinstance(exc, LocalFileError):
            raise
        raise LocalFileError(
            f"cannot read upload source {path!r}: {describe_os_error(exc)}", path, errno=exc.errno
        ) from None
    finally:
        os.close(fd)


def source_version(path: str) -> Version:
    """The version of an upload source now (see :func:`open_source`); it must be
    a regular file."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise LocalFileError(
            f"cannot read upload source {path!r}: {describe_os_error(exc)}", path, errno=exc.errno
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    return version_of(info)


def file_size(path: str) -> int:
    """The size of an upload source, which must be a regular file."""
    return source_version(path)[0]


def md5_base64_of_bytes(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def read_with_checksum(
    path: str,
    small_limit: int,
    algorithm: str,
    offset: int = 0,
    length: int | None = None,
    *,
    before: Version | None = None,
) -> tuple[int, bytes | None, str, Version]:
    """The size of an upload source, its checksum, its bytes when small, and its
    version: one read serves both the checksum (signed before the PUT) and the
    first send."""
    size, data, version = open_source(path, small_limit, offset, length, before=before)
    if data is not None:
        return size, data, checksum_of(algorithm, data), version
    crc = Crc(algorithm)
    if _feed_region(path, offset, size, crc.update) != size:
        # Shorter than it was a moment ago: a new version (a rewrite truncates
        # first), so the upload starts over as for any other change.
        raise SourceChangedError(
            f"upload source {path!r} changed while being uploaded (it shrank while its "
            "checksum was taken)",
            path,
        )
    check_version(path, version, source_version(path))
    return size, None, crc.b64, version


def file_checksum(path: str, algorithm: str, offset: int = 0, length: int | None = None) -> str:
    """The base64 checksum of a file (or ``length`` bytes of it from ``offset``)."""
    return read_with_checksum(path, 0, algorithm, offset, length)[2]


def md5_base64_of_file(path: str, offset: int = 0, length: int | None = None) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    _feed_region(path, offset, length, digest.update)
    return base64.b64encode(digest.digest()).decode()


def _feed_region(
    path: str, offset: int, length: int | None, update: Callable[[bytes], object]
) -> int:
    """Hand ``length`` bytes of ``path`` from ``offset`` (to its end when None) to
    ``update``, ``IO_SIZE`` at a time; returns how many there were (fewer when
    the file is shorter)."""
    remaining = length
    fed = 0
    try:
        with os.fdopen(open_regular(path), "rb") as f:
            f.seek(offset)
            while remaining is None or remaining > 0:
                block = f.read(IO_SIZE if remaining is None else min(IO_SIZE, remaining))
                if not block:
                    break
                update(block)
                fed += len(block)
                if remaining is not None:
                    remaining -= len(block)
    except LocalFileError:
        raise
    except OSError as exc:
        raise LocalFileError(
            f"cannot read upload source {path!r}: {describe_os_error(exc)}", path, errno=exc.errno
        ) from None
    return fed


def md5_base64_of_stream(f: IO[bytes], start: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    f.seek(start)
    while block := f.read(IO_SIZE):
        digest.update(block)
    f.seek(start)
    return base64.b64encode(digest.digest()).decode()


def read_block(f: IO[bytes], size: int) -> bytes:
    return f.read(size)


def stream_size(f: IO[bytes]) -> int | None:
    """Bytes left in a seekable file object from its current position, else None."""
    try:
        if not f.seekable():
            return None
        here = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(here)
    except (OSError, ValueError, AttributeError):
        return None
    return end - here


# -- destinations --------------------------------------------------------------------------


def check_destination(dest: str) -> None:
    """Raise unless ``dest`` can be created: its folder exists, and it is not a
    folder, a device or a FIFO (which the move into place would replace)."""
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise LocalFileError(f"download destination folder {parent!r} does not exist", dest)
    if os.path.isdir(dest):
        raise LocalFileError(f"download destination {dest!r} is a folder", dest)
    if not os.access(parent, os.W_OK):
        raise LocalFileError(f"download destination folder {parent!r} is not writable", dest)
    refusal = not_replaceable(dest)  # checked again at the move into place
    if refusal is not None:
        raise refusal


def prepare_folder(dest: str) -> None:
    """Once per destination folder and run: check ``dest`` can be written, and
    clear the folder of partial downloads their writers left behind."""
    check_destination(dest)
    remove_stale_partials(os.path.dirname(os.path.abspath(dest)))


# Unique partial names without a getrandom call per download: the process id
# (so a later run can tell a dead writer's file from a live one's) and a tag
# random per process (a container's next run may get the same pid), counted
# within it.
_PROCESS_TAG = secrets.token_hex(4)
_partial_numbers = itertools.count()
_UNIQUE_PARTIAL = re.compile(
    r"\A\.(?P<name>.+)\.(?P<pid>[0-9]+)-(?P<tag>[0-9a-f]{8})[0-9]+"
    + re.escape(PARTIAL_SUFFIX) + r"\Z",
    re.DOTALL,
)


#: The longest name (in bytes) kept whole in a partial download's name: 255
#: less the dot, the unique tag (~30), the suffix (21) and a sidecar's ".json".
_PARTIAL_NAME_MAX = 190


def partial_path(dest: str, unique: bool) -> str:
    """Where a download is written before it is complete: beside ``dest``, hidden,
    named ``.NAME[.PID-TAGN].asyncpresign-partial``.

    Resumable downloads use a fixed name so a later run finds them; others a
    unique one so two writers never share a file."""
    folder, name = os.path.split(os.path.abspath(dest))
    tag = f".{os.getpid()}-{_PROCESS_TAG}{next(_partial_numbers)}" if unique else ""
    raw = os.fsencode(name)
    if len(raw) > _PARTIAL_NAME_MAX:
        # The tag and suffixes add ~50 bytes: a name that fits in NAME_MAX (255)
        # would not as a partial. Its start and a hash of it are still one per name.
        digest = hashlib.sha256(raw).hexdigest()[:16]
        name = os.fsdecode(raw[: _PARTIAL_NAME_MAX - 17]) + "~" + digest
    return os.path.join(folder, f".{name}{tag}{PARTIAL_SUFFIX}")


def unlinked(real_root: str, root: str, path: str) -> str:
    """Where ``path``, under ``root``, would really be if no link between them
    were followed: ``real_root`` (the root's realpath) and the path below it.
    A path whose realpath is not this is reached through a link."""
    return os.path.normpath(os.path.join(real_root, os.path.relpath(path, root)))


def is_partial_name(name: str) -> bool:
    """Whether a file name is one of our partial downloads or its sidecar: never
    a file to upload."""
    return name.endswith((PARTIAL_SUFFIX, PARTIAL_SUFFIX + ".json"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's: not ours to judge
    return True


def _stale(folder: str, name: str) -> bool:
    """Whether a partial download is left from a writer that is gone: one of a
    process no longer running (killed), or a resumable one whose destination
    was completed after it (by a later download that did not resume)."""
    unique = _UNIQUE_PARTIAL.match(name)
    if unique is not None:
        pid = int(unique["pid"])
        if pid == os.getpid():
            return unique["tag"] != _PROCESS_TAG
        return not _process_alive(pid)
    dest = os.path.join(folder, name[1 : -len(PARTIAL_SUFFIX)])
    try:
        return os.stat(dest).st_mtime >= os.stat(os.path.join(folder, name)).st_mtime
    except OSError:
        return False


def remove_stale_partials(folder: str) -> int:
    """Remove the partial downloads in ``folder`` whose writer is gone (a run
    killed with SIGKILL, a machine that lost power). Returns how many."""
    removed = 0
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.name.endswith(PARTIAL_SUFFIX)]
    except OSError:
        return 0
    for name in names:
        if _stale(folder, name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed += 1
            _remove_sidecar(os.path.join(folder, name))
    return removed


@dataclass
class PartialFile:
    """A download in progress, beside its destination. Methods other than
    :meth:`prepare` block; call them from a worker thread."""

    dest: str
    path: str
    verifier: Verifier | None = None  # checks the bytes as they are written
    size: int = 0
    appending: bool = False
    etag: str | None = None
    resumable: bool = False
    _fd: int | None = field(default=None, repr=False)

    def prepare(
        self,
        *,
        appending: bool,
        etag: str | None,
        verifier: Verifier | None,
        resumable: bool,
    ) -> None:
        """Say how the next attempt writes (no I/O: the file opens on the first write).

        ``appending`` continues after the bytes already on disk (feeding them to
        the verifier first); otherwise the file starts over from byte zero, and
        a resumable download remembers the ETag and the expected checksum beside
        it, so a later run can check the object did not change and still verify
        the whole file."""
        self.close()
        self.appending, self.etag, self.resumable = appending, etag, resumable
        self.verifier = verifier

    def _start(self) -> None:
        try:
            if self.appending:
                if self.verifier is not None:
                    self.hash_existing()
                self._fd = partial_opener(self.path, os.O_WRONLY | os.O_APPEND)
                self.size = os.fstat(self._fd).st_size
            else:
                self._fd = _create_partial(self.path)
                self.size = 0
                if self.resumable:
                    write_sidecar(self.path, self.etag, self.verifier)
        except OSError as exc:
            raise LocalFileError(
                f"cannot write download destination {self.dest!r}: {describe_os_error(exc)}",
                self.dest, errno=exc.errno,
            ) from None

    def write(self, chunks: list[bytes]) -> None:
        if self._fd is None:
            self._start()
        assert self._fd is not None
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.verifier is not None:
            self.verifier.update(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise LocalFileError(
                f"cannot write download destination {self.dest!r}: {describe_os_error(exc)}",
                self.dest, errno=exc.errno,
            ) from None
        self.size += len(data)

    def hash_existing(self) -> None:
        """Feed the bytes already on disk to the verifier (a resumed download's prefix)."""
        assert self.verifier is not None
        with open(self.path, "rb", opener=partial_opener) as f:
            while block := f.read(IO_SIZE):
                self.verifier.update(block)

    def commit_checked(self) -> str | None:
        """Check what was written and move the file into place. Returns what did
        not match (the file is then discarded), else None."""
        if self.verifier is not None:
            mismatch = self.verifier.mismatch()
            if mismatch is not None:
                self.discard()
                return mismatch
        self._commit()
        return None

    def finish(self, chunks: list[bytes]) -> str | None:
        """Write the last bytes, check them, and move the file into place; like
        :meth:`commit_checked`, returns a mismatch. One hop for a whole small file."""
        if chunks or self._fd is None:
            self.write(chunks or [b""])
        return self.commit_checked()

    def finish_ranged(self, size: int, md5: tuple[str, str] | None) -> str | None:
        """Check a file assembled from ranges (its size, and ``md5``: the MD5 of
        its bytes, as read back while the ranges came, and the ETag it must
        match; a CRC is checked by the caller) and move it into place; returns a
        mismatch description."""
        self.close()
        actual_size = os.stat(self.path).st_size
        if actual_size != size:
            self.discard()
            raise LocalFileError(
                f"assembled {actual_size} bytes at {self.dest!r}, expected {size}", self.dest
            )
        if md5 is not None and md5[0] != md5[1]:
            self.discard()
            return f"MD5 of the downloaded bytes {md5[0]} does not match the ETag {md5[1]}"
        self._commit()
        return None

    def hash_region(self, offset: int, length: int, update: Callable[[bytes], object]) -> None:
        """Feed ``length`` bytes of the partial file from ``offset`` to ``update``
        (read back from the page cache, where the range was just written)."""
        remaining = length
        try:
            with os.fdopen(open_regular(self.path), "rb") as f:
                f.seek(offset)
                while remaining > 0 and (block := f.read(min(IO_SIZE, remaining))):
                    update(block)
                    remaining -= len(block)
        except OSError as exc:
            raise LocalFileError(
                f"cannot read back download {self.dest!r}: {describe_os_error(exc)}",
                self.dest, errno=exc.errno,
            ) from None
        if remaining:
            raise LocalFileError(
                f"read back {length - remaining} of {length} bytes at {offset} of "
                f"{self.dest!r}", self.dest
            )

    def _commit(self) -> None:
        self.close()
        # One may have appeared during the download: the move replaces what is there.
        refusal = not_replaceable(self.dest)
        if refusal is not None:
            self.discard()
            raise refusal
        try:
            os.replace(self.path, self.dest)
        except OSError as exc:
            self.discard()
            raise LocalFileError(
                f"cannot move download into place at {self.dest!r}: {describe_os_error(exc)}",
                self.dest, errno=exc.errno,
            ) from None
        if self.resumable:
            _remove_sidecar(self.path)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def discard(self) -> None:
        self.close()
        # Cleaning up after a failure: an error here (ENAMETOOLONG: the file was
        # never made) must not replace the failure's own LocalFileError.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        _remove_sidecar(self.path)


#: What a sidecar (an ETag and a checksum) can hold, with room to spare.
_SIDECAR_MAX = 64 * 1024


def read_sidecar(path: str) -> tuple[int, str | None, Verifier | None]:
    """Size of an existing partial download, the ETag it was started with, and
    the check its whole file must pass (the object's checksum, remembered)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return 0, None, None
    try:
        # Only a regular file, and only its start: a FIFO or a huge file put at
        # this predictable name must not hang or swamp the run (it starts over).
        with os.fdopen(open_regular(path + ".json"), "rb") as f:
            saved = json.loads(f.read(_SIDECAR_MAX))
    except (OSError, ValueError):
        return size, None, None
    if not isinstance(saved, dict):
        return size, None, None
    etag = saved.get("etag")
    check = saved.get("check")
    verifier = None
    if isinstance(check, list) and len(check) == 2 and all(isinstance(c, str) for c in check):
        verifier = verifier_from(check[0], check[1])
    return size, etag if isinstance(etag, str) else None, verifier


def write_sidecar(path: str, etag: str | None, verifier: Verifier | None = None) -> None:
    if etag is None:
        _remove_sidecar(path)
        return
    saved: dict[str, object] = {"etag": etag}
    if verifier is not None:
        saved["check"] = list(verifier.expected)
    _remove_sidecar(path)  # whatever is there: a fresh file of our own is made
    with open(path + ".json", "x", encoding="utf-8", opener=partial_opener) as f:
        json.dump(saved, f)


def _remove_sidecar(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + ".json")
