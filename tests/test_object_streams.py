"""Objects to and from streams (TransferEngine.upload_stream / download_stream)
against SeaweedFS, through a fault-injecting proxy and misbehaving raw servers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from asyncpresign import (
    DownloadStream,
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    RetryPolicy,
    Signer,
    TransferEngine,
    TransferError,
)

from .proxy import Rule, S3Proxy
from .rawserver import Reply, Request, Serve, head_bytes

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


async def pieces(data: bytes, size: int, seen: list[int] | None = None) -> AsyncIterator[bytes]:
    """``data`` in pieces of ``size`` bytes, noting in ``seen`` how much was handed out."""
    for start in range(0, len(data), size):
        if seen is not None:
            seen.append(start + min(size, len(data) - start))
        yield data[start : start + size]
        await asyncio.sleep(0)


async def stored(signer: Signer, bucket: str, key: str) -> bytes:
    answer = await signer.client.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        data: bytes = await body.read()
    return data


async def open_uploads(signer: Signer, bucket: str) -> list[Any]:
    return [u async for u in signer.list_multipart_uploads(bucket)]


async def test_a_short_stream_goes_up_as_one_put_with_its_checksum_checked(
    signer: Signer, bucket: str, engine: TransferEngine
) -> None:
    data = os.urandom(100_000)
    result = await engine.upload_stream(signer, bucket, "short.bin", pieces(data, 7_000))
    assert result.ok
    assert result.nbytes == len(data)
    assert result.verified == "crc64nvme"
    assert await stored(signer, bucket, "short.bin") == data


async def test_an_empty_stream_stores_an_empty_object(
    signer: Signer, bucket: str, engine: TransferEngine
) -> None:
    result = await engine.upload_stream(signer, bucket, "empty.bin", pieces(b"", 10))
    assert result.nbytes == 0
    assert await stored(signer, bucket, "empty.bin") == b""


async def test_a_long_stream_goes_up_as_a_multipart_upload_whose_whole_checksum_is_checked(
    signer: Signer, bucket: str
) -> None:
    data = os.urandom(13 * MiB + 12345)
    async with TransferEngine(part_size=5 * MiB) as engine:
        # Pieces that do not divide the part size: parts are cut across them.
        result = await engine.upload_stream(
            signer, bucket, "long.bin", pieces(data, 1_000_003), content_type="text/plain",
            metadata={"origin": "pipe"},
        )
    assert result.nbytes == len(data)
    assert result.verified == "crc64nvme"  # FULL_OBJECT, echoed by the completion
    assert await stored(signer, bucket, "long.bin") == data
    head = await signer.client.head_object(Bucket=bucket, Key="long.bin")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"origin": "pipe"}
    assert await open_uploads(signer, bucket) == []


async def test_a_stream_is_read_no_further_ahead_than_its_parts_in_flight(
    signer: Signer, bucket: str
) -> None:
    data = os.urandom(30 * MiB)
    seen: list[int] = []
    sent: list[int] = []
    ahead: list[int] = []

    def progress(event: Any) -> None:
        sent.append(event.transferred)
        ahead.append(seen[-1] - event.transferred)

    async with TransferEngine(part_size=5 * MiB, concurrency=16) as engine:
        await engine.upload_stream(
            signer, bucket, "paced.bin", pieces(data, 256 * 1024, seen), parts_in_flight=2,
            progress=progress,
        )
        assert engine.statistics().max_in_flight <= 2
    # Read ahead of what was sent: the parts in flight (2) and one piece.
    assert max(ahead) <= 2 * 5 * MiB + 256 * 1024
    assert await stored(signer, bucket, "paced.bin") == data


async def test_a_stream_that_fails_midway_aborts_its_upload_and_stores_nothing(
    signer: Signer, bucket: str
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield os.urandom(MiB)
        raise OSError("the pipe broke")

    async with TransferEngine(part_size=5 * MiB) as engine:
        with pytest.raises(OSError, match="the pipe broke"):
            await engine.upload_stream(signer, bucket, "broken.bin", broken())
    assert await open_uploads(signer, bucket) == []
    listed = await signer.client.list_objects_v2(Bucket=bucket, Prefix="broken")
    assert listed.get("KeyCount", 0) == 0


async def until_open(signer: Signer, bucket: str) -> None:
    """Wait until the bucket holds an open multipart upload."""
    with anyio.fail_after(30):
        uploads: list[Any] = []
        while not uploads:
            await asyncio.sleep(0.05)
            uploads = await open_uploads(signer, bucket)


async def test_a_cancelled_stream_upload_is_aborted(signer: Signer, bucket: str) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield os.urandom(MiB)
            started.set()
            await asyncio.sleep(0.01)

    async with TransferEngine(part_size=5 * MiB) as engine:
        task = asyncio.ensure_future(engine.upload_stream(signer, bucket, "cut.bin", endless()))
        await started.wait()
        await until_open(signer, bucket)
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await open_uploads(signer, bucket) == []


async def test_a_stream_of_something_other_than_bytes_is_refused(
    signer: Signer, bucket: str, engine: TransferEngine
) -> None:
    async def words() -> AsyncIterator[Any]:
        yield "text"

    with pytest.raises(InvalidArgumentError, match="must yield bytes"):
        await engine.upload_stream(signer, bucket, "words.bin", words())
    with pytest.raises(InvalidArgumentError, match="async iterable"):
        await engine.upload_stream(signer, bucket, "words.bin", [b"x"])  # type: ignore[arg-type]


async def put(signer: Signer, bucket: str, key: str, data: bytes) -> None:
    await signer.client.put_object(
        Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="CRC64NVME"
    )


async def read_stream(engine: TransferEngine, signer: Signer, bucket: str, key: str,
                      **options: Any) -> tuple[bytes, Any]:
    async with engine.download_stream(
        None, sign=signer.sign_later("GET", bucket, key), **options
    ) as stream:
        data = b"".join([piece async for piece in stream])
    return data, stream.result


async def test_a_small_object_streams_whole_and_verified(
    signer: Signer, bucket: str, engine: TransferEngine
) -> None:
    data = os.urandom(300_000)
    await put(signer, bucket, "small.bin", data)
    got, result = await read_stream(engine, signer, bucket, "small.bin")
    assert got == data
    assert result.verified == "crc64nvme"
    assert result.nbytes == len(data)


async def test_a_large_object_streams_in_order_from_parallel_ranges(
    signer: Signer, bucket: str
) -> None:
    data = os.urandom(23 * MiB + 5)
    await put(signer, bucket, "large.bin", data)
    async with TransferEngine(part_size=5 * MiB) as engine:
        got, result = await read_stream(engine, signer, bucket, "large.bin", parts_in_flight=3)
        assert engine.statistics().max_in_flight <= 3
    assert got == data
    assert result.verified == "crc64nvme"


async def test_a_stream_download_resumes_after_cut_connections(
    signer: Signer, proxied: Signer, proxy: S3Proxy, bucket: str
) -> None:
    data = os.urandom(12 * MiB)
    await put(signer, bucket, "cut.bin", data)
    # The first whole answer and two ranges are cut off halfway.
    proxy.add(Rule("GET", "cut.bin", times=1, cut=True, ranged=False))
    proxy.add(Rule("GET", "cut.bin", times=2, cut=True, ranged=True))
    async with TransferEngine(part_size=5 * MiB) as engine:
        got, result = await read_stream(engine, proxied, bucket, "cut.bin")
    assert got == data
    assert result.verified == "crc64nvme"
    assert result.attempts >= 2


async def test_a_corrupted_stream_download_fails_at_its_end(
    signer: Signer, proxied: Signer, proxy: S3Proxy, bucket: str
) -> None:
    data = os.urandom(11 * MiB)
    await put(signer, bucket, "flip.bin", data)
    proxy.add(Rule("GET", "flip.bin", times=1, flip="response", ranged=True))
    async with TransferEngine(part_size=5 * MiB) as engine:
        with pytest.raises(IntegrityError, match=r"CRC64NVME .* does not match"):
            await read_stream(engine, proxied, bucket, "flip.bin")


async def test_leaving_a_stream_early_stops_its_transfers(
    signer: Signer, bucket: str
) -> None:
    await put(signer, bucket, "early.bin", os.urandom(20 * MiB))
    async with TransferEngine(part_size=5 * MiB) as engine:
        async with engine.download_stream(
            None, sign=signer.sign_later("GET", bucket, "early.bin")
        ) as stream:
            async for _ in stream:
                break
        await asyncio.sleep(0.05)
        assert engine.statistics().in_flight == 0
        assert stream.result is None


async def test_an_object_replaced_during_a_stream_fails_rather_than_mixes(
    signer: Signer, bucket: str
) -> None:
    await put(signer, bucket, "moving.bin", os.urandom(12 * MiB))
    async with TransferEngine(part_size=5 * MiB) as engine:
        stream = engine.download_stream(
            None, sign=signer.sign_later("GET", bucket, "moving.bin"), parts_in_flight=1
        )

        async def replace_while_reading() -> None:
            async with stream:
                async for _ in stream:
                    await put(signer, bucket, "moving.bin", os.urandom(12 * MiB))

        with pytest.raises(HTTPStatusError, match="changed while") as caught:
            await replace_while_reading()
    assert caught.value.status == 412


async def read_all(stream: DownloadStream) -> bytes:
    async with stream:
        return b"".join([piece async for piece in stream])


def no_ranges(data: bytes, cut_first: bool) -> Any:
    """A server that ignores Range (answers 200 with the whole body) and, with
    ``cut_first``, drops the first connection halfway through the body."""
    calls = []

    def answer(request: Request) -> Reply:
        calls.append(request)
        head = head_bytes("HTTP/1.1 200 OK", f"Content-Length: {len(data)}", 'ETag: "v1"')
        if cut_first and len(calls) == 1:
            return Reply([head, data[: len(data) // 2]], close=True)
        return Reply([head, data])

    return answer


async def test_a_server_without_ranges_is_streamed_and_resumed_by_skipping(
    serve: Serve,
) -> None:
    data = os.urandom(12 * MiB)
    server = await serve(no_ranges(data, cut_first=True))
    async with TransferEngine(part_size=5 * MiB) as engine, engine.download_stream(
        f"{server.url}/b/k"
    ) as stream:
        got = b"".join([piece async for piece in stream])
    assert got == data
    assert stream.result is not None
    assert stream.result.verified is None  # "v1" is no MD5: nothing could be checked
    assert len(server.requests) == 2
    assert server.requests[1].header("range") == f"bytes={len(data) // 2}-"


def chunked(data: bytes, piece: int = 65536) -> list[bytes]:
    """``data`` as the chunks of a chunked body, without the last (empty) chunk."""
    return [b"%x\r\n%s\r\n" % (len(data[i : i + piece]), data[i : i + piece])
            for i in range(0, len(data), piece)]


def range_as_200(data: bytes, chunked_first: bool, shift: int = 0) -> Any:
    """A server that drops the first connection halfway through the body (sent
    chunked, or with a Content-Length) and answers ``Range: bytes=N-`` as
    rclone does: a 200 whose Content-Range and body start ``shift`` bytes
    before where they were asked to."""
    calls = []

    def answer(request: Request) -> Reply:
        calls.append(request)
        asked = request.header("range")
        if len(calls) == 1 or asked is None:
            framing = "Transfer-Encoding: chunked" if chunked_first else (
                f"Content-Length: {len(data)}"
            )
            head = head_bytes("HTTP/1.1 200 OK", framing, 'ETag: "v1"')
            half = data[: len(data) // 2]
            return Reply([head, *(chunked(half) if chunked_first else [half])], close=True)
        start = int(asked.removeprefix("bytes=").removesuffix("-")) - shift
        head = head_bytes(
            "HTTP/1.1 200 OK", f"Content-Length: {len(data) - start}",
            f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}", 'ETag: "v1"',
        )
        return Reply([head, data[start:]])

    return answer


@pytest.mark.parametrize("chunked_first", [False, True], ids=["content-length", "chunked"])
async def test_a_stream_resumed_with_a_200_and_content_range_uses_it_as_the_range(
    serve: Serve, chunked_first: bool
) -> None:
    # The body of such a 200 starts at the byte asked for: read as starting at
    # byte 0, the resumed half lost its first N bytes (with a chunked first
    # answer, no checksum and no MD5 ETag, the short stream ended as a success).
    data = os.urandom(12 * MiB)
    server = await serve(range_as_200(data, chunked_first))
    async with TransferEngine(part_size=5 * MiB) as engine, engine.download_stream(
        f"{server.url}/b/k"
    ) as stream:
        got = b"".join([piece async for piece in stream])
    assert got == data
    assert len(server.requests) == 2
    assert server.requests[1].header("range") == f"bytes={len(data) // 2}-"


@pytest.mark.parametrize("shift", [1000, -1000], ids=["earlier", "later"])
async def test_a_stream_resumed_with_a_200_of_another_range_fails_without_wrong_bytes(
    serve: Serve, shift: int
) -> None:
    data = os.urandom(12 * MiB)
    half = len(data) // 2
    server = await serve(range_as_200(data, chunked_first=False, shift=shift))
    got = bytearray()
    retry = RetryPolicy(attempts=3, initial_backoff=0.0, max_backoff=0.0)
    async with TransferEngine(part_size=5 * MiB, retry=retry) as engine:

        async def read_what_comes() -> None:
            async with engine.download_stream(f"{server.url}/b/k") as stream:
                async for piece in stream:
                    got.extend(piece)

        with pytest.raises(IntegrityError) as caught:
            await read_what_comes()
    assert got == data[:half]  # what came before the cut, and nothing after it
    assert f"range request from byte {half}" in str(caught.value)
    assert len(server.requests) == 3  # each resume refused and tried again
    assert all(r.header("range") == f"bytes={half}-" for r in server.requests[1:])


async def test_a_short_body_is_an_error_not_an_end(serve: Serve) -> None:
    data = os.urandom(1000)

    def short(_: Request) -> Reply:
        head = head_bytes("HTTP/1.1 200 OK", "Content-Length: 2000", 'ETag: "v1"')
        return Reply([head, data], close=True)

    server = await serve(short)
    async with TransferEngine(retry=RetryPolicy(attempts=2)) as engine:
        with pytest.raises(TransferError, match="1000 of 2000") as caught:
            await read_all(engine.download_stream(f"{server.url}/b/k"))
    assert caught.value.attempts == 2
    assert len(server.requests) == 2


async def test_a_stream_needs_an_open_engine() -> None:
    engine = TransferEngine()
    with pytest.raises(Exception, match="not open"):
        engine.download_stream("http://127.0.0.1:9/b/k")


async def test_a_slow_consumer_holds_back_the_ranges_not_the_memory(
    signer: Signer, proxied: Signer, proxy: S3Proxy, bucket: str
) -> None:
    data = os.urandom(40 * MiB)
    await put(signer, bucket, "slow.bin", data)
    async with TransferEngine(part_size=5 * MiB) as engine, engine.download_stream(
        None, sign=proxied.sign_later("GET", bucket, "slow.bin"), parts_in_flight=2
    ) as stream:
        pieces = aiter(stream)
        first = await anext(pieces)
        await asyncio.sleep(1.0)  # the consumer stalls: no more than 2 ranges are fetched
        asked = proxy.count(lambda method, target: method == "GET" and "slow.bin" in target)
        rest = [piece async for piece in pieces]
    assert asked == 1 + 2  # the first answer and the parts in flight
    assert first + b"".join(rest) == data


async def test_an_empty_object_streams_as_no_bytes_and_verified(
    signer: Signer, bucket: str, engine: TransferEngine
) -> None:
    await put(signer, bucket, "none.bin", b"")
    async with engine.download_stream(
        None, sign=signer.sign_later("GET", bucket, "none.bin")
    ) as stream:
        pieces = [piece async for piece in stream]
    assert pieces == []
    assert stream.result is not None
    assert stream.result.nbytes == 0
    assert stream.result.verified == "crc64nvme"
