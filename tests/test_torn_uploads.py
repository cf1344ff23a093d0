"""A file that changes while it is uploaded is never stored torn (issue #17, item 11).

The engine notes the file's size and modification time when its upload
begins; a read at another version fails that upload with SourceChangedError
before its last bytes leave (so the server stores nothing), and the upload is
started over once. A file that keeps changing fails. Where the body's
checksum is signed into the PUT, the server refuses a changed body as well.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from asyncpresign import (
    HTTPStatusError,
    LocalFileError,
    ProgressEvent,
    RetryPolicy,
    Signer,
    SourceChangedError,
    TransferEngine,
)
from asyncpresign._files import check_version, open_source, read_with_checksum, source_version

from .conftest import object_exists
from .proxy import Rule, S3Proxy

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def old_file(path: Path, data: bytes) -> Path:
    """A file last written a minute ago, as a file waiting to be uploaded is."""
    path.write_bytes(data)
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


class Writer:
    """A progress callback that changes the file under the upload: on the first
    byte of the first ``times`` attempts, it appends to it or rewrites it."""

    def __init__(self, path: Path, *, grow: bool, times: int = 1) -> None:
        self.path, self.grow, self.left = path, grow, times
        self.changed = False  # this attempt's change is done

    def __call__(self, event: ProgressEvent) -> None:
        if event.delta < 0:  # the upload starts over
            self.changed = False
            return
        if self.changed or not self.left:
            return
        self.changed, self.left = True, self.left - 1
        if self.grow:
            with self.path.open("ab") as f:
                f.write(b"appended while uploading")
        else:
            data = self.path.read_bytes()
            self.path.write_bytes(bytes(b ^ 0xFF for b in data[:100]) + data[100:])


async def stored(signer: Signer, bucket: str, key: str) -> bytes:
    answer = await signer.client.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        return bytes(await body.read())


# -- pure: versions --------------------------------------------------------------------------


def test_a_read_at_another_version_than_the_first_is_a_source_changed_error(
    tmp_path: Path,
) -> None:
    path = old_file(tmp_path / "f", b"x" * 10)
    size, data, version = open_source(str(path), 1024)
    assert (size, data, version) == (10, b"x" * 10, source_version(str(path)))
    path.write_bytes(b"y" * 10)  # same size, a new modification time
    with pytest.raises(SourceChangedError, match="changed while being uploaded"):
        open_source(str(path), 1024, before=version)
    with pytest.raises(SourceChangedError):
        read_with_checksum(str(path), 0, "crc64nvme", before=version)
    assert check_version("f", None, (1, 2)) == (1, 2)


def test_a_file_edited_in_place_with_its_mtime_put_back_is_another_version(
    tmp_path: Path,
) -> None:
    """Size and mtime alone took it for the same file: a multipart upload (or a
    manifest's parts) then mixed parts of both into one object, reported done."""
    path = old_file(tmp_path / "f", b"x" * 10)
    version = source_version(str(path))
    before = path.stat()
    with path.open("r+b") as f:
        f.write(b"y" * 10)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(SourceChangedError, match="changed while being uploaded"):
        check_version(str(path), version, source_version(str(path)))
    # A manifest signed by an earlier release recorded [size, mtime_ns]: those still count.
    assert check_version(str(path), version[:2], source_version(str(path)))


def test_a_file_shortened_while_its_checksum_is_taken_is_a_source_changed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rewrite truncates before it writes: a checksum read in between comes up
    # short. That is a new version of the file (started over), not a failure.
    from asyncpresign import _files

    path = old_file(tmp_path / "f", b"x" * 4096)
    opened = _files.open_source

    def open_then_truncate(*args: object, **kwargs: object) -> tuple[object, ...]:
        answer = opened(*args, **kwargs)  # type: ignore[arg-type]
        path.write_bytes(b"")
        return answer

    monkeypatch.setattr(_files, "open_source", open_then_truncate)
    with pytest.raises(SourceChangedError, match="changed while being uploaded"):
        read_with_checksum(str(path), 0, "crc64nvme")


# -- single PUT, streamed --------------------------------------------------------------------


class Truncator:
    """A progress callback that cuts the file to half its length on the first
    byte of the first attempt, as a rewrite does before it writes."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, False

    def __call__(self, event: ProgressEvent) -> None:
        if self.done or event.delta <= 0:
            return
        self.done = True
        data = self.path.read_bytes()
        self.path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("checksum", ["crc64nvme", None], ids=["signed-crc", "unsigned"])
async def test_a_file_cut_short_while_streaming_is_uploaded_again_whole(
    s3: object, bucket: str, tmp_path: Path, checksum: str | None
) -> None:
    path = old_file(tmp_path / "cut.bin", os.urandom(3 * MiB))
    truncator = Truncator(path)
    async with s3.signer(checksum=checksum) as signer, TransferEngine(  # type: ignore[attr-defined]
        checksum=checksum or "md5"
    ) as engine:
        result = await engine.upload(
            None, path, progress=truncator, sign=signer.sign_later("PUT", bucket, "cut.bin")
        )
        assert result.ok
        assert truncator.done
        assert await stored(signer, bucket, "cut.bin") == path.read_bytes()
    assert path.stat().st_size == 3 * MiB // 2


@pytest.mark.parametrize("grow", [True, False], ids=["growing", "rewritten"])
@pytest.mark.parametrize("checksum", ["crc64nvme", None], ids=["signed-crc", "unsigned"])
async def test_a_file_changed_once_while_streaming_is_uploaded_again_whole(
    s3: object, bucket: str, tmp_path: Path, grow: bool, checksum: str | None
) -> None:
    path = old_file(tmp_path / "big.bin", os.urandom(3 * MiB))
    writer = Writer(path, grow=grow)
    async with s3.signer(checksum=checksum) as signer, TransferEngine(  # type: ignore[attr-defined]
        checksum=checksum or "md5"
    ) as engine:
        result = await engine.upload(
            None, path, progress=writer,
            sign=signer.sign_later("PUT", bucket, "big.bin"),
        )
        assert result.ok
        assert writer.left == 0  # it did change under the first go
        assert await stored(signer, bucket, "big.bin") == path.read_bytes()


async def test_a_file_that_keeps_changing_fails_and_nothing_is_stored(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    path = old_file(tmp_path / "log.bin", os.urandom(3 * MiB))
    async with TransferEngine() as engine:
        with pytest.raises(SourceChangedError, match="changed while being uploaded"):
            await engine.upload(
                None, path, progress=Writer(path, grow=True, times=10),
                sign=signer.sign_later("PUT", bucket, "log.bin"),
            )
    assert not await object_exists(signer, bucket, "log.bin")


async def test_a_small_file_changed_between_attempts_is_uploaded_again_whole(
    signer: Signer, bucket: str, tmp_path: Path, proxy: S3Proxy, proxied: Signer
) -> None:
    # The first attempt is answered 500 by the proxy; the file is rewritten
    # before the retry reads it again, so that read is at a new version.
    path = old_file(tmp_path / "small.bin", os.urandom(64 * 1024))
    proxy.rules.append(Rule(method="PUT", contains="small.bin", times=1, status=500))

    async def rewrite_once_refused() -> None:
        while not any("small.bin" in target for _, target in proxy.seen):  # noqa: ASYNC110
            await anyio.sleep(0.01)
        path.write_bytes(os.urandom(64 * 1024))

    # The rewrite must land between the attempts: a wide gap, for a loaded machine.
    retry = RetryPolicy(initial_backoff=2.0, max_backoff=2.0, jitter=False)
    async with TransferEngine(retry=retry) as engine, anyio.create_task_group() as tasks:
        tasks.start_soon(rewrite_once_refused)
        result = await engine.upload(
            None, path, sign=proxied.sign_later("PUT", bucket, "small.bin")
        )
    assert result.ok
    assert await stored(signer, bucket, "small.bin") == path.read_bytes()
    assert len([t for _, t in proxy.seen if "small.bin" in t]) == 2


# -- the server's own refusal ----------------------------------------------------------------


async def test_a_signed_checksum_makes_the_server_refuse_a_file_changed_since_signing(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    # What a manifest does: the checksum is taken and signed first, the file
    # sent later. A file rewritten in between is refused by the server itself.
    from asyncpresign._files import file_checksum

    path = old_file(tmp_path / "signed.bin", os.urandom(2 * MiB))
    request = await signer.presign_put(
        bucket, "signed.bin", checksum=("crc64nvme", file_checksum(str(path), "crc64nvme"))
    )
    path.write_bytes(os.urandom(2 * MiB))
    async with TransferEngine(retry=RetryPolicy(attempts=2, initial_backoff=0.0)) as engine:
        with pytest.raises(LocalFileError, match="changed since the request was signed") as caught:
            await engine.upload(request, path)
    # Streamed: the server refused it first; its refusal is kept, and no retry
    # was made of what no retry can cure.
    assert isinstance(caught.value.__cause__, HTTPStatusError)
    assert caught.value.__cause__.code == "BadDigest"
    assert caught.value.__cause__.attempts == 1
    assert not await object_exists(signer, bucket, "signed.bin")


async def test_a_small_file_changed_since_its_checksum_was_signed_is_refused_before_sending(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    from asyncpresign._files import file_checksum

    path = old_file(tmp_path / "small.bin", b"first")
    request = await signer.presign_put(
        bucket, "small.bin", checksum=("crc64nvme", file_checksum(str(path), "crc64nvme"))
    )
    path.write_bytes(b"other")
    async with TransferEngine() as engine:
        with pytest.raises(LocalFileError, match="changed since the request was signed") as caught:
            await engine.upload(request, path)
    assert caught.value.__cause__ is None  # read whole: refused before a byte went out
    assert not await object_exists(signer, bucket, "small.bin")


# -- multipart -------------------------------------------------------------------------------


async def _open_uploads(signer: Signer, bucket: str) -> list[object]:
    answer = await signer.client.list_multipart_uploads(Bucket=bucket)
    return list(answer.get("Uploads", []))


@pytest.mark.parametrize("grow", [True, False], ids=["growing", "rewritten"])
async def test_a_file_changed_once_during_a_multipart_upload_is_uploaded_again_whole(
    signer: Signer, bucket: str, tmp_path: Path, grow: bool
) -> None:
    path = old_file(tmp_path / "parts.bin", os.urandom(12 * MiB))
    writer = Writer(path, grow=grow)
    async with TransferEngine(concurrency=2) as engine:
        result = await engine.upload_large(
            signer, bucket, "parts.bin", path, part_size=5 * MiB, progress=writer
        )
    assert result.ok
    assert writer.left == 0
    assert await stored(signer, bucket, "parts.bin") == path.read_bytes()
    assert await _open_uploads(signer, bucket) == []


async def test_a_file_that_keeps_changing_during_a_multipart_upload_is_aborted(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    path = old_file(tmp_path / "parts.bin", os.urandom(12 * MiB))
    async with TransferEngine(concurrency=2) as engine:
        with pytest.raises(SourceChangedError):
            await engine.upload_large(
                signer, bucket, "parts.bin", path, part_size=5 * MiB,
                progress=Writer(path, grow=True, times=10),
            )
    assert not await object_exists(signer, bucket, "parts.bin")
    assert await _open_uploads(signer, bucket) == []


async def test_parts_of_a_multipart_manifest_are_sent_only_from_the_version_signed(
    s3: object, bucket: str, tmp_path: Path
) -> None:
    # Without signed checksums (--checksum none), only the version recorded in
    # each part line stops parts of two versions of the file making one object.
    import json as json_module

    from .test_cli import base_env, cli

    env = {**base_env(tmp_path), **s3.env()}  # type: ignore[attr-defined]
    path = old_file(tmp_path / "big.bin", os.urandom(11 * MiB))
    manifest = str(tmp_path / "parts.jsonl")
    cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(path), "--part-size", "5MiB",
        "--manifest", manifest, "--checksum", "none", env=env)
    before = path.stat()
    with path.open("r+b") as f:  # rewritten in place, same size, after signing...
        f.write(os.urandom(11 * MiB))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...its mtime put back
    ran = json_module.loads(
        cli("transfer", manifest, "--json", "--checksum", "none", env=env, check=1).stdout
    )
    assert ran["failed"] == 3
    assert all("changed while being uploaded" in f["error"] for f in ran["failures"])
    refused = cli("complete", manifest, env=env, check=1)
    assert "not uploaded yet" in refused.stderr
    cli("complete", manifest, "--abort", env=env)
