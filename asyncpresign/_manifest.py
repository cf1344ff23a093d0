"""Manifests and journals: JSON Lines files that let URLs travel and runs resume.

A manifest line is one job, signed where the credentials are and run anywhere::

    {"op": "put", "url": "https://…", "headers": {"Content-Type": "text/csv"},
     "path": "data/a.csv", "size": 1234, "bucket": "b", "key": "a.csv"}

``op`` is ``put`` (upload ``path``) or ``get`` (download to ``path``);
``bucket``/``key`` are informative. A journal line records a finished job
by its id (and size), so a re-run skips it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ._exceptions import InvalidArgumentError, LocalFileError
from ._models import Download, FilePart, PresignedRequest, Upload
from ._validation import check_http_url

_FAR = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


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

    @property
    def id(self) -> str:
        """Stable identity for the journal: what moves where, not the signature."""
        part = f" part {self.part}" if self.part is not None else ""
        return f"{self.op} {self.bucket or ''}/{self.key or ''} {self.path}{part}"

    def to_json(self) -> str:
        data: dict[str, Any] = {"op": self.op, "url": self.url, "path": self.path}
        for name in ("headers", "size", "bucket", "key", "expires_at", "upload_id", "part",
                     "offset"):
            value = getattr(self, name)
            if value or (value == 0 and name in ("size", "offset")):
                data[name] = value
        return json.dumps(data, ensure_ascii=False)

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
                return Upload(request, FilePart(self.path, self.offset, self.size))
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
    if not isinstance(url, str) or not isinstance(path, str) or not path:
        raise InvalidArgumentError(f"manifest line {number}: needs 'url' and 'path' strings")
    try:
        check_http_url(url)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"manifest line {number}: {exc}") from None
    headers = data.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise InvalidArgumentError(f"manifest line {number}: headers must map str to str")
    size = data.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise InvalidArgumentError(f"manifest line {number}: size must be an int >= 0")
    for name in ("part", "offset"):
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidArgumentError(f"manifest line {number}: {name} must be an int >= 0")
    if data.get("offset") is not None and size is None:
        raise InvalidArgumentError(f"manifest line {number}: a part (offset) needs its size")
    return ManifestEntry(
        op=op, url=url, path=path, headers=headers, size=size,
        bucket=data.get("bucket"), key=data.get("key"), expires_at=data.get("expires_at"),
        upload_id=data.get("upload_id"), part=data.get("part"), offset=data.get("offset"),
    )


def read_manifest(path: str) -> Iterator[ManifestEntry]:
    """Entries one at a time (a manifest may hold millions); blank lines are skipped."""
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 - a generator closes it when done
    except OSError as exc:
        raise LocalFileError(f"cannot read manifest {path!r}: {exc.strerror}", path) from None
    with f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield parse_entry(line, number)


def write_manifest(path: str, entries: Iterable[ManifestEntry]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(entry.to_json() + "\n")
            count += 1
    return count


class Journal:
    """Finished jobs, appended as they finish and flushed every few, so an
    interrupted run loses at most a few seconds of record.

    Blocking file I/O: call :meth:`record` from the event loop only through
    a thread, or accept the tiny appends (buffered, flushed in batches)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.done: dict[str, int | None] = {}
        self.etags: dict[str, str] = {}  # for parts, completed elsewhere by ETag
        self._file: Any = None
        self._unflushed = 0
        if path is not None and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        item = json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a killed run
                    if isinstance(item, dict) and isinstance(item.get("id"), str):
                        self.done[item["id"]] = item.get("size")
                        if isinstance(item.get("etag"), str):
                            self.etags[item["id"]] = item["etag"]

    def is_done(self, job_id: str, size: int | None = None) -> bool:
        if job_id not in self.done:
            return False
        recorded = self.done[job_id]
        return size is None or recorded is None or recorded == size

    def record(self, job_id: str, size: int | None, etag: str | None = None) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        item: dict[str, Any] = {"id": job_id, "size": size}
        if etag is not None:
            item["etag"] = etag
            self.etags[job_id] = etag
        self._file.write(json.dumps(item, ensure_ascii=False) + "\n")
        self.done[job_id] = size
        self._unflushed += 1
        if self._unflushed >= 32:
            self.flush()

    def flush(self) -> None:
        if self._file is not None and self._unflushed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._unflushed = 0

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
