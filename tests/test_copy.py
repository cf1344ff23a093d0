"""Streaming copies: a presigned GET piped into a presigned PUT, no local file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asyncpresign import Copy, HTTPStatusError, Signer, TransferEngine
from asyncpresign.testing import LocalS3

from .conftest import FAST_RETRY, object_exists
from .fault_server import Fault, FaultServer

pytestmark = pytest.mark.anyio


async def test_copy_between_buckets_is_byte_identical(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    other = bucket + "-b"
    await signer.ensure_bucket(other)
    await engine.upload(await signer.presign_put(bucket, "src"), data)
    result = await engine.copy(
        await signer.presign_get(bucket, "src"), await signer.presign_put(other, "dst")
    )
    assert result.nbytes == len(data)
    await engine.download(await signer.presign_get(other, "dst"), tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == data
    assert os.listdir(tmp_path) == ["dst"]  # the copy itself wrote nothing locally


async def test_copy_between_two_servers_with_different_credentials(
    s3: LocalS3, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    with LocalS3() as second:
        assert second.secret_key != s3.secret_key
        async with second.signer() as dest_signer, TransferEngine() as engine:
            await dest_signer.ensure_bucket("dest-bucket")
            files = {f"k{i}": os.urandom(i * 1000) for i in range(20)}
            for key, data in files.items():
                await engine.upload(await signer.presign_put(bucket, key), data)
            result = await engine.run(
                Copy(
                    None,
                    None,
                    source_sign=signer.sign_later("GET", bucket, key),
                    dest_sign=dest_signer.sign_later("PUT", "dest-bucket", f"copied/{key}"),
                )
                for key in files
            )
            assert result.succeeded == 20
            for key, data in files.items():
                got = await dest_signer.client.get_object(
                    Bucket="dest-bucket", Key=f"copied/{key}"
                )
                async with got["Body"] as body:
                    assert await body.read() == data


async def test_copy_whose_source_drops_midway_is_retried() -> None:
    data = os.urandom(3 * 1024 * 1024)
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["src"] = data
        server.script("src", [Fault("drop", after_bytes=len(data) // 2)])
        result = await engine.copy(server.request("GET", "src"), server.request("PUT", "dst"))
    assert result.attempts == 2
    assert server.objects["dst"] == data


async def test_copy_of_a_missing_source_fails_without_creating_the_destination(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    with pytest.raises(HTTPStatusError) as info:
        await engine.copy(
            await signer.presign_get(bucket, "absent"), await signer.presign_put(bucket, "dst")
        )
    assert info.value.code == "NoSuchKey"
    assert not await object_exists(signer, bucket, "dst")


async def test_copy_from_a_corrupt_source_is_caught_by_the_etags() -> None:
    data = os.urandom(100_000)
    async with FaultServer() as server, TransferEngine(retry=FAST_RETRY) as engine:
        server.objects["src"] = data
        server.script("src", [Fault("corrupt")])
        result = await engine.copy(server.request("GET", "src"), server.request("PUT", "dst"))
    assert result.attempts == 2
    assert server.objects["dst"] == data
