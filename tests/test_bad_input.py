"""Bad input: a clear, typed error naming the problem, nothing sent and nothing written."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from pathlib import Path

import pytest

from asyncpresign import (
    AsyncPresignError,
    Download,
    InvalidArgumentError,
    LocalFileError,
    PresignedRequest,
    TransferEngine,
    Upload,
)

from .fault_server import FaultServer

pytestmark = pytest.mark.anyio


async def test_missing_source_file_names_the_path_and_sends_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.bin"
    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(LocalFileError, match=r"nope\.bin") as info:
            await engine.upload(server.request("PUT", "k"), missing)
    assert isinstance(info.value, OSError)
    assert "No such file" in str(info.value)
    assert server.requests.total() == 0
    assert "k" not in server.objects


async def test_a_folder_as_upload_source_is_rejected(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(LocalFileError, match="is a directory"):
            await engine.upload(server.request("PUT", "k"), tmp_path)
    assert server.requests.total() == 0


async def test_destination_in_a_missing_folder_fails_before_the_request(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        server.objects["k"] = b"data"
        with pytest.raises(LocalFileError, match="does not exist"):
            await engine.download(server.request("GET", "k"), tmp_path / "no" / "such" / "f")
    assert server.requests.total() == 0
    assert os.listdir(tmp_path) == []


async def test_destination_that_is_a_folder_is_rejected(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        server.objects["k"] = b"data"
        with pytest.raises(LocalFileError, match="is a folder"):
            await engine.download(server.request("GET", "k"), tmp_path)
    assert server.requests.total() == 0


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/x", "/just/a/path", "http:///x"])
async def test_non_http_urls_are_rejected_before_any_io(url: str, tmp_path: Path) -> None:
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="not an http"):
            await engine.upload(url, b"data")
        with pytest.raises(InvalidArgumentError, match="not an http"):
            await engine.download(url, tmp_path / "f")
    assert os.listdir(tmp_path) == []


def test_a_timeout_of_zero_is_rejected() -> None:
    from asyncpresign import Timeout

    with pytest.raises(InvalidArgumentError, match="timeout read"):
        Timeout(read=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": -3}, "concurrency"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 1024}, "chunk_size"),
        ({"chunk_size": 64 * 1024 * 1024}, "chunk_size"),
        ({"timeout": -1.0}, "timeout"),
    ],
)
def test_invalid_engine_settings_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        TransferEngine(**kwargs)  # type: ignore[arg-type]


async def test_per_call_chunk_size_is_validated_too() -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="chunk_size"):
            await engine.upload(server.request("PUT", "k"), b"x", chunk_size=0)
    assert server.requests.total() == 0


async def test_non_seekable_stream_without_size_is_rejected() -> None:
    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="size="):
            await engine.upload(server.request("PUT", "k"), Pipe())  # type: ignore[arg-type]
    assert server.requests.total() == 0


class _Pipe(io.RawIOBase):
    """A non-seekable stream (a pipe, a socket's file) holding ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), len(self.data))
        buffer[:n], self.data = self.data[:n], self.data[n:]
        return n


@pytest.mark.parametrize("size", [3, 3 * 1024 * 1024])
async def test_a_non_seekable_stream_holding_more_than_its_size_stores_nothing(
    size: int,
) -> None:
    """size= is a stream's whole length, as it is for any other source: a pipe
    holding 12 bytes with size=3 stored b'012' and was reported done."""
    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(LocalFileError, match="holds more than the size given"):
            await engine.upload(server.request("PUT", "k"), _Pipe(b"x" * size + b"more"),
                                size=size)
        assert "k" not in server.objects
        exact = await engine.upload(server.request("PUT", "k"), _Pipe(b"y" * size), size=size)
    assert exact.ok
    assert server.objects["k"] == b"y" * size


async def test_a_stream_that_cannot_be_read_as_bytes_fails_with_what_is_wrong(
    tmp_path: Path,
) -> None:
    """A closed file with size= was "TransportError: connection failed ... read of
    closed file"; a read() giving str, "connection failed ... Strings must be
    encoded": the network was blamed for the caller's stream."""

    class Text:
        def read(self, n: int = -1) -> str:
            return "abc"

    (tmp_path / "f").write_bytes(b"abc")
    closed = (tmp_path / "f").open("rb")
    closed.close()
    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(LocalFileError, match="closed file"):
            await engine.upload(server.request("PUT", "a"), closed, size=3)
        with pytest.raises(InvalidArgumentError, match="binary mode"):
            await engine.upload(server.request("PUT", "b"), Text(), size=3)  # type: ignore[arg-type]
    assert not server.objects


async def test_unsupported_source_type_is_rejected() -> None:
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="upload source"):
            await engine.upload("http://127.0.0.1:9/k", 12345)  # type: ignore[arg-type]


async def test_bad_jobs_fail_alone_with_clear_errors_and_the_rest_run(tmp_path: Path) -> None:
    async with FaultServer() as server, TransferEngine(concurrency=2) as engine:
        server.objects["k"] = b"data"
        jobs = [
            Upload(server.request("PUT", "a"), tmp_path / "missing.bin"),
            Download(server.request("GET", "k"), tmp_path / "nofolder" / "x"),
            Upload("gopher://nope/", b"x"),
            Download(server.request("GET", "k"), tmp_path / "good"),
            "not a job",
            # Unwritable even for root (tests may run as root, where permission
            # bits do not stop writes): /proc accepts no new files.
            Download(server.request("GET", "k"), "/proc/asyncpresign-unwritable"),
        ]
        result = await engine.run(jobs)  # type: ignore[arg-type]
    assert result.succeeded == 1
    errors = {r.index: r.error for r in result.failed}
    assert isinstance(errors[0], LocalFileError)
    assert isinstance(errors[1], LocalFileError)
    assert isinstance(errors[2], InvalidArgumentError)
    assert isinstance(errors[4], InvalidArgumentError)
    assert isinstance(errors[5], LocalFileError)
    assert "cannot write download destination" in str(errors[5])
    assert (tmp_path / "good").read_bytes() == b"data"
    assert sorted(os.listdir(tmp_path)) == ["good"]


async def test_using_an_engine_that_is_not_open_says_so() -> None:
    engine = TransferEngine()
    with pytest.raises(AsyncPresignError, match="not open"):
        await engine.upload("http://127.0.0.1:9/k", b"x")


def release_after(fifo: Path, seconds: float) -> threading.Thread:
    """Opens the FIFO's other end after ``seconds``, so a reader blocked in its
    open (the bug this guards against) is let go and the test ends either way."""
    def release() -> None:
        time.sleep(seconds)
        with contextlib.suppress(OSError):  # ENXIO: nobody is reading, as it should be
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("content_md5", [False, True])
async def test_an_upload_of_a_fifo_fails_at_once_without_opening_it(
    tmp_path: Path, content_md5: bool
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    release_after(fifo, 5)
    async with FaultServer() as server, TransferEngine() as engine:

        async def sign(**_: object) -> PresignedRequest:
            return server.request("PUT", "k")

        started = time.monotonic()
        batch = await engine.run([Upload(None, fifo, sign=sign, content_md5=content_md5)])
        took = time.monotonic() - started
    assert took < 4  # not blocked waiting for a writer
    error = batch.failed[0].error
    assert isinstance(error, LocalFileError)
    assert "is a FIFO (named pipe), not a regular file" in str(error)
    assert server.requests.total() == 0


@pytest.mark.parametrize("content_md5", ["not base64!", "AAAA", "QUJD" * 8])
async def test_a_malformed_content_md5_is_refused_before_anything_is_sent(
    content_md5: str,
) -> None:
    """A manifest line's Content-MD5 that is no base64 MD5 was sent, then retried
    20 times on the server's InvalidDigest (about two minutes), or failed as a bare
    binascii.Error after the object was stored; "AAAA" read as a body changed
    since signing."""
    import datetime as dt

    from asyncpresign import PresignedRequest

    async with FaultServer() as server, TransferEngine() as engine:
        request = server.request("PUT", "k")
        put = PresignedRequest(
            method="PUT", url=request.url, headers={"Content-MD5": content_md5},
            expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
        )
        with pytest.raises(InvalidArgumentError, match="not the base64 of a 16-byte MD5"):
            await engine.upload(put, b"abc")
    assert server.requests.total() == 0
