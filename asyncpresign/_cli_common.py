"""What the command line's commands share: exit statuses, the Signer and
engine made from the arguments, listings, copy pairs, failure fields."""

from __future__ import annotations

import argparse
import contextlib
import gc
import glob
import os
from collections.abc import AsyncIterator

from ._bulk import (
    Filters,
    any_object,
    is_folder_marker,
    list_objects,
    object_exists,
    object_key,
    relative_key,
)
from ._config import Timeout
from ._engine import TransferEngine
from ._exceptions import (
    AsyncPresignError,
    InvalidArgumentError,
    LocalFileError,
)
from ._manifest import ManifestEntry
from ._models import (
    BatchResult,
    TransferResult,
)
from ._redact import redact_url
from ._retry import RetryPolicy
from ._signer import Signer
from ._sync import same_server
from ._targets import parse_s3_uri

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away


def _same_file(one: str, other: str) -> bool:
    """Whether two paths name one file (through links too); False if either is missing."""
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


async def _listing(
    args: argparse.Namespace, signer: Signer, uri: str, filters: Filters
) -> tuple[str, str, Filters]:
    """The bucket, prefix and filters a command lists ``uri`` with.

    ``s3://b/photos`` is the folder ``photos/`` (as aws-cli and rclone read
    it), so ``photos-old/`` is not in it; when ``photos`` is itself an object,
    it is that one object. ``--prefix-match`` lists every key that starts
    with ``photos``."""
    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/") and not getattr(args, "prefix_match", False):
        if await object_exists(signer, bucket, prefix):
            # Just that object: its name, exactly (the prefix alone would also
            # list "photos-old"); the user's excludes still apply.
            name = glob.escape(prefix.rsplit("/", 1)[-1])
            return bucket, prefix, Filters(include=[name], exclude=filters.exclude)
        prefix += "/"
    if not await any_object(signer, bucket, prefix):
        # Most often a typo: say so rather than report "0 of 0 done".
        raise InvalidArgumentError(
            f"nothing is stored under s3://{bucket}/{prefix}"
            + ("" if getattr(args, "prefix_match", False) or not prefix else
               " (s3://bucket/name is the folder name/; --prefix-match matches every key "
               "starting with name)")
        )
    return bucket, prefix, filters


def _checksum(args: argparse.Namespace) -> str | None:
    value = getattr(args, "checksum", "crc64nvme")
    return None if value == "none" else str(value)


@contextlib.asynccontextmanager
async def _signer(args: argparse.Namespace, prefix: str = "") -> AsyncIterator[Signer]:
    """The Signer for ``args`` (or its ``dest_`` options), opened, with credentials
    found: without any, the run stops here, before its first transfer (exit 2)."""
    async with Signer(
        endpoint_url=getattr(args, f"{prefix}endpoint_url", None) or args.endpoint_url,
        region=getattr(args, f"{prefix}region", None) or args.region,
        profile=getattr(args, f"{prefix}profile", None) or args.profile,
        checksum=_checksum(args),
    ) as signer:
        await signer.check_credentials()
        if getattr(args, "owns_process", False):
            # What is alive now (modules, botocore's S3 model, the client: most
            # of the heap) lives as long as the run: out of the collector's
            # sight, a full collection no longer walks it (a CLI download of
            # 1,000 objects: 0.27-0.36 s in the collector before, 0.17-0.27 s
            # after). Only a process that is the run's own: freezing a host
            # process's heap would keep its later garbage for good.
            gc.freeze()
        yield signer


def _timeout(args: argparse.Namespace) -> Timeout:
    """The engine's timeouts, with ``--timeout`` as the bound of a whole transfer."""
    total = getattr(args, "timeout", None)
    if total is None:
        return Timeout()
    if total <= 0:
        raise InvalidArgumentError("--timeout must be more than 0 seconds")
    return Timeout(total=total)


def _engine(args: argparse.Namespace) -> TransferEngine:
    if args.retries < 1:
        raise InvalidArgumentError("--retries must be at least 1")
    return TransferEngine(
        concurrency=args.concurrency,
        chunk_size=args.chunk_size,
        retry=RetryPolicy(attempts=args.retries),
        timeout=_timeout(args),
        checksum=_checksum(args),
        max_rate=args.limit_rate,
    )


async def _single_object(
    args: argparse.Namespace, signer: Signer, uri: str
) -> tuple[str, str] | None:
    """``(bucket, key)`` when ``uri`` names one object (``s3://b/name``, no
    trailing slash, and stored), else None: a folder or prefix."""
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/") or getattr(args, "prefix_match", False):
        return None
    return (bucket, key) if await object_exists(signer, bucket, key) else None


async def _copy_pairs(
    args: argparse.Namespace, source: Signer, dest: Signer, filters: Filters
) -> AsyncIterator[tuple[tuple[str, str], tuple[str, str], str | None]]:
    """``((source bucket, key), (target bucket, key), source ETag)`` as the
    listing pages come in: a copy starts before the listing ends, and memory
    stays flat; the ETag lets a journal skip an unchanged source."""
    async for source_object, target, _, etag in _copy_listing(args, source, dest, filters):
        yield source_object, target, etag


async def _copy_listing(
    args: argparse.Namespace, source: Signer, dest: Signer, filters: Filters
) -> AsyncIterator[tuple[tuple[str, str], tuple[str, str], int, str | None]]:
    """What ``copy`` copies, with each object's size and ETag, as the listing
    pages come in. Folder markers are left out, as ``sync`` and the progress
    count leave them out (and as a download has no file for them)."""
    src_bucket, src_prefix, filters = await _listing(args, source, args.source, filters)
    dst_bucket, dst_prefix = parse_s3_uri(args.target)
    # One object (_listing keeps its key, without the folder's slash): copied
    # to the target key as given, or into it when it ends with "/" or is the
    # bucket, as cp does and as upload and download take one file.
    single = bool(src_prefix) and not src_prefix.endswith("/") and not args.prefix_match
    single_target = (
        dst_prefix if dst_prefix and not dst_prefix.endswith("/")
        else dst_prefix + src_prefix.rsplit("/", 1)[-1]
    ) if single else None
    if src_bucket == dst_bucket and same_server(source, dest):
        _check_copy_overlap(src_bucket, src_prefix, dst_prefix, single_target)
    async for key, size, etag in list_objects(source, src_bucket, src_prefix):
        if is_folder_marker(key, size) or not filters(relative_key(src_prefix, key)):
            continue
        if single_target is not None:
            if key == src_prefix:
                yield (src_bucket, key), (dst_bucket, single_target), size, etag
            continue
        yield (src_bucket, key), (dst_bucket, _rebase(key, src_prefix, dst_prefix)), size, etag


def _check_copy_overlap(
    bucket: str, src_prefix: str, dst_prefix: str, single_target: str | None
) -> None:
    """Refuse a copy within one bucket whose targets can be among its sources.
    The listing is read while copies run, so a copy of ``a/`` into ``a/sub``
    listed its own copies and copied them again (``a/sub/sub/...``, on and on
    past a page of keys); a copy of ``a/`` into the bucket's root wrote
    ``a/a/k`` over ``a/k`` while ``a/k`` was still to be read; a copy onto
    itself rewrote every object and said "done". As ``sync`` refuses them."""
    if single_target is not None:
        overlap = single_target == src_prefix
    else:
        root = object_key(dst_prefix, "")
        overlap = root.startswith(src_prefix) or src_prefix.startswith(root)
    if overlap:
        raise InvalidArgumentError(
            f"s3://{bucket}/{src_prefix} and s3://{bucket}/{object_key(dst_prefix, '')} "
            "overlap: a copy onto itself, or into a folder inside it (or out of one into "
            "the folder around it), would copy its own copies or overwrite what it has "
            "still to read"
        )


def _same_destination(entry: ManifestEntry, earlier: int) -> TransferResult:
    """The failed result of a manifest line that writes where line ``earlier`` does."""
    named = f"s3://{entry.bucket}/{entry.key}" if entry.bucket and entry.key else None
    if entry.op == "get":
        error: AsyncPresignError = LocalFileError(
            f"manifest line {entry.line} downloads to {entry.path!r}, as line {earlier} does: "
            "not run, so neither overwrites the other", entry.path,
        )
    else:
        # The object its URL names (its bucket and key fields only inform).
        error = InvalidArgumentError(
            f"manifest line {entry.line} uploads to {redact_url(entry.url.partition('?')[0])}"
            f"{f' (part {entry.part})' if entry.part is not None else ''}, as line {earlier} "
            "does: not run, so neither overwrites the other"
        )
    return TransferResult(url=named or redact_url(entry.url), error=error,
                          op="download" if entry.op == "get" else "upload", path=entry.path)


def _rebase(key: str, old: str, new: str) -> str:
    """``key`` under ``old`` as the same path under ``new``."""
    return object_key(new, relative_key(old, key))


def _empty() -> BatchResult:
    return BatchResult(results=(), failed=(), total=0, succeeded=0, nbytes=0, seconds=0.0)


#: The operation of a command's jobs, for failures that do not say.
_COMMAND_OPS = {"upload": "upload", "download": "download", "copy": "copy"}


def _bucket_key(url: str) -> dict[str, str | None]:
    """The bucket and key an ``s3://bucket/key`` names (None for any other URL)."""
    if not url.startswith("s3://"):
        return {"bucket": None, "key": None}
    bucket, _, key = url[5:].partition("/")
    return {"bucket": bucket, "key": key}


def _not_verified(count: int) -> str:
    """The summary's line for transfers done that no check could confirm."""
    return (f"  not verified: {count:,} of those done passed no check (the server sent no "
            "checksum and the ETag is no MD5, or checks are off): see 'What is verified' in "
            "the README")
