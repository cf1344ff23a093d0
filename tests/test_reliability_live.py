"""Re-signing, Content-MD5, credential lifetimes and secrecy, against SeaweedFS."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import sys
import warnings
from pathlib import Path

import anyio
import pytest

from asyncpresign import (
    CredentialLifetimeError,
    CredentialLifetimeWarning,
    Download,
    HTTPStatusError,
    InvalidArgumentError,
    LocalFileError,
    PresignedRequest,
    Signer,
    TransferEngine,
    Upload,
)
from asyncpresign.testing import LocalS3

from .conftest import object_exists

pytestmark = pytest.mark.anyio


async def test_jobs_signed_late_by_the_signer_round_trip(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "a").write_bytes(b"alpha")
    up = await engine.run(
        [Upload(None, tmp_path / "a", sign=signer.sign_later("PUT", bucket, "a"))]
    )
    down = await engine.run(
        [Download(None, tmp_path / "b", sign=signer.sign_later("GET", bucket, "a"))]
    )
    assert up.ok
    assert down.ok
    assert (tmp_path / "b").read_bytes() == b"alpha"


async def test_url_rejected_as_expired_by_the_server_is_re_signed_and_succeeds(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    await engine.upload(await signer.presign_put(bucket, "k"), b"fresh bytes")
    stale = await signer.presign_get(bucket, "k", expires_in=1)
    await anyio.sleep(2.1)  # let it expire for real; SeaweedFS checks
    # Our clock says it is still good (as with clock skew): only the server's
    # 403 "Request has expired" tells us, and the engine re-signs on it.
    believed = dataclasses.replace(stale, expires_at=stale.expires_at + dt.timedelta(hours=1))
    result = await engine.download(
        believed, tmp_path / "f", sign=signer.sign_later("GET", bucket, "k")
    )
    assert result.attempts == 2
    assert (tmp_path / "f").read_bytes() == b"fresh bytes"


async def test_url_known_to_be_expired_is_re_signed_before_sending(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    await engine.upload(await signer.presign_put(bucket, "k"), b"fresh bytes")
    stale = await signer.presign_get(bucket, "k", expires_in=1)
    await anyio.sleep(1.1)
    result = await engine.download(
        stale, tmp_path / "f", sign=signer.sign_later("GET", bucket, "k")
    )
    assert result.attempts == 1  # no wasted request with the dead URL
    assert (tmp_path / "f").read_bytes() == b"fresh bytes"


async def test_content_md5_is_signed_and_the_etag_checked(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"checked body" * 1000)
    result = await engine.upload(
        None, source, sign=signer.sign_later("PUT", bucket, "md5"), content_md5=True
    )
    assert result.status == 200
    head = await signer.client.head_object(Bucket=bucket, Key="md5")
    assert head["ContentLength"] == 12000


async def test_server_rejects_a_body_whose_md5_differs_from_the_signed_one(
    signer: Signer, engine: TransferEngine, bucket: str
) -> None:
    import base64
    import hashlib

    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    put = await signer.presign_put(bucket, "bad-md5", content_md5=wrong)
    with pytest.raises(LocalFileError, match=r"not the .* signed into its request") as info:
        await engine.upload(put, b"the real body")
    # The server refused it (its answer is the cause); the engine then saw the
    # body is not the one signed, which no retry cures.
    assert isinstance(info.value.__cause__, HTTPStatusError)
    assert info.value.__cause__.code == "BadDigest"
    assert not await object_exists(signer, bucket, "bad-md5")


async def test_content_md5_without_a_way_to_sign_it_is_rejected(engine: TransferEngine) -> None:
    with pytest.raises(InvalidArgumentError, match="content_md5=True needs sign="):
        await engine.upload("http://127.0.0.1:9/k", b"x", content_md5=True)


def _temporary_profile(tmp_path: Path, minutes: int) -> Path:
    """A real credential_process profile whose credentials expire in ``minutes``."""
    expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)).isoformat()
    script = tmp_path / "creds.py"
    script.write_text(
        "import json\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': 'ASIATEMP', "
        f"'SecretAccessKey': 'temp-secret', 'SessionToken': 'temp-token', "
        f"'Expiration': {expiry!r}}}))\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile temp]\ncredential_process = {sys.executable} {script}\n")
    return config


async def test_credentials_that_expire_before_the_url_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(_temporary_profile(tmp_path, minutes=20)))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    async with Signer(profile="temp", region="us-east-1") as signer:
        with pytest.warns(CredentialLifetimeWarning, match="expire"):
            await signer.presign_get("some-bucket", "k", expires_in=3600)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            short = await signer.presign_get("some-bucket", "k", expires_in=600)
    assert "X-Amz-Security-Token=temp-token" in short.url


async def test_require_full_duration_raises_instead_of_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(_temporary_profile(tmp_path, minutes=20)))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    async with Signer(profile="temp", region="us-east-1", require_full_duration=True) as signer:
        with pytest.raises(CredentialLifetimeError, match="expire"):
            await signer.presign_put("some-bucket", "k", expires_in=7200)


async def test_no_secret_token_or_signature_in_logs_reprs_or_errors(
    s3: LocalS3, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "SESSION-TOKEN-" + "x7" * 20
    texts: list[str] = []
    signatures: list[str] = []
    async with s3.signer() as signer, TransferEngine(concurrency=2) as engine:
        await signer.ensure_bucket(bucket)
        put = await signer.presign_put(bucket, "s", content_type="text/plain")
        await engine.upload(put, b"secret stuff")
        get = await signer.presign_get(bucket, "s")
        await engine.download(get, tmp_path / "s")
        post = await signer.presign_post(bucket, "p")
        signatures += [
            put.url.rsplit("=", 1)[1], get.url.rsplit("=", 1)[1], post.fields["x-amz-signature"]
        ]
        texts += [repr(signer), repr(engine), repr(put), repr(get), repr(post)]
        # A failing request's error message, and a failing batch's.
        tampered = PresignedRequest(
            method="GET", url=get.url[:-4] + "0000", expires_at=get.expires_at
        )
        with pytest.raises(HTTPStatusError) as info:
            await engine.download(tampered, tmp_path / "t")
        texts.append(str(info.value))
        batch = await engine.run([Download(tampered, tmp_path / "t")])
        texts.append(str(batch.failed[0].error) + repr(batch))
    async with Signer(
        endpoint_url=s3.endpoint_url, region="us-east-1",
        access_key=s3.access_key, secret_key=s3.secret_key, session_token=token,
    ) as tokened:
        with_token = await tokened.presign_get(bucket, "s")
        texts.append(repr(with_token))
        signatures.append(with_token.url.rsplit("=", 1)[1])
        with pytest.raises(HTTPStatusError) as info:
            await tokened.ensure_bucket("never-made-" + bucket[-6:])
        texts.append(str(info.value))
    everything = caplog.text + "\n".join(texts)
    assert "X-Amz-Signature=REDACTED" in everything  # redaction happened, not silence
    assert s3.secret_key not in everything
    assert token not in everything
    for signature in signatures:
        assert len(signature) == 64
        assert signature not in everything


async def test_retries_are_logged_with_the_url_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from .fault_server import Fault, FaultServer

    caplog.set_level(logging.INFO, logger="asyncpresign")
    async with FaultServer() as server, TransferEngine() as engine:
        server.script("k", [Fault("status", 503, retry_after="0")])
        await engine.upload(server.request("PUT", "k"), b"x")
    assert "retrying PUT" in caplog.text
    assert "X-Amz-Signature=REDACTED" in caplog.text
    assert "s3cr3t" not in caplog.text
    assert json.dumps("s3cr3t") not in caplog.text
