"""The Signer against the real SeaweedFS, and without a server where none is needed."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from asyncpresign import (
    InvalidArgumentError,
    NoCredentialsError,
    PresignedRequest,
    Signer,
)
from asyncpresign.testing import LocalS3

pytestmark = pytest.mark.anyio


async def test_put_returns_the_headers_the_client_must_send(signer: Signer, bucket: str) -> None:
    md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    request = await signer.presign_put(
        bucket, "k", content_type="text/csv", content_md5=md5, metadata={"color": "blue"}
    )
    assert request.method == "PUT"
    assert request.headers == {
        "Content-Type": "text/csv",
        "Content-MD5": md5,
        "x-amz-meta-color": "blue",
    }
    assert "X-Amz-Signature=" in request.url


async def test_sign_later_signs_a_copys_metadata_beside_its_own_options(
    signer: Signer, bucket: str
) -> None:
    sign = signer.sign_later("PUT", bucket, "k", CacheControl="no-store")
    assert getattr(sign, "signs_metadata", False)
    request = await sign(metadata={
        "ContentType": "text/csv",
        "CacheControl": "max-age=60",  # the sign_later option wins
        "Expires": dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "Metadata": {"owner": "a"},
    })
    assert request.headers == {
        "Content-Type": "text/csv",
        "Cache-Control": "no-store",
        "x-amz-meta-owner": "a",
        "Expires": "Wed, 02 Jan 2030 03:04:05 GMT",
    }
    signed = request.url.split("X-Amz-SignedHeaders=")[1].split("&")[0]
    assert signed == "cache-control%3Bcontent-type%3Bexpires%3Bhost%3Bx-amz-meta-owner"
    plain = await sign()
    assert plain.headers == {"Cache-Control": "no-store"}
    # Options given as presign_put's keywords win too (not "given twice").
    keyworded = signer.sign_later("PUT", bucket, "k", content_type="text/x", metadata={"b": "2"})
    request = await keyworded(metadata={"ContentType": "text/csv", "Metadata": {"owner": "a"}})
    assert request.headers == {"Content-Type": "text/x", "x-amz-meta-b": "2"}


async def test_get_asks_for_the_objects_checksum_by_default(signer: Signer, bucket: str) -> None:
    request = await signer.presign_get(bucket, "k")
    assert request.method == "GET"
    assert dict(request.headers) == {"x-amz-checksum-mode": "ENABLED"}
    assert "X-Amz-SignedHeaders=host%3Bx-amz-checksum-mode" in request.url


async def test_a_get_for_a_browser_link_can_go_without_headers(
    signer: Signer, s3: LocalS3, bucket: str
) -> None:
    request = await signer.presign_get(bucket, "k", ChecksumMode=None)
    assert dict(request.headers) == {}
    assert "X-Amz-SignedHeaders=host&" in request.url
    async with s3.signer(checksum=None) as plain:
        assert dict((await plain.presign_get(bucket, "k")).headers) == {}


async def test_expires_at_is_an_aware_datetime_expires_in_from_now(
    signer: Signer, bucket: str
) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    request = await signer.presign_get(bucket, "k", expires_in=dt.timedelta(minutes=5))
    assert request.expires_at.tzinfo is not None
    delta = (request.expires_at - before).total_seconds()
    assert 298 <= delta <= 301
    assert "X-Amz-Expires=300" in request.url


async def test_s3_options_pass_through_to_the_url(signer: Signer, bucket: str) -> None:
    request = await signer.presign_get(
        bucket, "k", ResponseContentDisposition='attachment; filename="a b.txt"'
    )
    assert "response-content-disposition=attachment" in request.url


async def test_unknown_s3_option_is_a_clear_value_error(signer: Signer, bucket: str) -> None:
    with pytest.raises(InvalidArgumentError, match="NotAParameter"):
        await signer.presign_get(bucket, "k", NotAParameter=1)


@pytest.mark.parametrize("expires_in", [0, 8 * 24 * 3600, dt.timedelta(days=8)])
async def test_expiry_outside_sigv4_limits_raises_at_signing(
    signer: Signer, expires_in: float | dt.timedelta
) -> None:
    with pytest.raises(InvalidArgumentError, match="7 days"):
        await signer.presign_put("bucket", "k", expires_in=expires_in)


async def test_invalid_bucket_and_empty_key_are_rejected(signer: Signer) -> None:
    # Not "Bad_Bucket" as before issue #17: legacy us-east-1 names may have
    # capitals and underscores, and are signed for now.
    with pytest.raises(InvalidArgumentError, match=r"invalid bucket name 'bad\.\.bucket'"):
        await signer.presign_get("bad..bucket", "k")
    with pytest.raises(InvalidArgumentError, match="must not be empty"):
        await signer.presign_put("good-bucket", "")


async def test_post_adds_prefilled_fields_to_the_policy(signer: Signer, bucket: str) -> None:
    post = await signer.presign_post(
        bucket,
        "uploads/${filename}",
        fields={"Content-Type": "image/png", "x-amz-meta-owner": "ann"},
        content_length_range=(1, 1024),
    )
    policy = json.loads(base64.b64decode(post.fields["policy"]))
    conditions = policy["conditions"]
    assert {"Content-Type": "image/png"} in conditions
    assert {"x-amz-meta-owner": "ann"} in conditions
    assert ["content-length-range", 1, 1024] in conditions
    assert post.fields["key"] == "uploads/${filename}"


async def test_post_keeps_a_callers_own_condition_for_a_field(
    signer: Signer, bucket: str
) -> None:
    post = await signer.presign_post(
        bucket,
        "k",
        fields={"Content-Type": "image/png"},
        conditions=[["starts-with", "$Content-Type", "image/"]],
    )
    conditions = json.loads(base64.b64decode(post.fields["policy"]))["conditions"]
    assert ["starts-with", "$Content-Type", "image/"] in conditions
    assert {"Content-Type": "image/png"} not in conditions


@pytest.mark.parametrize("bounds", [(5, 1), (-1, 10), ("a", 3)])
async def test_post_with_a_bad_length_range_is_rejected(
    signer: Signer, bounds: tuple[int, int]
) -> None:
    with pytest.raises(InvalidArgumentError, match="content_length_range"):
        await signer.presign_post("good-bucket", "k", content_length_range=bounds)


async def test_ensure_bucket_creates_once(signer: Signer) -> None:
    name = f"ensure-{os.getpid()}-{os.urandom(3).hex()}"
    assert await signer.ensure_bucket(name) is True
    assert await signer.ensure_bucket(name) is False


async def test_signer_takes_credentials_from_the_environment(
    s3: LocalS3, monkeypatch: pytest.MonkeyPatch, bucket: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    async with Signer(endpoint_url=s3.endpoint_url, region="us-east-1") as env_signer:
        request = await env_signer.presign_get(bucket, "k")
    assert f"X-Amz-Credential={s3.access_key}%2F" in request.url


async def test_no_credentials_anywhere_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    async with Signer(endpoint_url="http://127.0.0.1:9", region="us-east-1") as lonely:
        with pytest.raises(NoCredentialsError, match="no AWS credentials"):
            await lonely.presign_get("some-bucket", "k")


def test_half_a_key_pair_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="both access_key and secret_key"):
        Signer(access_key="AK")


def test_bad_endpoint_and_addressing_style_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="endpoint_url"):
        Signer(endpoint_url="localhost:9000")
    with pytest.raises(InvalidArgumentError, match="addressing_style"):
        Signer(addressing_style="sideways")  # type: ignore[arg-type]


async def test_aws_auto_addressing_uses_the_regional_virtual_host() -> None:
    async with Signer(region="eu-west-1", access_key="AK", secret_key="SK") as aws:
        plain = await aws.presign_get("my-bucket", "k")
        dotted = await aws.presign_get("my.bucket", "k")
    assert plain.url.startswith("https://my-bucket.s3.eu-west-1.amazonaws.com/k?")
    # A dotted name cannot be virtual-hosted over TLS: path style on the regional host.
    assert dotted.url.startswith("https://s3.eu-west-1.amazonaws.com/my.bucket/k?")


async def test_repr_of_signer_and_requests_hide_secrets(s3: LocalS3, bucket: str) -> None:
    async with Signer(
        endpoint_url=s3.endpoint_url,
        region="us-east-1",
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        session_token="TOKEN-SECRET-123",
    ) as signer:
        request = await signer.presign_get(bucket, "k")
        post = await signer.presign_post(bucket, "k")
        text = repr(signer) + repr(request) + repr(post)
    signature = request.url.split("X-Amz-Signature=")[1]
    assert s3.secret_key not in text
    assert "TOKEN-SECRET-123" not in text
    assert signature not in text
    assert post.fields["x-amz-signature"] not in text


def test_presigned_request_headers_are_read_only() -> None:
    request = PresignedRequest(
        method="PUT", url="http://h/k", headers={"a": "b"},
        expires_at=dt.datetime.now(dt.timezone.utc),
    )
    with pytest.raises(TypeError):
        request.headers["a"] = "c"  # type: ignore[index]


def test_the_region_comes_from_aws_region_as_other_sdks_read_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert Signer().region == "eu-west-3"
    assert Signer(region="us-west-2").region == "us-west-2"  # an explicit one wins
    monkeypatch.delenv("AWS_REGION")
    assert Signer().region is None  # botocore's own chain decides, once open
