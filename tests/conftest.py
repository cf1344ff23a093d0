from __future__ import annotations

import contextlib
import datetime as dt
import resource
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from asyncpresign import RetryPolicy, Signer, TransferEngine
from asyncpresign.testing import LocalS3

from .proxy import S3Proxy
from .rawserver import serve  # noqa: F401 - the raw-server fixture, for every module


@pytest.fixture
def anyio_backend() -> str:
    # aiohttp and aiobotocore run on asyncio only.
    return "asyncio"


@pytest.fixture(scope="session")
def s3() -> Iterator[LocalS3]:
    """One real SeaweedFS for the whole run, verifying signatures."""
    with LocalS3() as server:
        yield server


@pytest.fixture
async def signer(s3: LocalS3) -> AsyncIterator[Signer]:
    async with s3.signer() as signer:
        yield signer


@pytest.fixture
async def bucket(signer: Signer) -> str:
    name = f"test-{secrets.token_hex(6)}"
    await signer.ensure_bucket(name)
    return name


@contextlib.contextmanager
def address_space_capped(headroom: int) -> Iterator[None]:
    """This process's address space limited (RLIMIT_AS) to what it maps now plus
    ``headroom``, for a test of memory that must not grow with a claimed size:
    a regression fails it with a MemoryError instead of filling the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    cap = mapped + headroom if hard == resource.RLIM_INFINITY else min(mapped + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


#: Retries without waiting, so fault tests stay fast.
FAST_RETRY = RetryPolicy(attempts=4, initial_backoff=0.0, max_backoff=0.0)


@pytest.fixture
async def engine() -> AsyncIterator[TransferEngine]:
    async with TransferEngine(concurrency=8, retry=FAST_RETRY) as engine:
        yield engine


async def object_exists(signer: Signer, bucket: str, key: str) -> bool:
    """Ask the server directly (not through the code under test) whether a key exists."""
    try:
        await signer.client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise
    return True


#: Every piece of metadata a copy carries, as put_object parameters (a
#: Content-Type SeaweedFS would not guess, names of mixed case, runs of spaces).
FULL_METADATA: dict[str, Any] = {
    "ContentType": "application/vnd.asyncpresign+csv; charset=utf-8",
    "ContentEncoding": "gzip",
    "CacheControl": "public, max-age=600",
    "ContentDisposition": 'attachment; filename="report 2026.csv"',
    "ContentLanguage": "fr-CA",
    "Expires": dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
    "Metadata": {"owner": "team-a", "Mixed-Case": "value  with  spaces", "n": "1"},
}
#: What a HEAD says of each of them.
DESCRIBED = ("ContentType", "ContentEncoding", "CacheControl", "ContentDisposition",
             "ContentLanguage", "ExpiresString", "Metadata")


async def described(signer: Signer, bucket: str, key: str) -> dict[str, Any]:
    """The metadata a HEAD of ``bucket/key`` shows, asked of the server directly."""
    head = await signer.client.head_object(Bucket=bucket, Key=key)
    return {name: head.get(name) for name in DESCRIBED}


@pytest.fixture
async def proxy(s3: LocalS3) -> AsyncIterator[S3Proxy]:
    """A proxy in front of SeaweedFS that counts requests and can disrupt them."""
    async with S3Proxy(s3.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
async def proxied(s3: LocalS3, proxy: S3Proxy) -> AsyncIterator[Signer]:
    """A Signer that signs for the proxy, which forwards to SeaweedFS."""
    async with Signer(
        endpoint_url=proxy.endpoint_url, region=s3.region, access_key=s3.access_key,
        secret_key=s3.secret_key, addressing_style="path",
    ) as signer:
        yield signer
