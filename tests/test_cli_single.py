"""One object and streams on the command line (issue #18): ``upload FILE
s3://b/key``, ``download s3://b/key FILE``, and ``-`` for stdin and stdout,
against SeaweedFS in a subprocess, as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncpresign import Signer
from asyncpresign.testing import LocalS3

from .test_cli import base_env, cli
from .test_object_streams import until_open

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def run(*args: str, env: dict[str, str], data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The CLI with ``data`` on stdin, stdout kept as bytes."""
    return subprocess.run(
        [sys.executable, "-m", "asyncpresign", *args], input=data, env=env,
        capture_output=True, timeout=180, check=False,
    )


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def start_upload(bucket: str, key: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``asyncpresign upload - s3://bucket/key`` reading from a pipe the test writes."""
    return subprocess.Popen(
        [sys.executable, "-m", "asyncpresign", "upload", "-", f"s3://{bucket}/{key}",
         "--quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )


async def stored(signer: Signer, bucket: str, key: str) -> bytes:
    answer = await signer.client.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        data: bytes = await body.read()
    return data


async def keys(signer: Signer, bucket: str) -> list[str]:
    listed = await signer.client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


async def test_upload_of_one_file_stores_it_at_the_key_given(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(os.urandom(5000))
    done = cli("upload", str(report), f"s3://{bucket}/docs/q3.pdf", env=env)
    assert "upload: 1 done, 0 already done, 0 failed of 1" in done.stdout
    assert await keys(signer, bucket) == ["docs/q3.pdf"]
    assert await stored(signer, bucket, "docs/q3.pdf") == report.read_bytes()


async def test_upload_into_a_prefix_ending_in_a_slash_keeps_the_file_name(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.7")
    cli("upload", str(report), f"s3://{bucket}/docs/", env=env)
    cli("upload", str(report), f"s3://{bucket}", env=env)
    assert sorted(await keys(signer, bucket)) == ["docs/report.pdf", "report.pdf"]


async def test_a_large_file_goes_up_as_a_multipart_upload(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * MiB))
    cli("upload", str(big), f"s3://{bucket}/big.bin", env=env)
    head = await signer.client.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-2")  # two parts
    assert await stored(signer, bucket, "big.bin") == big.read_bytes()


async def test_download_of_one_object_to_a_file_a_folder_or_a_new_name(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    data = os.urandom(3000)
    await signer.client.put_object(Bucket=bucket, Key="docs/report.pdf", Body=data)
    cli("download", f"s3://{bucket}/docs/report.pdf", str(tmp_path / "copy.pdf"), env=env)
    assert (tmp_path / "copy.pdf").read_bytes() == data
    folder = tmp_path / "existing"
    folder.mkdir()
    cli("download", f"s3://{bucket}/docs/report.pdf", str(folder), env=env)
    assert (folder / "report.pdf").read_bytes() == data
    cli("download", f"s3://{bucket}/docs/report.pdf", str(tmp_path / "new") + "/", env=env)
    assert (tmp_path / "new" / "report.pdf").read_bytes() == data
    assert files_in(tmp_path) == ["copy.pdf"]


async def test_a_missing_object_fails_with_the_servers_word_and_leaves_no_file(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    done = cli("download", f"s3://{bucket}/nope.pdf", str(tmp_path / "nope.pdf"), env=env,
               check=2)
    assert "nothing is stored under" in done.stderr
    assert not (tmp_path / "nope.pdf").exists()


async def test_stdin_goes_up_as_a_multipart_upload_and_stdout_brings_it_back(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    data = os.urandom(19 * MiB + 7)  # three 8 MiB parts, the last short
    done = run("upload", "-", f"s3://{bucket}/db.sql", env=env, data=data)
    assert done.returncode == 0, done.stderr
    assert b"upload: 1 done" in done.stdout
    assert await stored(signer, bucket, "db.sql") == data
    head = await signer.client.head_object(Bucket=bucket, Key="db.sql")
    assert head["ETag"].strip('"').endswith("-3")
    assert [u async for u in signer.list_multipart_uploads(bucket)] == []

    back = run("download", f"s3://{bucket}/db.sql", "-", env=env)
    assert back.returncode == 0, back.stderr
    assert back.stdout == data  # in order, and nothing else on stdout
    assert b"download: 1 done" in back.stderr


async def test_a_short_stdin_goes_up_as_one_put(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    done = run("upload", "-", f"s3://{bucket}/n.txt", env=env, data=b"1\n2\n3\n")
    assert done.returncode == 0, done.stderr
    assert await stored(signer, bucket, "n.txt") == b"1\n2\n3\n"
    empty = run("upload", "-", f"s3://{bucket}/empty.txt", env=env)
    assert empty.returncode == 0, empty.stderr
    assert await stored(signer, bucket, "empty.txt") == b""


async def test_json_of_a_download_to_stdout_goes_to_stderr(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="a.txt", Body=b"alpha")
    done = run("download", f"s3://{bucket}/a.txt", "-", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"alpha"
    summary: dict[str, Any] = json.loads(done.stderr)
    assert (summary["total"], summary["succeeded"], summary["bytes"]) == (1, 1, 5)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["upload", "-", "s3://{bucket}/"], "stdin has no file name"),
        (["download", "s3://{bucket}/folder/", "-"], "only a single object"),
        (["upload", "-", "s3://{bucket}/k", "--journal", "j"], "a journal cannot resume"),
    ],
    ids=["stdin-without-key", "folder-to-stdout", "stream-with-journal"],
)
async def test_streams_refuse_what_they_cannot_do_with_exit_2(
    signer: Signer, bucket: str, env: dict[str, str], args: list[str], says: str
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="folder/a", Body=b"a")
    done = run(*[a.format(bucket=bucket) for a in args], env=env, data=b"data")
    assert done.returncode == 2, done.stderr
    assert says in done.stderr.decode()
    assert b"Traceback" not in done.stderr


async def test_a_fifo_named_as_source_is_refused_unopened(
    bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = cli("upload", str(fifo), f"s3://{bucket}/pipe", env=env, check=2)
    assert "not a regular file or folder" in done.stderr
    assert "upload - s3://" in done.stderr


async def test_a_dry_run_of_stdin_reads_nothing_and_sends_nothing(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    done = run("upload", "-", f"s3://{bucket}/k", "--dry-run", env=env, data=b"x" * 100)
    assert done.returncode == 0, done.stderr
    assert b"s3://" in done.stdout
    assert b"dry run" in done.stdout
    assert await keys(signer, bucket) == []


async def test_ctrl_c_during_a_stdin_upload_aborts_it(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    process = start_upload(bucket, "live.bin", env)
    try:
        assert process.stdin is not None
        # Two parts' worth: they go up while the stream stays open.
        await anyio.to_thread.run_sync(process.stdin.write, os.urandom(20 * MiB))
        await anyio.to_thread.run_sync(process.stdin.flush)
        await until_open(signer, bucket)
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, err = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=60))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert b"interrupted" in err
    assert [u async for u in signer.list_multipart_uploads(bucket)] == []
    assert await keys(signer, bucket) == []


async def test_a_reader_that_stops_early_ends_a_download_to_stdout_quietly(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="long.bin", Body=os.urandom(30 * MiB))

    def head_of_pipe() -> tuple[int, bytes, bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "asyncpresign", "download", f"s3://{bucket}/long.bin", "-"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        assert process.stdout is not None
        first = process.stdout.read(10)  # as `| head -c 10` does, then goes away
        process.stdout.close()
        _, err = process.communicate(timeout=120)
        return process.returncode, first, err

    status, first, err = await anyio.to_thread.run_sync(head_of_pipe)
    assert len(first) == 10
    assert status == 141, err
    assert b"Traceback" not in err


async def test_download_of_one_object_to_a_bare_file_name_writes_it_in_the_current_folder(
    signer: Signer, bucket: str, env: dict[str, str], tmp_path: Path
) -> None:
    # "copy.pdf" (no folder in it): "cannot create folder ''", exit 1.
    data = os.urandom(3000)
    await signer.client.put_object(Bucket=bucket, Key="docs/report.pdf", Body=data)
    here = tmp_path / "here"
    here.mkdir()
    done = await anyio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "asyncpresign", "download", f"s3://{bucket}/docs/report.pdf",
         "copy.pdf", "--json"],
        cwd=here, env=env, capture_output=True, text=True, timeout=180, check=False,
    ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (here / "copy.pdf").read_bytes() == data
    assert sorted(p.name for p in here.iterdir()) == ["copy.pdf"]


async def test_a_stream_to_stdout_that_times_out_is_reported_as_a_timeout_not_as_stdout(
    signer: Signer, bucket: str, env: dict[str, str]
) -> None:
    # The stream's TransferTimeoutError (an OSError) was caught as a failed write:
    # "LocalFileError: cannot write stdout: ...", with stdout fine all along.
    await signer.client.put_object(Bucket=bucket, Key="big", Body=os.urandom(3 * 1024 * 1024))
    done = await anyio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "asyncpresign", "download", f"s3://{bucket}/big", "-",
         "--limit-rate", "256KiB", "--timeout", "1s", "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=180,
        check=False,
    ))
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stderr[done.stderr.index("{"):])
    (failure,) = document["failures"]
    assert failure["error"].startswith("TransferTimeoutError: "), failure["error"]
    assert "stdout" not in failure["error"]
