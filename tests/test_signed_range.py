"""A presigned GET signed for a Range downloads exactly that range (issue #17, item 8).

The range is part of the signature, so the engine sends it as signed and adds
no Range of its own: the file at the destination is the range's bytes, checked
against the answer's Content-Range and length, or nothing is written at all.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from asyncpresign import (
    Download,
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    PresignedRequest,
    RetryPolicy,
    Signer,
    TransferEngine,
)
from asyncpresign._checks import (
    check_range_answer,
    parse_range_spec,
    resolve_range,
)

from .rawserver import Serve, fixed

pytestmark = pytest.mark.anyio

DATA = bytes(range(256)) * 4  # 1,024 distinct-looking bytes
MiB = 1024 * 1024


def nothing_at(folder: Path) -> bool:
    return os.listdir(folder) == []


# -- pure: the Range header and the answer to it ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "spec"),
    [("bytes=10-19", (10, 19)), ("bytes=90-", (90, None)), ("bytes=-5", (None, 5)),
     ("bytes=0-0", (0, 0))],
)
def test_one_byte_range_is_parsed(value: str, spec: Any) -> None:
    assert parse_range_spec(value) == spec


@pytest.mark.parametrize(
    "value",
    ["bytes=1-2,5-6", "bytes=5-2", "items=1-2", "bytes=-0", "bytes=+1-2", "bytes=0x1-2",
     "bytes=1_0-20", "bytes=" + "9" * 20 + "-", "bytes=²-3", "bytes=", ""],
)
def test_anything_but_one_byte_range_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="not one byte range"):
        parse_range_spec(value)


@pytest.mark.parametrize(
    ("spec", "total", "expected"),
    [((10, 19), 100, (10, 19)), ((90, 200), 100, (90, 99)), ((None, 5), 100, (95, 99)),
     ((None, 500), 100, (0, 99)), ((100, None), 100, None), ((None, 3), 0, None)],
)
def test_a_range_resolves_against_the_object_size_as_http_says(
    spec: Any, total: int, expected: Any
) -> None:
    assert resolve_range(spec, total) == expected


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (206, {"Content-Range": "bytes 0-9/100", "Content-Length": "10"}),  # wrong start
        (206, {"Content-Range": "bytes 10-29/100", "Content-Length": "20"}),  # too long
        (206, {"Content-Range": "bytes 10-19/*", "Content-Length": "10"}),  # size unknown
        (206, {"Content-Range": "bytes 10-19/100", "Content-Length": "11"}),
        (206, {"Content-Length": "10"}),  # no Content-Range
        (200, {"Content-Length": "100"}),  # the Range was ignored
    ],
)
def test_an_answer_that_is_not_exactly_the_signed_range_is_an_integrity_error(
    status: int, headers: dict[str, str]
) -> None:
    with pytest.raises(IntegrityError):
        check_range_answer((10, 19), status, headers, "u")


def test_a_whole_answer_is_accepted_when_the_range_is_the_whole_object() -> None:
    assert check_range_answer((0, None), 200, {"Content-Length": "100"}, "u") == 100


# -- the Signer refuses what the engine could not download exactly ------------------------


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "botocore"])
async def test_presign_get_refuses_a_range_of_several_pieces_before_signing(
    fast: bool,
) -> None:
    async with Signer(region="us-east-1", access_key="AKIDEXAMPLE",
                      secret_key="x" * 40, fast_signing=fast) as signer:
        with pytest.raises(InvalidArgumentError, match="not one byte range"):
            await signer.presign_get("some-bucket", "k", Range="bytes=0-1,5-6")


# -- against SeaweedFS -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_header", "expected"),
    [("bytes=10-19", DATA[10:20]), ("bytes=1000-", DATA[1000:]), ("bytes=-7", DATA[-7:]),
     ("bytes=1000-5000", DATA[1000:])],
    ids=["first-last", "open-end", "suffix", "past-the-end"],
)
async def test_a_signed_range_downloads_exactly_that_range(
    signer: Signer, bucket: str, engine: TransferEngine, tmp_path: Path,
    range_header: str, expected: bytes,
) -> None:
    await engine.upload(await signer.presign_put(bucket, "r.bin"), DATA)
    request = await signer.presign_get(bucket, "r.bin", Range=range_header)
    result = await engine.download(request, tmp_path / "piece")
    assert result.ok
    assert (tmp_path / "piece").read_bytes() == expected
    assert result.nbytes == len(expected)
    assert result.verified is None  # a range has no checksum of its own to check


async def test_a_signed_range_larger_than_the_ranged_threshold_is_one_stream(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB)
    async with TransferEngine(multipart_threshold=MiB, part_size=MiB) as eng:
        await eng.upload(await signer.presign_put(bucket, "big.bin"), data)
        request = await signer.presign_get(bucket, "big.bin", Range=f"bytes=100-{2 * MiB + 99}")
        batch = await eng.run([Download(request, tmp_path / "piece")])
    assert batch.ok, batch.failed
    assert (tmp_path / "piece").read_bytes() == data[100 : 2 * MiB + 100]


async def test_a_signed_range_past_the_end_fails_with_416_and_writes_nothing(
    signer: Signer, bucket: str, engine: TransferEngine, tmp_path: Path
) -> None:
    await engine.upload(await signer.presign_put(bucket, "short.bin"), DATA)
    request = await signer.presign_get(bucket, "short.bin", Range="bytes=5000-6000")
    with pytest.raises(HTTPStatusError) as caught:
        await engine.download(request, tmp_path / "piece")
    assert caught.value.status == 416
    assert caught.value.attempts == 1
    assert nothing_at(tmp_path)


async def test_a_signed_range_cannot_be_resumed_and_nothing_is_sent(
    serve: Serve, tmp_path: Path
) -> None:
    server = await serve(fixed(206, b"x" * 10, "Content-Range: bytes 10-19/100"))
    async with TransferEngine() as eng:
        with pytest.raises(InvalidArgumentError, match="cannot be resumed"):
            await eng.download(ranged_request(server.url), tmp_path / "piece", resume=True)
    assert server.requests == []
    assert nothing_at(tmp_path)


# -- a server that answers something else ------------------------------------------------------


def ranged_request(url: str) -> PresignedRequest:
    return PresignedRequest(
        method="GET", url=url + "/b/k?X-Amz-Signature=s", headers={"Range": "bytes=10-19"},
        expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )


@pytest.mark.parametrize(
    ("status", "body", "lines"),
    [
        (206, b"x" * 10, ["Content-Range: bytes 0-9/100"]),
        (200, b"x" * 100, []),
        (206, b"x" * 5, ["Content-Range: bytes 10-14/100"]),
    ],
    ids=["other-range", "whole-object", "shorter-range"],
)
async def test_a_server_answering_another_range_leaves_no_file(
    serve: Serve, tmp_path: Path, status: int, body: bytes, lines: list[str]
) -> None:
    server = await serve(fixed(status, body, *lines))
    retry = RetryPolicy(attempts=2, initial_backoff=0.0, max_backoff=0.0)
    async with TransferEngine(retry=retry) as eng:
        with pytest.raises(IntegrityError, match="signed Range"):
            await eng.download(ranged_request(server.url), tmp_path / "piece")
    assert nothing_at(tmp_path)
    # The signed Range went out as signed, never replaced by one of the engine's.
    heads = [r.head.decode("latin-1").lower() for r in server.requests]
    assert heads
    assert all("range: bytes=10-19\r\n" in h for h in heads)
    assert all(h.count("range:") == 1 for h in heads)


async def test_a_signed_range_is_neither_streamed_nor_copied_and_nothing_is_sent(
    serve: Serve,
) -> None:
    """A stream read the range's answer as the object from byte 0: 20 attempts
    over 106 s, then an IntegrityError blaming the server; a copy failed on
    "HTTP 206 Partial Content". Both take whole objects: refused at once."""
    from asyncpresign import InvalidArgumentError, PresignedRequest

    server = await serve(fixed(206, b"0123456789", "Content-Range: bytes 10-19/100",
                               'ETag: "abc"'))
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    ranged = PresignedRequest(method="GET", url=f"{server.url}/k?X-Amz-Signature=s",
                              headers={"Range": "bytes=10-19"}, expires_at=expires)
    put = PresignedRequest(method="PUT", url=f"{server.url}/d?X-Amz-Signature=s",
                           expires_at=expires)
    async with TransferEngine() as eng:

        async def read_all() -> None:
            async with eng.download_stream(ranged) as stream:
                async for _ in stream:
                    pass

        with pytest.raises(InvalidArgumentError, match="cannot be streamed"):
            await read_all()
        with pytest.raises(InvalidArgumentError, match="cannot be copied"):
            await eng.copy(ranged, put)
    assert server.requests == []
