"""A multipart upload of one file: its parts in parallel through presigned URLs."""

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

__all__ = ["upload_large"]

logger = logging.getLogger("asyncpresign")


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
    upload_id = await signer.create_multipart_upload(bucket, key, **options)
    etags: dict[int, str] = {}
    # The upload was created for a whole-object checksum of the Signer's
    # algorithm: each part is signed with its own, and the completion carries
    # their combination, which the server checks against the parts it holds.
    algorithm = signer.checksum if signer.checksum in ALGORITHMS else None
    part_checksums: dict[int, str] = {}
    most_attempts = 1
    try:
        pending = iter(parts)

        async def worker() -> None:
            nonlocal most_attempts
            for part in pending:
                sign = functools.partial(
                    signer.presign_upload_part, bucket, key, upload_id, part.number,
                    expires_in=expires_in,
                )
                body = UploadSource.of(
                    FilePart(source, part.offset, part.length), None, version
                )
                if algorithm is not None:
                    value = await body.checksum_b64(algorithm, rt.files)
                    part_checksums[part.number] = value
                    sign = functools.partial(sign, checksum=(algorithm, value))
                result = await upload(
                    rt,
                    None,
                    body,
                    sign=sign,
                    content_md5=content_md5,
                    chunk=chunk,
                    policy=policy,
                    tracker=Tracker(None, tracker.url, part.length, parent=tracker),
                )
                if not result.etag:
                    raise IntegrityError(
                        f"part {part.number} was stored without an ETag", url=result.url
                    )
                etags[part.number] = result.etag
                most_attempts = max(most_attempts, result.attempts)

        await run_workers(min(rt.concurrency, len(parts)), worker)
        whole: tuple[str, str] | None = None
        if algorithm is not None:
            combined = combine_parts(
                algorithm, [(part_checksums[part.number], part.length) for part in parts]
            )
            assert combined is not None  # each part's value is one we computed
            whole = (algorithm, combined)
        etag, stored = await signer.complete_checked(
            bucket, key, upload_id, sorted(etags.items()), checksum=whole,
            part_checksums=part_checksums or None,
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            try:
                await signer.abort_multipart_upload(bucket, key, upload_id)
            except AsyncPresignError as exc:
                logger.warning(
                    "could not abort multipart upload of s3://%s/%s: %s", bucket, key, exc
                )
        raise
    return TransferResult(
        url=tracker.url,
        nbytes=size,
        seconds=time.perf_counter() - started,
        status=200,
        etag=etag,
        attempts=most_attempts,
        verified=algorithm if stored is not None else None,
    )
