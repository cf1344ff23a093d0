"""Every byte verified: CRC64NVME through presigned URLs, against SeaweedFS, with a
proxy in front that flips bytes in bodies on their way in and out."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from awscrt import checksums

from asyncpresign import Download, RetryPolicy, Signer, TransferEngine, Upload

from .proxy import Rule, S3Proxy

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
RETRY = RetryPolicy(attempts=4, initial_backoff=0.0, max_backoff=0.0)


def crc64(data: bytes) -> str:
    return base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()


async def stored_checksum(signer: Signer, bucket: str, key: str) -> tuple[str | None, str | None]:
    """What the server itself says (asked directly, not through the code under test)."""
    head = await signer.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return head.get("ChecksumCRC64NVME"), head.get("ChecksumType")


async def stored_bytes(signer: Signer, bucket: str, key: str) -> bytes:
    answer = await signer.client.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        data: bytes = await body.read()
    return data


async def test_an_upload_signs_its_crc64nvme_and_the_server_keeps_that_value(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(70_000)
    (tmp_path / "f").write_bytes(data)
    async with TransferEngine(retry=RETRY) as engine:
        sign = signer.sign_later("PUT", bucket, "k")
        result = await engine.upload(None, tmp_path / "f", sign=sign)
    assert result.verified == "crc64nvme"
    assert (await stored_checksum(signer, bucket, "k"))[0] == crc64(data)


async def test_a_signed_put_carries_the_checksum_header_the_fast_path_signed(
    signer: Signer, bucket: str
) -> None:
    request = await signer.presign_put(bucket, "k", checksum=("crc64nvme", crc64(b"abc")))
    assert dict(request.headers) == {"x-amz-checksum-crc64nvme": crc64(b"abc")}
    assert "x-amz-checksum-crc64nvme" in request.url.lower()  # among the signed headers


async def test_a_body_not_matching_its_signed_checksum_is_refused_by_the_server(
    signer: Signer, bucket: str
) -> None:
    request = await signer.presign_put(bucket, "k", checksum=("crc64nvme", crc64(b"abc")))
    # The engine's own check off (it refuses such a body before sending, see
    # test_torn_uploads): this is the server's.
    async with TransferEngine(retry=RetryPolicy(attempts=1), checksum=None) as engine:
        with pytest.raises(Exception) as info:  # noqa: PT011 - any refusal; checked below
            await engine.upload(request, b"abd")
    assert getattr(info.value, "status", None) == 400
    with pytest.raises(Exception):  # noqa: PT011, B017 - the key must not exist
        await signer.client.head_object(Bucket=bucket, Key="k")


async def test_a_byte_flipped_in_a_signed_put_is_refused_then_sent_again(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    (tmp_path / "f").write_bytes(data)
    proxy.add(Rule("PUT", "/k", times=1, flip="request"))
    async with TransferEngine(retry=RETRY) as engine:
        sign = proxied.sign_later("PUT", bucket, "k")
        result = await engine.upload(None, tmp_path / "f", sign=sign)
    assert proxy.flipped == 1
    assert result.attempts == 2
    assert await stored_bytes(signer, bucket, "k") == data


async def test_a_byte_flipped_in_an_unsigned_put_is_caught_afterwards_and_sent_again(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str
) -> None:
    """A presigned PUT without a signed checksum: the server stores what came, but
    says what it stored (its checksum, or here, SeaweedFS, an ETag that is the
    MD5), and the engine, having hashed what it sent, sends the body again."""
    data = os.urandom(200_000)
    proxy.add(Rule("PUT", "/k", times=1, flip="request"))
    request = await proxied.presign_put(bucket, "k")
    async with TransferEngine(retry=RETRY) as engine:
        result = await engine.upload(request, data)
    assert proxy.flipped == 1
    assert result.attempts == 2
    assert result.verified == "md5"
    assert await stored_bytes(signer, bucket, "k") == data


async def test_a_multipart_upload_completes_with_the_files_own_full_object_crc64nvme(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * MiB + 3)
    (tmp_path / "big").write_bytes(data)
    async with TransferEngine(part_size=5 * MiB, retry=RETRY) as engine:
        result = await engine.upload_large(signer, bucket, "big", tmp_path / "big")
    assert result.verified == "crc64nvme"
    assert await stored_checksum(signer, bucket, "big") == (crc64(data), "FULL_OBJECT")


async def test_a_byte_flipped_in_one_part_is_refused_and_only_that_part_sent_again(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB)
    (tmp_path / "big").write_bytes(data)
    proxy.add(Rule("PUT", "partNumber=2", times=1, flip="request"))
    async with TransferEngine(part_size=5 * MiB, retry=RETRY) as engine:
        result = await engine.upload_large(proxied, bucket, "big", tmp_path / "big")
    assert proxy.flipped == 1
    assert proxy.count(lambda m, t: m == "PUT" and "partNumber=2" in t) == 2
    assert proxy.count(lambda m, t: m == "PUT" and "partNumber=1" in t) == 1
    assert result.attempts == 2
    assert await stored_bytes(signer, bucket, "big") == data
    assert await stored_checksum(signer, bucket, "big") == (crc64(data), "FULL_OBJECT")


async def test_a_byte_flipped_in_a_get_body_is_caught_and_fetched_again(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(500_000)
    await signer.client.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="CRC64NVME")
    proxy.add(Rule("GET", "/k", times=1, flip="response"))
    async with TransferEngine(retry=RETRY) as engine:
        result = await engine.download(await proxied.presign_get(bucket, "k"), tmp_path / "f")
    assert proxy.flipped == 1
    assert result.attempts == 2
    assert result.verified == "crc64nvme"
    assert (tmp_path / "f").read_bytes() == data


async def test_a_get_corrupted_on_every_attempt_fails_as_integrity_error_and_writes_nothing(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    from asyncpresign import IntegrityError

    data = os.urandom(100_000)
    await signer.client.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="CRC64NVME")
    proxy.add(Rule("GET", "/k", times=99, flip="response"))
    async with TransferEngine(retry=RETRY) as engine:
        with pytest.raises(IntegrityError, match="CRC64NVME") as info:
            await engine.download(await proxied.presign_get(bucket, "k"), tmp_path / "f")
    assert info.value.attempts == RETRY.attempts
    assert os.listdir(tmp_path) == []


async def test_a_ranged_download_of_a_multipart_object_is_checked_by_its_ranges_combined_crcs(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(16 * MiB + 11)
    (tmp_path / "big").write_bytes(data)
    async with TransferEngine(part_size=5 * MiB, retry=RETRY) as engine:
        await engine.upload_large(signer, bucket, "big", tmp_path / "big")
    # One range (not the first, whole answer) comes back with a byte flipped.
    proxy.add(Rule("GET", "/big", times=1, flip="response", ranged=True))
    async with TransferEngine(
        part_size=5 * MiB, multipart_threshold=5 * MiB, retry=RETRY
    ) as engine:
        result = await engine.download(await proxied.presign_get(bucket, "big"), tmp_path / "got")
    assert proxy.flipped == 1
    assert result.verified == "crc64nvme"
    assert (tmp_path / "got").read_bytes() == data
    # The whole object was fetched again: the first answer twice.
    assert proxy.count(lambda m, t: m == "GET" and "/big" in t) >= 2 * 4


async def test_a_soak_with_5_percent_of_bodies_corrupted_ends_with_nothing_corrupt(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    count = 1000
    source = tmp_path / "src"
    source.mkdir()
    payloads = {f"o{i}": os.urandom(2000 + i) for i in range(count)}
    for name, data in payloads.items():
        (source / name).write_bytes(data)
    proxy.add(Rule("PUT", "/o", times=10**6, flip="request", probability=0.05))
    proxy.add(Rule("GET", "/o", times=10**6, flip="response", probability=0.05))
    soak_retry = RetryPolicy(attempts=8, initial_backoff=0, max_backoff=0)
    async with TransferEngine(retry=soak_retry) as engine:
        up = await engine.run(
            Upload(None, source / name, sign=proxied.sign_later("PUT", bucket, name))
            for name in payloads
        )
        dest = tmp_path / "dest"
        dest.mkdir()
        down = await engine.run(
            Download(None, dest / name, sign=proxied.sign_later("GET", bucket, name))
            for name in payloads
        )
    assert proxy.flipped > count // 20  # both ways, about 5% each
    assert up.succeeded == count
    assert down.succeeded == count
    assert all(r.verified == "crc64nvme" for r in up.results + down.results)
    for name, data in payloads.items():
        assert (dest / name).read_bytes() == data
        assert (await stored_checksum(signer, bucket, name))[0] == crc64(data)


async def test_a_copy_carries_the_sources_checksum_into_the_destinations_signed_put(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str
) -> None:
    data = os.urandom(400_000)
    await signer.client.put_object(
        Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="CRC64NVME"
    )
    # The copy's PUT has a byte flipped on the way: the destination refuses it.
    proxy.add(Rule("PUT", "/dst", times=1, flip="request"))
    async with TransferEngine(retry=RETRY) as engine:
        result = await engine.copy(
            None, None,
            source_sign=signer.sign_later("GET", bucket, "src"),
            dest_sign=proxied.sign_later("PUT", bucket, "dst"),
        )
    assert proxy.flipped == 1
    assert result.attempts == 2
    assert result.verified == "crc64nvme"
    assert await stored_bytes(signer, bucket, "dst") == data
    assert (await stored_checksum(signer, bucket, "dst"))[0] == crc64(data)


async def test_a_resumed_download_checks_the_whole_file_and_a_bad_second_half_starts_over(
    tmp_path: Path,
) -> None:
    """The first answer breaks off half-way and is kept; the resumed second half
    comes back with a byte flipped. The check, fed the kept first half and then
    the second, fails; the download starts over from zero and ends right."""
    from .fault_server import Fault, FaultServer

    data = os.urandom(3 * MiB + 5)
    async with FaultServer(checksums=True) as server, TransferEngine(retry=RETRY) as engine:
        server.objects["k"] = data
        server.script("k", [Fault("drop", after_bytes=MiB + 3), Fault("corrupt")])
        result = await engine.download(
            server.request("GET", "k"), tmp_path / "f", resume=True
        )
    assert result.attempts == 3
    assert result.verified == "crc64nvme"
    assert (tmp_path / "f").read_bytes() == data
    assert os.listdir(tmp_path) == ["f"]


async def test_a_server_refusing_the_checksum_header_gets_an_error_naming_the_option() -> None:
    from asyncpresign import HTTPStatusError, PresignedRequest

    from .fault_server import Fault, FaultServer

    async with FaultServer() as server, TransferEngine(retry=RETRY) as engine:
        server.script("k", [Fault("status", 501, code="NotImplemented")])
        plain = server.request("PUT", "k")
        request = PresignedRequest(
            method="PUT", url=plain.url, expires_at=plain.expires_at,
            headers={"x-amz-checksum-crc64nvme": crc64(b"x")},
        )
        with pytest.raises(HTTPStatusError, match="--checksum md5") as info:
            await engine.upload(request, b"x")
    assert info.value.status == 501
    assert "checksum='md5'" in str(info.value)


async def test_a_copy_whose_source_bytes_arrive_corrupted_leaves_no_destination_object(
    proxied: Signer, signer: Signer, proxy: S3Proxy, bucket: str
) -> None:
    """The destination URL carries no checksum (as on Dask workers, which get
    URLs, not a Signer): the engine checks the bytes against the source's
    checksum and holds the last piece back, so the server never stores them."""
    from asyncpresign import IntegrityError

    data = os.urandom(400_000)
    await signer.client.put_object(
        Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="CRC64NVME"
    )
    proxy.add(Rule("GET", "/src", times=1, flip="response"))
    async with TransferEngine(retry=RetryPolicy(attempts=1)) as engine:
        with pytest.raises(IntegrityError, match="CRC64NVME"):
            await engine.copy(
                await proxied.presign_get(bucket, "src"), await signer.presign_put(bucket, "dst")
            )
    assert proxy.flipped == 1
    listed = await signer.client.list_objects_v2(Bucket=bucket, Prefix="dst")
    assert listed.get("KeyCount", 0) == 0
