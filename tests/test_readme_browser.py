"""The README's browser-upload example, run as printed, in headless Chromium.

The fenced blocks of README.md right after a ``<!-- readme-test: browser -->``
line are taken verbatim (nothing here copies their code), written to
``upload_app.py`` and run as a reader runs them, ``python upload_app.py``, with
LocalS3's AWS settings and the app's own variables (UPLOAD_BUCKET, PORT) in
the environment. Chromium then opens the page, picks a file and submits.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncpresign import Signer, TransferEngine
from asyncpresign.testing import LocalS3

from .test_browser import BROWSER_ARGS, CHROMIUM, playwright_api

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
MARKER = "<!-- readme-test: browser -->"
FORM = "#asyncpresign-upload"
#: Form fields that need no condition in the policy (S3's own rule).
UNCONDITIONED = {"policy", "x-amz-signature", "file"}

# The form's entries as the browser would post them (a File as its name and size).
FORM_ENTRIES = """(form) => [...new FormData(form)].map(([name, value]) =>
  [name, typeof value === 'string' ? value : {filename: value.name, size: value.size}])"""


def marked_blocks(readme: str) -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block right after a marker line, verbatim."""
    lines = readme.splitlines(keepends=True)
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = lines[number + 1] if number + 1 < len(lines) else ""
        assert fence.startswith("```"), f"README.md:{number + 1}: the marker marks no block"
        end = next(i for i in range(number + 2, len(lines)) if lines[i].rstrip() == "```")
        blocks.append((fence[3:].strip(), "".join(lines[number + 2 : end])))
    return blocks


def readme_app() -> str:
    blocks = marked_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert blocks, f"README.md marks no block with {MARKER}"
    assert {language for language, _ in blocks} == {"python"}, "only Python blocks run here"
    return "\n".join(code for _, code in blocks)


def test_the_marked_blocks_are_the_browser_uploads_section() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Browser uploads\n", 1)[1].split("\n## ", 1)[0]
    assert MARKER in section
    assert marked_blocks(readme) == marked_blocks(section)
    assert "web.run_app(" in readme_app()  # a reader can run it as it stands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def app(s3: LocalS3, signer: Signer, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The README's app in a process of its own; yields its address and its bucket."""
    script = tmp_path / "upload_app.py"
    script.write_text(readme_app(), encoding="utf-8")
    bucket = f"readme-{os.urandom(4).hex()}"
    await signer.ensure_bucket(bucket)  # "the bucket must exist"; a plain form needs no CORS
    port = free_port()
    # Only LocalS3's AWS settings, none of this machine's; this checkout's asyncpresign.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        s3.env(),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        UPLOAD_BUCKET=bucket,
        PORT=str(port),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    log_path = tmp_path / "app.log"
    with log_path.open("wb") as log:
        process = await anyio.open_process(
            [sys.executable, str(script)], env=env, cwd=tmp_path,
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            with anyio.fail_after(60):
                while True:
                    assert process.returncode is None, log_path.read_text(errors="replace")
                    try:
                        stream = await anyio.connect_tcp("127.0.0.1", port)
                    except OSError:
                        await anyio.sleep(0.1)
                        continue
                    await stream.aclose()
                    break
            yield f"http://127.0.0.1:{port}", bucket
        finally:
            if process.returncode is None:
                process.terminate()  # aiohttp's run_app stops cleanly on SIGTERM
            try:
                with anyio.fail_after(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
            await process.aclose()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def stored(signer: Signer, bucket: str, tmp_path: Path) -> dict[str, bytes]:
    """Every object in the bucket, read back through presigned GETs."""
    listed = await signer.client.list_objects_v2(Bucket=bucket)
    found = {}
    async with TransferEngine() as engine:
        for item in listed.get("Contents", []):
            dest = tmp_path / "readback"
            await engine.download(await signer.presign_get(bucket, item["Key"]), dest)
            found[item["Key"]] = dest.read_bytes()
    return found


async def choose(page: Any, origin: str, path: Path) -> list[tuple[str, Any]]:
    """Open the page, pick ``path``; the form's entries as the browser would post them."""
    await page.goto(origin + "/")
    await page.set_input_files(f'{FORM} input[type="file"]', path)
    return [tuple(entry) for entry in await page.eval_on_selector(FORM, FORM_ENTRIES)]


def conditions_of(policy: str) -> list[Any]:
    conditions: list[Any] = json.loads(base64.b64decode(policy))["conditions"]
    return conditions


def policy_of(entries: list[tuple[str, Any]]) -> list[Any]:
    return conditions_of(next(value for name, value in entries if name.lower() == "policy"))


def unmet(entries: list[tuple[str, Any]]) -> list[str]:
    """What S3 would refuse this form for: each policy condition the entries miss,
    and each field the policy does not cover."""
    sent: Mapping[str, Any] = {name.lower(): value for name, value in entries}
    problems, covered = [], set()
    for condition in policy_of(entries):
        if isinstance(condition, dict):
            ((name, wanted),) = condition.items()
            condition = ["eq", f"${name}", wanted]  # noqa: PLW2901 - one shape from here on
        if condition[0] == "content-length-range":
            low, high, size = condition[1], condition[2], sent["file"]["size"]
            if not low <= size <= high:
                problems.append(f"{condition}: the file has {size} bytes")
            continue
        op, name, wanted = condition
        name = name.lstrip("$").lower()
        covered.add(name)
        if name == "bucket":  # S3 takes it from the URL
            continue
        if name not in sent:
            problems.append(f"{condition}: the form sends no {name} field")
            continue
        value = sent[name]
        if not (value == wanted if op == "eq" else str(value).startswith(wanted)):
            problems.append(f"{condition}: the form sends {value!r}")
    problems += [
        f"field {name!r} has no condition in the policy"
        for name in sent
        if name not in covered and name not in UNCONDITIONED and not name.startswith("x-ignore-")
    ]
    return problems


async def test_the_form_sends_what_the_policy_asks_for(
    app: tuple[str, str], page: Any, tmp_path: Path
) -> None:
    origin, _ = app
    (tmp_path / "cat.png").write_bytes(os.urandom(1000))
    entries = await choose(page, origin, tmp_path / "cat.png")
    # The README once signed this condition and rendered a form without the field.
    assert ["starts-with", "$Content-Type", "image/"] in policy_of(entries)
    assert unmet(entries) == []
    assert ("Content-Type", "image/png") in entries
    assert entries[-1] == ("file", {"filename": "cat.png", "size": 1000})  # the file last
    (tmp_path / "notes.txt").write_text("not an image")
    entries = await choose(page, origin, tmp_path / "notes.txt")
    assert unmet(entries) == [
        "['starts-with', '$Content-Type', 'image/']: the form sends 'text/plain'"
    ]


async def test_an_image_is_stored_with_exactly_the_bytes_chosen(
    app: tuple[str, str], page: Any, signer: Signer, s3: LocalS3, tmp_path: Path
) -> None:
    origin, bucket = app
    data = os.urandom(200_000)
    (tmp_path / "cat.png").write_bytes(data)
    await choose(page, origin, tmp_path / "cat.png")
    async with page.expect_navigation(timeout=30_000) as navigation:
        await page.click(f'{FORM} button[type="submit"]')
    answer = await navigation.value  # after S3's 303, the app's /done page
    assert (answer.status, answer.url.split("?")[0]) == (200, f"{origin}/done"), (
        await answer.text()
    )
    assert "Uploaded incoming/cat.png" in await page.text_content("body")
    assert s3.secret_key not in await page.content()
    assert await stored(signer, bucket, tmp_path) == {"incoming/cat.png": data}
    head = await signer.client.head_object(Bucket=bucket, Key="incoming/cat.png")
    assert head["ContentType"] == "image/png"


@pytest.mark.parametrize(
    ("name", "size", "status", "code"),
    [
        pytest.param("notes.txt", 1000, 403, "AccessDenied", id="not-an-image"),
        pytest.param("big.png", None, 400, "EntityTooLarge", id="over-the-limit"),
    ],
)
async def test_a_file_the_policy_refuses_is_not_stored(
    app: tuple[str, str], page: Any, signer: Signer, tmp_path: Path,
    name: str, size: int | None, status: int, code: str,
) -> None:
    origin, bucket = app
    await page.goto(origin + "/")
    policy = await page.get_attribute(f'{FORM} input[name="policy"]', "value")
    limits = [c for c in conditions_of(policy) if isinstance(c, list)]
    (high,) = [c[2] for c in limits if c[0] == "content-length-range"]
    # One byte over the limit the page was signed with (10 MiB as printed).
    (tmp_path / name).write_bytes(os.urandom(high + 1 if size is None else size))
    await page.set_input_files(f'{FORM} input[type="file"]', tmp_path / name)
    async with page.expect_navigation(timeout=30_000) as navigation:
        await page.click(f'{FORM} button[type="submit"]')
    answer = await navigation.value
    assert answer.status == status
    assert f"<Code>{code}</Code>" in await answer.text()
    assert await stored(signer, bucket, tmp_path) == {}


async def test_the_page_never_contains_the_secret_key(
    app: tuple[str, str], page: Any, s3: LocalS3
) -> None:
    origin, _ = app
    await page.goto(origin + "/")
    html = await page.content()
    assert re.search(r'name="x-amz-signature" value="[0-9a-f]{64}"', html)  # it is signed…
    assert s3.secret_key not in html  # …without the secret
