"""The ``asyncpresign`` command line.

Credentials come only from the standard AWS environment variables, shared
config files and profiles (``--profile``), never from arguments that would land
in shell history. Exit status: 0 all done, 1 some jobs failed (listed in the
summary), 2 bad usage; 130 when interrupted, 143 when terminated (SIGTERM), 129 on
SIGHUP (re-run to resume with a journal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import glob
import hashlib
import io
import json
import logging
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import anyio
import anyio.to_thread

from ._bulk import (
    Filters,
    FolderCache,
    SamePath,
    _in_thread_batches,
    any_object,
    copy_id,
    copy_objects,
    download_object,
    download_prefix,
    folder_problem,
    ignores_case,
    is_folder_marker,
    list_objects,
    listed_by,
    local_path,
    object_exists,
    object_key,
    record_done,
    relative_key,
    same_path_as,
    same_path_error,
    upload_file,
    upload_tree,
    walk_tree,
)
from ._checksums import ALGORITHMS, combine_parts, header_name
from ._config import Timeout
from ._engine import TransferEngine
from ._exceptions import (
    AsyncPresignError,
    InvalidArgumentError,
    LocalFileError,
    NoCredentialsError,
)
from ._files import describe_os_error, file_checksum, source_version
from ._manifest import (
    Destinations,
    Journal,
    ManifestEntry,
    ManifestWriter,
    journal_state,
    read_manifest,
    read_manifest_lines,
    write_manifest,
)
from ._models import (
    BatchResult,
    Copy,
    Download,
    OpenUpload,
    SignFunction,
    TransferResult,
    Upload,
)
from ._parts import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, plan_parts
from ._plan import Plan
from ._progress import ProgressDisplay, human_bytes
from ._redact import redact_url
from ._retry import RetryPolicy
from ._signer import Signer
from ._sync import SyncResult, same_server, sync
from ._targets import download_dest, object_target, parse_s3_uri
from ._version import __version__
from ._walk import WalkEntry, walk_one
from .testing import LocalS3

if TYPE_CHECKING:
    from .dask import DaskSummary

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away

#: Commands with no JSON output (the others print one document under --json).
_NO_JSON = frozenset({"complete", "demo"})

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_DURATIONS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _shown(text: str) -> str:
    """A bad value as an error message shows it: 40 characters at most."""
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}..."


def parse_size(text: str) -> int:
    """``4KiB``, ``1MiB``, ``65536`` → bytes."""
    # ASCII digits, at most 19 (any size there is): \d took other scripts'
    # digits, and int() refused 5,000 of them in a message that echoed them all.
    match = re.fullmatch(r"\s*([0-9]{1,19})\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {_shown(text)} (try 4KiB, 1MiB or 65536)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_rate(text: str) -> int:
    """``50MiB``, ``50MiB/s``, ``800k`` → bytes per second (sizes as :func:`parse_size`)."""
    size = text.strip()
    if size[-2:].lower() == "/s":
        size = size[:-2]
    try:
        rate = parse_size(size)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"not a rate: {_shown(text)} (try 50MiB, 800KiB or 1000000, bytes per second)"
        ) from None
    if rate < 1:
        raise argparse.ArgumentTypeError(f"must be more than 0 bytes per second, not {text!r}")
    try:
        float(rate)  # the limit is counted in floats
    except OverflowError:
        raise argparse.ArgumentTypeError(f"too large a rate: {text[:40]!r}...") from None
    return rate


def parse_duration(text: str) -> int:
    """``900``, ``15m``, ``1h``, ``7d`` → seconds."""
    match = re.fullmatch(r"\s*([0-9]{1,19})\s*([smhd]?)\s*", text)  # ASCII, as sizes
    if not match:
        raise argparse.ArgumentTypeError(
            f"not a duration: {_shown(text)} (try 900, 15m, 1h, 7d)"
        )
    return int(match.group(1)) * _DURATIONS[match.group(2)]


def positive_int(text: str) -> int:
    """An integer of at least 1 (a count of files, of transfers in flight)."""
    if not re.fullmatch(r"\s*-?[0-9]{1,19}\s*", text):  # ASCII digits, as sizes
        raise argparse.ArgumentTypeError(f"not a whole number: {_shown(text)}")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _connection(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The connection options: given before the command (``top``, where they
    default to None) or after it (where they keep what was given before)."""
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection (credentials come from the AWS environment)")
    group.add_argument("--endpoint-url", default=default,
                       help="an S3-compatible endpoint (default: $AWS_ENDPOINT_URL, else AWS)")
    group.add_argument("--region", default=default,
                       help="signing region (default: $AWS_REGION, $AWS_DEFAULT_REGION or the "
                       "AWS config)")
    group.add_argument("--profile", default=default, help="a profile from the AWS config files")


def _transfer_options(parser: argparse.ArgumentParser, *, integrity: bool = True) -> None:
    """How the engine moves bytes: for the commands that transfer (``sync``'s
    ``--checksum`` is its comparison, so it takes no ``integrity`` option)."""
    opts = parser.add_argument_group("transfer")
    opts.add_argument("--concurrency", type=positive_int, default=64,
                      help="transfers in flight at once (default %(default)s)")
    opts.add_argument("--chunk-size", type=parse_size, default=65536,
                      help="network read and write size, e.g. 4KiB, 1MiB (default 64KiB)")
    opts.add_argument(
        "--retries", type=positive_int, default=RetryPolicy().attempts,
        help="attempts per transfer (default %(default)s; retries also stop once the "
        "endpoint has failed for 60 s straight)",
    )
    opts.add_argument(
        "--timeout", type=parse_duration, default=None,
        help="give up on a transfer (every attempt included) after this long, e.g. 10m "
        "(default: none; a transfer slower than 1 KiB/s for 60 s fails anyway)",
    )
    opts.add_argument(
        "--limit-rate", type=parse_rate, default=None, metavar="RATE",
        help="bytes per second of every transfer together, uploads and downloads alike, "
        "e.g. 50MiB (a copy's bytes count once; on Dask, each task's; default: no limit)",
    )
    if integrity:
        _checksum_option(opts)


def _checksum_option(group: Any) -> None:
    group.add_argument(
        "--checksum", choices=["crc64nvme", "crc32c", "crc32", "md5", "none"],
        default="crc64nvme",
        help="integrity check of every body (default %(default)s, signed into each PUT; "
        "'md5' or 'none' for servers without S3's flexible checksums)",
    )


def _expires_option(group: Any) -> None:
    group.add_argument("--expires", type=parse_duration, default=3600, metavar="DURATION",
                       help="lifetime of each presigned URL, e.g. 15m, 12h, 7d (default 1h)")


def _selection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection (globs on the path under the folder or prefix)")
    group.add_argument("--include", action="append", default=[], metavar="GLOB",
                       help="only these (repeatable), e.g. '*.csv'")
    group.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                       help="not these (repeatable; excludes win), e.g. 'tmp/*'")


def _run_options(
    parser: argparse.ArgumentParser, *, journal: str | None = None, dask: bool = True
) -> None:
    """Journal, dry run and output: ``journal`` says where the journal is by default."""
    group = parser.add_argument_group("run")
    group.add_argument(
        "--journal", metavar="FILE",
        help="record finished jobs here; a re-run skips them while unchanged "
        f"(default: {journal or 'none'})",
    )
    group.add_argument("--dry-run", action="store_true",
                       help="print what would be done and its totals; change nothing")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print a JSON summary (only JSON on stdout)")
    group.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress display, only the summary")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks and retries")
    if dask:
        group.add_argument(
            "--dask-scheduler", metavar="ADDRESS",
            help="run on a Dask cluster (tcp://host:8786); workers get URLs, never "
            "credentials",
        )


def _common(parser: argparse.ArgumentParser, *, sync: bool = False) -> None:
    """Everything a bulk command (upload, download, copy, sync) honours; sync
    takes neither the integrity ``--checksum`` nor Dask."""
    _connection(parser)
    _transfer_options(parser, integrity=not sync)
    _expires_option(parser.add_argument_group("signing"))
    _selection(parser)
    _run_options(parser, dask=not sync)


def _prefix_match(parser: Any) -> None:
    parser.add_argument(
        "--prefix-match", action="store_true",
        help="treat s3://bucket/photos as every key starting with 'photos' (photos-old/, "
        "photos.txt ...), not as the folder photos/ (the default)",
    )


def _follow_symlinks(parser: Any) -> None:
    parser.add_argument(
        "--follow-symlinks", action=argparse.BooleanOptionalAction, default=True,
        help="send what symbolic links in the folder lead to (the default; a link back up "
        "the tree fails as a loop), or with --no-follow-symlinks list them as not followed",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"asyncpresign: error: {message}\n")


_OVERVIEW = """\
Move data through S3 presigned URLs: the credentials stay here; whoever holds
a URL (a worker, a browser, another machine) needs none.

credentials come from the AWS environment (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --profile, roles, SSO), never from
arguments. Exit status: 0 all done, 1 some jobs failed (each listed), 2 bad
input, 130 interrupted, 141 stdout closed, 143 terminated (SIGTERM), 129 hung up
(SIGHUP; under nohup the run goes on).
"""


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(sub: Any, name: str, summary: str, *examples: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary, epilog=_examples(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="asyncpresign", description=_OVERVIEW,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"asyncpresign {__version__}")
    # Global options, before or after the command (the commands' own copies
    # default to SUPPRESS, so they never undo what was given before).
    parser.add_argument("--debug", action="store_true", help="show tracebacks and retries")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--json", action="store_true", help="print JSON (only JSON on stdout)")
    _connection(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                title="commands", metavar="COMMAND")
    _demo_parser(sub)
    _sign_parser(sub)
    _bulk_parsers(sub)
    _manifest_parsers(sub)
    _uploads_parser(sub)
    return parser


def _demo_parser(sub: Any) -> None:
    demo = _command(
        sub, "demo", "start a local S3 server, move a few hundred files both ways, verify them",
        "asyncpresign demo", "asyncpresign demo --files 2000 --concurrency 128",
    )
    demo.add_argument("--files", type=positive_int, default=300,
                      help="how many files (default %(default)s)")
    demo.add_argument("--concurrency", type=positive_int, default=64,
                      help="transfers in flight at once (default %(default)s)")
    demo.add_argument("--seed", type=int, default=7,
                      help="seed for the file sizes (default %(default)s)")
    demo.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                      help="no progress display")
    demo.add_argument(
        "--web", action="store_true",
        help="instead: serve the browser-upload example app on 127.0.0.1 (Ctrl-C stops it)",
    )


def _sign_parser(sub: Any) -> None:
    sign = _command(
        sub, "sign", "print a presigned URL, or write a manifest of them",
        "asyncpresign sign get s3://my-bucket/report.pdf --expires 1h",
        "asyncpresign sign post 's3://my-bucket/in/${filename}' --max-size 10MiB",
        "asyncpresign sign put s3://my-bucket/in --manifest jobs.jsonl --from ./outbox",
    )
    sign.add_argument("method", choices=["get", "put", "post"],
                      help="the request to sign: get (download), put (upload) or post "
                      "(a browser form upload)")
    sign.add_argument("target", help="s3://bucket/key (with --manifest: s3://bucket/prefix)")
    sign.add_argument("--content-type", help="put/post: the Content-Type to store")
    sign.add_argument("--max-size", type=parse_size, help="post: largest upload accepted")
    manifests = sign.add_argument_group("manifests")
    manifests.add_argument(
        "--manifest", metavar="FILE",
        help="write a JSON Lines manifest for --from (a folder to upload, or a folder to "
        "download into) instead of printing one URL",
    )
    manifests.add_argument("--from", dest="source", metavar="PATH",
                           help="with --manifest: a folder (put) or a destination folder (get)")
    manifests.add_argument(
        "--multipart", metavar="FILE",
        help="with put --manifest: start a multipart upload of FILE to the key and write one "
        "presigned URL per part ('asyncpresign complete' ends it)")
    manifests.add_argument("--part-size", type=parse_size, default=8 * 1024 * 1024,
                           help="with --multipart: bytes per part (default 8MiB)")
    manifests.add_argument(
        "--force", action="store_true",
        help="with --multipart: if the manifest holds the parts of an upload that is still "
        "open, abort that upload and replace the manifest (without it, it is kept)")
    _follow_symlinks(manifests)
    _prefix_match(manifests)
    _connection(sign)
    signing = sign.add_argument_group("signing")
    _expires_option(signing)
    _checksum_option(signing)
    _selection(sign)
    out = sign.add_argument_group("output")
    out.add_argument("--dry-run", action="store_true",
                     help="with --manifest: say what would be signed; start and write nothing")
    out.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                     help="print the request as JSON (url, headers, expiry)")
    out.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                     help="show tracebacks")


def _bulk_parsers(sub: Any) -> None:
    upload = _command(
        sub, "upload", "upload a file, a folder, or stdin (-) to S3",
        "asyncpresign upload report.pdf s3://my-bucket/reports/",
        "asyncpresign upload ./photos s3://my-bucket/photos --journal up.journal",
        "pg_dump mydb | asyncpresign upload - s3://my-bucket/backups/mydb.sql",
    )
    upload.add_argument(
        "source", metavar="SOURCE",
        help="a file; a folder (every file under it; files above 8 MiB go as multipart "
        "uploads); or - for stdin, which goes up as a multipart upload of parts held in "
        "memory (at most min(--concurrency, 8) parts of 8 MiB in flight: 64 MiB)",
    )
    upload.add_argument(
        "target", metavar="TARGET",
        help="s3://bucket/key for a file or stdin (a key ending in / takes the file's "
        "name); s3://bucket/prefix the files of a folder go under",
    )
    _follow_symlinks(upload)
    _common(upload)

    download = _command(
        sub, "download", "download an object to a file or stdout (-), or a folder of them",
        "asyncpresign download s3://my-bucket/reports/report.pdf ./report.pdf",
        "asyncpresign download s3://my-bucket/photos ./restore --journal down.journal",
        "asyncpresign download s3://my-bucket/backups/mydb.sql - | psql mydb",
    )
    download.add_argument(
        "source", metavar="SOURCE",
        help="s3://bucket/key of one object, or s3://bucket/prefix: the folder prefix/ "
        "(listed page by page)",
    )
    download.add_argument(
        "dest", metavar="DEST",
        help="for one object: the file to write, a folder to put it in (existing, or "
        "ending in /), or - for stdout (written in order; the summary goes to stderr); "
        "for a folder: the folder to download into (made if needed)",
    )
    _prefix_match(download)
    _common(download)

    copy = _command(
        sub, "copy", "copy s3://a/prefix to s3://b/prefix, no local files",
        "asyncpresign copy s3://old-bucket/data s3://new-bucket/data --journal copy.journal",
        "asyncpresign copy s3://a/x s3://b/x --dest-endpoint-url https://other.example.com",
    )
    copy.add_argument("source", help="s3://bucket/prefix (or one object's key) to copy from")
    copy.add_argument("target", help="s3://bucket/prefix to copy to (for one object: its "
                      "key, or a folder/ to copy it into)")
    _prefix_match(copy)
    copy.add_argument(
        "--metadata", action=argparse.BooleanOptionalAction, default=True,
        help="give each copy its source's Content-Type, Content-Encoding, Cache-Control, "
        "Content-Disposition, Content-Language, Expires and x-amz-meta-* metadata, signed "
        "into its PUT (the default; a source whose metadata cannot be carried exactly "
        "fails alone), or with --no-metadata store the copies without them",
    )
    dest = copy.add_argument_group("destination, when it is another server or account")
    dest.add_argument("--dest-endpoint-url", help="the destination's endpoint")
    dest.add_argument("--dest-region", help="the destination's signing region")
    dest.add_argument("--dest-profile", help="the destination's AWS profile")
    _common(copy)
    _sync_parser(sub)


def _sync_parser(sub: Any) -> None:
    sync = _command(
        sub, "sync", "make DST like SRC, moving only what is new or changed "
        "(folder to bucket, bucket to folder, bucket to bucket)",
        "asyncpresign sync ./photos s3://my-bucket/photos",
        "asyncpresign sync s3://my-bucket/photos ./photos --delete --dry-run",
        "asyncpresign sync s3://old-bucket/data s3://new-bucket/data --journal nightly.journal",
        "asyncpresign sync s3://a/x s3://b/x --dest-endpoint-url https://other.example.com",
    )
    sync.epilog = (sync.epilog or "") + (
        "\n\nan object is transferred when it is new, its size differs, or the source is "
        "newer\n(to the second: a file's mtime against the object's LastModified, or the "
        "two\nLastModified); uploads store the file's mtime in x-amz-meta-mtime, downloads "
        "set\nthe file's mtime to the object's LastModified. Both sides are listed in key "
        "order\nand merged as two streams, so memory stays flat at any size."
    )
    sync.add_argument("source", metavar="SRC",
                      help="a folder, or s3://bucket/prefix (the folder prefix/; always a "
                      "folder for sync)")
    sync.add_argument("dest", metavar="DST",
                      help="s3://bucket/prefix, or a folder (made if needed); one side at "
                      "least is a bucket, and a bucket folder is never synced into itself")
    compare = sync.add_argument_group("comparison and deletion")
    compare.add_argument(
        "--checksum", action="store_true", dest="compare_checksum",
        help="compare content, not mtimes, where the sizes match: the CRC64NVME of the "
        "local file against the server's (default: off). It costs one HEAD per object "
        "present on both sides with equal size (two for bucket to bucket) and a read of "
        "each such local file; an object whose server keeps no CRC64NVME is transferred",
    )
    compare.add_argument(
        "--delete", action="store_true",
        help="delete what DST has and SRC does not (what --include/--exclude leave out is "
        "kept), only once every transfer of the run succeeded; files only, never a folder "
        "(default: off)",
    )
    dest = sync.add_argument_group("destination, when it is another server or account")
    dest.add_argument("--dest-endpoint-url",
                      help="the destination bucket's endpoint (default: --endpoint-url)")
    dest.add_argument("--dest-region",
                      help="the destination bucket's signing region (default: --region)")
    dest.add_argument("--dest-profile",
                      help="the destination bucket's AWS profile (default: --profile)")
    _common(sync, sync=True)


def _manifest_parsers(sub: Any) -> None:
    transfer = _command(
        sub, "transfer", "run a manifest (needs no credentials)",
        "asyncpresign transfer jobs.jsonl",
        "asyncpresign transfer /mnt/share/jobs.jsonl --concurrency 128 --json",
    )
    transfer.add_argument("manifest", help="a JSON Lines manifest ('sign ... --manifest')")
    _transfer_options(transfer)
    _selection(transfer)
    _run_options(transfer, journal="MANIFEST.journal")

    complete = _command(
        sub, "complete", "finish (or --abort) a multipart upload whose parts a manifest ran",
        "asyncpresign complete parts.jsonl", "asyncpresign complete parts.jsonl --abort",
    )
    complete.add_argument("manifest", help="the manifest 'sign put --multipart' wrote")
    complete.add_argument("--abort", action="store_true",
                          help="abort the upload instead: its parts stop being stored")
    complete.add_argument("--journal", metavar="FILE",
                          help="where 'transfer' recorded the parts' ETags "
                          "(default: MANIFEST.journal)")
    complete.add_argument("--dry-run", action="store_true",
                          help="say what would be completed or aborted; do nothing")
    complete.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show tracebacks")
    _connection(complete)


def _uploads_parser(sub: Any) -> None:
    uploads = _command(
        sub, "uploads", "list the open multipart uploads under s3://bucket/prefix, or abort them",
        "asyncpresign uploads s3://my-bucket",
        "asyncpresign uploads s3://my-bucket --abort --older-than 7d --dry-run",
    )
    uploads.add_argument("target", metavar="s3://bucket/prefix",
                         help="where to look for open multipart uploads")
    uploads.add_argument("--abort", action="store_true",
                         help="abort them: their parts stop being stored (and billed)")
    uploads.add_argument("--older-than", type=parse_duration, metavar="AGE",
                         help="only those started longer ago than this, e.g. 7d, 12h")
    uploads.add_argument("--dry-run", action="store_true",
                         help="with --abort: say what would be aborted, abort nothing")
    uploads.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print JSON")
    uploads.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks")
    _connection(uploads)


def main(argv: Sequence[str] | None = None) -> int:
    restore = _stdout_that_writes_everything()
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, so a full disk is this run's error, not the exit's
        return code
    except BrokenPipeError:
        # The reader of stdout went away (``asyncpresign ... | head``), even
        # while help was printed: stop quietly, as a shell tool does (128 +
        # SIGPIPE), with no flush error at exit.
        _stdout_to_null()
        return EXIT_BROKEN_PIPE
    except _OutputError as exc:
        # stdout could not take the output (a full disk, a quota): what the
        # run printed is incomplete, so it did not succeed.
        _stdout_to_null()
        print(f"asyncpresign: error: cannot write the output: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        restore()


def _stdout_to_null() -> None:
    """Send what is still buffered for stdout nowhere (its reader is gone, or
    its disk is full), so the flush at exit does not fail again."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _OutputError(OSError):
    """stdout refused what the run wrote (a full disk, a quota, EIO)."""


class _WholeWrites(io.BufferedWriter):
    """A buffered stdout whose write errors say they are stdout's (a closed
    pipe stays a BrokenPipeError)."""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except (BrokenPipeError, _OutputError):
            raise
        except OSError as exc:
            raise _OutputError(exc.errno, exc.strerror) from None

    def flush(self) -> None:
        try:
            super().flush()
        except (BrokenPipeError, _OutputError):
            raise
        except OSError as exc:
            raise _OutputError(exc.errno, exc.strerror) from None


def _stdout_that_writes_everything() -> Callable[[], None]:
    """Put a buffered stdout in place; returns what puts the original back.

    Under ``python -u`` or ``PYTHONUNBUFFERED`` (common in containers) Python's
    stdout writes straight to the raw file, which may take only part of a
    write (a disk filling up) and says so only in the count it returns,
    which print() ignores: the output was cut short with no error and exit
    0. A buffered writer writes everything or raises, and ours raises an
    error that names stdout."""
    original = sys.stdout
    try:
        fd = original.fileno()
    except (AttributeError, OSError, ValueError):
        return lambda: None  # not a file (a test's capture): left alone
    if not isinstance(getattr(original, "buffer", None), (io.FileIO, io.BufferedWriter)):
        return lambda: None
    original.flush()
    # Unbuffered was asked for: each line goes out when printed. Else as Python
    # does it: by line on a terminal, in blocks into a pipe or a file.
    unbuffered = isinstance(original.buffer, io.FileIO)
    buffered = io.TextIOWrapper(
        _WholeWrites(io.FileIO(fd, "w", closefd=False)),
        encoding=original.encoding, errors=original.errors,
        line_buffering=unbuffered or bool(original.line_buffering),
    )
    sys.stdout = buffered

    def restore() -> None:
        sys.stdout = original
        with contextlib.suppress(OSError, ValueError):
            buffered.flush()
            buffered.detach()  # the descriptor stays open: it is the original's

    return restore


def _reopen_closed_std_streams() -> frozenset[int]:
    """Which of stdin, stdout and stderr were closed when the run began
    (``<&-``, ``>&-``), each now open on the null device: else the run's first
    socket takes the free number (uvloop aborts on closing it; a write to
    stdout would go into the connection) and Python has None for the stream."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    for fd in closed:  # in order: each open takes the lowest free number, this one
        opened = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)
        os.set_inheritable(fd, True)  # as a standard stream is, for a child process
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            # Kept open for the whole run, as Python's own streams are.
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115
    return frozenset(closed)


def _main(argv: Sequence[str] | None) -> int:
    closed = _reopen_closed_std_streams()
    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # no command: the overview of them
        return EXIT_USAGE
    args = parser.parse_args(argv)
    args.closed_streams = closed
    # Run as the program (not called with arguments, as from a test or another
    # program's process): the process and its garbage collector are the run's.
    args.owns_process = argv is None
    if args.debug:
        # Retries and their reasons on stderr; failed jobs keep their tracebacks.
        logging.basicConfig(format="asyncpresign: %(message)s")
        logging.getLogger("asyncpresign").setLevel(logging.DEBUG)
    try:
        return _dispatch(args)
    except (InvalidArgumentError, LocalFileError, NoCredentialsError) as exc:
        # Raised before any job ran: a bad argument, a manifest, folder or
        # journal that cannot be read, no credentials. Job failures never
        # come here: they are in the summary.
        if args.debug:
            raise
        print(f"asyncpresign: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AsyncPresignError as exc:
        if args.debug:
            raise
        print(f"asyncpresign: error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    except (KeyboardInterrupt, _Terminated) as exc:
        journal = getattr(args, "journal", None)
        hint = (
            f"; run the same command again (with --journal {journal}) to resume"
            if journal
            else "; add --journal FILE to make a run resumable"
        )
        if isinstance(exc, _Terminated):
            name = signal.Signals(exc.signum).name
            print(f"asyncpresign: terminated ({name}){hint}", file=sys.stderr)
            return 128 + exc.signum  # as a shell reports it: 143 for SIGTERM, 129 SIGHUP
        print(f"asyncpresign: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED


class _Terminated(BaseException):
    """SIGTERM (or SIGHUP) arrived: the run was cancelled as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stopping_signals() -> list[signal.Signals]:
    """SIGTERM (systemd, Kubernetes, batch schedulers), and SIGHUP (the terminal
    closed) unless it is ignored, as ``nohup`` leaves it: then the run goes on."""
    stopping = [signal.SIGTERM]
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        stopping.append(hangup)
    return stopping


async def _until_terminated(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main``; SIGTERM (what systemd, Kubernetes and batch schedulers send)
    cancels it as SIGINT does, so transfers are abandoned cleanly: partial files
    removed, multipart uploads aborted, the journal flushed."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated: int | None = None
    stopping = _stopping_signals()

    def on_signal(signum: int) -> None:
        nonlocal terminated
        if terminated is None:
            terminated = signum
        task.cancel()

    try:
        for signum in stopping:
            loop.add_signal_handler(signum, on_signal, signum)
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not POSIX
        return await main
    try:
        return await main
    except asyncio.CancelledError:
        if terminated is not None:
            raise _Terminated(terminated) from None
        raise
    finally:
        for signum in stopping:
            loop.remove_signal_handler(signum)


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run the command's event loop: uvloop when installed (the ``fast`` extra),
    which takes a third to a half off the CPU per small object, else asyncio's."""
    run: Callable[[Coroutine[Any, Any, int]], int]
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    # Outside the except: an error of the run must not carry the ImportError
    # as its context ("No module named 'uvloop'" under a real failure).
    return int(run(_until_terminated(main)))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in _NO_JSON and getattr(args, "json", False):
        # --json before the command is taken for every command; these print
        # lines, which a script expecting one JSON document would then fail to
        # parse (after the command did its work): refused before anything runs.
        raise InvalidArgumentError(
            f"{args.command} prints no JSON: drop --json (its exit status says whether "
            "it succeeded)"
        )
    if args.command == "demo" and args.web:
        return _demo_web()
    if args.command == "demo":
        with tempfile.TemporaryDirectory(prefix="asyncpresign-demo-") as tmp:
            digests = _make_demo_files(Path(tmp, "src"), args.files, args.seed)
            return _run(_demo(Path(tmp), digests, args.concurrency, args.quiet))
    if args.command == "sign" and (args.multipart or args.force):
        return _run(_sign_parts(args))
    if args.command == "sign":
        return _run(_sign(args))
    if args.command == "uploads":
        return _run(_uploads(args))
    if (
        args.command in ("transfer", "complete") and args.journal is None
        and (args.command == "complete" or os.path.isfile(args.manifest))
    ):
        # A manifest read from a pipe (<(...), /dev/stdin) cannot be run again,
        # and "/dev/fd/63.journal" is no place for a file: no journal by default.
        args.journal = args.manifest + ".journal"
    if (
        args.command in ("transfer", "complete") and args.journal is not None
        and _same_file(args.journal, args.manifest)
    ):
        # Read as a journal, it would be refused with "delete it": the manifest.
        raise InvalidArgumentError(
            f"the journal {args.journal} is the manifest itself: a journal is a file of its "
            f"own (by default {args.manifest}.journal)"
        )
    if args.command == "complete":
        return _run(_complete(args))
    return _run(_bulk(args))


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


async def _sign(args: argparse.Namespace) -> int:
    bucket, key = parse_s3_uri(args.target)
    async with _signer(args) as signer:
        if args.dry_run and args.manifest:
            print(f"would sign jobs for s3://{bucket}/{key} into {args.manifest}",
                  file=sys.stderr)
            return EXIT_OK
        if args.manifest:
            if not args.source:
                raise InvalidArgumentError("--manifest needs --from PATH")
            count, left_out, links = await _sign_manifest(args, signer, bucket, key)
            print(f"wrote {count} jobs to {args.manifest}", file=sys.stderr)
            for line in left_out:
                print(f"  not signed: {line}", file=sys.stderr)
            for link in links:
                print(f"  not followed: {link!r} (a symbolic link)", file=sys.stderr)
            return EXIT_FAILED if left_out else EXIT_OK
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
    return EXIT_OK


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
                print(f"asyncpresign: the upload just started is still open, s3://{bucket}/"
                      f"{key} (upload id {upload_id}): {exc}; 'asyncpresign uploads "
                      f"s3://{bucket}/{key} --abort' ends it", file=sys.stderr)
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
        where = f"s3://{bucket}/{row['key']}  upload id {row['upload_id']}"
        started = f"started {row['initiated']}"
        parts = "" if row["parts"] is None else f", {row['parts']} parts"
        if row["status"] == "failed":
            print(f"could not abort {where}: {row['error']}", file=sys.stderr)
        elif row["status"] == "open":
            print(f"{where}  {started}{parts}")
        else:
            print(f"{row['status']} {where}  {started}{parts}")
    age = f" started more than {_age(args.older_than)} ago" if args.older_than is not None else ""
    plural = "" if len(rows) == 1 else "s"
    summary = f"{len(rows)} open multipart upload{plural}{age} under s3://{bucket}/{prefix}"
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
    entries = await anyio.to_thread.run_sync(lambda: list(read_manifest(args.manifest)))
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
            if args.dry_run:
                action = "abort" if args.abort else "complete"
                print(f"would {action} s3://{bucket}/{key} ({len(parts)} parts)")
                continue
            if args.abort:
                await signer.abort_multipart_upload(bucket, key, upload_id)
                print(f"aborted s3://{bucket}/{key}")
                continue
            missing = [p.part for p in parts if p.id not in journal.etags]
            if missing:
                print(f"s3://{bucket}/{key}: parts {missing[:10]} not uploaded yet; run "
                      f"'asyncpresign transfer {args.manifest}' first", file=sys.stderr)
                status = EXIT_FAILED
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


async def _bulk(args: argparse.Namespace) -> int:
    stream = (args.command == "upload" and args.source == "-") or (
        args.command == "download" and args.dest == "-"
    )
    if stream and (args.journal or getattr(args, "dask_scheduler", None)):
        raise InvalidArgumentError(
            "stdin and stdout are streams: a journal cannot resume them and Dask cannot "
            "spread them (drop --journal / --dask-scheduler)"
        )
    if args.command == "sync" and "-" in (args.source, args.dest):
        # Elsewhere - is stdin or stdout; a sync compares two folders, so a
        # bare - here is a mistake, not a folder named "-" (write ./- for that).
        raise InvalidArgumentError(
            "sync compares two folders or prefixes: - (stdin/stdout) is not one; use "
            "upload/download for a stream, or ./- for a folder named -"
        )
    if stream and (args.include or args.exclude):
        # One object either way: a filter that dropped it would leave an empty
        # stream that looks like an empty object.
        raise InvalidArgumentError(
            "stdin and stdout carry one object: --include / --exclude do not apply to them"
        )
    if getattr(args, "dask_scheduler", None):
        return await _on_dask(args)
    if stream:
        return await _stream(args)
    journal = Journal(args.journal)
    filters = Filters(include=args.include, exclude=args.exclude)
    mode = "quiet" if args.quiet or args.json or args.dry_run else "auto"
    display = ProgressDisplay(args.command, mode=mode)
    # A dry run's plan streams to stdout: lines, or under --json one document.
    plan = Plan(sys.stdout, as_json=args.json)
    if args.dry_run and args.json:
        plan.open_json({"command": args.command})
    started = time.monotonic()
    try:
        with display:
            result = await _run_command(args, journal, filters, display, plan)
    except asyncio.CancelledError:
        # Ctrl-C, SIGTERM or SIGHUP: what finished before it is said, so that a
        # script reading --json learns which jobs are done (the exit status
        # stays the signal's).
        if not args.dry_run:
            # An stdout that cannot take it must not turn the interruption into
            # another error: the exit status and stderr still say what happened.
            with contextlib.suppress(OSError):
                _summary(args, display.so_far(), time.monotonic() - started,
                         unverified=display.unverified, interrupted=True)
        raise
    finally:
        # Raised only after the run: it must not replace an error in flight.
        with contextlib.suppress(LocalFileError):
            await anyio.to_thread.run_sync(journal.close)
    if args.dry_run:
        _plan_summary(args, plan, result)
    else:
        _summary(args, result, time.monotonic() - started, journal=journal,
                 unverified=display.unverified)
    if journal.failure is not None:
        # The transfers' counts stand; the run still failed to keep its record.
        print(f"asyncpresign: error: {journal.failure}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if result.ok else EXIT_FAILED


async def _stream(args: argparse.Namespace) -> int:
    """``upload - s3://b/key`` (stdin) or ``download s3://b/key -`` (stdout): one
    object, no journal; a download's summary goes to stderr, out of the data's way."""
    out = sys.stderr if args.command == "download" else sys.stdout
    # Not the null device put in their place: an empty upload, or a download
    # sent nowhere, would be reported as done.
    closed: frozenset[int] = getattr(args, "closed_streams", frozenset())
    if args.command == "upload" and 0 in closed:
        raise InvalidArgumentError(
            "stdin is closed: there is nothing to upload (pipe the stream in: ... | "
            "asyncpresign upload - s3://bucket/key)"
        )
    if args.command == "download" and 1 in closed:
        raise InvalidArgumentError(
            "stdout is closed: the object would go nowhere (redirect it: asyncpresign "
            "download s3://bucket/key - > FILE)"
        )
    display = ProgressDisplay(
        args.command, mode="quiet" if args.quiet or args.json or args.dry_run else "auto"
    )
    started = time.monotonic()
    async with _signer(args) as signer:
        if args.command == "upload":
            bucket, key = object_target(args.target, "-")
        else:
            single = await _single_object(args, signer, args.source)
            if single is None:
                _, key = parse_s3_uri(args.source)
                if key and not key.endswith("/") and not getattr(args, "prefix_match", False):
                    raise InvalidArgumentError(f"nothing is stored at {args.source}")
                raise InvalidArgumentError(
                    f"{args.source} is not one object: only a single object can be written "
                    "to stdout (s3://bucket/key, as listed)"
                )
            bucket, key = single
        uri = f"s3://{bucket}/{key}"
        if args.dry_run:
            plan = Plan(out, as_json=args.json)
            if args.json:
                plan.open_json({"command": args.command})
            source, target = ("-", uri) if args.command == "upload" else (uri, "-")
            plan.add(args.command, source, target, None)
            _plan_summary(args, plan, _empty(), out=out)
            return EXIT_OK
        display.set_total(1, final=True)
        with display:
            async with _engine(args) as engine:
                display.max_rate = engine.max_rate
                try:
                    if args.command == "upload":
                        result = await engine.upload_stream(
                            signer, bucket, key, _stdin_pieces(), expires_in=args.expires,
                            progress=display.on_bytes,
                        )
                    else:
                        result = await _to_stdout(
                            engine, signer.sign_later("GET", bucket, key, expires_in=args.expires),
                            display,
                        )
                except (AsyncPresignError, OSError) as exc:
                    if isinstance(exc, BrokenPipeError):
                        raise
                    result = TransferResult(
                        url=uri, error=exc, attempts=getattr(exc, "attempts", 1)
                    )
                result = dataclasses.replace(result, url=uri, path="-", op=args.command)
                display.on_result(result)
    batch = BatchResult(
        results=(result,), failed=() if result.ok else (result,), total=1,
        succeeded=int(result.ok), nbytes=result.nbytes, seconds=result.seconds,
    )
    _summary(args, batch, time.monotonic() - started, out=out,
             unverified=display.unverified)
    return EXIT_OK if result.ok else EXIT_FAILED


async def _stdin_pieces() -> AsyncIterator[bytes]:
    """stdin, 1 MiB a read, each in a thread (abandoned on Ctrl-C: a read of a
    pipe with no writer may never return)."""
    read = sys.stdin.buffer.read
    while data := await anyio.to_thread.run_sync(read, 1 << 20, abandon_on_cancel=True):
        yield data


async def _to_stdout(
    engine: TransferEngine, sign: SignFunction, display: ProgressDisplay
) -> TransferResult:
    """The object to stdout in order, each piece written in a thread."""
    out = sys.stdout.buffer
    async with engine.download_stream(None, sign=sign, progress=display.on_bytes) as stream:
        try:
            async for data in stream:
                await anyio.to_thread.run_sync(out.write, data)
            await anyio.to_thread.run_sync(out.flush)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise LocalFileError(
                f"cannot write stdout: {describe_os_error(exc)}", "-", errno=exc.errno
            ) from None
    assert stream.result is not None  # the iteration ended without error
    return stream.result


async def _run_command(
    args: argparse.Namespace, journal: Journal, filters: Filters, display: ProgressDisplay,
    plan: Plan,
) -> BatchResult:
    callbacks: dict[str, Any] = {
        "progress": display.on_bytes, "on_result": display.on_result,
        "on_skip": display.on_skipped,
    }
    async with _engine(args) as engine:
        display.in_flight = lambda: engine.statistics().in_flight
        display.rate_limit = engine.rate_limit
        display.max_rate = engine.max_rate
        # A task of its own, not a task group's: the command's errors must reach
        # main() as they are, not wrapped in an exception group.
        counter = (
            asyncio.ensure_future(_count_ahead(args, filters, display))
            if not args.dry_run and display.mode != "quiet" else None
        )
        try:
            return await _command_in(args, engine, journal, filters, display=display,
                                     plan=plan, callbacks=callbacks)
        finally:
            if counter is not None:
                counter.cancel()


async def _count_ahead(
    args: argparse.Namespace, filters: Filters, display: ProgressDisplay
) -> None:
    """Count the run's jobs while it runs, for the progress display's total
    (a percentage and an ETA once it is final): the folder walked, the
    listing read, or the manifest read once more. A failure here only leaves
    the total unknown; the run itself reports what went wrong."""
    with contextlib.suppress(AsyncPresignError, OSError):
        if args.command == "sync":
            return  # what it moves is known only as the two sides are merged
        if args.command == "upload":
            if args.source == "-" or not await anyio.to_thread.run_sync(
                os.path.isdir, args.source
            ):
                display.set_total(1, final=True)
                return
            walk = walk_tree(args.source, filters, follow_symlinks=args.follow_symlinks)
            count = await anyio.to_thread.run_sync(
                lambda: sum(1 for entry in walk if not entry.not_followed),
                abandon_on_cancel=True,
            )
        elif args.command == "transfer":
            if not await anyio.to_thread.run_sync(os.path.isfile, args.manifest):
                # A pipe (<(...), /dev/stdin, a FIFO) can be read only once: a
                # count would take lines from the run, or wait on it forever.
                return
            count = await anyio.to_thread.run_sync(
                lambda: sum(
                    1 for entry in read_manifest_lines(args.manifest)
                    if isinstance(entry, InvalidArgumentError)
                    or filters(entry.key or entry.path)
                ),
                abandon_on_cancel=True,
            )
        else:
            count = 0
            async with _signer(args) as signer:
                bucket, prefix, chosen = await _listing(args, signer, args.source, filters)
                async for key, size, _ in list_objects(signer, bucket, prefix):
                    if not is_folder_marker(key, size) and chosen(relative_key(prefix, key)):
                        count += 1
                        if count % 1000 == 0:
                            display.set_total(count, final=False)
        display.set_total(count, final=True)


async def _command_in(
    args: argparse.Namespace, engine: TransferEngine, journal: Journal, filters: Filters,
    *, display: ProgressDisplay, plan: Plan, callbacks: dict[str, Any],
) -> BatchResult:
    """Run the command's jobs through ``engine``."""
    if args.command == "transfer":
        return await _transfer(args, engine, journal, display, filters, plan=plan)
    if args.command == "sync":
        return await _sync(args, engine, journal, filters, plan=plan, callbacks=callbacks)
    if args.command == "copy":
        async with _signer(args) as source, _signer(args, "dest_") as dest:
            if args.dry_run:
                skipped = 0
                async for (src_bucket, k), (dst_bucket, d), size, etag in _copy_listing(
                    args, source, dest, filters
                ):
                    # As copy_objects decides: an unchanged source it recorded is skipped.
                    if etag and journal.is_done(
                        copy_id(src_bucket, k, dst_bucket, d), f"etag={etag}"
                    ):
                        skipped += 1
                        continue
                    plan.add("copy", f"s3://{src_bucket}/{k}", f"s3://{dst_bucket}/{d}",
                             size)
                return dataclasses.replace(_empty(), total=skipped, succeeded=skipped,
                                           skipped=skipped)
            pairs = _copy_pairs(args, source, dest, filters)
            return await copy_objects(
                source, dest, engine, pairs, journal=journal,
                expires_in=args.expires, keep_metadata=args.metadata, **callbacks,
            )
    async with _signer(args) as signer:
        options: dict[str, Any] = {
            "journal": journal, "expires_in": args.expires, "dry_run": args.dry_run,
            "plan": plan, **callbacks,
        }
        if args.command == "upload":
            if await anyio.to_thread.run_sync(os.path.isdir, args.source):
                bucket, prefix = parse_s3_uri(args.target)
                return await upload_tree(
                    signer, engine, args.source, bucket, prefix, filters=filters,
                    follow_symlinks=args.follow_symlinks, **options,
                )
            await anyio.to_thread.run_sync(_check_file_source, args.source)
            bucket, key = object_target(args.target, args.source)
            return await upload_file(signer, engine, args.source, bucket, key, **options)
        single = await _single_object(args, signer, args.source)
        if single is not None:
            bucket, key = single
            path = await anyio.to_thread.run_sync(
                lambda: download_dest(args.dest, key, is_folder=os.path.isdir(args.dest))
            )
            if not filters(key.rsplit("/", 1)[-1]):
                return _empty()  # the user's --exclude names it
            return await download_object(signer, engine, bucket, key, path, **options)
        bucket, prefix, filters = await _listing(args, signer, args.source, filters)
        return await download_prefix(
            signer, engine, bucket, prefix, args.dest, filters=filters, **options
        )


async def _sync(
    args: argparse.Namespace, engine: TransferEngine, journal: Journal, filters: Filters,
    *, plan: Plan, callbacks: dict[str, Any],
) -> BatchResult:
    """``sync SRC DST``: one Signer, or two when the destination is on another
    server or account (a ``--dest-*`` option)."""
    other = any(getattr(args, f"dest_{name}") for name in ("endpoint_url", "region", "profile"))
    async with contextlib.AsyncExitStack() as stack:
        signer = await stack.enter_async_context(_signer(args))
        dest = await stack.enter_async_context(_signer(args, "dest_")) if other else signer
        return await sync(
            signer, engine, args.source, args.dest, dest_signer=dest, delete=args.delete,
            checksum=args.compare_checksum, filters=filters, journal=journal,
            expires_in=args.expires, dry_run=args.dry_run, plan=plan, **callbacks,
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


def _check_file_source(path: str) -> None:
    """An upload's SOURCE that is not a folder must be a regular file (a bad
    argument, exit 2, rather than a failed job), as the upload's own walk of
    it (:func:`walk_one`) judges it."""
    problem = next(walk_one(path)).problem
    if problem is not None:
        raise InvalidArgumentError(
            f"{path!r} is not a regular file or folder ({problem}); SOURCE is a file, a "
            "folder, or - for stdin: to upload a stream, pipe it: ... | asyncpresign "
            "upload - s3://bucket/key"
        )


async def _transfer(
    args: argparse.Namespace, engine: TransferEngine, journal: Journal,
    display: ProgressDisplay, filters: Filters, *, plan: Plan,
) -> BatchResult:
    pending: dict[int, tuple[ManifestEntry, str | None]] = {}
    skipped = 0
    refused: list[TransferResult] = []  # malformed lines, folders that cannot be made

    async def jobs() -> AsyncIterator[Upload | Download]:
        nonlocal skipped
        index = 0
        entries = read_manifest_lines(args.manifest)
        destinations = Destinations()
        while batch := await anyio.to_thread.run_sync(lambda: _take(
            entries, 500, journal, filters, destinations, dry_run=args.dry_run,
            manifest=args.manifest,
        )):
            for taken in batch:
                if isinstance(taken, TransferResult):
                    refused.append(taken)
                    display.on_result(taken)
                    continue
                entry, state, done = taken
                if done:
                    skipped += 1
                    display.on_skipped()
                    continue
                if args.dry_run:
                    remote = (
                        f"s3://{entry.bucket}/{entry.key}" if entry.bucket and entry.key
                        else redact_url(entry.url)
                    )
                    if entry.op == "put":
                        plan.add("upload", entry.path, remote, entry.size)
                    else:
                        plan.add("download", remote, entry.path, None)
                    continue
                pending[index] = (entry, state)
                index += 1
                yield entry.job()

    #: A failed job's s3://bucket/key and file, from its entry (a part's job
    #: reads a slice of the file, which names no path of its own).
    named: dict[int, tuple[str, str]] = {}

    async def record(result: TransferResult) -> None:
        entry, state = pending.pop(result.index or 0, (None, None))
        if entry is not None and result.ok:
            await record_done(
                journal, entry.id, state, result.nbytes,
                etag=result.etag if entry.part is not None else None,
                dest=entry.path if entry.op == "get" else None,
            )
        elif entry is not None and entry.bucket and entry.key:
            named[result.index or 0] = (f"s3://{entry.bucket}/{entry.key}", entry.path)
        display.on_result(result)

    result = await engine.run(
        jobs(), progress=display.on_bytes, on_result=record, keep_results=False
    )
    failed = tuple(
        dataclasses.replace(r, url=where[0], path=r.path or where[1])
        if (where := named.get(r.index or 0)) else r
        for r in result.failed
    )
    return BatchResult(
        results=(), failed=failed + tuple(refused),
        total=result.total + skipped + len(refused),
        succeeded=result.succeeded + skipped, nbytes=result.nbytes, seconds=result.seconds,
        skipped=skipped,
    )


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
            print(f"  failed: {failure['url']}: {failure['error']}")
    if journal.failure is not None:
        # The transfers' counts stand; the run still failed to keep its record.
        print(f"asyncpresign: error: {journal.failure}", file=sys.stderr)
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
    async for entry in _in_thread_batches(read_manifest_lines(args.manifest)):
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
    folders = FolderCache()
    # Absolute paths: a worker resolves a path against its own working folder.
    dest_root = await anyio.to_thread.run_sync(os.path.abspath, args.dest)
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


def _take(
    entries: Iterator[ManifestEntry | InvalidArgumentError], count: int, journal: Journal,
    filters: Filters, destinations: Destinations, *, dry_run: bool, manifest: str,
) -> list[tuple[ManifestEntry, str | None, bool] | TransferResult]:
    """The next ``count`` entries that ``filters`` let through (on the key, else
    the path; in a thread), each with the state a journal records it in and
    whether the journal says it is done: an upload while its file is as it was
    (size and mtime), a download while the object has the ETag it had and the
    file is still there with the size written. The folders downloads need are
    made, unless this is a dry run. A malformed line, a job writing where an
    earlier line's does (``destinations``), or a download whose folder cannot
    be made, comes as its failed result: it fails alone."""
    batch: list[tuple[ManifestEntry, str | None, bool] | TransferResult] = []
    folders: dict[str, str | None] = {}  # folder -> why it cannot be made, or None
    for entry in entries:
        if isinstance(entry, InvalidArgumentError):
            batch.append(TransferResult(url=manifest, error=entry))
        elif not filters(entry.key or entry.path):
            continue
        elif (earlier := destinations.earlier(entry)) is not None:
            # Even when the earlier line is done (skipped): this one would
            # overwrite what it wrote.
            batch.append(_same_destination(entry, earlier))
        else:
            state, done = journal_state(journal, entry.id, entry.op, entry.path, entry.etag)
            folder = os.path.dirname(os.path.abspath(entry.path))
            if entry.op == "get" and not (done or dry_run) and folder not in folders:
                folders[folder] = folder_problem(folder)
            if entry.op == "get" and folders.get(folder) is not None:
                batch.append(TransferResult(url=redact_url(entry.url), error=LocalFileError(
                    f"{folders[folder]}, so {entry.path!r} cannot be written", entry.path
                )))
            else:
                batch.append((entry, state, done))
        if len(batch) == count:
            break
    return batch


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


def _failures(result: BatchResult, command: str) -> list[dict[str, Any]]:
    """Each failure with what a script needs to retry it: the operation, the
    bucket and key, the local file, and why."""
    failures = []
    for r in result.failed:
        path = r.path or getattr(r.error, "path", None)
        failures.append({
            "op": r.op or _COMMAND_OPS.get(command), **_bucket_key(r.url),
            "path": os.fsdecode(path).encode("utf-8", "backslashreplace").decode()
            if path else None,
            "url": r.url, "status": r.status, "code": getattr(r.error, "code", None),
            "attempts": r.attempts,
            "error": f"{type(r.error).__name__}: {r.error}" if r.error else None,
        })
    return failures


def _bucket_key(url: str) -> dict[str, str | None]:
    """The bucket and key an ``s3://bucket/key`` names (None for any other URL)."""
    if not url.startswith("s3://"):
        return {"bucket": None, "key": None}
    bucket, _, key = url[5:].partition("/")
    return {"bucket": bucket, "key": key}


def _links(result: BatchResult) -> list[str]:
    # Paths of links not followed may hold bytes that are not UTF-8.
    return [path.encode("utf-8", "backslashreplace").decode() for path in result.not_followed]


def _plan_summary(
    args: argparse.Namespace, plan: Plan, result: BatchResult, *, out: TextIO | None = None
) -> None:
    """A dry run's totals: what would move, what the journal says is done, and
    what would fail (a file the walk cannot send, keys that collide ...)."""
    failures, links = _failures(result, args.command), _links(result)
    if args.json:
        plan.close_json({"skipped": result.skipped, "failed": len(failures),
                         "failures": failures, "not_followed": links,
                         **_sync_json(result)})
        return
    totals = plan.totals() if not isinstance(result, SyncResult) else (
        f"would transfer {plan.objects:,} objects, {human_bytes(plan.nbytes)}: "
        + _sync_counts(result, dry_run=True)
    )
    print(f"{totals}; {result.skipped} already done, {len(failures)} would fail"
          + (f"; {len(links)} symbolic links not followed" if links else "")
          + " (dry run: nothing was changed)", file=out)
    for failure in failures:
        print(f"  would fail: {failure['url']}: {failure['error']}", file=out)


def _summary(
    args: argparse.Namespace, result: BatchResult, seconds: float, *, out: TextIO | None = None,
    journal: Journal | None = None, unverified: int = 0, interrupted: bool = False,
) -> None:
    """The run's summary; ``unverified`` counts the transfers done whose bytes
    no check could confirm (the server gave no checksum, the ETag is no MD5,
    or checks are off): said, never passed over, as they are not known good.
    ``interrupted``: the run was stopped, and ``result`` holds the jobs that
    ended before (``total`` counts those, not the run's)."""
    failures, links = _failures(result, args.command), _links(result)
    if args.json:
        # succeeded, skipped and failed are disjoint and add up to total.
        journal_error = journal.failure if journal is not None else None
        print(json.dumps({
            "command": args.command, **({"interrupted": True} if interrupted else {}),
            "total": result.total,
            "succeeded": result.succeeded - result.skipped,
            "failed": len(result.failed), "skipped": result.skipped, "bytes": result.nbytes,
            "unverified": unverified,
            "seconds": round(seconds, 3), "failures": failures, "not_followed": links,
            **_sync_json(result),
            **({"journal_error": str(journal_error)} if journal_error is not None else {}),
        }, indent=2), file=out)
        return
    rate = human_bytes(result.nbytes / seconds) if seconds > 0 else "-"
    print(
        f"{args.command}: {'interrupted after ' if interrupted else ''}"
        f"{result.succeeded - result.skipped} done, {result.skipped} already "
        f"done, {len(result.failed)} failed of {result.total}"
        f"{' ended' if interrupted else ''}; "
        f"{human_bytes(result.nbytes)} in {seconds:.1f} s ({rate}/s)"
        + (f"; {len(links)} symbolic links not followed" if links else ""),
        file=out,
    )
    if unverified:
        print(_not_verified(unverified), file=out)
    if isinstance(result, SyncResult):
        print(f"sync: {_sync_counts(result, dry_run=False)}", file=out)
    for failure in failures:
        print(f"  failed: {failure['url']}: {failure['error']}", file=out)
    for link in links:
        print(f"  not followed: {link} (a symbolic link; --follow-symlinks sends its target)",
              file=out)


def _not_verified(count: int) -> str:
    """The summary's line for transfers done that no check could confirm."""
    return (f"  not verified: {count:,} of those done passed no check (the server sent no "
            "checksum and the ETag is no MD5, or checks are off): see 'What is verified' in "
            "the README")


def _sync_counts(result: SyncResult, *, dry_run: bool) -> str:
    """``2 new (1.0 KiB), 1 changed (...), 10 unchanged (...), 3 deleted (...)``,
    and the deletions held back, if a transfer failed."""
    deleted = "would delete" if dry_run else "deleted"
    text = (
        f"{result.new:,} new ({human_bytes(result.new_bytes)}), {result.changed:,} changed "
        f"({human_bytes(result.changed_bytes)}), {result.unchanged:,} unchanged "
        f"({human_bytes(result.unchanged_bytes)}), {result.deleted:,} {deleted} "
        f"({human_bytes(result.deleted_bytes)})"
    )
    if result.not_deleted:
        text += (
            f"; {result.not_deleted:,} {'would not be' if dry_run else 'not'} deleted: "
            "a transfer failed, and deletes happen only once every transfer succeeded"
        )
    return text


def _sync_json(result: BatchResult) -> dict[str, Any]:
    """A sync's counts for ``--json``: objects and bytes of each kind."""
    if not isinstance(result, SyncResult):
        return {}
    counts: dict[str, Any] = {
        kind: {"objects": getattr(result, kind), "bytes": getattr(result, f"{kind}_bytes")}
        for kind in ("new", "changed", "unchanged", "deleted")
    }
    counts["not_deleted"] = result.not_deleted
    return {"sync": counts}


def _demo_web() -> int:
    """The browser-upload example from a source checkout (examples/web_upload.py)."""
    import runpy  # noqa: PLC0415 - only for this option

    example = Path(__file__).resolve().parent.parent / "examples" / "web_upload.py"
    if not example.is_file():
        raise InvalidArgumentError(
            "demo --web runs examples/web_upload.py from a source checkout of asyncpresign"
        )
    namespace = runpy.run_path(str(example))
    try:
        asyncio.run(namespace["serve"]())
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _demo_sizes(count: int, seed: int) -> list[int]:
    """Mostly small files, some medium, a few large: what an ingestion job sees."""
    rng = random.Random(seed)
    sizes = []
    for i in range(count):
        if i % 50 == 49:
            sizes.append(rng.randint(2, 6) * 1024 * 1024 + rng.randint(0, 4095))
        elif i % 10 == 9:
            sizes.append(rng.randint(64, 512) * 1024)
        else:
            sizes.append(rng.randint(0, 32 * 1024))
    return sizes


def _make_demo_files(folder: Path, count: int, seed: int) -> dict[str, str]:
    """Write the demo's files; return their SHA-256 by name."""
    folder.mkdir()
    digests = {}
    for i, size in enumerate(_demo_sizes(count, seed)):
        data = os.urandom(size)
        name = f"file-{i:05d}.bin"
        (folder / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def _verify_demo_files(folder: Path, digests: dict[str, str]) -> list[str]:
    """Names of the files that are missing or differ."""
    return [
        name
        for name, digest in digests.items()
        if not (folder / name).is_file()
        or hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest
    ]


async def _demo(root: Path, digests: dict[str, str], concurrency: int, quiet: bool) -> int:
    bucket = "asyncpresign-demo"
    src, out = root / "src", root / "out"
    await anyio.Path(out).mkdir()
    names = sorted(digests)
    count = len(names)
    total = sum(r.st_size for r in [await anyio.Path(src / n).stat() for n in names])
    print(f"asyncpresign demo: {count} files, {total / 1e6:.1f} MB")
    started = time.perf_counter()
    async with LocalS3() as s3:
        print(
            f"local S3 (SeaweedFS, signatures enforced) at {s3.endpoint_url}, "
            f"up in {time.perf_counter() - started:.1f} s"
        )
        async with s3.signer() as signer, TransferEngine(concurrency=concurrency) as engine:
            await signer.ensure_bucket(bucket)

            t = time.perf_counter()
            puts = [await signer.presign_put(bucket, f"demo/{n}") for n in names]
            sign_seconds = time.perf_counter() - t
            mode = "quiet" if quiet else "auto"
            t = time.perf_counter()
            with ProgressDisplay("upload", mode=mode, total=count, interval=0.5) as shown:
                up = await engine.run(
                    (Upload(p, src / n) for p, n in zip(puts, names, strict=True)),
                    progress=shown.on_bytes, on_result=shown.on_result,
                )
            up_seconds = time.perf_counter() - t

            gets = [await signer.presign_get(bucket, f"demo/{n}") for n in names]
            t = time.perf_counter()
            with ProgressDisplay("download", mode=mode, total=count, interval=0.5) as shown:
                down = await engine.run(
                    (Download(g, out / n) for g, n in zip(gets, names, strict=True)),
                    progress=shown.on_bytes, on_result=shown.on_result,
                )
            down_seconds = time.perf_counter() - t
    bad = await anyio.to_thread.run_sync(_verify_demo_files, out, digests)
    print(f"signed     {count} PUT URLs, {sign_seconds / count * 1e6:.0f} µs per URL")
    _report("uploaded  ", up.succeeded, count, up.nbytes, up_seconds)
    _report("downloaded", down.succeeded, count, down.nbytes, down_seconds)
    for failure in (*up.failed, *down.failed):
        print(f"  failed: {failure.url}: {failure.error}")
    if bad or not (up.ok and down.ok):
        print(f"FAILED: {len(bad)} files missing or different")
        return EXIT_FAILED
    print(f"verified   {count} files byte for byte (SHA-256): all identical")
    return EXIT_OK


def _report(what: str, done: int, count: int, nbytes: int, seconds: float) -> None:
    print(
        f"{what} {done}/{count} files, {nbytes / 1e6:.1f} MB in {seconds:.2f} s: "
        f"{done / seconds:.0f} files/s, {nbytes / 1e6 / seconds:.0f} MB/s"
    )
