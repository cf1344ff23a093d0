"""Presigned multipart uploads and parallel ranged downloads, against SeaweedFS."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio
import pytest

from asyncpresign import (
    HTTPStatusError,
    InvalidArgumentError,
    ProgressEvent,
    Signer,
    TransferEngine,
)

from .conftest import FAST_RETRY
from .fault_server import Fault, FaultServer
from .proxy import Rule, S3Proxy

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


async def pending_uploads(signer: Signer, bucket: str) -> list[str]:
    answer = await signer.client.list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in answer.get("Uploads", [])]


async def test_64_mib_plus_7_uploads_in_8_mib_parts_and_downloads_in_ranges(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(64 * MiB + 7)
    source = tmp_path / "big"
    source.write_bytes(data)
    events: list[ProgressEvent] = []
    async with TransferEngine(part_size=8 * MiB, concurrency=8) as engine:
        up = await engine.upload_large(
            signer, bucket, "big", source, content_md5=True, progress=events.append
        )
        assert up.etag is not None
        assert up.etag.strip('"').endswith("-9")
        assert up.nbytes == len(data)
        assert sum(e.delta for e in events) == len(data)
        assert events[-1].transferred == len(data)

        down_events: list[ProgressEvent] = []
        got = await engine.download(
            await signer.presign_get(bucket, "big"), tmp_path / "copy",
            progress=down_events.append,
        )
    assert got.nbytes == len(data)
    # The first request asks for the whole object (its answer carries the
    # object's checksum); the rest comes as ranges, whose CRCs combine into it.
    assert got.status == 200
    assert got.verified == "crc64nvme"
    assert hashlib.sha256((tmp_path / "copy").read_bytes()).digest() == hashlib.sha256(
        data
    ).digest()
    assert sum(e.delta for e in down_events) == len(data)
    assert sorted(os.listdir(tmp_path)) == ["big", "copy"]
    assert await pending_uploads(signer, bucket) == []


async def test_a_part_failing_twice_is_retried_and_the_upload_completes(
    proxied: Signer, proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(17 * MiB)
    (tmp_path / "src").write_bytes(data)
    proxy.add(Rule("PUT", "partNumber=2&", times=2, status=500))
    async with TransferEngine(part_size=5 * MiB, retry=FAST_RETRY) as engine:
        result = await engine.upload_large(proxied, bucket, "retried", tmp_path / "src")
        assert result.attempts == 3
        await engine.download(await signer.presign_get(bucket, "retried"), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert proxy.count(lambda m, t: m == "PUT" and "partNumber=2&" in t) == 3


async def test_an_expired_part_url_is_re_signed(
    proxied: Signer, proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB)
    (tmp_path / "src").write_bytes(data)
    # Part 2's first request is held until its 4-second URL has really expired;
    # SeaweedFS then refuses it and the engine must sign the part again. (With
    # 1 second, on a loaded machine other URLs expired too before they were used.)
    proxy.add(Rule("PUT", "partNumber=2&", times=1, delay=5.2))
    async with TransferEngine(part_size=5 * MiB) as engine:
        result = await engine.upload_large(
            proxied, bucket, "late", tmp_path / "src", expires_in=4
        )
    assert result.attempts == 2
    part2 = [t for m, t in proxy.seen if m == "PUT" and "partNumber=2&" in t]
    assert len(part2) == 2
    assert part2[0] != part2[1]  # a new signature
    head = await signer.client.head_object(Bucket=bucket, Key="late")
    assert head["ContentLength"] == len(data)


async def test_an_upload_cancelled_halfway_is_aborted(
    proxied: Signer, proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").write_bytes(os.urandom(30 * MiB))
    proxy.add(Rule("PUT", "partNumber=", times=100, delay=0.3))
    async with TransferEngine(part_size=5 * MiB, concurrency=2) as engine:
        with anyio.move_on_after(0.8):
            await engine.upload_large(proxied, bucket, "cancelled", tmp_path / "src")
    assert proxy.count(lambda m, t: m == "POST" and "uploads" in t) == 1  # it had started
    assert proxy.count(lambda m, t: m == "DELETE" and "uploadId=" in t) == 1
    assert await pending_uploads(signer, bucket) == []


async def test_a_part_that_keeps_failing_aborts_the_upload_and_raises(
    proxied: Signer, proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").write_bytes(os.urandom(12 * MiB))
    proxy.add(Rule("PUT", "partNumber=3&", times=99, status=503, code="SlowDown"))
    async with TransferEngine(part_size=5 * MiB, retry=FAST_RETRY) as engine:
        with pytest.raises(HTTPStatusError) as info:
            await engine.upload_large(proxied, bucket, "doomed", tmp_path / "src")
    assert info.value.status == 503
    assert info.value.attempts == FAST_RETRY.attempts
    assert await pending_uploads(signer, bucket) == []


async def test_presigned_parts_can_be_uploaded_by_anyone_and_completed_by_the_signer(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    """The split between machines: parts signed here, sent by a URL holder, completed here."""
    parts = [os.urandom(5 * MiB), os.urandom(123)]
    upload_id = await signer.create_multipart_upload(bucket, "split", ContentType="text/x-a")
    urls = [
        await signer.presign_upload_part(bucket, "split", upload_id, n)
        for n in range(1, len(parts) + 1)
    ]
    etags = [(await engine.upload(url, body)).etag for url, body in zip(urls, parts, strict=True)]
    await signer.complete_multipart_upload(
        bucket, "split", upload_id, [(n, e or "") for n, e in enumerate(etags, start=1)]
    )
    await engine.download(await signer.presign_get(bucket, "split"), tmp_path / "split")
    assert (tmp_path / "split").read_bytes() == b"".join(parts)


async def test_part_numbers_out_of_range_are_rejected(signer: Signer) -> None:
    with pytest.raises(InvalidArgumentError, match="part_number"):
        await signer.presign_upload_part("a-bucket", "k", "upload-id", 10_001)
    with pytest.raises(InvalidArgumentError, match="without gaps"):
        await signer.complete_multipart_upload("a-bucket", "k", "id", [(1, "a"), (3, "b")])


async def test_missing_file_for_upload_large_fails_before_starting(
    proxied: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    async with TransferEngine() as engine:
        with pytest.raises(OSError, match="absent"):
            await engine.upload_large(proxied, bucket, "k", tmp_path / "absent")
    assert proxy.seen == []


async def test_ranged_download_with_a_dropped_range_retries_that_range(tmp_path: Path) -> None:
    data = os.urandom(23 * MiB + 5)
    async with FaultServer() as server, TransferEngine(
        part_size=5 * MiB, retry=FAST_RETRY
    ) as engine:
        server.objects["k"] = data
        server.script("k", [Fault("pass")])  # the first (0-…) range goes through
        server.script("k", [Fault("drop", after_bytes=MiB)])  # one later range drops
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == data
    assert result.attempts == 2
    assert sorted(os.listdir(tmp_path)) == ["f"]


@pytest.mark.parametrize(
    ("settings", "requests"),
    [({}, 2), ({"part_size": 8 * MiB}, 3), ({"multipart_threshold": 24 * MiB}, 1)],
    ids=["default-16-MiB-ranges", "part_size-given", "threshold-above-the-object"],
)
async def test_downloads_come_in_16_mib_ranges_unless_part_size_is_given(
    tmp_path: Path, settings: dict[str, int], requests: int
) -> None:
    data = os.urandom(20 * MiB + 3)
    async with FaultServer() as server, TransferEngine(**settings) as engine:
        server.objects["k"] = data
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
        # Uploads' parts stay 8 MiB whatever the ranges are.
        assert engine.part_size == settings.get("part_size", 8 * MiB)
    assert server.requests[("GET", "k")] == requests
    assert result.nbytes == len(data)
    assert (tmp_path / "f").read_bytes() == data


async def test_server_ignoring_range_falls_back_to_one_stream(tmp_path: Path) -> None:
    data = os.urandom(12 * MiB)
    async with FaultServer() as server, TransferEngine(part_size=5 * MiB) as engine:
        server.objects["k"] = data
        server.script("k", [Fault("ignore_range")])
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.status == 200
    assert server.requests[("GET", "k")] == 1
    assert (tmp_path / "f").read_bytes() == data


async def test_server_answering_a_range_with_200_and_only_its_bytes_is_not_trusted(
    tmp_path: Path,
) -> None:
    data = os.urandom(12 * MiB)
    async with FaultServer() as server, TransferEngine(
        part_size=5 * MiB, multipart_threshold=5 * MiB, verify=False
    ) as engine:
        server.objects["k"] = data
        # The whole first answer passes; the next, a range, comes back as a 200
        # with only the range's bytes and no Content-Range.
        server.script("k", [Fault("pass"), Fault("range_as_200")])
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.status == 200
    assert result.attempts == 2  # that range was asked again
    assert server.requests[("GET", "k")] == 4  # the first part, then three ranges
    assert (tmp_path / "f").read_bytes() == data  # not 5 MiB taken for the whole


async def test_range_answered_with_200_and_a_content_range_is_used_as_a_range(
    tmp_path: Path,
) -> None:
    data = os.urandom(12 * MiB)
    async with FaultServer() as server, TransferEngine(
        part_size=5 * MiB, multipart_threshold=5 * MiB
    ) as engine:
        server.objects["k"] = data
        server.script("k", [Fault("range_as_200_with_content_range")] * 3)
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert server.requests[("GET", "k")] == 3  # three ranges, none asked twice
    assert result.nbytes == len(data)
    assert (tmp_path / "f").read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["f"]


async def test_object_changing_mid_download_fails_cleanly(tmp_path: Path) -> None:
    data = os.urandom(12 * MiB)
    async with FaultServer(delay=0.0) as server, TransferEngine(
        part_size=5 * MiB, concurrency=1
    ) as engine:
        server.objects["k"] = data

        async def change_soon() -> None:
            while server.requests[("GET", "k")] < 1:  # noqa: ASYNC110 - polls another server
                await anyio.sleep(0.001)
            server.objects["k"] = os.urandom(12 * MiB)

        async with anyio.create_task_group() as tg:
            tg.start_soon(change_soon)
            with pytest.raises(HTTPStatusError, match="changed") as info:
                await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert info.value.status == 412
    assert os.listdir(tmp_path) == []


async def test_a_ranged_download_of_an_object_with_an_md5_etag_is_checked_against_it(
    tmp_path: Path,
) -> None:
    data = os.urandom(23 * MiB + 5)
    async with FaultServer() as server, TransferEngine(part_size=5 * MiB) as engine:
        server.objects["k"] = data
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.verified == "md5"
    assert (tmp_path / "f").read_bytes() == data
    assert server.requests[("GET", "k")] >= 3  # the first part, then ranges


async def test_a_range_with_a_flipped_byte_fails_the_md5_and_the_object_is_fetched_again(
    tmp_path: Path,
) -> None:
    data = os.urandom(23 * MiB + 5)
    async with FaultServer() as server, TransferEngine(
        part_size=5 * MiB, retry=FAST_RETRY
    ) as engine:
        server.objects["k"] = data
        server.script("k", [Fault("pass"), Fault("pass"), Fault("corrupt")])
        result = await engine.download(server.request("GET", "k"), tmp_path / "f")
    assert result.verified == "md5"
    assert result.attempts >= 2
    assert (tmp_path / "f").read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["f"]


async def test_the_md5_of_ranges_landing_out_of_order_is_the_files() -> None:
    """Pure: ranges land in any order, some while another is being hashed; the
    digest is the file's, hashed front to back exactly once."""
    import random

    from asyncpresign._ranged import PrefixMd5

    data = os.urandom(40 * 1000 + 17)
    fed: list[tuple[int, int]] = []

    class Partial:
        dest = "f"

        def hash_region(self, offset: int, length: int, update: object) -> None:
            fed.append((offset, length))
            update(data[offset:offset + length])  # type: ignore[operator]

    md5 = PrefixMd5(Partial(), 1000)  # type: ignore[arg-type]
    ranges = [(start, min(start + 1000, len(data))) for start in range(1000, len(data), 1000)]
    random.Random(3).shuffle(ranges)
    async with anyio.create_task_group() as group:
        for start, end in ranges:
            group.start_soon(md5.landed, start, end)
    assert await md5.finish(len(data)) == hashlib.md5(data).hexdigest()
    assert [offset for offset, _ in fed] == sorted(offset for offset, _ in fed)
    assert sum(length for _, length in fed) == len(data)
