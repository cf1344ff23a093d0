"""What a sysadmin and an attacker on the same machine try against the files we
write: a device or a FIFO named as a journal or a manifest, a symbolic link
planted at a resumable download's predictable partial name, and a disk that
fills up under the journal. Each test pins a behaviour that was broken:
``--journal /dev/null`` run as root made the device 0600 for everyone,
``--manifest /dev/null`` replaced it with a regular file, a journal that was a
FIFO hung the run, a planted link made a resumed download append to the file
it pointed at, and a journal on a full disk ended the run with a traceback."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from asyncpresign import Journal, LocalFileError, Signer, TransferEngine
from asyncpresign._files import PartialFile
from asyncpresign._manifest import write_manifest
from asyncpresign.testing import LocalS3

from .test_cli import base_env

pytestmark = pytest.mark.anyio


def null_device(path: Path) -> Path:
    """A character device like /dev/null at ``path`` (root only)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node takes root")
    os.chmod(path, 0o666)  # whatever the umask took off
    return path


# -- devices and FIFOs are never journals or manifests ---------------------------------------


def test_a_device_as_the_journal_is_refused_and_keeps_its_mode(tmp_path: Path) -> None:
    device = null_device(tmp_path / "null")
    # Before, it was taken, and its first record made the device 0600.
    with pytest.raises(LocalFileError, match="is a character device, not a regular file"):
        Journal(str(device))
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert stat.S_IMODE(os.lstat(device).st_mode) == 0o666


def test_a_device_as_the_manifest_is_refused_and_not_replaced(tmp_path: Path) -> None:
    device = null_device(tmp_path / "null")
    with pytest.raises(LocalFileError, match="is a character device, not a regular file"):
        write_manifest(str(device), [])
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert os.listdir(tmp_path) == ["null"]  # no temporary file left beside it


@pytest.mark.parametrize("command", ["upload", "manifest"])
def test_a_fifo_as_the_journal_or_manifest_is_refused_at_once(
    s3: LocalS3, tmp_path: Path, command: str
) -> None:
    # Opened to read, a FIFO with no writer waited forever.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_bytes(b"a")
    args = (
        ["upload", str(tmp_path / "src"), "s3://bkt/x/", "--journal", str(fifo)]
        if command == "upload"
        else ["sign", "put", "s3://bkt/x/", "--from", str(tmp_path / "src"),
              "--manifest", str(fifo)]
    )
    done = subprocess.run(
        [sys.executable, "-m", "asyncpresign", *args], env={**base_env(tmp_path), **s3.env()},
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "is a FIFO (named pipe), not a regular file" in done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# -- a resumable download's partial name -----------------------------------------------------


async def test_a_link_planted_at_a_resumable_partial_name_is_never_written_through(
    signer: Signer, bucket: str, engine: TransferEngine, tmp_path: Path
) -> None:
    # The partial name of a resumable download is fixed, so another user of a
    # shared folder can put a link there: it pointed our appends at its target.
    from asyncpresign._files import partial_path

    await signer.client.put_object(Bucket=bucket, Key="k", Body=b"object bytes " * 100)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    dest = tmp_path / "out.bin"
    os.symlink(victim, partial_path(str(dest), unique=False))
    with pytest.raises(LocalFileError, match="cannot write download destination"):
        await engine.download(None, dest, sign=signer.sign_later("GET", bucket, "k"), resume=True)
    assert victim.read_bytes() == b"precious"
    assert not dest.exists()


def _fresh_partial(tmp_path: Path) -> PartialFile:
    partial = PartialFile(dest=str(tmp_path / "out.bin"), path=str(tmp_path / ".out.partial"))
    partial.prepare(appending=False, etag=None, verifier=None, resumable=False)
    return partial


def test_a_partial_file_left_by_an_earlier_run_is_started_over_empty(tmp_path: Path) -> None:
    partial = _fresh_partial(tmp_path)
    Path(partial.path).write_bytes(b"stale bytes of an earlier run, longer than the new body")
    partial.finish([b"new body"])
    assert Path(partial.dest).read_bytes() == b"new body"
    assert not Path(partial.path).exists()


@pytest.mark.parametrize("planted", ["symlink", "dangling symlink", "fifo"])
def test_what_is_planted_at_a_partial_name_is_refused_and_never_written_through(
    tmp_path: Path, planted: str
) -> None:
    partial = _fresh_partial(tmp_path)
    victim = tmp_path / "victim"
    if planted == "fifo":
        os.mkfifo(partial.path)
    else:
        if planted == "symlink":
            victim.write_bytes(b"precious")
        os.symlink(victim, partial.path)
    with pytest.raises(LocalFileError, match="cannot write download destination"):
        partial.finish([b"attacker wants this written"])
    assert not Path(partial.dest).exists()
    if planted == "symlink":
        assert victim.read_bytes() == b"precious"
    elif planted == "dangling symlink":
        assert not victim.exists()


# -- a journal on a full disk ----------------------------------------------------------------


async def run_on_a_full_disk(
    command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` where no file it writes may grow past 600 bytes (a full
    disk, without root): a journal holds its header and a few records."""
    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))

    return await anyio.to_thread.run_sync(lambda: subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False,
        preexec_fn=small_files,
    ))


async def test_a_journal_that_cannot_be_written_fails_the_run_after_it_and_loses_nothing(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    env = {**base_env(tmp_path), **s3.env()}
    src = tmp_path / "src"
    src.mkdir()
    for i in range(100):
        (src / f"f{i:03d}").write_bytes(os.urandom(100))
    journal = tmp_path / "journal"

    command = [sys.executable, "-m", "asyncpresign", "upload", str(src), f"s3://{bucket}/j/",
               "--journal", str(journal), "--json"]
    done = await run_on_a_full_disk(command, env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot write journal" in done.stderr
    assert "a re-run does them again" in done.stderr
    summary = json.loads(done.stdout)
    assert (summary["succeeded"], summary["failed"]) == (100, 0)  # the uploads stand
    assert "cannot write journal" in summary["journal_error"]
    # The re-run skips only what the journal holds whole, and does the rest.
    again = await anyio.to_thread.run_sync(lambda: subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False,
    ))
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["succeeded"] + rerun["skipped"] == 100
    assert 0 < rerun["succeeded"] < 100


async def test_a_fifo_planted_as_a_resumable_partials_sidecar_does_not_hang_the_download(
    signer: Signer, bucket: str, engine: TransferEngine, tmp_path: Path
) -> None:
    # Opened to read, the FIFO waited for a writer forever; now the sidecar is
    # taken as unreadable and the download starts over.
    import threading
    import time

    from asyncpresign._files import partial_path

    data = b"object bytes " * 100
    await signer.client.put_object(Bucket=bucket, Key="k", Body=data)
    dest = tmp_path / "out.bin"
    partial = partial_path(str(dest), unique=False)
    await anyio.Path(partial).write_bytes(data[:10])
    os.mkfifo(partial + ".json")
    unblocked: list[bool] = []

    def unblock() -> None:
        # A blocked open of the FIFO (a thread, or the loop itself) would hang
        # the test for good: after 20 s, be its other end, and say so.
        unblocked.append(True)
        fd = os.open(partial + ".json", os.O_RDWR | os.O_NONBLOCK)
        time.sleep(1)
        os.close(fd)

    watchdog = threading.Timer(20, unblock)
    watchdog.start()
    try:
        result = await engine.download(
            None, dest, sign=signer.sign_later("GET", bucket, "k"), resume=True
        )
    finally:
        watchdog.cancel()
    assert not unblocked, "the download waited on the FIFO"
    assert result.ok
    assert dest.read_bytes() == data


def test_a_journal_that_is_a_dangling_link_is_refused_as_one_and_nothing_is_made(
    tmp_path: Path,
) -> None:
    # It was refused as "permission denied", which sends one looking at modes.
    link = tmp_path / "journal"
    os.symlink(tmp_path / "elsewhere" / "target", link)
    with pytest.raises(LocalFileError, match="symbolic link to nothing"):
        Journal(str(link))
    assert os.listdir(tmp_path) == ["journal"]
