"""Manifests and journals: JSON Lines files that let URLs travel and runs resume.

A manifest line is one job, signed where the credentials are and run anywhere::

    {"op": "put", "url": "https://…", "headers": {"Content-Type": "text/csv"},
     "path": "data/a.csv", "size": 1234, "bucket": "b", "key": "a.csv"}

``op`` is ``put`` (upload ``path``) or ``get`` (download to ``path``);
``bucket``/``key`` are informative. A journal line records a finished job
by its id (and size), so a re-run skips it.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import hashlib
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Literal

from ._exceptions import InvalidArgumentError, LocalFileError
from ._files import kind_of, not_a_regular_file, not_replaceable
from ._models import Download, FilePart, PresignedRequest, Upload
from ._validation import check_http_url

_FAR = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def job_id(op: Literal["put", "get"], bucket: str, key: str, path: str) -> str:
    """A transfer's identity in a journal: what moves where (``put b/k path``),
    the same for manifests, the bulk helpers and Dask runs."""
    return f"{op} {bucket}/{key} {path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    op: Literal["put", "get"]
    url: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    bucket: str | None = None
    key: str | None = None
    expires_at: str | None = None
    # One part of a multipart upload: its bytes in ``path`` and its place.
    upload_id: str | None = None
    part: int | None = None
    offset: int | None = None
    #: The object's ETag when the GET was signed: a journal skips the download
    #: again only while it is the same object.
    etag: str | None = None
    #: A part's file as it was signed, ``[size, st_mtime_ns, st_ctime_ns,
    #: st_ino]``: every part must be read from that version, or the parts would
    #: make a torn object.
    version: tuple[int, ...] | None = None
    #: The manifest line it was read from (0: not read from one); not written.
    line: int = field(default=0, compare=False)

    @property
    def destination(self) -> str:
        """What the job writes: a download its local file, an upload its object
        (by the URL without its query), a part its place in its upload."""
        if self.op == "get":
            return f"file {os.path.abspath(self.path)}"
        part = f" part {self.upload_id}:{self.part}" if self.part is not None else ""
        return f"object {self.url.partition('?')[0]}{part}"

    @property
    def id(self) -> str:
        """Stable identity for the journal: what moves where, not the signature.
        A part names its upload: a re-signed manifest is a new upload."""
        part = f" part {self.upload_id}:{self.part}" if self.part is not None else ""
        if self.bucket and self.key:
            return job_id(self.op, self.bucket, self.key, self.path) + part
        # Without them (a hand-written manifest), the URL names the object.
        return f"{self.op} {self.url.partition('?')[0]} {self.path}{part}"

    def to_json(self) -> str:
        data: dict[str, Any] = {"op": self.op, "url": self.url, "path": self.path}
        for name in ("headers", "size", "bucket", "key", "expires_at", "upload_id", "part",
                     "offset", "etag", "version"):
            value = getattr(self, name)
            if value or (value == 0 and name in ("size", "offset")):
                data[name] = value
        # ASCII, escaped: a path may hold bytes that are not UTF-8 (as lone
        # surrogates), which no UTF-8 file can hold raw; they load back the same.
        return json.dumps(data)

    def job(self) -> Upload | Download:
        expires = dt.datetime.fromisoformat(self.expires_at) if self.expires_at else _FAR
        request = PresignedRequest(
            method="PUT" if self.op == "put" else "GET",
            url=self.url,
            headers=self.headers,
            expires_at=expires,
        )
        if self.op == "put":
            if self.offset is not None and self.size is not None:
                return Upload(request, FilePart(self.path, self.offset, self.size,
                                                version=self.version))
            return Upload(request, self.path)
        return Download(request, self.path)


def parse_entry(line: str, number: int) -> ManifestEntry:
    """One manifest line → an entry, or an InvalidArgumentError naming the line."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"manifest line {number}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"manifest line {number}: expected an object")
    op = data.get("op")
    if op not in ("put", "get"):
        raise InvalidArgumentError(f"manifest line {number}: op must be 'put' or 'get'")
    url, path = data.get("url"), data.get("path")
    if not isinstance(url, str) or not isinstance(path, str) or not path or "\0" in path:
        raise InvalidArgumentError(
            f"manifest line {number}: needs 'url' and 'path' strings (a path without NUL)"
        )
    try:
        check_http_url(url)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"manifest line {number}: {exc}") from None
    headers = data.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise InvalidArgumentError(f"manifest line {number}: headers must map str to str")
    for name in ("size", "part", "offset"):
        value = data.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise InvalidArgumentError(f"manifest line {number}: {name} must be an int >= 0")
    size = data.get("size")
    if data.get("offset") is not None and size is None:
        raise InvalidArgumentError(f"manifest line {number}: a part (offset) needs its size")
    for name in ("bucket", "key", "expires_at", "upload_id", "etag"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise InvalidArgumentError(f"manifest line {number}: {name} must be a string")
    expires_at = data.get("expires_at")
    if expires_at is not None and not _is_aware_time(expires_at):
        raise InvalidArgumentError(
            f"manifest line {number}: expires_at must be an ISO 8601 time with its time zone"
        )
    return ManifestEntry(
        op=op, url=url, path=path, headers=headers, size=size,
        bucket=data.get("bucket"), key=data.get("key"), expires_at=expires_at,
        upload_id=data.get("upload_id"), part=data.get("part"), offset=data.get("offset"),
        etag=data.get("etag"), version=_version_field(data.get("version"), number),
    )


def _version_field(value: object, number: int) -> tuple[int, ...] | None:
    """A part's ``version``: ``[size, mtime_ns, ctime_ns, inode]``, four ints >= 0
    (or ``[size, mtime_ns]``, as an earlier release signed it), or absent."""
    if value is None:
        return None
    if not (
        isinstance(value, list) and len(value) in (2, 4)
        and all(type(v) is int and v >= 0 for v in value)
    ):
        raise InvalidArgumentError(
            f"manifest line {number}: version must be [size, mtime_ns, ctime_ns, inode], "
            "four ints >= 0"
        )
    return tuple(value)


def _is_aware_time(text: str) -> bool:
    try:
        return dt.datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def read_manifest(path: str) -> Iterator[ManifestEntry]:
    """Entries one at a time (a manifest may hold millions); blank lines are
    skipped; the first malformed line raises its InvalidArgumentError (for
    whoever needs every line, as ``complete`` does: a part missing would
    complete a torn object). :func:`read_manifest_lines` reports it instead."""
    for item in read_manifest_lines(path):
        if isinstance(item, InvalidArgumentError):
            raise item
        yield item


def check_manifest_source(path: str) -> None:
    """Refuse a manifest that is a device, a socket or a folder (exit 2): a
    device never ends (``/dev/zero``) or holds nothing (``/dev/null``). A pipe
    is a manifest (``<(...)``, ``/dev/stdin``, a FIFO): read once, as it comes.
    Stats only, never opens (a FIFO's open waits for its writer)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # reading it says what is wrong
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise InvalidArgumentError(
            f"the manifest {path!r} is {kind_of(mode)}, not a file of jobs (a pipe is one: "
            "<(...), /dev/stdin)"
        )


def read_manifest_lines(path: str) -> Iterator[ManifestEntry | InvalidArgumentError]:
    """Each line's entry, or the error saying why it is not one ("manifest line
    800: not JSON ..."), so one bad line fails one job and the others run.

    A file whose first line is not a JSON object (not UTF-8 either, say a
    binary file or a CSV) is not a manifest at all: refused whole, with an
    InvalidArgumentError, before any job is run.

    A relative ``path`` in an entry is relative to the manifest's own folder,
    so a manifest works from wherever it is run."""
    base = os.path.dirname(os.path.abspath(path))
    try:
        f = open(path, "rb")  # noqa: SIM115 - a generator closes it when done
    except OSError as exc:
        raise LocalFileError(f"cannot read manifest {path!r}: {exc.strerror}", path) from None
    with f:
        first = True
        for number, raw in _bounded_lines(f):
            if raw is None:
                if first:
                    raise InvalidArgumentError(
                        f"{path!r} is not a manifest: its line {number} is over "
                        f"{MAX_LINE_BYTES:,} bytes"
                    )
                yield InvalidArgumentError(
                    f"manifest line {number}: over {MAX_LINE_BYTES:,} bytes, not a job"
                )
                continue
            if not raw.strip():
                continue
            try:
                entry = parse_entry(raw.decode("utf-8"), number)
            except (UnicodeDecodeError, InvalidArgumentError) as exc:
                if first and not _json_object(raw):
                    raise InvalidArgumentError(
                        f"{path!r} is not a manifest: its line {number} is not a JSON object"
                    ) from None
                if first and json.loads(raw) == JOURNAL_HEADER:
                    # Else each of its lines would fail as a job: a journal is
                    # named after its manifest, and easily given instead of it.
                    raise InvalidArgumentError(
                        f"{path!r} is a journal, not a manifest: give the manifest it records"
                    ) from None
                first = False
                yield (
                    exc if isinstance(exc, InvalidArgumentError)
                    else InvalidArgumentError(f"manifest line {number}: not UTF-8 text")
                )
                continue
            first = False
            where = entry.path if os.path.isabs(entry.path) else os.path.join(base, entry.path)
            yield replace(entry, path=where, line=number)


#: The longest manifest line read: a job's URL, headers and path take a few
#: kilobytes; a file with longer lines (a disk image given by mistake has no
#: newline at all) is not read into memory whole.
MAX_LINE_BYTES = 1024 * 1024


def _bounded_lines(f: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """``(number, line)`` of each line of ``f``; a line over MAX_LINE_BYTES
    comes as None, read past in bounded pieces, never held whole. A UTF-8 BOM
    before the first line (as Windows editors save UTF-8) is dropped."""
    number = 0
    while raw := f.readline(MAX_LINE_BYTES + 1):
        number += 1
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        if len(raw) <= MAX_LINE_BYTES:
            yield number, raw
            continue
        while raw and not raw.endswith(b"\n"):
            raw = f.readline(MAX_LINE_BYTES)
        yield number, None


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False


class ManifestWriter:
    """A manifest written as its entries come, so a listing of millions never
    sits in memory: entries go to a temporary file beside ``path``, made 0600
    (it holds live URLs: whoever reads it can use them until they expire),
    which :meth:`commit` moves over ``path`` once complete; :meth:`discard`
    removes it. Paths are written relative to the manifest's folder. Blocking:
    call it from a thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self._base = os.path.dirname(os.path.abspath(path))
        folder, name = os.path.split(os.path.abspath(path))
        refusal = not_replaceable(path, "manifest", "")
        if refusal is not None:
            raise refusal
        try:
            # A fresh name, created 0600 with O_EXCL: never a file or a link that
            # someone else placed there (its mode or target would be kept).
            fd, self._temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise self._error(exc) from None
        self._file = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, entries: Iterable[ManifestEntry]) -> None:
        try:
            for entry in entries:
                relative = os.path.relpath(os.path.abspath(entry.path), self._base)
                self._file.write(replace(entry, path=relative).to_json() + "\n")
                self.count += 1
        except OSError as exc:
            self.discard()
            raise self._error(exc) from None

    def commit(self) -> int:
        """Make the manifest whole and durable under its name; how many entries."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            refusal = not_replaceable(self.path, "manifest", "")  # one made meanwhile
            if refusal is not None:
                raise refusal
            os.replace(self._temporary, self.path)
        except LocalFileError:
            self.discard()
            raise
        except OSError as exc:
            self.discard()
            raise self._error(exc) from None
        return self.count

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._temporary)

    def _error(self, exc: OSError) -> LocalFileError:
        return LocalFileError(f"cannot write manifest {self.path!r}: {exc.strerror or exc}",
                              self.path)


def write_manifest(path: str, entries: Iterable[ManifestEntry]) -> int:
    """Write a whole manifest at once (see :class:`ManifestWriter`); how many entries."""
    writer = ManifestWriter(path)
    try:
        writer.write(entries)
        return writer.commit()
    except BaseException:
        writer.discard()
        raise


class Destinations:
    """Where a manifest's jobs write, to find two that write one place (two
    lines downloading to one file, or uploading to one object). They would run
    at once and race: the last to finish replaces the other's bytes, both
    report done, and a journal skips both from then on. So the first runs and
    each later one fails, naming the line it collides with.

    A manifest may hold millions of jobs: each is held as 12 bytes of digest
    with its line number, not its path: about 110 bytes a job (114 MB for a
    million), as a journal holds for each job done.
    Two places sharing a digest (one chance in 10^17 at a million jobs) would
    fail the later job, never let it through."""

    def __init__(self) -> None:
        self._first: dict[int, int] = {}

    def earlier(self, entry: ManifestEntry) -> int | None:
        """The line of an earlier job writing where ``entry`` does, or None
        (then ``entry`` holds the place)."""
        digest = hashlib.blake2b(
            entry.destination.encode("utf-8", "surrogatepass"), digest_size=12
        ).digest()
        key = int.from_bytes(digest, "big")
        first = self._first.get(key)
        if first is None:
            self._first[key] = entry.line
        return first


#: The first line of every journal: what wrote it and in which form.
JOURNAL_HEADER = {"journal": "asyncpresign", "version": 2}


def file_state(path: str) -> str | None:
    """What a local file is now, for a journal to compare (see :func:`state_of`).
    None if it cannot be read (then nothing is skipped)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return state_of(info)


def state_of(info: os.stat_result) -> str:
    """A file's state as a journal records it, from its ``os.stat``: size, mtime,
    ctime (nanoseconds) and inode. The ctime and inode catch what size and
    mtime miss: a file edited in place with its mtime put back (``touch -r``,
    ``rsync -t``), or replaced by another of the same size and mtime (``mv``).
    Anything that changes them (a chmod, a restore) makes a re-run do the job
    again: in doubt, the work is done again, not skipped."""
    return (
        f"size={info.st_size} mtime={info.st_mtime_ns} ctime={info.st_ctime_ns} "
        f"ino={info.st_ino}"
    )


def written_state(path: str) -> str | None:
    """What a downloaded file is now, for a journal to compare: a regular
    file's :func:`state_of`. None if it is not a regular file that can be
    stat'ed (then nothing is skipped). Stats the file: call it in a thread."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return state_of(info)


def journal_state(
    journal: Journal, job_id: str, op: Literal["put", "get"], path: str, etag: str | None
) -> tuple[str | None, bool]:
    """The state a job is in now, as ``journal`` records it, and whether the
    journal says it is done in that state: an upload while its file is as it
    was (size, mtime, ctime, inode), a download while the object has the ETag it had
    (none known: never) and the file is still the one written, untouched.
    Stats the file: call it in a thread."""
    if op == "put":
        state = file_state(path)
        return state, journal.is_done(job_id, state)
    state = f"etag={etag}" if etag else None
    return state, journal.download_done(job_id, state, path)


class Journal:
    """Finished jobs, appended as they finish and flushed every few, so an
    interrupted run loses at most a few seconds of record.

    A job is recorded by its identity (what moves where: the bucket and key,
    the local path, the upload id and part number) with the *state* it was
    done in (an upload: its file's size, mtime, ctime and inode; a download:
    the object's ETag). A re-run skips a job only when both match what it sees now, and for
    a download only while its file is still the one written, untouched (see
    :func:`written_state`); any doubt (no state known, a file changed, a
    download deleted or edited) runs the job.
    Journals of earlier versions, which recorded less, are refused.

    The file is created 0600 (its ids name buckets, keys and paths).
    :meth:`record` only appends to a buffer (the event loop may call it, and
    accept the first one opening the file); when it says a flush is due, call
    :meth:`flush` in a thread, as it syncs the file to disk. Downloads are
    queued with :meth:`record_download` and recorded by :meth:`flush`, which
    stats their files."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        #: job id -> (the state it was done in, bytes moved, a download's
        #: file as written, :func:`written_state`)
        self.done: dict[str, tuple[str, int | None, str | None]] = {}
        self.etags: dict[str, str] = {}  # for parts, completed elsewhere by ETag
        self._file: Any = None
        self._unflushed = 0
        #: Why records stopped reaching the file (a full disk), once they did.
        self.failure: LocalFileError | None = None
        #: Downloads done whose files are still to be stat'ed, and since when.
        self._unstated: list[tuple[str, str, int | None, str]] = []
        self._unstated_since = 0.0
        # Records come from the event loop and from a thread stat'ing queued ones.
        self._lock = threading.Lock()
        if path is not None:
            _check_regular(path)
            self._load(path)
            _check_writable(path)

    def _load(self, path: str) -> None:
        try:
            # O_NONBLOCK: a FIFO put there since the check must not hang the run.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LocalFileError(
                f"cannot read journal {path!r}: {exc.strerror or exc}", path
            ) from None
        if not stat.S_ISREG(mode := os.fstat(fd).st_mode):
            os.close(fd)
            raise not_a_regular_file("journal", path, mode)
        with open(fd, encoding="utf-8") as f:
            try:
                lines = iter(f)
                first = next((line for line in lines if line.strip()), None)
                if first is None:
                    return
                try:
                    header = json.loads(first)
                except ValueError:
                    header = None
                if header != JOURNAL_HEADER:
                    raise InvalidArgumentError(
                        f"{path!r} is not a journal of this version of asyncpresign (an "
                        "earlier one recorded jobs by less than what they move): delete it, "
                        "or give another --journal, and the run starts over"
                    )
                for line in lines:
                    self._read_line(line)
            except UnicodeDecodeError:
                raise InvalidArgumentError(
                    f"{path!r} is not a journal (not UTF-8 text)"
                ) from None

    def _read_line(self, line: str) -> None:
        try:
            item = json.loads(line)
        except ValueError:
            return  # a torn last line from a killed run
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        state, size, written = item.get("state"), item.get("size"), item.get("file")
        if not isinstance(state, str):
            return
        self.done[item["id"]] = (
            state, size if isinstance(size, int) else None,
            written if isinstance(written, str) else None,
        )
        if isinstance(item.get("etag"), str):
            self.etags[item["id"]] = item["etag"]

    def is_done(self, job_id: str, state: str | None) -> bool:
        """Whether ``job_id`` was done in exactly ``state`` (never, if None)."""
        if state is None:
            return False
        recorded = self.done.get(job_id)
        return recorded is not None and recorded[0] == state

    def download_done(self, job_id: str, state: str | None, path: str) -> bool:
        """Whether the download ``job_id`` was done in ``state`` and its file at
        ``path`` is still the one it wrote (a journal that did not record the
        file: never). Stats the file: call it in a thread."""
        if not self.is_done(job_id, state):
            return False
        written = self.done[job_id][2]
        return written is not None and written_state(path) == written

    def record_download(self, job_id: str, state: str | None, size: int, dest: str) -> bool:
        """Queue the download ``job_id``, done in ``state``, to be recorded with
        its file at ``dest`` as written, so that one thread hop
        (:meth:`flush`) stats many files. No I/O. Returns whether the
        queue is due: 32 downloads, or one waiting half a second."""
        if self.path is None or state is None:
            return False
        now = time.monotonic()
        with self._lock:
            if not self._unstated:
                self._unstated_since = now
            self._unstated.append((job_id, state, size, dest))
            return len(self._unstated) >= 32 or now - self._unstated_since >= 0.5

    @property
    def queued(self) -> int:
        """How many downloads wait for :meth:`flush`."""
        return len(self._unstated)

    def flush(self) -> None:
        """Record the queued downloads (their files stat'ed) and write
        everything to disk. Blocking: call it in a thread."""
        with self._lock:
            queued, self._unstated = self._unstated, []
        written = [written_state(dest) for _, _, _, dest in queued]
        for (job_id, state, size, _), file in zip(queued, written, strict=True):
            self.record(job_id, state, size, written=file)
        with self._lock:
            self._flush_or_fail()

    def record(
        self, job_id: str, state: str | None, size: int | None = None, etag: str | None = None,
        *, written: str | None = None,
    ) -> bool:
        """Record ``job_id`` done in ``state``; a download with its file as
        written (:func:`written_state`), without which a re-run does it again.
        Appends to a buffer; returns whether a :meth:`flush` (which syncs the
        file to disk, so blocks: in a thread) is due, every 32 records."""
        with self._lock:
            return self._record(job_id, state, size, etag, written)

    def _record(
        self, job_id: str, state: str | None, size: int | None, etag: str | None,
        written: str | None,
    ) -> bool:
        if etag is not None:
            self.etags[job_id] = etag
        if self.path is None or state is None:
            return False
        self.done[job_id] = (state, size, written)
        if self.failure is not None:
            return False
        item: dict[str, Any] = {"id": job_id, "state": state, "size": size}
        if etag is not None:
            item["etag"] = etag
        if written is not None:
            item["file"] = written
        try:
            if self._file is None:
                self._file = _open_private(self.path)
            self._file.write(json.dumps(item) + "\n")  # ASCII, as to_json, for the same reason
            self._unflushed += 1
        except OSError as exc:
            self._fail(exc)
            return False
        return self._unflushed >= 32

    def _flush_or_fail(self) -> None:
        try:
            self._flush()
        except OSError as exc:
            self._fail(exc)

    def _flush(self) -> None:
        if self._file is not None and self._unflushed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._unflushed = 0

    def _fail(self, exc: OSError) -> None:
        """Records no longer reach the file (a full disk): the run goes on, as
        its transfers are not at fault, and :meth:`close` raises this. A record
        lost only makes a re-run do its job again; a torn last line is skipped
        when the journal is read."""
        what = (
            str(exc) if isinstance(exc, LocalFileError)  # from opening it: says as much
            else f"cannot write journal {self.path!r}: {exc.strerror or exc}"
        )
        self.failure = LocalFileError(
            f"{what}; the jobs done since its last record are not in it, and a re-run "
            "does them again", self.path, errno=exc.errno,
        )
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def close(self) -> None:
        """Write what is buffered and close the file. Raises
        :class:`LocalFileError` if any record could not be written."""
        self.flush()
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                self._fail(exc)
        if self.failure is not None:
            raise self.failure


def _check_regular(path: str) -> None:
    """Refuse a journal that is not a regular file (or not there yet): run as
    root, ``--journal /dev/null`` made the device 0600 for everyone, and a
    FIFO would hang the run."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # not there yet (or reading it says what is wrong)
    if not stat.S_ISREG(mode):
        raise not_a_regular_file("journal", path, mode)


def _check_writable(path: str) -> None:
    """Refuse, before any job runs, a journal that could not be written (the
    first record would fail mid-run); nothing is created, for dry runs."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise LocalFileError(
            f"cannot write journal {path!r}: the folder {folder!r} does not exist", path
        )
    if os.path.lexists(path) and not os.path.exists(path):
        # Written through, it would make a file wherever the link points.
        raise LocalFileError(
            f"cannot write journal {path!r}: it is a symbolic link to nothing "
            f"({os.readlink(path)!r})", path,
        )
    if not os.access(path if os.path.lexists(path) else folder, os.W_OK):
        raise LocalFileError(f"cannot write journal {path!r}: permission denied", path)


def _open_private(path: str) -> Any:
    """Open a journal for appending, created 0600 with its header line."""
    try:
        # O_RDWR: the last byte is read to mend a torn line; O_NONBLOCK: a FIFO
        # put there since the check fails instead of waiting for a reader.
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise LocalFileError(
            f"cannot write journal {path!r}: {exc.strerror or exc}", path
        ) from None
    if not stat.S_ISREG(mode := os.fstat(fd).st_mode):
        # Never chmod a device that was put there since the run began.
        os.close(fd)
        raise not_a_regular_file("journal", path, mode)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)  # one made before, by hand or an older version
    f = os.fdopen(fd, "a", encoding="utf-8")
    size = os.fstat(fd).st_size
    if size == 0:
        f.write(json.dumps(JOURNAL_HEADER) + "\n")
    elif os.pread(fd, 1, size - 1) != b"\n":
        # A run killed mid-line left its last record torn: end that line, or
        # this run's first record would be glued to it and lost with it.
        f.write("\n")
    return f
