"""Listings stream into the transfers: the first copy or download starts while
the listing is still being read, so memory does not grow with the bucket
(issue 17, item 9)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asyncpresign import (
    Filters,
    Journal,
    Signer,
    TransferEngine,
    TransferResult,
    _cli,
    _cli_args,
    _cli_common,
    _cli_dask,
    copy_objects,
)
from asyncpresign._bulk import list_keys, list_objects
from asyncpresign._plan import Plan
from asyncpresign._progress import ProgressDisplay
from asyncpresign.testing import LocalS3

pytestmark = pytest.mark.anyio

OBJECTS = 30


@pytest.fixture
async def objects(signer: Signer, bucket: str) -> str:
    async with TransferEngine() as engine:
        for i in range(OBJECTS):
            await engine.upload(await signer.presign_put(bucket, f"src/k{i:02d}"), b"%d" % i)
    return bucket


@pytest.fixture
def aws_env(s3: LocalS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI, run in this process, finds this server's credentials and no others."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class Listing:
    """Wraps a lister and counts what it has handed out so far."""

    def __init__(self) -> None:
        self.read = 0
        self.at_first_result: int | None = None

    def on_result(self, result: TransferResult) -> None:
        assert result.ok, result.error
        if self.at_first_result is None:
            self.at_first_result = self.read


async def test_copy_objects_starts_copying_before_its_pairs_are_all_read(
    signer: Signer, objects: str
) -> None:
    bucket = objects
    listing = Listing()

    async def pairs() -> AsyncIterator[tuple[tuple[str, str], tuple[str, str]]]:
        for i in range(OBJECTS):
            listing.read += 1
            yield (bucket, f"src/k{i:02d}"), (bucket, f"dst/k{i:02d}")

    async with TransferEngine(concurrency=2) as engine:
        result = await copy_objects(signer, signer, engine, pairs(),
                                    on_result=listing.on_result)
    assert result.succeeded == OBJECTS
    assert listing.at_first_result is not None
    assert listing.at_first_result < OBJECTS // 2


async def test_cli_copy_starts_copying_before_the_listing_ends(
    signer: Signer, objects: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = objects
    listing = Listing()

    async def counted(source: Signer, bucket: str, prefix: str) -> AsyncIterator[Any]:
        async for item in list_objects(source, bucket, prefix):
            listing.read += 1
            yield item

    monkeypatch.setattr(_cli_common, "list_objects", counted)
    args = _cli_args._parser().parse_args(
        ["copy", f"s3://{bucket}/src", f"s3://{bucket}/dst", "--concurrency", "2", "--quiet"]
    )
    display = ProgressDisplay("copy", mode="quiet")
    display.on_result = listing.on_result  # type: ignore[method-assign]
    result = await _cli._run_command(args, Journal(None), Filters(), display, Plan())
    assert result.succeeded == OBJECTS
    assert listing.at_first_result is not None
    assert listing.at_first_result < OBJECTS // 2
    keys = [k async for k in list_keys(signer, bucket, "dst/")]
    assert len(keys) == OBJECTS


async def test_dask_download_specs_stream_with_their_folders_made_as_they_go(
    signer: Signer, objects: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    bucket = objects
    listing = Listing()

    async def counted(source: Signer, bucket: str, prefix: str) -> AsyncIterator[Any]:
        async for item in list_objects(source, bucket, prefix):
            listing.read += 1
            yield item

    monkeypatch.setattr(_cli_dask, "list_objects", counted)
    out = tmp_path / "out"
    args = _cli_args._parser().parse_args(["download", f"s3://{bucket}/src", str(out)])
    specs = _cli_dask._dask_downloads(args, signer, Filters(), [])
    first = await specs.__anext__()
    assert listing.read == 1
    assert first.path == str(out / "k00")
    assert first.etag  # for the journal
    assert out.is_dir()
    rest = [spec async for spec in specs]
    assert len(rest) == OBJECTS - 1


async def test_a_key_no_local_path_fits_fails_alone_in_a_dask_download_stream(
    signer: Signer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")

    async def listing(source: Signer, bucket: str, prefix: str) -> AsyncIterator[Any]:
        for key in ("p/a", "p/../escape", "p/folder/", "p/b"):
            yield key, 0 if key.endswith("/") else 5, '"etag"'

    async def answer(*_: object) -> bool:
        return _ == (signer, "b", "p/")  # "p/" holds objects; "p" is no object

    monkeypatch.setattr(_cli_dask, "list_objects", listing)
    monkeypatch.setattr(_cli_common, "any_object", answer)
    monkeypatch.setattr(_cli_common, "object_exists", answer)
    args = _cli_args._parser().parse_args(["download", "s3://b/p", str(tmp_path / "out")])
    bad: list[tuple[str, str]] = []
    specs = [spec.key async for spec in _cli_dask._dask_downloads(args, signer, Filters(), bad)]
    assert specs == ["p/a", "p/b"]  # the folder marker is no file
    assert [url for url, _ in bad] == ["s3://b/p/../escape"]
    assert "does not map to a file" in bad[0][1]


async def test_dask_upload_specs_fail_what_the_walk_will_not_send_and_keep_the_rest(
    tmp_path: Path,
) -> None:
    pytest.importorskip("distributed")
    import os

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "good.txt").write_bytes(b"x")
    os.mkfifo(tmp_path / "src" / "pipe")
    args = _cli_args._parser().parse_args(
        ["upload", str(tmp_path / "src"), "s3://some-bucket/p", "--dask-scheduler", "tcp://x"]
    )
    bad: list[tuple[str, str]] = []
    specs = [spec async for spec in _cli_dask._dask_uploads(args, Filters(), bad)]
    assert [spec.key for spec in specs] == ["p/good.txt"]
    assert [url for url, _ in bad] == ["s3://some-bucket/p/pipe"]
    assert "FIFO" in bad[0][1]
