"""An adversarial pass over single objects and streams: what a new user, a
sysadmin and an attacker try first. Each test pins a behaviour that was broken:
a download replacing a FIFO or device at its destination, a CLI run with a
standard stream closed, a spent DownloadStream iterated again, a rate too
large for a float, a stream read by an engine that is not open, an s3:// URI
with no bucket, a missing object named for stdout, streams that ignored the
total timeout, a /proc file uploaded empty, a copy's Expires out of range."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncpresign import (
    AsyncPresignError,
    HTTPStatusError,
    InvalidArgumentError,
    LocalFileError,
    MetadataError,
    Signer,
    Timeout,
    TransferEngine,
    TransferTimeoutError,
)
from asyncpresign._metadata import metadata_params

from . import test_cli_single
from .conftest import FAST_RETRY
from .rawserver import Reply, Request, Serve, head_bytes
from .test_cli_single import run
from .test_object_streams import MiB, pieces, read_all

pytestmark = pytest.mark.anyio

#: The CLI's environment for the test server (the fixture of test_cli_single).
env = test_cli_single.env


def run_closed(fd: int, *args: str, env: dict[str, str]) -> tuple[int, bytes, str]:
    """The CLI with standard stream ``fd`` closed, as ``<&-`` or ``>&-`` leave it
    in a shell: exit code, stdout (b"" when closed), stderr ("" when closed)."""
    with tempfile.TemporaryFile() as err:
        done = subprocess.run(
            [sys.executable, "-m", "asyncpresign", *args], env=env, timeout=180, check=False,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if fd != 1 else None,
            stderr=err if fd != 2 else None, preexec_fn=lambda: os.close(fd),
        )
        err.seek(0)
        return done.returncode, done.stdout or b"", err.read().decode()


# -- a download never replaces a device or a FIFO --------------------------------------------


async def test_a_download_to_a_fifo_fails_and_leaves_the_fifo_a_fifo(
    signer: Signer, bucket: str, engine: TransferEngine, tmp_path: Path
) -> None:
    # Run as root, a download to /dev/null replaced the device with a regular
    # file (the partial file was moved over it); a FIFO shows the same, safely.
    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"data")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(LocalFileError, match=r"FIFO.*not replaced"):
        await engine.download(None, fifo, sign=signer.sign_later("GET", bucket, "k"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]  # no partial left


async def test_a_fifo_made_at_the_destination_during_a_download_is_not_replaced(
    signer: Signer, bucket: str, engine: TransferEngine, tmp_path: Path
) -> None:
    # The check before the request sees nothing there; the move into place
    # must look again.
    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"data")
    dest = tmp_path / "late"

    def progress(_: int) -> None:
        if not dest.exists():
            os.mkfifo(dest)

    with pytest.raises(LocalFileError, match=r"FIFO.*not replaced"):
        await engine.download(
            None, dest, sign=signer.sign_later("GET", bucket, "k"), progress=progress
        )
    assert stat.S_ISFIFO(os.lstat(dest).st_mode)
    assert os.listdir(tmp_path) == ["late"]


async def test_the_cli_refuses_to_download_over_a_fifo(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"data")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = run("download", f"s3://{bucket}/k", str(fifo), env=env)
    assert done.returncode == 1, done.stderr
    assert b"not a regular file: not replaced" in done.stderr + done.stdout
    assert b"Traceback" not in done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# -- standard streams closed -----------------------------------------------------------------


async def test_upload_of_a_closed_stdin_is_bad_usage_not_a_crash(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    # uvloop aborted (exit 134, a C assertion) when the first socket took fd 0.
    status, _, err = run_closed(0, "upload", "-", f"s3://{bucket}/k", env=env)
    assert status == 2, err
    assert "stdin is closed" in err
    listed = await signer.client.list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0  # no empty object stored for it


async def test_download_to_a_closed_stdout_is_bad_usage_not_a_crash(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"data")
    status, _, err = run_closed(1, "download", f"s3://{bucket}/k", "-", env=env)
    assert status == 2, err
    assert "stdout is closed" in err


@pytest.mark.parametrize("args", [
    ["sign", "get", "s3://{bucket}/k"],
    ["download", "s3://{bucket}/k", "{tmp}/out", "--json"],
], ids=["sign", "json"])
async def test_output_that_is_the_point_refuses_a_closed_stdout(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path, args: list[str]
) -> None:
    # With >&-, "sign get" printed its URL to the null device put in stdout's
    # place and exited 0; so did a --json document.
    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"data")
    filled = [a.format(bucket=bucket, tmp=tmp_path) for a in args]
    status, _, err = run_closed(1, *filled, env=env)
    assert status == 2, err
    assert "stdout is closed" in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


async def test_download_to_stdout_with_stderr_closed_succeeds(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    # The progress display asked None (sys.stderr) whether it was a terminal:
    # exit 1 with a traceback no one could see.
    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"data")
    status, out, _ = run_closed(2, "download", f"s3://{bucket}/k", "-", env=env)
    assert status == 0
    assert out == b"data"


# -- a DownloadStream is iterated once -------------------------------------------------------


async def test_a_failed_download_stream_iterated_again_raises_rather_than_ends_empty(
    serve: Serve,
) -> None:
    def missing(_: Request) -> Reply:
        body = b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"
        return Reply([head_bytes("HTTP/1.1 404 Not Found", f"Content-Length: {len(body)}")
                      + body])

    server = await serve(missing)
    async with TransferEngine(retry=FAST_RETRY) as engine:
        stream = engine.download_stream(f"{server.url}/b/k")
        with pytest.raises(HTTPStatusError):
            async for _ in stream:
                pass
        # A loop that tries again used to end at once, without error: an
        # object of no bytes, "good" by the stream's own rule.
        with pytest.raises(AsyncPresignError, match="iterated once"):
            async for _ in stream:
                pass
        assert stream.result is None


async def test_a_download_stream_iterated_twice_or_after_aclose_raises(
    signer: Signer, bucket: str, engine: TransferEngine
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"data")
    async with engine.download_stream(None, sign=signer.sign_later("GET", bucket, "k")) as s:
        assert b"".join([piece async for piece in s]) == b"data"
        with pytest.raises(AsyncPresignError, match="iterated once"):
            async for _ in s:
                pass
    closed = engine.download_stream(None, sign=signer.sign_later("GET", bucket, "k"))
    await closed.aclose()
    with pytest.raises(AsyncPresignError, match="iterated once"):
        async for _ in closed:
            pass


# -- the bandwidth limit ---------------------------------------------------------------------


def test_a_rate_too_large_for_a_float_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="max_rate"):
        TransferEngine(max_rate=10**400)


async def test_a_limit_rate_too_large_for_a_float_is_exit_2_not_a_traceback(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    done = run("download", f"s3://{bucket}/k", str(tmp_path / "f"), "--limit-rate",
               "9" * 400, env=env)
    assert done.returncode == 2, done.stderr
    assert b"--limit-rate" in done.stderr
    assert b"Traceback" not in done.stderr


# -- streams and URIs ------------------------------------------------------------------------


async def test_upload_stream_on_an_unopened_engine_reads_nothing_of_the_stream(
    signer: Signer, bucket: str
) -> None:
    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            read.append(i)
            yield b"x" * 100

    with pytest.raises(AsyncPresignError, match="not open"):
        await TransferEngine().upload_stream(signer, bucket, "k", chunks())
    assert read == []  # a pipe's bytes cannot be read twice


@pytest.mark.parametrize(
    "args",
    [["upload", "-", "s3:///k"], ["download", "s3:///k", "-"]],
    ids=["stdin", "stdout"],
)
async def test_an_s3_uri_without_a_bucket_is_bad_usage(
    env: dict[str, str], args: list[str]
) -> None:
    done = run(*args, env=env, data=b"data")
    assert done.returncode == 2, done.stderr
    assert b"names no bucket" in done.stderr
    assert b"Traceback" not in done.stderr


async def test_a_missing_object_for_stdout_is_named_missing(
    bucket: str, env: dict[str, str]
) -> None:
    # It said "is not one object: only a single object can be written to
    # stdout" of an object that simply is not there.
    done = run("download", f"s3://{bucket}/nope.txt", "-", env=env)
    assert done.returncode == 2, done.stderr
    assert f"nothing is stored at s3://{bucket}/nope.txt".encode() in done.stderr
    assert done.stdout == b""


# -- the total timeout bounds streams too ----------------------------------------------------


async def test_a_stream_upload_gives_up_at_the_total_timeout_and_is_aborted(
    signer: Signer, bucket: str
) -> None:
    # --timeout was ignored by `upload -`: 3 MiB at 64 KiB/s went on for 46 s.
    async with TransferEngine(
        timeout=Timeout(total=1.0), max_rate=256 * 1024, part_size=5 * MiB
    ) as engine:
        started = time.monotonic()
        with pytest.raises(TransferTimeoutError):
            await engine.upload_stream(
                signer, bucket, "slow.bin", pieces(os.urandom(12 * MiB), MiB)
            )
        assert time.monotonic() - started < 10
    assert [u async for u in signer.list_multipart_uploads(bucket)] == []
    listed = await signer.client.list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0


async def test_a_stream_download_gives_up_at_the_total_timeout(
    signer: Signer, bucket: str
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="slow.bin", Body=os.urandom(12 * MiB))
    async with TransferEngine(
        timeout=Timeout(total=1.0), max_rate=256 * 1024, part_size=5 * MiB
    ) as engine:
        started = time.monotonic()
        stream = engine.download_stream(None, sign=signer.sign_later("GET", bucket, "slow.bin"))
        with pytest.raises(TransferTimeoutError, match="total timeout"):
            await read_all(stream)
        assert time.monotonic() - started < 10
        assert stream.result is None


async def test_download_to_stdout_keeps_to_its_timeout(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    # `download -` with --timeout 2 ran on until killed.
    await signer.client.put_object(Bucket=bucket, Key="slow.bin", Body=os.urandom(3 * MiB))
    started = time.monotonic()
    done = run("download", f"s3://{bucket}/slow.bin", "-", "--timeout", "2",
               "--limit-rate", "64KiB", env=env)
    assert done.returncode == 1, done.stderr
    assert b"total timeout" in done.stderr
    assert time.monotonic() - started < 30


# -- a file that holds more than its size says -----------------------------------------------


async def test_a_proc_file_is_not_uploaded_empty_as_a_success(
    signer: Signer, bucket: str, engine: TransferEngine, env: dict[str, str]
) -> None:
    # /proc/cpuinfo says 0 bytes and reads as many: it went up as an empty
    # object, "1 done".
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(LocalFileError, match="more than the 0 bytes"):
        await engine.upload(
            None, "/proc/self/status", sign=signer.sign_later("PUT", bucket, "status")
        )
    done = run("upload", "/proc/cpuinfo", f"s3://{bucket}/cpuinfo", env=env)
    assert done.returncode == 1, done.stdout
    assert b"more than the 0 bytes" in done.stdout + done.stderr
    listed = await signer.client.list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0


# -- a copy's Expires ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 31 Dec 9999 23:59:59 -0100",  # past year 9999 in UTC: OverflowError escaped
        "Mon, 01 Jan 0001 00:00:00 GMT",  # read as 2001: the copy's Expires was not the source's
    ],
    ids=["past-9999-in-utc", "year-0001"],
)
def test_an_expires_that_cannot_be_carried_exactly_is_a_metadata_error(value: str) -> None:
    with pytest.raises(MetadataError, match="cannot be carried exactly"):
        metadata_params([("Expires", value)])


def test_an_expires_in_another_zone_is_carried_as_its_instant() -> None:
    got = metadata_params([("Expires", "Thu, 01 Jan 2071 01:00:00 +0100")])
    assert got["Expires"] == dt.datetime(2071, 1, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    "args",
    [
        ["download", "s3://some-bucket/report.txt", "-", "--exclude", "*.txt"],
        ["upload", "-", "s3://some-bucket/k", "--include", "*.csv"],
    ],
)
def test_a_filter_on_a_stream_is_bad_usage_not_an_empty_stream(
    args: list[str], env: dict[str, str]
) -> None:
    """A filter that dropped the one object would leave nothing on stdout and
    exit 0: to the reader, an empty object."""
    done = run(*args, env=env, data=b"payload")
    assert done.returncode == 2
    assert b"--include / --exclude do not apply" in done.stderr
    assert done.stdout == b""
    assert b"Traceback" not in done.stderr


# -- stdout that takes only part of what is written ------------------------------------------


def run_into_small_file(
    out: Path, limit: int, *args: str, env: dict[str, str], unbuffered: bool
) -> subprocess.CompletedProcess[str]:
    """The CLI with stdout a file that may grow to ``limit`` bytes (RLIMIT_FSIZE,
    SIGXFSZ ignored: a write across the limit is cut short, the next fails
    with EFBIG, as on a disk that fills up), Python's stdout unbuffered or not."""
    import resource
    import signal

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    child_env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        child_env["PYTHONUNBUFFERED"] = "1"  # as many container images set it
    with out.open("wb") as stdout:
        return subprocess.run(
            [sys.executable, "-m", "asyncpresign", *args], env=child_env, stdout=stdout,
            stderr=subprocess.PIPE, text=True, timeout=180, check=False, preexec_fn=limited,
        )


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
async def test_a_download_to_stdout_that_cannot_take_it_all_fails(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path, unbuffered: bool
) -> None:
    # Unbuffered, Python's stdout took 1 MiB of a 3 MiB piece, said so only in
    # the count it returned, and the run reported the download done (exit 0).
    await signer.client.put_object(Bucket=bucket, Key="big", Body=os.urandom(3 * MiB))
    done = run_into_small_file(
        tmp_path / "out.bin", MiB, "download", f"s3://{bucket}/big", "-", env=env,
        unbuffered=unbuffered,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot write stdout" in done.stderr
    assert "0 done" in done.stderr
    assert "1 failed" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
async def test_printed_output_cut_short_is_an_error_not_a_success(
    bucket: str, env: dict[str, str], tmp_path: Path, unbuffered: bool
) -> None:
    # A signed URL is some 400 bytes; stdout takes 100. Unbuffered, print()
    # dropped the rest without a word and the run exited 0.
    done = run_into_small_file(
        tmp_path / "urls.txt", 100, "sign", "get", f"s3://{bucket}/some/key", env=env,
        unbuffered=unbuffered,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot write the output" in done.stderr
    assert "Traceback" not in done.stderr
