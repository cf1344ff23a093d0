"""``asyncpresign sign``, ``uploads`` and ``complete``: presigned requests and
manifests, multipart uploads signed part by part, and their completion."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread

from ._bulk import (
    Filters,
    SamePath,
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
from ._checksums import ALGORITHMS, combine_parts, header_name
from ._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    _listing,
    _signer,
)
from ._exceptions import (
    AsyncPresignError,
    InvalidArgumentError,
    LocalFileError,
)
from ._files import file_checksum, source_version
from ._manifest import (
    Journal,
    ManifestEntry,
    ManifestWriter,
    read_manifest,
    write_manifest,
)
from ._models import OpenUpload
from ._offload import FileThread
from ._parts import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, plan_parts
from ._plan import printable
from ._progress import human_bytes
from ._signer import Signer
from ._targets import parse_s3_uri
from ._walk import WalkEntry


async def _sign(args: argparse.Namespace) -> int:
    bucket, key = parse_s3_uri(args.target)
    async with _signer(args) as signer:
        if args.manifest:
            return await _sign_to_manifest(args, signer, bucket, key)
        if args.method == "post":
            if key.endswith("/") and "${filename}" not in key:
                # What an unquoted 's3://b/in/${filename}' becomes in a shell.
                print(f"asyncpresign: warning: the key {key!r} ends in '/': every upload "
                      "would overwrite that one key. For the browser's file name, quote "
                      "the target so the shell leaves ${filename} alone: "
                      f"'s3://{bucket}/{key}${{filename}}'", file=sys.stderr)
            post = await signer.presign_post(
                bucket, key, expires_in=args.expires,
                fields={"Content-Type": args.content_type} if args.content_type else None,
                content_length_range=(0, args.max_size) if args.max_size else None,
            )
            print(json.dumps({"url": post.url, "fields": dict(post.fields)}, indent=2))
            return EXIT_OK
        if args.method == "put":
            request = await signer.presign_put(
                bucket, key, expires_in=args.expires, content_type=args.content_type
            )
        else:
            # A URL for a person or a browser, which cannot add headers: no
            # ChecksumMode (the engine's own GETs, in manifests, sign it).
            request = await signer.presign_get(
                bucket, key, expires_in=args.expires, ChecksumMode=None
            )
        if args.json:
            print(json.dumps({"method": request.method, "url": request.url,
                              "headers": dict(request.headers),
                              "expires_at": request.expires_at.isoformat()}))
        else:
            print(request.url)
            for name, value in request.headers.items():
                print(f"  send header: {name}: {value}", file=sys.stderr)
        return EXIT_OK


async def _sign_to_manifest(
    args: argparse.Namespace, signer: Signer, bucket: str, key: str
) -> int:
    """``sign ... --manifest M --from PATH``: one job per file (or object) into M;
    lines on stderr, and with ``--json`` one document on stdout."""
    target = f"s3://{bucket}/{key}"
    if args.dry_run:
        print(f"would sign jobs for {target} into {args.manifest}", file=sys.stderr)
        if args.json:
            _print_json({"dry_run": True, "target": target, "manifest": args.manifest,
                         "jobs": 0})
        return EXIT_OK
    if not args.source:
        raise InvalidArgumentError("--manifest needs --from PATH")
    count, left_out, links = await _sign_manifest(args, signer, bucket, key)
    print(f"wrote {count} jobs to {args.manifest}", file=sys.stderr)
    for line in left_out:
        print(f"  not signed: {line}", file=sys.stderr)
    for link in links:
        print(f"  not followed: {link!r} (a symbolic link)", file=sys.stderr)
    if args.json:
        _print_json({"target": target, "manifest": args.manifest, "jobs": count,
                     "not_signed": left_out, "not_followed": links})
    return EXIT_FAILED if left_out else EXIT_OK


async def _sign_manifest(
    args: argparse.Namespace, signer: Signer, bucket: str, prefix: str
) -> tuple[int, list[str], list[str]]:
    """Write the manifest; returns how many jobs it holds, why each path or key
    left out of it was (a FIFO, an unreadable folder, a key landing where
    another does ...: reported, and the run exits 1), and the symbolic links
    not followed (``--no-follow-symlinks``: reported, not failures).

    Entries go to the manifest's temporary file a batch at a time, so a folder
    or a listing of millions is never held in memory; the file takes the
    manifest's name only once complete."""
    if args.method not in ("put", "get"):
        raise InvalidArgumentError("a manifest holds get or put jobs, not post")
    filters = Filters(include=args.include, exclude=args.exclude)
    left_out: list[str] = []
    links: list[str] = []
    writer = await anyio.to_thread.run_sync(ManifestWriter, args.manifest)
    try:
        if args.method == "put":
            signed = _signed_puts(
                args, signer, bucket, prefix, filters, left_out=left_out, links=links
            )
        else:
            signed = _signed_gets(args, signer, filters, left_out)
        batch: list[ManifestEntry] = []
        async for entry in signed:
            batch.append(entry)
            if len(batch) == _MANIFEST_BATCH:
                await anyio.to_thread.run_sync(writer.write, batch)
                batch = []
        await anyio.to_thread.run_sync(writer.write, batch)
        count = await anyio.to_thread.run_sync(writer.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.discard)
        raise
    return count, left_out, links


#: Manifest entries written per thread hop (each ~0.5-1 KB).
_MANIFEST_BATCH = 500


async def _signed_puts(
    args: argparse.Namespace, signer: Signer, bucket: str, prefix: str, filters: Filters,
    *, left_out: list[str], links: list[str],
) -> AsyncIterator[ManifestEntry]:
    """A folder's files signed for upload, each with its checksum signed in
    (whoever sends it, the server refuses bytes that are not this file's). The
    walk and the checksums run in a thread, a batch of files per hop."""
    walk = walk_tree(args.source, filters, follow_symlinks=args.follow_symlinks)
    algorithm = signer.checksum if signer.checksum in ALGORITHMS else None

    def take() -> list[tuple[WalkEntry, str | LocalFileError | None]]:
        batch: list[tuple[WalkEntry, str | LocalFileError | None]] = []
        nbytes = 0
        for found in walk:
            checksum: str | LocalFileError | None = None
            if algorithm and not found.not_followed and found.problem is None:
                try:
                    checksum = file_checksum(found.path, algorithm)
                except LocalFileError as exc:
                    checksum = exc
                nbytes += found.size
            batch.append((found, checksum))
            if len(batch) == _MANIFEST_BATCH or nbytes >= 256 << 20:
                break
        return batch

    while batch := await anyio.to_thread.run_sync(take):
        for found, checksum in batch:
            if found.not_followed:
                links.append(found.path)
                continue
            if found.problem is not None:
                left_out.append(str(found.error()))
                continue
            if isinstance(checksum, LocalFileError):
                left_out.append(str(checksum))
                continue
            key = object_key(prefix, found.relative)
            request = await signer.presign_put(
                bucket, key, expires_in=args.expires, content_type=args.content_type,
                checksum=(algorithm, checksum) if algorithm and checksum else None,
            )
            yield ManifestEntry(
                op="put", url=request.url, headers=dict(request.headers), path=found.path,
                size=found.size, bucket=bucket, key=key,
                expires_at=request.expires_at.isoformat(),
            )


async def _signed_gets(
    args: argparse.Namespace, signer: Signer, filters: Filters, left_out: list[str]
) -> AsyncIterator[ManifestEntry]:
    """A prefix's objects signed for download, each with the ETag it was listed with."""
    bucket, prefix, filters = await _listing(args, signer, args.target, filters)
    paths = SamePath(prefix, fold_case=await anyio.to_thread.run_sync(
        ignores_case, args.source
    ))
    listed = listed_by(signer, bucket, prefix, filters)
    async for key, size, etag in list_objects(signer, bucket, prefix):
        if is_folder_marker(key, size) or not filters(relative_key(prefix, key)):
            continue
        try:
            dest = local_path(args.source, prefix, key)
            earlier = await same_path_as(paths, key, listed)
            if earlier is not None:
                raise same_path_error(bucket, key, earlier, dest)
        except AsyncPresignError as exc:
            left_out.append(f"s3://{bucket}/{key}: {exc}")
            continue
        request = await signer.presign_get(bucket, key, expires_in=args.expires)
        yield ManifestEntry(
            op="get", url=request.url, headers=dict(request.headers), path=dest,
            bucket=bucket, key=key, expires_at=request.expires_at.isoformat(),
            etag=etag,
        )


async def _sign_parts(args: argparse.Namespace) -> int:
    """``sign put --multipart FILE --manifest M``: start the upload, write its part URLs."""
    if not args.multipart:
        raise InvalidArgumentError(
            "--force goes with --multipart (it aborts the open upload a replaced manifest holds)"
        )
    if not args.manifest:
        raise InvalidArgumentError("--multipart needs --manifest FILE, where the part URLs go")
    bucket, key = parse_s3_uri(args.target)
    async with _signer(args) as signer:
        count = await _sign_multipart(args, signer, bucket, key)
    if not args.dry_run:
        print(f"wrote {count} part URLs to {args.manifest}", file=sys.stderr)
    if args.json:
        _print_json({**({"dry_run": True} if args.dry_run else {}),
                     "target": f"s3://{bucket}/{key}", "manifest": args.manifest,
                     "parts": 0 if args.dry_run else count})
    return EXIT_OK


def _print_json(document: dict[str, Any]) -> None:
    """A signing command's one JSON document on stdout (its lines go to stderr);
    as every ``--json`` document, ASCII, so a path that is not UTF-8 prints too."""
    print(json.dumps(document, indent=2))


async def _sign_multipart(
    args: argparse.Namespace, signer: Signer, bucket: str, key: str
) -> int:
    """Start a multipart upload and write its part URLs to ``args.manifest``; the
    number of parts. A manifest it would replace that holds the parts of a
    still-open upload is refused (that upload would stay open, its parts stored
    and billed, with nothing left naming it) unless ``args.force``, which aborts
    it first. A dry run starts, aborts and writes nothing."""
    if args.method != "put":
        raise InvalidArgumentError("--multipart signs put requests")
    path = str(await anyio.Path(args.multipart).absolute())
    # Each part line carries this version: a part read from another fails.
    version = await anyio.to_thread.run_sync(source_version, path)
    size = version[0]
    if not MIN_PART_SIZE <= args.part_size <= MAX_PART_SIZE:
        # Not moved into range unsaid: the manifest would hold other parts than asked.
        raise InvalidArgumentError(
            f"--part-size must be from 5 MiB to 5 GiB (S3's limits for a part but the "
            f"last), not {human_bytes(args.part_size)}"
        )
    parts = plan_parts(size, args.part_size)
    if len(parts) > 1 and parts[0].length != args.part_size:
        print(f"asyncpresign: parts of {human_bytes(parts[0].length)}, not "
              f"{human_bytes(args.part_size)}: {human_bytes(size)} would not fit in S3's "
              f"{MAX_PARTS:,} parts", file=sys.stderr)
    still_open = await _open_uploads(args.manifest, signer)
    described = [
        f"s3://{b}/{k} (upload id {upload_id}, {count} parts stored)"
        for b, k, upload_id, count in still_open
    ]
    if still_open and not args.force:
        raise InvalidArgumentError(
            f"{args.manifest} holds the parts of a multipart upload that is still open: "
            f"{'; '.join(described)}. Replacing it would leave that upload open, its parts "
            f"stored and billed: finish it ('asyncpresign complete {args.manifest}'), abort "
            f"it ('asyncpresign complete {args.manifest} --abort'), or pass --force to abort "
            "it and sign anew"
        )
    for (b, k, upload_id, _), what in zip(still_open, described, strict=True):
        if args.dry_run:
            print(f"would abort {what}", file=sys.stderr)
            continue
        await signer.abort_multipart_upload(b, k, upload_id)
        print(f"aborted {what}", file=sys.stderr)
    if args.dry_run:
        print(f"would sign a multipart upload of {args.multipart} ({human_bytes(size)}, "
              f"{len(parts)} parts) for s3://{bucket}/{key} into {args.manifest}",
              file=sys.stderr)
        return len(parts)
    options = {"ContentType": args.content_type} if args.content_type else {}
    upload_id = await signer.create_multipart_upload(bucket, key, **options)
    try:
        algorithm = signer.checksum if signer.checksum in ALGORITHMS else None
        entries = []
        for part in parts:
            checksum = (
                (
                    algorithm,
                    await anyio.to_thread.run_sync(
                        file_checksum, path, algorithm, part.offset, part.length
                    ),
                )
                if algorithm
                else None
            )
            request = await signer.presign_upload_part(
                bucket, key, upload_id, part.number, expires_in=args.expires, checksum=checksum
            )
            entries.append(ManifestEntry(
                op="put", url=request.url, headers=dict(request.headers), path=path,
                size=part.length, offset=part.offset, part=part.number, upload_id=upload_id,
                bucket=bucket, key=key, expires_at=request.expires_at.isoformat(),
                version=version,
            ))
        return await anyio.to_thread.run_sync(write_manifest, args.manifest, entries)
    except BaseException:
        # No manifest names the new upload: abort it rather than leave it open.
        with anyio.CancelScope(shield=True):
            try:
                await signer.abort_multipart_upload(bucket, key, upload_id)
            except AsyncPresignError as exc:
                print(printable(
                    f"asyncpresign: the upload just started is still open, s3://{bucket}/"
                    f"{key} (upload id {upload_id}): {exc}; 'asyncpresign uploads "
                    f"s3://{bucket}/{key} --abort' ends it"), file=sys.stderr)
        raise


async def _open_uploads(manifest: str, signer: Signer) -> list[tuple[str, str, str, int]]:
    """The multipart uploads ``manifest`` holds parts of that are still open, with
    the number of parts each holds (bucket, key, upload id, parts)."""
    uploads = await anyio.to_thread.run_sync(_manifest_uploads, manifest)
    still_open = []
    for bucket, key, upload_id in uploads:
        count = await signer.count_parts(bucket, key, upload_id)
        if count is not None:
            still_open.append((bucket, key, upload_id, count))
    return still_open


def _manifest_uploads(manifest: str) -> list[tuple[str, str, str]]:
    """The (bucket, key, upload id) of the multipart uploads an existing
    ``manifest`` holds parts of. A file there that cannot be read as a manifest
    is refused: it is not ours to overwrite."""
    if not os.path.lexists(manifest):
        return []
    found: dict[tuple[str, str, str], None] = {}
    try:
        for entry in read_manifest(manifest):
            if entry.upload_id is None:
                continue
            if not (entry.bucket and entry.key):
                raise InvalidArgumentError(
                    f"a part of upload {entry.upload_id} names no bucket and key"
                )
            found[(entry.bucket, entry.key, entry.upload_id)] = None
    except (OSError, ValueError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise InvalidArgumentError(
            f"{manifest} exists and is not a manifest whose uploads can be checked "
            f"({reason}); not overwriting it: move it away or choose another --manifest"
        ) from None
    return list(found)


async def _uploads(args: argparse.Namespace) -> int:
    """``uploads s3://bucket/prefix``: list the open multipart uploads there, or
    abort them (each failure reported, the others still tried)."""
    bucket, prefix = parse_s3_uri(args.target)
    rows: list[dict[str, Any]] = []
    async with _signer(args) as signer:
        if args.abort and not args.dry_run:
            outcomes = await signer.abort_multipart_uploads(
                bucket, prefix, older_than=args.older_than
            )
            for upload, error in outcomes:
                rows.append(_upload_row(upload, "failed" if error else "aborted", error))
        else:
            status = "would abort" if args.abort else "open"
            async for upload in signer.list_multipart_uploads(
                bucket, prefix, older_than=args.older_than, with_parts=True
            ):
                rows.append(_upload_row(upload, status))
    failed = [row for row in rows if row["status"] == "failed"]
    if args.json:
        print(json.dumps({
            "command": "uploads", "bucket": bucket, "prefix": prefix,
            "abort": args.abort, "dry_run": args.dry_run, "uploads": rows, "total": len(rows),
            "aborted": sum(row["status"] == "aborted" for row in rows), "failed": len(failed),
        }, indent=2))
        return EXIT_FAILED if failed else EXIT_OK
    for row in rows:
        # Key and upload id are the server's: escaped, so that a newline in
        # one cannot forge a line (a summary of its own).
        where = printable(f"s3://{bucket}/{row['key']}  upload id {row['upload_id']}")
        started = f"started {row['initiated']}"
        parts = "" if row["parts"] is None else f", {row['parts']} parts"
        if row["status"] == "failed":
            print(f"could not abort {where}: {printable(row['error'])}", file=sys.stderr)
        elif row["status"] == "open":
            print(f"{where}  {started}{parts}")
        else:
            print(f"{row['status']} {where}  {started}{parts}")
    age = f" started more than {_age(args.older_than)} ago" if args.older_than is not None else ""
    plural = "" if len(rows) == 1 else "s"
    summary = (f"{len(rows)} open multipart upload{plural}{age} under "
               f"{printable(f's3://{bucket}/{prefix}')}")
    if args.abort and args.dry_run:
        summary += ": none aborted (dry run)"
    elif args.abort:
        summary += f": {len(rows) - len(failed)} aborted, {len(failed)} failed"
    print(summary)
    return EXIT_FAILED if failed else EXIT_OK


def _upload_row(
    upload: OpenUpload, status: str, error: BaseException | None = None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": upload.key, "upload_id": upload.upload_id,
        "initiated": upload.initiated.isoformat(timespec="seconds"), "parts": upload.parts,
        "status": status,
    }
    if error is not None:
        row["error"] = f"{type(error).__name__}: {error}"
    return row


def _age(seconds: int) -> str:
    """``604800`` → ``7d``: the largest unit that divides it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def _complete(args: argparse.Namespace) -> int:
    """Finish the multipart uploads a manifest's parts were sent for, from the
    ETags its journal recorded; every part must be there."""
    # A daemon thread of its own: a pipe's read can wait for ever, and a
    # stopped run must not wait for it.
    with FileThread("asyncpresign-manifest") as reader:
        entries = await reader.run(lambda: list(read_manifest(args.manifest)))
    journal = await anyio.to_thread.run_sync(Journal, args.journal)
    uploads: dict[tuple[str, str, str], list[ManifestEntry]] = {}
    for entry in entries:
        if entry.upload_id and entry.part and entry.bucket and entry.key:
            uploads.setdefault((entry.bucket, entry.key, entry.upload_id), []).append(entry)
    if not uploads:
        raise InvalidArgumentError(f"{args.manifest} holds no multipart upload parts")
    # Every upload is checked before any is completed; an abort needs no check.
    for (bucket, key, _), parts in () if args.abort else uploads.items():
        problem = _torn(parts)
        if problem is not None:
            raise InvalidArgumentError(
                f"{args.manifest}: s3://{bucket}/{key}: {problem}; completing it would store "
                f"a torn object: abort it ('asyncpresign complete {args.manifest} --abort') "
                "and sign the upload again"
            )
    status = EXIT_OK
    async with _signer(args) as signer:
        for (bucket, key, upload_id), parts in uploads.items():
            if args.abort:
                if args.dry_run:
                    print(f"would abort s3://{bucket}/{key} ({len(parts)} parts)")
                    continue
                await signer.abort_multipart_upload(bucket, key, upload_id)
                print(f"aborted s3://{bucket}/{key}")
                continue
            # Checked in a dry run too: it says what the real run would do.
            missing = [p.part for p in parts if p.id not in journal.etags]
            if missing:
                print(f"s3://{bucket}/{key}: parts {missing[:10]} not uploaded yet; run "
                      f"'asyncpresign transfer {args.manifest}' first", file=sys.stderr)
                status = EXIT_FAILED
                continue
            if args.dry_run:
                print(f"would complete s3://{bucket}/{key} ({len(parts)} parts)")
                continue
            etag = await signer.complete_multipart_upload(
                bucket, key, upload_id, [(p.part or 0, journal.etags[p.id]) for p in parts],
                **_whole_checksum(parts),
            )
            print(f"completed s3://{bucket}/{key} ({len(parts)} parts, ETag {etag})")
    return status


def _torn(parts: list[ManifestEntry]) -> str | None:
    """Why one upload's parts, as a manifest holds them, are not the whole file
    they were signed from (a line lost, the manifest cut short), or None. The
    server checks only that the parts it is given exist, so a manifest missing
    its last lines would complete an object missing its end. Parts written by
    ``sign --multipart`` say where they sit in one file (offset and size) and
    its size when signed (version); parts without offsets (each a file of its
    own) can only be checked for their numbering."""
    ordered = sorted(parts, key=lambda p: p.part or 0)
    numbers = [p.part for p in ordered]
    if numbers != list(range(1, len(ordered) + 1)):
        return f"the manifest holds parts {numbers[:10]}, not 1 to {len(ordered)} once each"
    if any(p.offset is None or p.size is None for p in ordered):
        return None  # each part a whole file of its own (written by hand): nothing to add up
    if len({p.path for p in ordered}) > 1 or len({p.version for p in ordered}) > 1:
        return "its parts were signed from different files, or versions of the file"
    end = 0
    for p in ordered:
        if p.offset != end:
            return f"part {p.part} starts at byte {p.offset:,}, not at {end:,}"
        end += p.size or 0
    version = ordered[0].version
    if version is not None and version[0] != end:
        return (f"its {len(ordered)} parts hold {end:,} bytes of the file's {version[0]:,}: "
                "the lines of the other parts are missing")
    return None


def _whole_checksum(parts: list[ManifestEntry]) -> dict[str, Any]:
    """The combined checksum of parts signed with their own (FULL_OBJECT), or nothing."""
    ordered = sorted(parts, key=lambda p: p.part or 0)
    for algorithm in ALGORITHMS:
        values = [
            next((v for k, v in p.headers.items() if k.lower() == header_name(algorithm)), None)
            for p in ordered
        ]
        present = [v for v in values if v]
        if not present:
            continue
        if len(present) != len(ordered):
            return {}
        whole = combine_parts(
            algorithm, [(v, p.size or 0) for p, v in zip(ordered, present, strict=True)]
        )
        if whole is None:
            return {}
        return {
            "checksum": (algorithm, whole),
            "part_checksums": {p.part or 0: v for p, v in zip(ordered, present, strict=True)},
        }
    return {}
