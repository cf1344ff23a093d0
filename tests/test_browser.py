"""Browser uploads in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from asyncpresign import Signer, TransferEngine
from asyncpresign.testing import LocalS3
from examples.web_upload import MAX_BYTES, create_app

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)

pytestmark = pytest.mark.anyio

ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
async def site(s3: LocalS3, signer: Signer) -> AsyncIterator[tuple[str, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    bucket = f"web-{os.urandom(4).hex()}"
    await signer.ensure_bucket(bucket, cors_origins=[origin])
    runner = web.AppRunner(create_app(signer, bucket, origin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield origin, bucket
    finally:
        await runner.cleanup()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def stored(signer: Signer, bucket: str, tmp_path: Path) -> dict[str, bytes]:
    listed = await signer.client.list_objects_v2(Bucket=bucket, Prefix="uploads/")
    found = {}
    async with TransferEngine() as engine:
        for item in listed.get("Contents", []):
            dest = tmp_path / "readback"
            await engine.download(await signer.presign_get(bucket, item["Key"]), dest)
            found[item["Key"]] = dest.read_bytes()
    return found


async def test_upload_through_the_form_lands_in_the_bucket(
    site: tuple[str, str], page: Any, signer: Signer, tmp_path: Path
) -> None:
    origin, bucket = site
    data = os.urandom(50_000)
    (tmp_path / "photo.bin").write_bytes(data)
    await page.goto(origin + "/")
    await page.set_input_files('#asyncpresign-upload input[type="file"]', tmp_path / "photo.bin")
    await page.click('#asyncpresign-upload button[type="submit"]')
    await page.wait_for_selector("#uploaded a", timeout=15_000)
    assert await stored(signer, bucket, tmp_path) == {"uploads/photo.bin": data}
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "browser-upload.png"), full_page=True)


async def test_upload_with_a_presigned_put_shows_progress_and_lands(
    site: tuple[str, str], page: Any, signer: Signer, tmp_path: Path
) -> None:
    origin, bucket = site
    data = os.urandom(300_000)
    (tmp_path / "doc.txt").write_bytes(data)
    await page.goto(origin + "/")
    await page.set_input_files("#put-file", tmp_path / "doc.txt")
    await page.click("#put-button")
    await page.wait_for_selector("#uploaded a", timeout=15_000)
    found = await stored(signer, bucket, tmp_path)
    assert list(found.values()) == [data]
    assert next(iter(found)).endswith("-doc.txt")
    ARTIFACTS.mkdir(exist_ok=True)
    # The README's picture (docs/browser-upload.png) is a copy of this one.
    await page.screenshot(path=str(ARTIFACTS / "browser-put.png"), full_page=True)


async def test_a_file_over_the_policy_limit_is_rejected_with_a_clear_message(
    site: tuple[str, str], page: Any, signer: Signer, tmp_path: Path
) -> None:
    origin, bucket = site
    (tmp_path / "huge.bin").write_bytes(os.urandom(MAX_BYTES + 1))
    await page.goto(origin + "/")
    await page.set_input_files('#asyncpresign-upload input[type="file"]', tmp_path / "huge.bin")
    await page.click('#asyncpresign-upload button[type="submit"]')
    status = page.locator("#status")
    await status.filter(has_text="Rejected").wait_for(timeout=15_000)
    assert "larger than the upload limit" in await status.text_content()
    assert await stored(signer, bucket, tmp_path) == {}


async def test_the_page_never_contains_the_secret_key(
    site: tuple[str, str], page: Any, s3: LocalS3
) -> None:
    origin, _ = site
    await page.goto(origin + "/")
    html = await page.content()
    assert "X-Amz-Signature" in html or "x-amz-signature" in html  # it is signed…
    assert s3.secret_key not in html  # …without the secret
