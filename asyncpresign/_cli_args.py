"""The command line's arguments: the parser of every command, its options and
their value types (sizes, rates, durations)."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn

from ._cli_common import EXIT_USAGE
from ._retry import RetryPolicy
from ._version import __version__

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
