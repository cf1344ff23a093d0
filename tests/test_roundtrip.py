"""Bytes through presigned URLs and back, against SeaweedFS with signatures enforced."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest

from asyncpresign import (
    Download,
    HTTPStatusError,
    PresignedRequest,
    RequestExpiredError,
    Signer,
    TransferEngine,
    Upload,
)

from .conftest import object_exists

pytestmark = pytest.mark.anyio

SIZES = [0, 1, 4095, 4096, 4097, 3 * 1024 * 1024 + 17]
# Not "ends/with/": SeaweedFS treats such a key as a folder and answers its GET
# with an empty body under the stored ETag (our MD5 check catches that).
ODD_KEYS = [
    "with space.txt",
    "ünïcödé/日本語.bin",
    "plus+sign",
    "percent%20literal",
    "equals=and&amp",
    "double//slash",
    "/leading-slash",
    "brackets[]()'!*~",
]


@pytest.mark.parametrize("chunk_size", [4096, 65536])
@pytest.mark.parametrize("size", SIZES)
async def test_put_then_get_is_byte_identical_from_a_file(
    signer: Signer, bucket: str, tmp_path: Path, size: int, chunk_size: int
) -> None:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    key = f"sizes/{size}-{chunk_size}"
    async with TransferEngine(chunk_size=chunk_size) as engine:
        put = await engine.upload(await signer.presign_put(bucket, key), source)
        got = await engine.download(await signer.presign_get(bucket, key), dest)
    assert dest.read_bytes() == data
    assert put.nbytes == got.nbytes == size
    assert put.status == 200
    # The first request asks for the whole object: its answer carries the
    # object's checksum (or an ETag that is its MD5), and the bytes are checked.
    assert got.status == 200
    assert got.verified in ("crc64nvme", "md5")
    assert put.etag == got.etag
    assert sorted(os.listdir(dest.parent)) == ["copy.bin"]  # no temporary left beside it


@pytest.mark.parametrize("key", ODD_KEYS)
async def test_keys_with_special_characters_round_trip(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path, key: str
) -> None:
    data = key.encode() * 3
    await engine.upload(await signer.presign_put(bucket, key), data)
    dest = tmp_path / "out"
    await engine.download(await signer.presign_get(bucket, key), dest)
    assert dest.read_bytes() == data
    listed = await signer.client.list_objects_v2(Bucket=bucket)
    # One object under one name. (SeaweedFS stores keys as file paths and lists
    # "a//b" as "a/b" and "/a" as "a"; the GET by the signed key still finds it.)
    assert len(listed["Contents"]) == 1


async def test_upload_from_file_object_and_signed_headers_are_stored(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    body = io.BytesIO(b"skip-me" + b"payload")
    body.seek(7)
    put = await signer.presign_put(
        bucket, "meta", content_type="text/plain; charset=utf-8", metadata={"owner": "ann"}
    )
    await engine.upload(put, body)
    head = await signer.client.head_object(Bucket=bucket, Key="meta")
    assert head["ContentLength"] == len(b"payload")
    assert head["ContentType"] == "text/plain; charset=utf-8"
    assert head["Metadata"] == {"owner": "ann"}


async def test_upload_without_content_type_does_not_invent_one(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    await engine.upload(await signer.presign_put(bucket, "plain"), b"abc")
    head = await signer.client.head_object(Bucket=bucket, Key="plain")
    assert head["ContentType"] != "application/octet-stream"


async def test_post_form_upload_round_trips(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    post = await signer.presign_post(
        bucket, "posted", fields={"Content-Type": "text/plain"}, content_length_range=(1, 1000)
    )
    result = await engine.upload_post(post, b"hello post")
    assert result.status in (200, 201, 204)
    dest = tmp_path / "posted"
    await engine.download(await signer.presign_get(bucket, "posted"), dest)
    assert dest.read_bytes() == b"hello post"


async def test_post_over_its_content_length_range_is_rejected(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    post = await signer.presign_post(bucket, "big", content_length_range=(1, 10))
    with pytest.raises(HTTPStatusError) as info:
        await engine.upload_post(post, b"x" * 100)
    assert info.value.code == "EntityTooLarge"
    assert info.value.attempts == 1  # a 400 is not retried
    assert not await object_exists(signer, bucket, "big")


async def test_tampered_signature_is_rejected_as_signature_mismatch(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    await engine.upload(await signer.presign_put(bucket, "k"), b"data")
    good = await signer.presign_get(bucket, "k")
    signature = good.url.rsplit("X-Amz-Signature=", 1)[1]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    bad = PresignedRequest(
        method="GET", url=good.url.replace(signature, flipped), expires_at=good.expires_at
    )
    dest = tmp_path / "never"
    with pytest.raises(HTTPStatusError) as info:
        await engine.download(bad, dest)
    assert info.value.status == 403
    assert info.value.code == "SignatureDoesNotMatch"
    assert flipped not in str(info.value)  # the signature is redacted
    assert not dest.exists()
    assert os.listdir(tmp_path) == []


async def test_expired_url_is_rejected_as_request_expired(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    put = await signer.presign_put(bucket, "late", expires_in=1)
    await asyncio.sleep(2.2)
    with pytest.raises(RequestExpiredError) as info:
        await engine.upload(put, b"too late")
    assert info.value.status == 403


async def test_content_type_not_sent_as_signed_is_rejected(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    put = await signer.presign_put(bucket, "typed", content_type="image/png")
    unsigned = PresignedRequest(method="PUT", url=put.url, expires_at=put.expires_at)
    with pytest.raises(HTTPStatusError) as info:
        await engine.upload(unsigned, b"not a png")
    assert info.value.code == "SignatureDoesNotMatch"
    assert not await object_exists(signer, bucket, "typed")


async def test_missing_object_is_no_such_key_and_leaves_no_file(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(HTTPStatusError) as info:
        await engine.download(await signer.presign_get(bucket, "absent"), tmp_path / "absent")
    assert info.value.status == 404
    assert info.value.code == "NoSuchKey"
    assert os.listdir(tmp_path) == []


async def test_run_moves_many_files_both_ways(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    files = {f"many/{i:03d}.bin": os.urandom(i * 37) for i in range(120)}
    src = tmp_path / "src"
    src.mkdir()
    for key, data in files.items():
        (src / key.replace("/", "_")).write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    async with TransferEngine(concurrency=16) as engine:
        uploads = [
            Upload(await signer.presign_put(bucket, key), src / key.replace("/", "_"))
            for key in files
        ]
        up = await engine.run(uploads)
        downloads = [
            Download(await signer.presign_get(bucket, key), out / key.replace("/", "_"))
            for key in files
        ]
        down = await engine.run(downloads)
    assert up.ok
    assert down.ok
    assert up.succeeded == down.succeeded == len(files)
    assert up.nbytes == down.nbytes == sum(len(d) for d in files.values())
    assert [r.index for r in down.results] == list(range(len(files)))
    for key, data in files.items():
        assert (out / key.replace("/", "_")).read_bytes() == data


async def test_the_local_server_takes_writes_in_more_buckets_than_weed_minis_default_allows(
    signer: Signer,
) -> None:
    """weed mini's own volume count ran out after about 74 buckets (every write
    then a 500); LocalS3 raises it, so a long test run never hits the wall."""
    for i in range(90):
        name = f"many-buckets-{i:03d}"
        await signer.ensure_bucket(name)
        await signer.client.put_object(Bucket=name, Key="k", Body=b"x")
