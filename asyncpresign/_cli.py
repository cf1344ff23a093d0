"""The ``asyncpresign`` command line.

Credentials come only from the standard AWS environment variables, shared
config files and profiles (``--profile``), never from arguments that would land
in shell history. Exit status: 0 all done, 1 some jobs failed (listed in the
summary), 2 bad usage; 130 when interrupted, 143 when terminated (SIGTERM), 129 on
SIGHUP (re-run to resume with a journal).

This module is the entry point, the process around a run (stdout, signals,
the event loop) and the transfer commands (upload, download, copy, sync,
transfer) with their summaries; the parser is in :mod:`._cli_args`, the
signing commands in :mod:`._cli_sign`, Dask runs in :mod:`._cli_dask`, the demo
in :mod:`._cli_demo`, and what they share in :mod:`._cli_common`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import io
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.to_thread

from ._bulk import (
    Filters,
    copy_id,
    copy_objects,
    download_object,
    download_prefix,
    folder_problem,
    is_folder_marker,
    list_objects,
    record_done,
    relative_key,
    upload_file,
    upload_tree,
    walk_tree,
)
from ._cli_args import _parser
from ._cli_common import (
    _COMMAND_OPS,
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    _bucket_key,
    _copy_listing,
    _copy_pairs,
    _empty,
    _engine,
    _listing,
    _not_verified,
    _same_destination,
    _same_file,
    _signer,
    _single_object,
)
from ._cli_dask import _on_dask
from ._cli_demo import (
    _demo,
    _demo_web,
    _make_demo_files,
)
from ._cli_sign import (
    _complete,
    _sign,
    _sign_parts,
    _uploads,
)
from ._engine import TransferEngine
from ._exceptions import (
    AsyncPresignError,
    IntegrityError,
    InvalidArgumentError,
    LocalFileError,
    NoCredentialsError,
)
from ._files import describe_os_error
from ._manifest import (
    Destinations,
    Journal,
    ManifestEntry,
    check_manifest_source,
    journal_state,
    read_manifest_lines,
)
from ._models import (
    BatchResult,
    Download,
    SignFunction,
    TransferResult,
    Upload,
)
from ._offload import FileThread
from ._plan import Plan, printable
from ._progress import ProgressDisplay, human_bytes
from ._redact import redact_url
from ._sync import SyncResult, sync
from ._targets import download_dest, object_target, parse_s3_uri
from ._walk import walk_one

#: Commands with no JSON output (the others print one document under --json).
_NO_JSON = frozenset({"complete", "demo"})


def main(argv: Sequence[str] | None = None) -> int:
    restore = _stdout_that_writes_everything()
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, so a full disk is this run's error, not the exit's
        if code == EXIT_INTERRUPTED and argv is None:
            # The process ends now, interrupted, its summary out: the same Ctrl-C
            # again (``timeout`` passes it on) must not kill it mid-exit, when
            # Python has put SIGINT's default back, with another status.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
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
        # The text may be a server's (a listing's error message), or a name
        # given to us: escaped as job failures are, so that it cannot forge a
        # line, move the cursor or reorder what follows.
        print(f"asyncpresign: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except AsyncPresignError as exc:
        if args.debug:
            raise
        print(f"asyncpresign: error: {printable(str(exc))}", file=sys.stderr)
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
    interrupted_at: float | None = None
    stopping = _stopping_signals()

    def on_signal(signum: int) -> None:
        nonlocal terminated
        if terminated is None:
            terminated = signum
        task.cancel()

    def on_interrupt() -> None:
        # One Ctrl-C can arrive twice (``timeout`` passes it on, then the
        # terminal's process group gets it): the second, within a moment of the
        # first, is the same one, and must not cut the summary short. A later
        # one stops the run at once, summary or not.
        nonlocal interrupted_at
        now = time.monotonic()
        if interrupted_at is None:
            interrupted_at = now
            task.cancel()
        elif now - interrupted_at >= _SAME_INTERRUPT:
            raise KeyboardInterrupt

    handled: list[signal.Signals] = []
    try:
        for stop in stopping:
            loop.add_signal_handler(stop, on_signal, stop)
            handled.append(stop)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # ignored: run on
            loop.add_signal_handler(signal.SIGINT, on_interrupt)
            handled.append(signal.SIGINT)
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not POSIX
        for done in handled:
            loop.remove_signal_handler(done)
        return await main
    try:
        return await main
    except asyncio.CancelledError:
        if terminated is not None:
            raise _Terminated(terminated) from None
        if interrupted_at is not None:
            raise KeyboardInterrupt from None
        raise
    finally:
        for done in handled:
            loop.remove_signal_handler(done)
        if interrupted_at is not None:
            # The run is over; the same Ctrl-C arriving again now must not break
            # into the process's exit with a traceback.
            signal.signal(signal.SIGINT, functools.partial(_after_interrupt, interrupted_at))


#: Seconds after a SIGINT in which another is taken as the same Ctrl-C.
_SAME_INTERRUPT = 1.0


def _after_interrupt(first: float, signum: int, frame: object) -> None:
    """SIGINT once an interrupted run is over: the first one again is ignored, a
    later one stops the process as Ctrl-C does."""
    if time.monotonic() - first >= _SAME_INTERRUPT:
        raise KeyboardInterrupt


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
    if 1 in getattr(args, "closed_streams", ()) and (
        getattr(args, "json", False) or (args.command == "sign" and not args.manifest)
    ):
        # Its output is the point (a signed request, a --json document): to the
        # null device put in stdout's place, the run would say done for nothing.
        raise InvalidArgumentError(
            "stdout is closed: the "
            + ("--json document" if getattr(args, "json", False) else "signed request")
            + " would go nowhere (redirect it: ... > FILE)"
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
    if args.command in ("transfer", "complete"):
        check_manifest_source(args.manifest)  # before the loop: a stat, no open
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
        _say_stopped(args, plan, display, started)
        raise
    except Exception as exc:
        _say_stopped(args, plan, display, started, error=exc)
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
        print(f"asyncpresign: error: {printable(str(journal.failure))}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if result.ok else EXIT_FAILED


def _say_stopped(
    args: argparse.Namespace, plan: Plan, display: ProgressDisplay, started: float,
    *, error: Exception | None = None,
) -> None:
    """What a bulk run stopped early by a signal (or by ``error``) prints on
    stdout. A real run's summary of the jobs that ended, with "interrupted"
    under --json; after an error, nothing (the error is on stderr). A dry run's
    --json plan streams, so part of its document may be out: it is closed,
    with what was planned and "interrupted" or the error, so that stdout
    still holds one JSON document (after an error with nothing out, it stays
    empty)."""
    # An stdout that cannot take it must not turn the stop into another
    # error: the exit status and stderr still say what happened.
    with contextlib.suppress(OSError):
        if error is not None:
            if plan.json_begun:  # a dry run's, with part of its plan out
                _plan_summary(args, plan, display.so_far(),
                              stopped={"error": f"{type(error).__name__}: {error}"})
        elif not args.dry_run:
            _summary(args, display.so_far(), time.monotonic() - started,
                     unverified=display.unverified, interrupted=True)
        elif args.json:
            _plan_summary(args, plan, display.so_far(), stopped={"interrupted": True})


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
        except (BrokenPipeError, AsyncPresignError):
            # The stream's own failures (a timeout, a dropped connection: OSErrors
            # too) are its own, not stdout's.
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
    # A daemon thread of its own reads the manifest: a pipe's read can wait for
    # ever (a FIFO with no writer yet), and a stopped run must not wait for it.
    reader = FileThread("asyncpresign-manifest")

    async def jobs() -> AsyncIterator[Upload | Download]:
        nonlocal skipped
        index = 0
        entries = read_manifest_lines(args.manifest)
        destinations = Destinations()
        take = functools.partial(
            _take, entries, 500, journal, filters, destinations, dry_run=args.dry_run,
            manifest=args.manifest,
        )
        while batch := await reader.run(take):
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

    #: Parts the server answered 200 without an ETag: no completion can name
    #: them, so each is a failure (and stays out of the journal), not a success.
    unnamed: list[TransferResult] = []

    async def record(result: TransferResult) -> None:
        entry, state = pending.pop(result.index or 0, (None, None))
        if entry is not None and entry.part is not None and result.ok and not result.etag:
            result = dataclasses.replace(result, error=IntegrityError(
                f"part {entry.part} was stored without an ETag: no completion can name it",
                url=result.url,
            ))
            unnamed.append(result)  # named below, as the engine's failures are
        if entry is not None and result.ok:
            await record_done(
                journal, entry.id, state, result.nbytes,
                etag=result.etag if entry.part is not None else None,
                dest=entry.path if entry.op == "get" else None,
            )
        elif entry is not None and entry.bucket and entry.key:
            named[result.index or 0] = (f"s3://{entry.bucket}/{entry.key}", entry.path)
        display.on_result(result)

    with reader:
        result = await engine.run(
            jobs(), progress=display.on_bytes, on_result=record, keep_results=False
        )
    failed = tuple(
        dataclasses.replace(r, url=where[0], path=r.path or where[1])
        if (where := named.get(r.index or 0)) else r
        for r in (*result.failed, *unnamed)
    )
    return BatchResult(
        results=(), failed=failed + tuple(refused),
        total=result.total + skipped + len(refused),
        succeeded=result.succeeded - len(unnamed) + skipped, nbytes=result.nbytes,
        seconds=result.seconds, skipped=skipped,
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


def _links(result: BatchResult) -> list[str]:
    # Paths of links not followed may hold bytes that are not UTF-8.
    return [path.encode("utf-8", "backslashreplace").decode() for path in result.not_followed]


def _plan_summary(
    args: argparse.Namespace, plan: Plan, result: BatchResult, *, out: TextIO | None = None,
    stopped: dict[str, Any] | None = None,
) -> None:
    """A dry run's totals: what would move, what the journal says is done, and
    what would fail (a file the walk cannot send, keys that collide ...).
    ``stopped``: the fields that say why the plan ended early (a signal, an
    error), added to the --json document."""
    failures, links = _failures(result, args.command), _links(result)
    if args.json:
        plan.close_json({**(stopped or {}), "skipped": result.skipped,
                         "failed": len(failures), "failures": failures,
                         "not_followed": links, **_sync_json(result)})
        return
    totals = plan.totals() if not isinstance(result, SyncResult) else (
        f"would transfer {plan.objects:,} objects, {human_bytes(plan.nbytes)}: "
        + _sync_counts(result, dry_run=True)
    )
    print(f"{totals}; {result.skipped} already done, {len(failures)} would fail"
          + (f"; {len(links)} symbolic links not followed" if links else "")
          + " (dry run: nothing was changed)", file=out)
    for failure in failures:
        print(f"  would fail: {printable(failure['url'])}: {printable(str(failure['error']))}",
              file=out)


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
        print(f"  failed: {printable(failure['url'])}: {printable(str(failure['error']))}",
              file=out)
    for link in links:
        print(f"  not followed: {link} (a symbolic link; --follow-symlinks sends its target)",
              file=out)


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
