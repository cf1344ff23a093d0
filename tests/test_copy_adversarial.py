"""``copy`` (CLI and ``copy_objects``) against what an attacker or a careless
operator would try: a copy whose destination lies inside its own source (it
would chase its own output), a copy onto itself, folder markers, a source
that corrupts the bytes it sends. Each test pins one rule: the summary, exit
code and ``--json`` are true, and corrupted bytes are never stored as a success."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from asyncpresign import PresignedRequest, Signer, TransferEngine
from asyncpresign.testing import LocalS3

from .conftest import FAST_RETRY
from .fault_server import Fault, FaultServer
from .rawserver import Serve, fixed
from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


async def keys_in(signer: Signer, bucket: str) -> list[str]:
    page = await signer.client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in page.get("Contents", []))


# -- a copy that overlaps its own source -------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("a", "a/sub"),        # into a folder inside itself: it would copy its own copies
        ("a", "a"),            # onto itself
        ("a/", "a/"),
        ("a/x", "a/x"),        # one object, onto itself
        ("a/x", "a/"),         # one object into its own folder: onto itself
        ("a", ""),             # the bucket holds the source: a/a/k would overwrite a/k
        ("", "copy"),          # the whole bucket into a folder of itself
    ],
)
async def test_a_copy_into_its_own_source_is_refused_before_anything_is_written(
    env: dict[str, str], bucket: str, signer: Signer, source: str, target: str
) -> None:
    for key in ("a/x", "a/y", "a/a/k"):
        await signer.client.put_object(Bucket=bucket, Key=key, Body=b"v-" + key.encode())
    before = await keys_in(signer, bucket)
    for extra in ((), ("--dry-run",)):
        done = cli("copy", f"s3://{bucket}/{source}", f"s3://{bucket}/{target}", *extra,
                   env=env, check=2)
        assert "overlap" in done.stderr
        assert "Traceback" not in done.stderr
    assert await keys_in(signer, bucket) == before


async def test_a_copy_beside_its_source_is_not_taken_for_an_overlap(
    env: dict[str, str], bucket: str, signer: Signer
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="a/x", Body=b"1")
    await signer.client.put_object(Bucket=bucket, Key="a-old/y", Body=b"2")
    cli("copy", f"s3://{bucket}/a", f"s3://{bucket}/ab", "--quiet", env=env)
    cli("copy", f"s3://{bucket}/a/x", f"s3://{bucket}/a-old/", "--quiet", env=env)
    assert await keys_in(signer, bucket) == ["a-old/x", "a-old/y", "a/x", "ab/x"]


# -- folder markers -------------------------------------------------------------------------


async def test_a_copy_skips_folder_markers_as_sync_and_its_own_progress_count_do(
    env: dict[str, str], bucket: str, signer: Signer
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="m/file", Body=os.urandom(100))
    await signer.client.put_object(Bucket=bucket, Key="m/empty/", Body=b"")
    await signer.client.put_object(Bucket=bucket, Key="m/zero", Body=b"")
    done = cli("copy", f"s3://{bucket}/m", f"s3://{bucket}/n", "--json", env=env)
    summary = json.loads(done.stdout)
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (2, 2, 0)
    assert [k for k in await keys_in(signer, bucket) if k.startswith("n/")] == [
        "n/file", "n/zero"
    ]
    assert "Traceback" not in done.stderr
    dry = cli("copy", f"s3://{bucket}/m", f"s3://{bucket}/o", "--dry-run", env=env)
    assert "would copy 2 objects" in dry.stdout
    assert "empty/" not in dry.stdout


# -- destinations whose ETag is not the MD5 --------------------------------------------

#: Answers of a destination whose ETag is not the object's MD5: SSE-KMS (an ETag
#: of 32 hex digits that is no MD5 of the bytes), or a server whose ETags are
#: not MD5s at all.
NOT_MD5_ETAGS = {
    "sse-kms": ('ETag: "0123456789abcdef0123456789abcdef"',
                "x-amz-server-side-encryption: aws:kms"),
    "opaque": ('ETag: "0123456789abcdef0123456789abcdef-1"',),
}


@pytest.mark.parametrize("answer", NOT_MD5_ETAGS.values(), ids=NOT_MD5_ETAGS.keys())
async def test_a_copy_to_a_destination_whose_etag_is_no_md5_succeeds_unverified(
    serve: Serve, answer: tuple[str, ...]
) -> None:
    data = os.urandom(100_000)
    dest = await serve(fixed(200, b"", *answer))
    async with FaultServer() as source, TransferEngine(retry=FAST_RETRY) as engine:
        source.objects["src"] = data
        result = await engine.copy(
            source.request("GET", "src"),
            replace(source.request("PUT", "dst"), url=f"{dest.url}/dst?X-Amz-Signature=s"),
        )
    assert (result.ok, result.attempts, result.verified) == (True, 1, None)
    assert dest.bodies == [data]


@pytest.mark.parametrize("size", [100_000, 3 * 1024 * 1024])  # one piece, and many
@pytest.mark.parametrize("answer", NOT_MD5_ETAGS.values(), ids=NOT_MD5_ETAGS.keys())
async def test_a_corrupt_source_body_never_reaches_a_destination_whose_etag_is_no_md5(
    serve: Serve, size: int, answer: tuple[str, ...]
) -> None:
    # The source has no checksum, only an ETag that is its MD5, and the
    # destination's ETag cannot be compared with it: the bytes passing
    # through are all there is to check, before the last of them is sent.
    data = os.urandom(size)
    dest = await serve(fixed(200, b"", *answer))
    async with FaultServer() as source, TransferEngine(retry=FAST_RETRY) as engine:
        source.objects["src"] = data
        source.script("src", [Fault("corrupt")])
        result = await engine.copy(
            source.request("GET", "src"),
            replace(source.request("PUT", "dst"), url=f"{dest.url}/dst?X-Amz-Signature=s"),
        )
    assert result.attempts == 2
    stored = [body for body in dest.bodies if body is not None]
    assert stored == [data]  # the corrupt body was never delivered whole


@pytest.mark.parametrize("answer", NOT_MD5_ETAGS.values(), ids=NOT_MD5_ETAGS.keys())
async def test_an_md5_checked_upload_to_a_destination_whose_etag_is_no_md5_succeeds(
    serve: Serve, answer: tuple[str, ...]
) -> None:
    # The same check serves uploads: into an SSE-KMS bucket every one failed it.
    dest = await serve(fixed(200, b"", *answer))
    put = PresignedRequest(
        method="PUT", url=f"{dest.url}/dst?X-Amz-Signature=s",
        expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )
    async with TransferEngine(retry=FAST_RETRY, checksum="md5") as engine:
        result = await engine.upload(put, b"data")
    assert (result.ok, result.attempts, result.verified) == (True, 1, None)
    assert dest.bodies == [b"data"]


@pytest.mark.parametrize(
    ("target", "stored"),
    [
        ("archive/q3.pdf", "archive/q3.pdf"),  # the key given, as cp and upload take it
        ("archive/", "archive/q3.pdf"),        # into a folder: the object's name added
        ("", "q3.pdf"),                        # the bucket: its root
    ],
)
async def test_one_object_is_copied_to_the_key_given_or_into_the_folder_given(
    env: dict[str, str], bucket: str, signer: Signer, target: str, stored: str
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="docs/q3.pdf", Body=b"q3")
    await signer.client.put_object(Bucket=bucket, Key="docs/q3.pdf.bak", Body=b"old")
    other = f"{bucket}-to"
    await signer.client.create_bucket(Bucket=other)
    done = json.loads(cli("copy", f"s3://{bucket}/docs/q3.pdf", f"s3://{other}/{target}",
                          "--json", env=env).stdout)
    assert (done["succeeded"], done["failed"]) == (1, 0)
    assert await keys_in(signer, other) == [stored]


async def test_a_fixed_put_copy_checks_what_the_destination_stored_when_the_source_has_a_checksum(
    serve: Serve,
) -> None:
    """The source answers with its CRC64NVME and an MD5 ETag; the fixed PUT has no
    checksum signed in, and the destination does not echo one. It stores the
    first body with a bit flipped (its ETag says so): that copy was a success,
    verified by nothing, while the same copy from a source with no checksum was
    caught by the ETag comparison. Now it is caught and sent again."""
    import base64
    import hashlib

    from awscrt import checksums

    from .rawserver import Reply, Request, head_bytes

    data = os.urandom(300_000)
    crc = base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()
    source = await serve(fixed(
        200, data, f'ETag: "{hashlib.md5(data).hexdigest()}"',
        f"x-amz-checksum-crc64nvme: {crc}", "x-amz-checksum-type: FULL_OBJECT",
    ))
    puts: list[int] = []

    def destination(request: Request) -> Reply:
        puts.append(1)
        stored = bytearray(data)
        if len(puts) == 1:
            stored[len(stored) // 2] ^= 1  # the first body arrived (and was kept) damaged
        etag = hashlib.md5(stored).hexdigest()
        return Reply([head_bytes("HTTP/1.1 200 OK", f'ETag: "{etag}"', "Content-Length: 0")])

    dest = await serve(destination)
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    async with TransferEngine(retry=FAST_RETRY) as engine:
        result = await engine.copy(
            PresignedRequest(method="GET", url=f"{source.url}/src?X-Amz-Signature=s",
                             headers={"x-amz-checksum-mode": "ENABLED"}, expires_at=expires),
            PresignedRequest(method="PUT", url=f"{dest.url}/dst?X-Amz-Signature=s",
                             expires_at=expires),
        )
    assert (result.ok, result.attempts, result.verified) == (True, 2, "md5")
    assert len(puts) == 2


async def test_a_checksum_signed_into_the_copy_but_not_said_back_proves_nothing_by_itself(
    serve: Serve,
) -> None:
    """The destination takes the signed x-amz-checksum-crc64nvme without checking
    it or saying it back, and stores the first body with a bit flipped (its MD5
    ETag says so). The copy was reported checked by CRC64NVME, exit 0, with the
    wrong bytes stored; now the ETag is compared with the source's MD5, and the
    copy is sent again."""
    import base64
    import hashlib

    from awscrt import checksums

    from .rawserver import Reply, Request, head_bytes

    data = os.urandom(300_000)
    crc = base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()
    source = await serve(fixed(
        200, data, f'ETag: "{hashlib.md5(data).hexdigest()}"',
        f"x-amz-checksum-crc64nvme: {crc}", "x-amz-checksum-type: FULL_OBJECT",
    ))
    signed: list[str | None] = []

    def destination(request: Request) -> Reply:
        signed.append(request.header("x-amz-checksum-crc64nvme"))
        stored = bytearray(data)
        if len(signed) == 1:
            stored[len(stored) // 2] ^= 1
        etag = hashlib.md5(stored).hexdigest()
        return Reply([head_bytes("HTTP/1.1 200 OK", f'ETag: "{etag}"', "Content-Length: 0")])

    dest = await serve(destination)
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    async with Signer(endpoint_url=dest.url, region="us-east-1", access_key="AKFAKE",
                      secret_key="fake-secret-key", addressing_style="path") as signer, \
            TransferEngine(retry=FAST_RETRY) as engine:
        result = await engine.copy(
            PresignedRequest(method="GET", url=f"{source.url}/src?X-Amz-Signature=s",
                             headers={"x-amz-checksum-mode": "ENABLED"}, expires_at=expires),
            None, dest_sign=signer.sign_later("PUT", "bkt", "dst"),
        )
    assert signed == [crc, crc]  # signed in, each time
    assert (result.ok, result.attempts, result.verified) == (True, 2, "md5")
