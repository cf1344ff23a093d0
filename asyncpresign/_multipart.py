"""A multipart upload: its parts in parallel through presigned URLs, then
completed with their combined checksum, or aborted. A file's parts are read
from their offsets (:func:`upload_large`); a stream's are held in memory
(:mod:`._streams`)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from . import _files
from ._attempts import Runtime, Tracker, fspath, run_workers
from ._checksums import ALGORITHMS, combine_parts
from ._exceptions import AsyncPresignError, IntegrityError
from ._models import FilePart, TransferResult
from ._parts import plan_parts
from ._retry import RetryPolicy
from ._upload import UploadSource, upload

if TYPE_CHECKING:
    from ._signer import Signer

__all__ = ["MultipartUpload", "upload_large"]

logger = logging.getLogger("asyncpresign")


class MultipartUpload:
    """One multipart upload from creation to completion (or abort).

    Each part is signed with its own checksum of the Signer's algorithm (the
    upload is created for a whole-object checksum of it), retried on its own
    and re-signed when its URL expires; the completion carries the parts'
    combined checksum, which the server checks against the parts it holds.
    """

    def __init__(
        self,
        rt: Runtime,
        signer: Signer,
        bucket: str,
        key: str,
        *,
        content_md5: bool,
        expires_in: float | dt.timedelta,
        chunk: int,
        policy: RetryPolicy,
        tracker: Tracker,
    ) -> None:
        self.rt, self.signer, self.bucket, self.key = rt, signer, bucket, key
        self.content_md5 = content_md5
        self.expires_in = expires_in
        self.chunk = chunk
        self.policy = policy
        self.tracker = tracker
        self.upload_id = ""
        self.algorithm = signer.checksum if signer.checksum in ALGORITHMS else None
        self.etags: dict[int, str] = {}
        self.checksums: dict[int, str] = {}
        self.lengths: dict[int, int] = {}
        self.most_attempts = 1

    async def create(self, **options: Any) -> None:
        self.upload_id = await self.signer.create_multipart_upload(
            self.bucket, self.key, **options
        )

    async def send(self, number: int, body: UploadSource, length: int) -> None:
        """Upload part ``number`` (``length`` bytes of ``body``)."""
        sign = functools.partial(
            self.signer.presign_upload_part, self.bucket, self.key, self.upload_id, number,
            expires_in=self.expires_in,
        )
        if self.algorithm is not None:
            value = await body.checksum_b64(self.algorithm, self.rt.files)
            self.checksums[number] = value
            sign = functools.partial(sign, checksum=(self.algorithm, value))
        result = await upload(
            self.rt, None, body, sign=sign, content_md5=self.content_md5, chunk=self.chunk,
            policy=self.policy,
            tracker=Tracker(None, self.tracker.url, length, parent=self.tracker),
        )
        if not result.etag:
            raise IntegrityError(f"part {number} was stored without an ETag", url=result.url)
        self.etags[number] = result.etag
        self.lengths[number] = length
        self.most_attempts = max(self.most_attempts, result.attempts)

    async def complete(self, started: float) -> TransferResult:
        """Complete the upload with the parts sent, in order."""
        numbers = sorted(self.etags)
        whole: tuple[str, str] | None = None
        if self.algorithm is not None:
            combined = combine_parts(
                self.algorithm, [(self.checksums[n], self.lengths[n]) for n in numbers]
            )
            assert combined is not None  # each part's value is one we computed
            whole = (self.algorithm, combined)
        etag, stored = await self.signer.complete_checked(
            self.bucket, self.key, self.upload_id, sorted(self.etags.items()), checksum=whole,
            part_checksums=self.checksums or None,
        )
        return TransferResult(
            url=self.tracker.url,
            nbytes=sum(self.lengths.values()),
            seconds=time.perf_counter() - started,
            status=200,
            etag=etag,
            attempts=self.most_attempts,
            verified=self.algorithm if stored is not None else None,
        )

    async def abort(self) -> None:
        """Abandon the upload (its parts stop being stored, and billed); shielded,
        since it runs while the upload is being cancelled."""
        if not self.upload_id:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self.signer.abort_multipart_upload(self.bucket, self.key, self.upload_id)
            except AsyncPresignError as exc:
                logger.warning(
                    "could not abort multipart upload of s3://%s/%s: %s",
                    self.bucket, self.key, exc,
                )


async def upload_large(
    rt: Runtime,
    signer: Signer,
    bucket: str,
    key: str,
    path: str | os.PathLike[str],
    *,
    part_size: int,
    content_md5: bool,
    expires_in: float | dt.timedelta,
    chunk: int,
    policy: RetryPolicy,
    tracker: Tracker,
    **options: Any,
) -> TransferResult:
    """Each part is read from its offset in the file (never the whole file into
    memory), retried on its own, and re-signed when its URL expires. The parts
    complete in order. On failure or cancellation the upload is aborted, so no
    orphaned parts stay behind (and billed)."""
    source = fspath(path, "upload source")
    # Every part is read at this version of the file, or the upload fails:
    # parts of two versions would make a torn object.
    version = await anyio.to_thread.run_sync(_files.source_version, source)
    size = version[0]
    parts = plan_parts(size, part_size)
    tracker.url, tracker.total = f"s3://{bucket}/{key}", size
    started = time.perf_counter()
    upload = MultipartUpload(
        rt, signer, bucket, key, content_md5=content_md5, expires_in=expires_in, chunk=chunk,
        policy=policy, tracker=tracker,
    )
    await upload.create(**options)
    try:
        pending = iter(parts)

        async def worker() -> None:
            for part in pending:
                body = UploadSource.of(FilePart(source, part.offset, part.length), None, version)
                await upload.send(part.number, body, part.length)

        await run_workers(min(rt.concurrency, len(parts)), worker)
        return await upload.complete(started)
    except BaseException:
        await upload.abort()
        raise
