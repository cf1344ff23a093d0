"""Sizes and boundaries, where an off-by-one corrupts data while reporting
success: against SeaweedFS, byte for byte (SHA-256) and with the check each
transfer says it passed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncpresign import RetryPolicy, Signer, TransferEngine
from asyncpresign._files import partial_path
from asyncpresign._parts import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    choose_part_size,
    plan_parts,
    plan_ranges,
)

from .conftest import FAST_RETRY

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PART = 5 * MiB  # S3's smallest part: the boundaries stay cheap
#: One attempt: a download that needs a second to succeed fails here.
ONE_ATTEMPT = RetryPolicy(attempts=1)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def put_with_checksum(signer: Signer, bucket: str, key: str, data: bytes) -> tuple[str, str]:
    """Store ``data`` with a CRC64NVME, asked of the server directly; its ETag and CRC."""
    await signer.client.put_object(
        Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="CRC64NVME"
    )
    head = await signer.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return head["ETag"], head["ChecksumCRC64NVME"]


async def leave_partial(dest: Path, data: bytes, sidecar: dict[str, object]) -> None:
    """What an interrupted resumable download leaves: its bytes so far and its sidecar."""
    partial = anyio.Path(partial_path(str(dest), unique=False))
    await partial.write_bytes(data)
    await anyio.Path(f"{partial}.json").write_text(json.dumps(sidecar))


# -- part planning (pure) -------------------------------------------------------------------

#: The sizes where a plan changes shape: S3's limits, and one byte either side.
EDGES = [
    0, 1, MIN_PART_SIZE - 1, MIN_PART_SIZE, MIN_PART_SIZE + 1,
    MAX_PARTS * MIN_PART_SIZE, MAX_PARTS * MIN_PART_SIZE + 1,
    MAX_PARTS * 8 * MiB, MAX_PARTS * 8 * MiB + 1, 5 * 1024**4, 5 * 1024**4 + 1,
    MAX_OBJECT_SIZE - 1, MAX_OBJECT_SIZE,
]


@settings(max_examples=200, deadline=None)
@given(
    size=st.one_of(st.sampled_from(EDGES), st.integers(0, MAX_OBJECT_SIZE)),
    preferred=st.one_of(
        st.sampled_from([1, MIN_PART_SIZE - 1, MIN_PART_SIZE, MAX_PART_SIZE, MAX_PART_SIZE + 1]),
        st.integers(1, 6 * 1024**3),
    ),
)
def test_every_plan_covers_its_object_exactly_within_s3s_limits(size: int, preferred: int) -> None:
    part_size = choose_part_size(size, preferred)
    parts = plan_parts(size, preferred)
    assert MIN_PART_SIZE <= part_size <= MAX_PART_SIZE
    assert 1 <= len(parts) <= MAX_PARTS
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert [p.offset for p in parts] == [i * part_size for i in range(len(parts))]
    assert all(p.length == part_size for p in parts[:-1])  # every part but the last is whole
    assert 0 < parts[-1].length <= part_size or size == 0
    assert sum(p.length for p in parts) == size
    # The preferred size (clamped into S3's) is kept whenever it fits in 10,000 parts.
    clamped = min(max(preferred, MIN_PART_SIZE), MAX_PART_SIZE)
    if -(-size // clamped) <= MAX_PARTS:
        assert part_size == clamped
    # A ranged download of the object asks for exactly the parts' bytes.
    assert list(plan_ranges(size, part_size)) == [
        (p.offset, p.offset + p.length - 1) for p in parts if p.length
    ]


# -- round trips at the part boundary, odd chunk sizes ---------------------------------------


@pytest.mark.parametrize("size", [PART, PART + 1, 2 * PART], ids=["part", "part+1", "2-parts"])
async def test_a_multipart_upload_and_ranged_download_at_a_part_boundary_are_byte_exact(
    signer: Signer, bucket: str, tmp_path: Path, size: int
) -> None:
    # 4097: a chunk size that divides no part, range or disk batch.
    data = os.urandom(size)
    source = anyio.Path(tmp_path / "src.bin")
    await source.write_bytes(data)
    dest = tmp_path / "back.bin"
    async with TransferEngine(concurrency=4, retry=FAST_RETRY, chunk_size=4097, part_size=PART,
                              multipart_threshold=PART) as engine:
        up = await engine.upload_large(signer, bucket, "big", source, part_size=PART)
        down = await engine.download(None, dest, sign=signer.sign_later("GET", bucket, "big"))
    assert sha256(await anyio.Path(dest).read_bytes()) == sha256(data)
    assert up.nbytes == down.nbytes == size
    assert up.verified == down.verified == "crc64nvme"


async def test_signed_ranges_ending_at_the_objects_last_byte_are_byte_exact(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    size = PART + 1
    data = os.urandom(size)
    await engine.upload(None, data, sign=signer.sign_later("PUT", bucket, "r"))
    for first in (size - 1, size - 4097, PART, 0):
        dest = tmp_path / f"r{first}"
        sign = signer.sign_later("GET", bucket, "r", Range=f"bytes={first}-{size - 1}")
        result = await engine.download(None, dest, sign=sign)
        assert sha256(await anyio.Path(dest).read_bytes()) == sha256(data[first:])
        assert result.nbytes == size - first


# -- resumed downloads -----------------------------------------------------------------------


@pytest.mark.parametrize("check", ["crc64nvme", "md5", "none"])
async def test_a_resumed_download_whose_partial_holds_the_whole_object_is_checked_and_kept(
    signer: Signer, bucket: str, tmp_path: Path, check: str
) -> None:
    # A run stopped after its last write but before the rename leaves every
    # byte in the partial file; the resume then asks for bytes=SIZE-, which the
    # unchanged object answers 416 (If-Match held). That is no changed object:
    # the file is checked (remembered checksum, else the ETag's MD5) and kept.
    data = os.urandom(PART + 1)
    etag, crc = await put_with_checksum(signer, bucket, "whole", data)
    sidecar: dict[str, object] = {"etag": etag}
    if check == "crc64nvme":
        sidecar["check"] = ["crc64nvme", crc]
    elif check == "md5":
        sidecar["check"] = ["md5", etag.strip('"')]
    dest = tmp_path / "whole.bin"
    await leave_partial(dest, data, sidecar)
    async with TransferEngine(retry=ONE_ATTEMPT) as engine:
        result = await engine.download(
            None, dest, sign=signer.sign_later("GET", bucket, "whole"), resume=True
        )
    assert sha256(await anyio.Path(dest).read_bytes()) == sha256(data)
    assert result.nbytes == len(data)
    assert result.verified == ("crc64nvme" if check == "crc64nvme" else "md5")
    assert sorted(os.listdir(tmp_path)) == ["whole.bin"]  # no partial, no sidecar


@pytest.mark.parametrize("held", [4096, PART], ids=["one-chunk", "one-part"])
async def test_a_resumed_download_from_a_partial_ending_on_a_boundary_is_byte_exact(
    signer: Signer, bucket: str, tmp_path: Path, held: int
) -> None:
    data = os.urandom(PART + 1)
    etag, crc = await put_with_checksum(signer, bucket, "cut", data)
    dest = tmp_path / "cut.bin"
    await leave_partial(dest, data[:held], {"etag": etag, "check": ["crc64nvme", crc]})
    async with TransferEngine(retry=ONE_ATTEMPT, chunk_size=4096) as engine:
        result = await engine.download(
            None, dest, sign=signer.sign_later("GET", bucket, "cut"), resume=True
        )
    assert sha256(await anyio.Path(dest).read_bytes()) == sha256(data)
    assert result.verified == "crc64nvme"


async def test_a_whole_partial_that_fails_its_check_is_fetched_again_from_zero(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(PART + 1)
    etag, crc = await put_with_checksum(signer, bucket, "flipped", data)
    dest = tmp_path / "flipped.bin"
    flipped = bytes([data[0] ^ 1]) + data[1:]
    await leave_partial(dest, flipped, {"etag": etag, "check": ["crc64nvme", crc]})
    async with TransferEngine(retry=RetryPolicy(attempts=2, initial_backoff=0, max_backoff=0)
                              ) as engine:
        result = await engine.download(
            None, dest, sign=signer.sign_later("GET", bucket, "flipped"), resume=True
        )
    assert sha256(await anyio.Path(dest).read_bytes()) == sha256(data)
    assert result.verified == "crc64nvme"
    assert result.attempts == 2


# -- sign put --multipart, transfer, complete ------------------------------------------------


@pytest.mark.parametrize("size", [0, 2 * PART], ids=["empty", "exactly-2-parts"])
async def test_a_signed_multipart_upload_at_a_part_boundary_round_trips_through_the_cli(
    s3: object, bucket: str, signer: Signer, tmp_path: Path, size: int
) -> None:
    from .test_cli import base_env, cli

    env = {**base_env(tmp_path), **s3.env()}  # type: ignore[attr-defined]
    data = os.urandom(size)
    source = anyio.Path(tmp_path / "big.bin")
    await source.write_bytes(data)
    manifest = str(tmp_path / "parts.jsonl")
    cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(source), "--part-size", "5MiB",
        "--manifest", manifest, env=env)
    lines = (await anyio.Path(manifest).read_text()).splitlines()
    assert len(lines) == max(1, -(-size // PART))
    ran = json.loads(cli("transfer", manifest, "--json", env=env).stdout)
    assert ran["succeeded"] == len(lines)
    assert ran["unverified"] == 0
    completed = cli("complete", manifest, env=env)
    assert f"({len(lines)} parts" in completed.stdout
    dest = tmp_path / "back.bin"
    async with TransferEngine(part_size=PART, multipart_threshold=PART) as engine:
        result = await engine.download(None, dest, sign=signer.sign_later("GET", bucket, "big"))
    assert sha256(await anyio.Path(dest).read_bytes()) == sha256(data)
    assert result.verified == "crc64nvme"


# -- sizes on the command line ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["9" * 5000, "٤KiB", "4.5MiB", "-1", "4Ki", ""])
def test_a_size_that_is_no_size_is_refused_in_a_few_words(tmp_path: Path, text: str) -> None:
    # Exit 2 and the option's own message, never a traceback, nor the 5,000
    # digits echoed back (int() refuses them with a ValueError of its own).
    from .test_cli import base_env, cli

    source = tmp_path / "f.txt"
    source.write_bytes(b"x")
    done = cli("upload", str(source), "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9",
               f"--chunk-size={text}", env=base_env(tmp_path), check=2)
    last = done.stderr.strip().splitlines()[-1]
    assert "--chunk-size: not a size" in last
    assert len(last) < 200


@pytest.mark.parametrize(
    ("option", "text", "says"),
    [
        ("--expires", "9" * 5000, "not a duration"),
        ("--expires", "٤h", "not a duration"),
        ("--concurrency", "9" * 5000, "not a whole number"),
        ("--concurrency", "٤", "not a whole number"),
    ],
)
def test_a_duration_or_count_that_is_none_is_refused_in_a_few_words(
    tmp_path: Path, option: str, text: str, says: str
) -> None:
    from .test_cli import base_env, cli

    source = tmp_path / "f.txt"
    source.write_bytes(b"x")
    done = cli("upload", str(source), "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9",
               f"{option}={text}", env=base_env(tmp_path), check=2)
    last = done.stderr.strip().splitlines()[-1]
    assert f"{option}: {says}" in last
    assert len(last) < 200
