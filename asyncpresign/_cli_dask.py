"""``--dask-scheduler``: a command's jobs spread over a Dask cluster, signed on
this machine, and the run's summary."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ._bulk import (
    Filters,
    FolderCache,
    SamePath,
    _in_thread_batches,
    ignores_case,
    is_folder_marker,
    list_objects,
    listed_by,
    local_path,
    object_key,
    relative_key,
    same_path_as,
    same_path_error,
    walk_tree,
)
from ._cli_common import (
    _COMMAND_OPS,
    EXIT_FAILED,
    EXIT_OK,
    _bucket_key,
    _checksum,
    _copy_pairs,
    _listing,
    _not_verified,
    _same_destination,
    _signer,
    _single_object,
    _timeout,
)
from ._exceptions import (
    AsyncPresignError,
    InvalidArgumentError,
    LocalFileError,
)
from ._manifest import (
    Destinations,
    Journal,
    read_manifest_lines,
)
from ._models import Copy
from ._offload import FileThread
from ._plan import printable
from ._progress import human_bytes
from ._redact import redact_url
from ._retry import RetryPolicy
from ._signer import Signer
from ._targets import parse_s3_uri

if TYPE_CHECKING:
    from .dask import DaskSummary


async def _on_dask(args: argparse.Namespace) -> int:
    """The same commands with the transfers spread over a Dask cluster: this
    process lists and signs, partition by partition; the workers move bytes.
    Listings and walks stream into the partitions, never all in memory."""
    try:  # the dask extra is optional: import it only for this flag
        from distributed import Client  # noqa: PLC0415

        from .dask import transfer_on_dask  # noqa: PLC0415
    except ImportError:
        raise InvalidArgumentError(
            "--dask-scheduler needs Dask: pip install 'asyncpresign[dask]'"
        ) from None
    if args.dry_run:
        raise InvalidArgumentError("--dry-run does not combine with --dask-scheduler")
    if args.command == "copy" and args.metadata:
        # The workers get URLs, no credentials: none can sign the metadata of
        # a source's answer into its PUT, and dropping it unasked would be silent.
        raise InvalidArgumentError(
            "copy --dask-scheduler cannot carry the objects' metadata (the workers hold no "
            "credentials to sign it into the PUTs): add --no-metadata to copy without it"
        )
    filters = Filters(include=args.include, exclude=args.exclude)
    options = {"concurrency": args.concurrency, "chunk_size": args.chunk_size,
               "retry": RetryPolicy(attempts=args.retries),
               "timeout": _timeout(args), "max_rate": args.limit_rate,
               "checksum": _checksum(args)}  # the workers' engines check as this one would
    bad: list[tuple[str, str]] = []  # (s3 URL, error) of keys no job can be made for
    # Ours to close: a journal on a full disk still leaves the summary to print.
    journal = await anyio.to_thread.run_sync(Journal, args.journal)
    client = await anyio.to_thread.run_sync(Client, args.dask_scheduler)
    started = time.monotonic()
    try:
        if args.command == "transfer":
            summary = await transfer_on_dask(client, _dask_entries(args, filters, bad),
                                             engine_options=options, journal=journal)
        else:
            async with _signer(args) as signer:
                if args.command == "upload":
                    specs: Any = _dask_uploads(args, filters, bad)
                elif args.command == "download":
                    specs = _dask_downloads(args, signer, filters, bad)
                else:
                    specs = _signed_copies(args, signer, filters)
                summary = await transfer_on_dask(
                    client, specs, signer=signer, engine_options=options,
                    journal=journal, expires_in=args.expires,
                )
    finally:
        await anyio.to_thread.run_sync(client.close)
        # Raised only after the run: it must not replace an error in flight.
        with contextlib.suppress(LocalFileError):
            await anyio.to_thread.run_sync(journal.close)
    return _dask_report(args, summary, bad, journal, time.monotonic() - started)


def _dask_report(
    args: argparse.Namespace, summary: DaskSummary, bad: list[tuple[str, str]], journal: Journal,
    seconds: float,
) -> int:
    """Print a Dask run's summary (and a journal that could not keep its
    record); the exit code."""
    data = summary.as_dict()
    data["command"] = args.command
    data["seconds"] = round(seconds, 3)
    data["total"] += len(bad)
    data["failed"] += len(bad)
    op = _COMMAND_OPS.get(args.command)
    data["failures"] += [
        {"index": None, "op": op, **_bucket_key(url), "path": None, "url": url, "status": None,
         "code": None, "attempts": 0, "error": error}
        for url, error in bad
    ]
    if journal.failure is not None:
        data["journal_error"] = str(journal.failure)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"{args.command} on Dask: {summary.succeeded - summary.skipped} done "
              f"({summary.skipped} already "
              f"done), {data['failed']} failed of {data['total']}; "
              f"{human_bytes(summary.nbytes)} in {data['seconds']} s")
        if summary.unverified:
            print(_not_verified(summary.unverified))
        for failure in data["failures"]:
            print(f"  failed: {printable(failure['url'])}: {printable(str(failure['error']))}")
    if journal.failure is not None:
        # The transfers' counts stand; the run still failed to keep its record.
        print(f"asyncpresign: error: {printable(str(journal.failure))}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if summary.ok and not bad else EXIT_FAILED


async def _dask_entries(
    args: argparse.Namespace, filters: Filters, bad: list[tuple[str, str]]
) -> AsyncIterator[Any]:
    """The manifest's entries that ``filters`` let through, read in a thread, with
    the folders their downloads need made as they go; a malformed line, or a
    download whose folder cannot be made, fails alone (into ``bad``)."""
    folders = FolderCache()
    destinations = Destinations()
    with FileThread("asyncpresign-manifest") as reader:  # a pipe may keep it waiting
        async for entry in _in_thread_batches(read_manifest_lines(args.manifest), reader):
            if isinstance(entry, InvalidArgumentError):
                bad.append((args.manifest, f"{type(entry).__name__}: {entry}"))
                continue
            if not filters(entry.key or entry.path):
                continue
            if (earlier := destinations.earlier(entry)) is not None:
                refused = _same_destination(entry, earlier)
                bad.append((refused.url, f"{type(refused.error).__name__}: {refused.error}"))
                continue
            if entry.op == "get":
                problem = await folders.make(os.path.dirname(entry.path))  # absolute
                if problem is not None:
                    bad.append((redact_url(entry.url), f"LocalFileError: {problem}"))
                    continue
            yield entry


async def _dask_uploads(
    args: argparse.Namespace, filters: Filters, bad: list[tuple[str, str]]
) -> AsyncIterator[Any]:
    """Upload specs as the walk goes, in a thread; what the walk will not send
    (see ``walk_tree``) fails alone, into ``bad``."""
    from .dask import ObjectJob  # noqa: PLC0415 - the optional extra

    bucket, prefix = parse_s3_uri(args.target)
    if not await anyio.to_thread.run_sync(os.path.isdir, args.source):
        raise InvalidArgumentError(
            f"{args.source!r} is not a folder (--dask-scheduler spreads the files of a "
            "folder; upload one file without it)"
        )
    # Absolute paths: a worker resolves a path against its own working folder.
    root = await anyio.to_thread.run_sync(os.path.abspath, args.source)
    walk = walk_tree(root, filters, follow_symlinks=args.follow_symlinks)
    async for entry in _in_thread_batches(walk):
        key = object_key(prefix, entry.relative)
        shown = f"s3://{bucket}/{key}".encode("utf-8", "backslashreplace").decode()
        if entry.not_followed:
            continue
        if entry.problem is not None:
            bad.append((shown, f"LocalFileError: {entry.error()}"))
            continue
        yield ObjectJob(op="upload", bucket=bucket, key=key, path=entry.path)


async def _dask_downloads(
    args: argparse.Namespace, signer: Signer, filters: Filters, bad: list[tuple[str, str]]
) -> AsyncIterator[Any]:
    """Download specs as the listing pages come in, each with the ETag the journal
    checks and its folder made (once); a key no local path fits fails alone."""
    from .dask import ObjectJob  # noqa: PLC0415 - the optional extra

    if await _single_object(args, signer, args.source) is not None:
        raise InvalidArgumentError(
            f"{args.source} is one object: --dask-scheduler spreads the objects of a "
            "folder; download one object without it"
        )
    bucket, prefix, filters = await _listing(args, signer, args.source, filters)
    # Absolute paths: a worker resolves a path against its own working folder.
    dest_root = await anyio.to_thread.run_sync(os.path.abspath, args.dest)
    folders = FolderCache(dest_root)
    fold_case = await anyio.to_thread.run_sync(ignores_case, args.dest)
    paths = SamePath(prefix, fold_case=fold_case)
    listed = listed_by(signer, bucket, prefix, filters)
    async for key, size, etag in list_objects(signer, bucket, prefix):
        if is_folder_marker(key, size) or not filters(relative_key(prefix, key)):
            continue  # a "folder" marker, or excluded
        try:
            path = local_path(dest_root, prefix, key)
            earlier = await same_path_as(paths, key, listed)
            if earlier is not None:
                raise same_path_error(bucket, key, earlier, path)
            problem = await folders.make(os.path.dirname(path))
            if problem is not None:
                raise LocalFileError(f"{problem}, so {path!r} cannot be written", path)
        except AsyncPresignError as exc:
            bad.append((f"s3://{bucket}/{key}", f"{type(exc).__name__}: {exc}"))
            continue
        yield ObjectJob(op="download", bucket=bucket, key=key, path=path, etag=etag)


async def _signed_copies(
    args: argparse.Namespace, source: Signer, filters: Filters
) -> AsyncIterator[Copy]:
    """Copy jobs for Dask workers, signed here as the partitions are pulled: the
    workers get a GET and a PUT URL per object, never either side's credentials."""
    async with _signer(args, "dest_") as dest:
        async for (src_bucket, key), (dst_bucket, dst_key), _ in _copy_pairs(
            args, source, dest, filters
        ):
            yield Copy(
                await source.presign_get(src_bucket, key, expires_in=args.expires),
                await dest.presign_put(dst_bucket, dst_key, expires_in=args.expires),
            )
