"""Streaming copies: a presigned GET piped into a presigned PUT, no local file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from asyncpresign import (
    Copy,
    HTTPStatusError,
    MetadataError,
    Signer,
    TransferEngine,
    TransferError,
    copy_objects,
)
from asyncpresign.testing import LocalS3

from .conftest import FAST_RETRY, FULL_METADATA, described, object_exists
from .fault_server import Fault, FaultServer
from .proxy import Rule, S3Proxy
from .rawserver import Reply, Request, Serve

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


# -- metadata travels with the copy --------------------------------------------------------


async def test_a_copy_keeps_every_piece_of_the_source_metadata(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    other = bucket + "-m"
    await signer.ensure_bucket(other)
    await signer.client.put_object(Bucket=bucket, Key="src", Body=b"a,b\n1,2\n", **FULL_METADATA)
    result = await engine.copy(
        None, None,
        source_sign=signer.sign_later("GET", bucket, "src"),
        dest_sign=signer.sign_later("PUT", other, "dst"),
    )
    assert result.ok
    assert result.nbytes == 8
    source = await described(signer, bucket, "src")
    assert source["Metadata"] == {"owner": "team-a", "mixed-case": "value  with  spaces", "n": "1"}
    assert source["ExpiresString"] == "Tue, 06 May 2031 07:08:09 GMT"
    assert await described(signer, other, "dst") == source


async def test_copy_objects_keeps_metadata_between_two_servers(
    signer: Signer, bucket: str
) -> None:
    with LocalS3() as second:
        async with second.signer() as dest_signer, TransferEngine(retry=FAST_RETRY) as engine:
            await dest_signer.ensure_bucket("dest-bucket")
            variants = [
                FULL_METADATA,
                {"ContentType": "image/png", "Metadata": {"only": "this"}},
                {"CacheControl": "no-store"},
            ]
            for i, extra in enumerate(variants):
                await signer.client.put_object(Bucket=bucket, Key=f"m{i}", Body=b"x" * i, **extra)
            result = await copy_objects(
                signer, dest_signer, engine,
                [((bucket, f"m{i}"), ("dest-bucket", f"c/m{i}")) for i in range(len(variants))],
            )
            assert result.succeeded == len(variants), result.failed
            for i in range(len(variants)):
                assert await described(dest_signer, "dest-bucket", f"c/m{i}") == await described(
                    signer, bucket, f"m{i}"
                )


async def test_a_copy_told_not_to_keep_metadata_stores_none(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="src", Body=b"abc", **FULL_METADATA)
    result = await copy_objects(
        signer, signer, engine, [((bucket, "src"), (bucket, "bare"))], keep_metadata=False
    )
    assert result.succeeded == 1
    bare = await described(signer, bucket, "bare")
    assert bare["ContentType"] != FULL_METADATA["ContentType"]  # the server's own guess
    assert {k: v for k, v in bare.items() if k != "ContentType"} == {
        "ContentEncoding": None, "CacheControl": None, "ContentDisposition": None,
        "ContentLanguage": None, "ExpiresString": None, "Metadata": {},
    }


async def test_a_copy_whose_put_expired_is_re_signed_with_the_metadata(
    proxied: Signer, proxy: S3Proxy, signer: Signer, bucket: str
) -> None:
    # All but Content-Encoding: the test proxy (aiohttp.web) would un-gzip the body.
    metadata = {k: v for k, v in FULL_METADATA.items() if k != "ContentEncoding"}
    await signer.client.put_object(Bucket=bucket, Key="src", Body=b"late", **metadata)
    # The first PUT is held until its 1-second URL has really expired; SeaweedFS
    # refuses it, and the engine must sign it again, metadata and all.
    proxy.add(Rule("PUT", "/late", times=1, delay=2.2))
    async with TransferEngine(retry=FAST_RETRY) as engine:
        result = await engine.copy(
            None, None,
            source_sign=signer.sign_later("GET", bucket, "src"),
            dest_sign=proxied.sign_later("PUT", bucket, "late", expires_in=1),
        )
    assert result.attempts == 2
    puts = [t for m, t in proxy.seen if m == "PUT" and "/late" in t]
    assert len(puts) == 2
    assert puts[0] != puts[1]  # a new signature
    assert await described(signer, bucket, "late") == await described(signer, bucket, "src")


#: Source answers, by key: the header lines each carries beside its body.
HOSTILE = {
    "good": [b"Content-Type: text/x-good", b"X-Amz-Meta-Fine: yes"],
    # A bare LF ends the line: two headers, of which only x-amz-meta-* travels.
    "split": [b"X-Amz-Meta-A: a\nX-Amz-Acl: public-read"],
    "control": [b"X-Amz-Meta-A: a\x01b"],
    "non-ascii": ["X-Amz-Meta-A: caf\u00e9".encode()],
    "long": [b"X-Amz-Meta-A: " + b"x" * 5000],
    "three-kb": [b"X-Amz-Meta-M%d: " % i + b"v" * 1000 for i in range(3)],
    "twice": [b"X-Amz-Meta-A: 1", b"x-amz-meta-a: 2"],
    "cr": [b"X-Amz-Meta-A: a\rX-Amz-Acl: public-read"],
}


def hostile_answer(request: Request) -> Reply:
    key = request.target.split("?", 1)[0].rsplit("/", 1)[-1]
    body = key.encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: \"%s\"\r\n" % (
        len(body), hashlib.md5(body).hexdigest().encode()
    )
    return Reply([head + b"".join(line + b"\r\n" for line in HOSTILE[key]) + b"\r\n" + body])


async def test_a_source_with_metadata_that_cannot_travel_fails_its_copy_alone(
    serve: Serve, signer: Signer, bucket: str
) -> None:
    raw = await serve(hostile_answer)
    async with Signer(
        endpoint_url=raw.url, region="us-east-1", access_key="k", secret_key="s",
        addressing_style="path",
    ) as source, TransferEngine(retry=FAST_RETRY) as engine:
        result = await copy_objects(
            source, signer, engine, [(("src", k), (bucket, k)) for k in HOSTILE]
        )
    assert result.total == len(HOSTILE)
    assert result.succeeded == 2
    failed = {r.url.split("?")[0].rsplit("/", 1)[-1]: r for r in result.failed}
    assert set(failed) == set(HOSTILE) - {"good", "split"}
    for key in ("control", "non-ascii", "long", "three-kb", "twice"):
        error = failed[key].error
        assert isinstance(error, MetadataError), (key, error)
        assert failed[key].attempts == 1  # not retried: the source would say the same
        assert f"/src/{key}" in str(error)  # names the source
    assert "control character" in str(failed["control"].error)
    assert "non-ASCII" in str(failed["non-ascii"].error)
    assert "5000 characters" in str(failed["long"].error)
    assert "user metadata" in str(failed["three-kb"].error)
    assert "more than once" in str(failed["twice"].error)
    # aiohttp's parser refuses a CR inside a value before it reaches the copy.
    assert isinstance(failed["cr"].error, TransferError)
    for key in failed:
        assert not await object_exists(signer, bucket, key), key  # nothing half-sent
    good = await described(signer, bucket, "good")
    assert (good["ContentType"], good["Metadata"]) == ("text/x-good", {"fine": "yes"})
    assert (await described(signer, bucket, "split"))["Metadata"] == {"a": "a"}
    acl = await signer.client.get_object_acl(Bucket=bucket, Key="split")
    assert not any(
        g["Grantee"].get("URI", "").endswith("AllUsers") for g in acl.get("Grants", [])
    )
