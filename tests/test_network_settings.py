"""Network settings of the TransferEngine: proxies (environment and explicit), proxy
credentials, CONNECT tunnels for https, ``~/.netrc`` never read, and TLS trust
(system store, ``AWS_CA_BUNDLE``, a CA file, an ``SSLContext``, verification off).

Proxy tests send real signed requests to the local SeaweedFS through
:class:`tests.forward_proxy.ForwardProxy`; TLS tests use a small aiohttp origin
with a trustme certificate for 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import ssl
import traceback
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
import trustme
from aiohttp import web

from asyncpresign import PresignedRequest, Signer, TransferEngine
from asyncpresign._exceptions import AsyncPresignError, InvalidArgumentError, TransportError
from asyncpresign._transport import no_proxy_matches
from asyncpresign.testing import LocalS3

from .conftest import FAST_RETRY
from .forward_proxy import ForwardProxy
from .sites import start_local_site

pytestmark = pytest.mark.anyio

_ENV_TO_CLEAR = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy",
    "ALL_PROXY", "all_proxy", "AWS_CA_BUNDLE", "REQUEST_METHOD", "NETRC",
)
ORIGIN_BODY = b"fixed bytes from the origin\n" * 200
PASSWORD = "pa55"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA bundle from the machine running the tests (AWS_CA_BUNDLE may be set)."""
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)


# -- an origin server that records each request's headers ------------------------------------


@dataclass
class Origin:
    """GET answers ORIGIN_BODY, PUT stores the body and answers 200; both with an MD5 ETag."""

    ssl_context: ssl.SSLContext | None = None
    headers: list[dict[str, str]] = field(default_factory=list)
    puts: list[bytes] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def request(self, method: Literal["GET", "PUT"], key: str = "k") -> PresignedRequest:
        return PresignedRequest(
            method=method,
            url=f"{self.base}/{key}?X-Amz-Signature=0123abcd",
            expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
        )

    async def __aenter__(self) -> Origin:
        app = web.Application()
        app.router.add_route("*", "/{key:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = await start_local_site(self._runner, self.ssl_context)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        if request.method == "GET":
            return web.Response(body=ORIGIN_BODY, headers={"ETag": _etag(ORIGIN_BODY)})
        if request.method == "PUT":
            body = await request.read()
            self.puts.append(body)
            return web.Response(status=200, headers={"ETag": _etag(body)})
        return web.Response(status=405)


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_pem(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def https_origin(ca: trustme.CA) -> AsyncIterator[Origin]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with Origin(ssl_context=context) as origin:
        yield origin


@pytest.fixture
async def http_origin() -> AsyncIterator[Origin]:
    async with Origin() as origin:
        yield origin


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy() as server:
        yield server


# -- helpers --------------------------------------------------------------------------------


async def s3_roundtrip(
    engine: TransferEngine, signer: Signer, bucket: str, tmp_path: Path, key: str = "k"
) -> None:
    """Upload to SeaweedFS and download back through ``engine``; the bytes must match."""
    data = os.urandom(50_000)
    await engine.upload(await signer.presign_put(bucket, key), data)
    dest = tmp_path / f"{key}.out"
    await engine.download(await signer.presign_get(bucket, key), dest)
    assert dest.read_bytes() == data


def assert_proxied_s3(proxy: ForwardProxy, s3: LocalS3, bucket: str, key: str = "k") -> None:
    lines = proxy.lines
    assert any(line.startswith(f"PUT {s3.endpoint_url}/{bucket}/{key}?") for line in lines), lines
    assert any(line.startswith(f"GET {s3.endpoint_url}/{bucket}/{key}?") for line in lines), lines
    assert all(seen.target.startswith(f"{s3.endpoint_url}/") for seen in proxy.seen), lines
    assert all(line.endswith(" HTTP/1.1") for line in lines), lines


async def origin_download(engine: TransferEngine, origin: Origin, tmp_path: Path) -> None:
    dest = tmp_path / "origin.out"
    await engine.download(origin.request("GET"), dest)
    assert dest.read_bytes() == ORIGIN_BODY


async def origin_upload(engine: TransferEngine, origin: Origin) -> None:
    data = b"uploaded over tls\n" * 100
    await engine.upload(origin.request("PUT"), data)
    assert origin.puts[-1] == data


# -- proxies from the environment -----------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
async def test_http_proxy_env_sends_s3_upload_and_download_through_proxy(
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    proxy: ForwardProxy,
    s3: LocalS3,
    signer: Signer,
    bucket: str,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    async with TransferEngine(retry=FAST_RETRY) as engine:
        await s3_roundtrip(engine, signer, bucket, tmp_path)
    assert_proxied_s3(proxy, s3, bucket)


async def test_proxy_env_is_read_when_the_engine_opens_not_when_built(
    monkeypatch: pytest.MonkeyPatch,
    proxy: ForwardProxy,
    s3: LocalS3,
    signer: Signer,
    bucket: str,
    tmp_path: Path,
) -> None:
    engine = TransferEngine(retry=FAST_RETRY)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with engine:
        await s3_roundtrip(engine, signer, bucket, tmp_path)
    assert_proxied_s3(proxy, s3, bucket)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.0/8"])
async def test_no_proxy_env_for_the_s3_host_bypasses_the_proxy(
    no_proxy: str,
    monkeypatch: pytest.MonkeyPatch,
    proxy: ForwardProxy,
    signer: Signer,
    bucket: str,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    async with TransferEngine(retry=FAST_RETRY) as engine:
        await s3_roundtrip(engine, signer, bucket, tmp_path)
    assert proxy.seen == []


async def test_explicit_proxy_argument_is_used_without_any_env(
    proxy: ForwardProxy, s3: LocalS3, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    async with TransferEngine(proxy=proxy.url, retry=FAST_RETRY) as engine:
        await s3_roundtrip(engine, signer, bucket, tmp_path)
    assert_proxied_s3(proxy, s3, bucket)


async def test_proxy_false_ignores_http_proxy_env(
    monkeypatch: pytest.MonkeyPatch,
    proxy: ForwardProxy,
    signer: Signer,
    bucket: str,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    async with TransferEngine(proxy=False, retry=FAST_RETRY) as engine:
        await s3_roundtrip(engine, signer, bucket, tmp_path)
    assert proxy.seen == []


# -- proxy credentials ----------------------------------------------------------------------

#: aiohttp 3.14 deprecates BasicAuth, which _split_proxy calls; that warning is pinned
#: on its own (test_proxy_credentials_emit_no_warning) so these tests check the rest.
_IGNORE_BASICAUTH_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning"
)


@pytest.mark.parametrize("where", ["argument", "env"])
async def test_proxy_credentials_emit_no_warning(
    where: str,
    monkeypatch: pytest.MonkeyPatch,
    proxy: ForwardProxy,
    http_origin: Origin,
    tmp_path: Path,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if where == "argument":
            engine = TransferEngine(proxy=proxy.url_with("user", PASSWORD), retry=FAST_RETRY)
        else:
            monkeypatch.setenv("HTTP_PROXY", proxy.url_with("user", PASSWORD))
            engine = TransferEngine(retry=FAST_RETRY)
        async with engine:
            # The proxy is chosen (its credentials encoded) at the first request.
            await origin_download(engine, http_origin, tmp_path)
    assert len(proxy.seen) == 1


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _assert_no_secret(text: str) -> None:
    assert PASSWORD not in text
    assert _basic("user", PASSWORD).split()[1] not in text


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + repr(exc)


@_IGNORE_BASICAUTH_DEPRECATION
async def test_proxy_credentials_in_url_sent_as_basic_proxy_authorization_and_never_shown(
    caplog: pytest.LogCaptureFixture,
    s3: LocalS3,
    signer: Signer,
    bucket: str,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with ForwardProxy(credentials=("user", PASSWORD)) as proxy:
        engine = TransferEngine(proxy=proxy.url_with("user", PASSWORD), retry=FAST_RETRY)
        _assert_no_secret(repr(engine))
        async with engine:
            await s3_roundtrip(engine, signer, bucket, tmp_path)
            _assert_no_secret(repr(engine))
    assert_proxied_s3(proxy, s3, bucket)
    assert {seen.proxy_authorization for seen in proxy.seen} == {_basic("user", PASSWORD)}
    for record in caplog.records:
        _assert_no_secret(record.getMessage())


@_IGNORE_BASICAUTH_DEPRECATION
async def test_proxy_credentials_from_env_sent_as_basic_proxy_authorization(
    monkeypatch: pytest.MonkeyPatch,
    s3: LocalS3,
    signer: Signer,
    bucket: str,
    tmp_path: Path,
) -> None:
    async with ForwardProxy(credentials=("user", PASSWORD)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with("user", PASSWORD))
        async with TransferEngine(retry=FAST_RETRY) as engine:
            await s3_roundtrip(engine, signer, bucket, tmp_path)
            _assert_no_secret(repr(engine))
    assert_proxied_s3(proxy, s3, bucket)
    assert {seen.proxy_authorization for seen in proxy.seen} == {_basic("user", PASSWORD)}


@_IGNORE_BASICAUTH_DEPRECATION
async def test_proxy_password_absent_from_errors_and_logs_when_the_proxy_refuses(
    caplog: pytest.LogCaptureFixture,
    signer: Signer,
    bucket: str,
    https_origin: Origin,
    ca_pem: Path,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    async with ForwardProxy(credentials=("user", "other")) as proxy:
        async with TransferEngine(
            proxy=proxy.url_with("user", PASSWORD), ssl=ca_pem, retry=FAST_RETRY
        ) as engine:
            # Plain http: the proxy's 407 comes back as the answer.
            with pytest.raises(AsyncPresignError) as http_error:
                await engine.upload(await signer.presign_put(bucket, "k"), b"data")
            errors.append(http_error.value)
            # https: the 407 answers the CONNECT.
            with pytest.raises(TransportError) as tunnel_error:
                await engine.download(https_origin.request("GET"), tmp_path / "x")
            errors.append(tunnel_error.value)
            _assert_no_secret(repr(engine))
        connects = [seen for seen in proxy.seen if seen.method == "CONNECT"]
        assert connects
        assert {seen.proxy_authorization for seen in connects} == {_basic("user", PASSWORD)}
    # A proxy that is not there at all.
    async with TransferEngine(
        proxy=f"http://user:{PASSWORD}@127.0.0.1:{proxy.port}", retry=FAST_RETRY
    ) as engine:
        with pytest.raises(TransportError) as refused:
            await engine.upload(await signer.presign_put(bucket, "k"), b"data")
        errors.append(refused.value)
    with pytest.raises(InvalidArgumentError) as invalid:
        TransferEngine(proxy=f"ftp://user:{PASSWORD}@127.0.0.1:1")
    errors.append(invalid.value)
    for exc in errors:
        _assert_no_secret(_exception_text(exc))
    for record in caplog.records:
        _assert_no_secret(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            _assert_no_secret(_exception_text(record.exc_info[1]))


# -- https through a proxy: CONNECT ---------------------------------------------------------


async def test_https_proxy_env_tunnels_https_with_connect(
    monkeypatch: pytest.MonkeyPatch,
    proxy: ForwardProxy,
    https_origin: Origin,
    ca_pem: Path,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with TransferEngine(ssl=str(ca_pem), retry=FAST_RETRY) as engine:
        await origin_download(engine, https_origin, tmp_path)
        await origin_upload(engine, https_origin)
    assert f"CONNECT 127.0.0.1:{https_origin.port} HTTP/1.1" in proxy.lines
    assert all(seen.method == "CONNECT" for seen in proxy.seen), proxy.lines
    assert len(https_origin.headers) == 2


@_IGNORE_BASICAUTH_DEPRECATION
async def test_https_proxy_credentials_sent_on_connect(
    monkeypatch: pytest.MonkeyPatch, https_origin: Origin, ca_pem: Path, tmp_path: Path
) -> None:
    async with ForwardProxy(credentials=("user", PASSWORD)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with("user", PASSWORD))
        async with TransferEngine(ssl=ca_pem, retry=FAST_RETRY) as engine:
            await origin_download(engine, https_origin, tmp_path)
    assert [seen.method for seen in proxy.seen] == ["CONNECT"]
    assert proxy.seen[0].proxy_authorization == _basic("user", PASSWORD)
    # The proxy's credentials are for the proxy only: the origin never sees them.
    assert all("Proxy-Authorization" not in headers for headers in https_origin.headers)


async def test_http_proxy_env_alone_does_not_proxy_https(
    monkeypatch: pytest.MonkeyPatch,
    proxy: ForwardProxy,
    https_origin: Origin,
    ca_pem: Path,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with TransferEngine(ssl=ca_pem, retry=FAST_RETRY) as engine:
        await origin_download(engine, https_origin, tmp_path)
    assert proxy.seen == []


# -- ~/.netrc -------------------------------------------------------------------------------


@pytest.fixture
def netrc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login u password p\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


async def test_netrc_is_never_used_for_authorization(
    netrc_home: Path, http_origin: Origin, tmp_path: Path
) -> None:
    # The setup works: a client that reads ~/.netrc does send its credentials here.
    async with (
        aiohttp.ClientSession(trust_env=True) as session,
        session.get(http_origin.request("GET").url) as resp,
    ):
        await resp.read()
    assert http_origin.headers[-1].get("Authorization") == _basic("u", "p")
    http_origin.headers.clear()

    async with TransferEngine(retry=FAST_RETRY) as engine:
        await origin_download(engine, http_origin, tmp_path)
        await origin_upload(engine, http_origin)
    assert len(http_origin.headers) == 2
    assert all("Authorization" not in headers for headers in http_origin.headers)


# -- TLS trust ------------------------------------------------------------------------------


async def test_untrusted_certificate_fails_with_advice_and_writes_nothing(
    https_origin: Origin, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "file"
    async with TransferEngine(retry=FAST_RETRY) as engine:
        with pytest.raises(TransportError) as caught:
            await engine.download(https_origin.request("GET"), dest)
    message = str(caught.value)
    assert "certificate" in message.lower()
    assert "ssl=" in message
    assert "AWS_CA_BUNDLE" in message
    assert caught.value.request_sent is False
    assert not dest.exists()
    assert list(out.iterdir()) == []
    assert https_origin.headers == []


async def test_aws_ca_bundle_env_trusts_the_ca(
    monkeypatch: pytest.MonkeyPatch, https_origin: Origin, ca_pem: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_pem))
    async with TransferEngine(retry=FAST_RETRY) as engine:
        await origin_download(engine, https_origin, tmp_path)
        await origin_upload(engine, https_origin)


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "pathlike"])
async def test_ssl_ca_bundle_path_trusts_the_ca(
    as_path: bool, https_origin: Origin, ca_pem: Path, tmp_path: Path
) -> None:
    setting: str | Path = ca_pem if as_path else str(ca_pem)
    async with TransferEngine(ssl=setting, retry=FAST_RETRY) as engine:
        await origin_download(engine, https_origin, tmp_path)
        await origin_upload(engine, https_origin)


async def test_ssl_context_that_trusts_the_ca_is_used(
    ca: trustme.CA, https_origin: Origin, tmp_path: Path
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with TransferEngine(ssl=context, retry=FAST_RETRY) as engine:
        await origin_download(engine, https_origin, tmp_path)
        await origin_upload(engine, https_origin)


async def test_explicit_ssl_setting_wins_over_a_broken_aws_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, https_origin: Origin, ca_pem: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "nonexistent.pem"))
    async with TransferEngine(ssl=ca_pem, retry=FAST_RETRY) as engine:
        await origin_download(engine, https_origin, tmp_path)


async def test_ssl_false_warns_at_the_callers_line_and_skips_verification(
    https_origin: Origin, tmp_path: Path
) -> None:
    with pytest.warns(UserWarning, match="NOT verified") as record:
        engine = TransferEngine(ssl=False, retry=FAST_RETRY)
    assert len(record) == 1
    assert record[0].filename == __file__
    async with engine:
        await origin_download(engine, https_origin, tmp_path)
        await origin_upload(engine, https_origin)


async def build_and_open(**options: Any) -> None:
    """Build an engine and open it: a bad setting may be refused at either step."""
    async with TransferEngine(**options):
        pass


async def test_aws_ca_bundle_env_naming_a_missing_file_is_invalid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nonexistent" / "ca.pem")
    monkeypatch.setenv("AWS_CA_BUNDLE", missing)
    with pytest.raises(InvalidArgumentError) as caught:
        await build_and_open()
    assert missing in str(caught.value)
    assert "AWS_CA_BUNDLE" in str(caught.value)


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "pathlike"])
async def test_ssl_path_naming_a_missing_file_is_invalid(as_path: bool, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "ca.pem"
    with pytest.raises(InvalidArgumentError) as caught:
        await build_and_open(ssl=missing if as_path else str(missing))
    assert str(missing) in str(caught.value)


# -- NO_PROXY matching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "expected"),
    [
        ("*", "anything.example", 443, True),
        ("*", "10.9.8.7", 80, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "EXAMPLE.com.", 443, True),
        ("example.com", "other.com", 443, False),
        ("example.com", "a.example.com", 443, True),
        (".example.com", "a.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        (".example.com", "badexample.com", 443, False),
        ("example.com:8080", "example.com", 8080, True),
        ("example.com:8080", "example.com", 443, False),
        ("example.com:8080", "a.example.com", 8080, True),
        ("127.0.0.1", "127.0.0.1", 8333, True),
        ("127.0.0.1", "127.0.0.2", 8333, False),
        ("127.0.0.1:8333", "127.0.0.1", 8333, True),
        ("127.0.0.1:8333", "127.0.0.1", 9000, False),
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("10.0.0.0/8", "10.example.com", 80, False),
        ("localhost,127.0.0.0/8", "127.0.0.1", 9000, True),
        ("::1", "::1", 80, True),
        ("::1", "[::1]", 80, True),
        ("[::1]", "::1", 80, True),
        ("::1", "::2", 80, False),
        ("fd00::/8", "fd12::5", 80, True),
        ("::1", "127.0.0.1", 80, False),
        ("", "example.com", 80, False),
        (",,", "example.com", 80, False),
        (" , example.com , ", "example.com", 80, True),
        ("other.com example.com", "example.com", 80, True),
        ("  10.0.0.0/8 ,other.com", "10.0.0.1", 80, True),
    ],
)
def test_no_proxy_matches(no_proxy: str, host: str, port: int, expected: bool) -> None:
    assert no_proxy_matches(no_proxy, host, port) is expected


# -- invalid settings -----------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["", "ftp://x", 123, "http://"])
def test_invalid_proxy_setting_is_refused_at_construction(setting: object) -> None:
    with pytest.raises(InvalidArgumentError):
        TransferEngine(proxy=setting)  # type: ignore[arg-type]


def test_invalid_ssl_setting_type_is_refused_at_construction() -> None:
    with pytest.raises(InvalidArgumentError):
        TransferEngine(ssl=123)  # type: ignore[arg-type]
