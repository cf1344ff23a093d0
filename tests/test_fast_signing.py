"""The Signer's fast path: the same requests botocore would sign, and working ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import string
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncpresign import Download, PresignedRequest, Signer, TransferEngine, Upload
from asyncpresign._sigv4 import QuerySigner
from tests.botocore_clock import frozen_botocore_clock, request_of

NOW = dt.datetime(2026, 11, 28, 12, 34, 56, tzinfo=dt.timezone.utc)

CONFIGS = [
    {"region": "eu-west-1"},
    {"region": "us-east-1", "addressing_style": "path"},
    {"region": "ap-southeast-2", "session_token": "FwoGZXIvYXdzE+/tok=="},
    {"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9000"},
    {
        "region": "eu-central-1",
        "endpoint_url": "https://s3.example.com",
        "addressing_style": "virtual",
    },
]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # One loop for the module's signers (asyncio.Runner is 3.11+; 3.10 is supported).
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.fixture(scope="module")
def signer_pairs(loop: asyncio.AbstractEventLoop) -> Iterator[list[tuple[Signer, Signer]]]:
    pairs = []
    for config in CONFIGS:
        keys = {"access_key": "AKIDEXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEX"}
        fast = Signer(**keys, **config)  # type: ignore[arg-type]
        slow = Signer(**keys, **config, fast_signing=False)  # type: ignore[arg-type]
        loop.run_until_complete(fast.open())
        loop.run_until_complete(slow.open())
        pairs.append((fast, slow))
    yield pairs
    for fast, slow in pairs:
        loop.run_until_complete(fast.aclose())
        loop.run_until_complete(slow.aclose())


def frozen_clock() -> Any:
    """Both paths read the same fixed time: ours through _now, botocore's through auth."""
    return mock.patch.multiple(
        "asyncpresign._signer",
        _now=mock.Mock(return_value=NOW),
        _current_second=mock.Mock(return_value=int(NOW.timestamp())),
    ), frozen_botocore_clock(NOW)


keys = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=60
).filter(lambda k: len(k.encode()) <= 1024) | st.sampled_from(
    ["a b", "a+b=c&d", "//x", "/lead", "trail/", "./x/../y", "tab\there", "ünï/日本", "%2F"]
)
buckets = st.sampled_from(
    [
        "my-bucket", "my.dotted.bucket", "b12", "x" * 63,
        # Accepted since issue #17: legacy us-east-1 names, aliases, directory buckets.
        "Legacy_Bucket", "x" * 100, "ap-abc123-s3alias", "olap-abc--ol-s3",
        "my-bucket--usw2-az1--x-s3",
    ]
)
header_values = st.text(alphabet=string.ascii_letters + string.digits + " /;=-_.", max_size=30)
# Content types with parameters, among them the one botocore leaves unsigned.
content_types = header_values | st.sampled_from(
    [
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded",
        "text/plain; charset=utf-8",
        'text/html;charset="utf-8"',
        "multipart/form-data; boundary=----x",
    ]
)
# Metadata names of mixed case; none two that differ only in case (refused).
metadata = st.dictionaries(
    st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=8),
    header_values,
    max_size=3,
).filter(lambda m: len({name.lower() for name in m}) == len(m))


# Aware (any offset) and naive (UTC to botocore) datetimes, with microseconds.
expires_values = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9998, 12, 31),
    timezones=st.none() | st.timezones() | st.just(dt.timezone.utc),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    operation = draw(st.sampled_from(["get", "put", "part"]))
    options: dict[str, Any] = {}
    if operation == "get":
        if draw(st.booleans()):
            options["ResponseContentDisposition"] = draw(header_values)
        if draw(st.booleans()):
            options["ResponseContentType"] = draw(header_values)
    elif operation == "put":
        # As the Signer's arguments or as botocore parameters in the options.
        by_argument = draw(st.booleans())
        if draw(st.booleans()):
            options["content_type" if by_argument else "ContentType"] = draw(content_types)
        if draw(st.booleans()):
            options["metadata" if by_argument else "Metadata"] = draw(metadata)
        if draw(st.booleans()):
            options["CacheControl"] = "max-age=60"
        # What a copy carries from its source's answer, Expires as the instant.
        for name in ("ContentEncoding", "ContentDisposition", "ContentLanguage"):
            if draw(st.booleans()):
                options[name] = draw(header_values)
        if draw(st.booleans()):
            options["Expires"] = draw(expires_values)
    else:
        options["upload_id"] = draw(st.text(alphabet=string.ascii_letters + "-_.", min_size=1))
        options["part_number"] = draw(st.integers(1, 10_000))
    return operation, options


async def sign(signer: Signer, operation: str, bucket: str, key: str,
               expires: int, options: dict[str, Any]) -> PresignedRequest:
    if operation == "get":
        return await signer.presign_get(bucket, key, expires_in=expires, **options)
    if operation == "put":
        return await signer.presign_put(bucket, key, expires_in=expires, **options)
    return await signer.presign_upload_part(
        bucket, key, options["upload_id"], options["part_number"], expires_in=expires
    )


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=st.integers(0, len(CONFIGS) - 1),
    bucket=buckets,
    key=keys,
    expires=st.integers(1, 604800),
    request=requests(),
)
def test_fast_path_signs_byte_for_byte_what_aiobotocore_signs(
    loop: asyncio.AbstractEventLoop,
    signer_pairs: list[tuple[Signer, Signer]],
    pair: int,
    bucket: str,
    key: str,
    expires: int,
    request: tuple[str, dict[str, Any]],
) -> None:
    operation, options = request
    fast, slow = signer_pairs[pair]
    ours, botocores = frozen_clock()
    no_fallback = mock.patch.object(
        fast, "_botocore_presign", side_effect=AssertionError("fell back to botocore")
    )
    with ours, botocores:
        with no_fallback:  # really signed by the fast path
            quick = loop.run_until_complete(sign(fast, operation, bucket, key, expires, options))
        reference = loop.run_until_complete(sign(slow, operation, bucket, key, expires, options))
    assert request_of(quick.url) == request_of(reference.url)
    assert dict(quick.headers) == dict(reference.headers)
    assert quick.expires_at == reference.expires_at
    assert quick.method == reference.method
    # Every header signed is handed out (host comes with the URL).
    signed = parse_qs(urlsplit(quick.url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert set(signed) - {"host"} <= {name.lower() for name in quick.headers}


def test_presign_many_equals_signing_one_by_one(
    loop: asyncio.AbstractEventLoop, signer_pairs: list[tuple[Signer, Signer]]
) -> None:
    fast, slow = signer_pairs[0]
    names = [f"batch/{i} ü+{i}" for i in range(50)]
    ours, botocores = frozen_clock()
    with ours, botocores:
        many = loop.run_until_complete(
            fast.presign_many("PUT", "my-bucket", names, ContentType="text/plain")
        )
        one_by_one = [
            loop.run_until_complete(slow.presign_put("my-bucket", k, content_type="text/plain"))
            for k in names
        ]
    assert [request_of(r.url) for r in many] == [request_of(r.url) for r in one_by_one]
    assert all(dict(r.headers) == {"Content-Type": "text/plain"} for r in many)


def test_requests_the_fast_path_does_not_cover_go_through_botocore(
    loop: asyncio.AbstractEventLoop, signer_pairs: list[tuple[Signer, Signer]]
) -> None:
    fast, slow = signer_pairs[0]
    ours, botocores = frozen_clock()
    with ours, botocores, mock.patch.object(
        QuerySigner, "presign", side_effect=AssertionError("fast path used")
    ), mock.patch.object(
        QuerySigner, "presign_many", side_effect=AssertionError("fast path used")
    ), mock.patch.object(
        QuerySigner, "prepare", side_effect=AssertionError("fast path used")
    ):
        quick = loop.run_until_complete(
            fast.presign_put("my-bucket", "k", ServerSideEncryption="AES256", ACL="private")
        )
        # Non-ASCII metadata: botocore rejects it, and so must we (via botocore).
        with pytest.raises(ValueError, match=r"Metadata|ASCII|ascii"):
            loop.run_until_complete(fast.presign_put("my-bucket", "k", metadata={"a": "é"}))
    with ours, botocores:
        reference = loop.run_until_complete(
            slow.presign_put("my-bucket", "k", ServerSideEncryption="AES256", ACL="private")
        )
    assert request_of(quick.url) == request_of(reference.url)
    assert "x-amz-server-side-encryption" in quick.headers


def test_fast_signing_is_on_by_default() -> None:
    assert Signer().fast_signing is True


# -- live ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_presign_many_urls_work_against_seaweedfs(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    names = [f"many/{i:03d} ü+=&.bin" for i in range(150)]
    data = {k: os.urandom(100 + i) for i, k in enumerate(names)}
    puts = await signer.presign_many("PUT", bucket, names, ContentType="application/x-test")
    gets = await signer.presign_many("GET", bucket, names)
    async with TransferEngine(concurrency=16) as engine:
        up = await engine.run(Upload(p, data[k]) for p, k in zip(puts, names, strict=True))
        down = await engine.run(
            Download(g, tmp_path / f"{i}") for i, g in enumerate(gets)
        )
    assert up.succeeded == down.succeeded == len(names)
    for i, k in enumerate(names):
        assert (tmp_path / f"{i}").read_bytes() == data[k]
    head = await signer.client.head_object(Bucket=bucket, Key=names[0])
    assert head["ContentType"] == "application/x-test"


@pytest.mark.anyio
async def test_rotating_credentials_are_read_fresh_for_every_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = tmp_path / "n"
    counter.write_text("0")
    script = tmp_path / "creds.py"
    # Each run hands out a new key that expires in 5 minutes, inside botocore's
    # refresh window, so every signing refreshes, as after a role rotation.
    script.write_text(
        "import datetime, json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1; p.write_text(str(n))\n"
        "exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'ASIAROTATE{n}', "
        "'SecretAccessKey': f'secret{n}', 'SessionToken': f'token{n}', "
        "'Expiration': exp.isoformat()}))\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile rotating]\ncredential_process = {sys.executable} {script}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    async with Signer(profile="rotating", region="us-east-1") as rotating:
        first = await rotating.presign_get("some-bucket", "k", expires_in=60)
        second = await rotating.presign_get("some-bucket", "k", expires_in=60)
    key_of = lambda r: r.url.split("X-Amz-Credential=")[1].split("%2F")[0]  # noqa: E731
    assert key_of(first).startswith("ASIAROTATE")
    assert key_of(first) != key_of(second)
    assert "token" in second.url
