"""Every example in README.md, run against the local S3 server the tests use.

What is run
    README.md's fenced blocks are found when the tests are collected. Each
    block in a language of ``PYTHON`` or ``SHELL`` is one test, named by its
    nearest heading and the line of its opening fence (``quick-start-L35``),
    so a failure names the block. Blocks in ``NOT_RUN`` (output, markup) are
    not run. A fence in any other language, or none, or an indented fence,
    fails ``test_every_block_is_run_or_declared_not_runnable``: a new example
    cannot slip past the harness.

What is not run, and only this
    - The lines ``make demo`` and ``make test`` (``SKIPPED_COMMANDS``): they
      are the entry points that run this harness, not examples for it. The
      inventory test asserts they are found, by name.
    - Blocks right after the line ``<!-- readme-test: browser -->``:
      tests/test_readme_browser.py runs those in a browser.
    - ``pip install`` lines need the network, so they are checked instead of
      run (``check_pip_install``): the package is asyncpresign or the clone
      (``.``), every extra named exists, and what it brings is installed here.

Shell blocks (``sh``, ``bash``, ``shell``, ``console``)
    Each runs as one script under ``bash -euo pipefail`` (so any failing
    command fails the test) in a fresh temporary folder holding
    ``SAMPLE_FILES``. In ``console`` blocks only the lines starting with
    ``$ `` are commands; the rest is output. The environment has no AWS
    settings of the machine's: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` and ``AWS_DEFAULT_REGION`` point
    at the LocalS3 server; this interpreter's ``bin`` folder comes first on
    ``PATH`` (so ``asyncpresign`` and ``python`` are this venv's) and this
    checkout first on ``PYTHONPATH``.

Python blocks
    Compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` (README snippets use
    top-level ``await``, as in ``python -m asyncio``) and run on a fresh event
    loop, in a fresh temporary folder holding ``SAMPLE_FILES``, with the same
    AWS environment (for blocks that make their own ``Signer()``). The
    namespace holds ``signer`` (a ``Signer`` for LocalS3) and ``engine`` (a
    ``TransferEngine``), both open, and ``__name__ == "__main__"``; tracebacks
    carry README.md's own line numbers. A block may continue an earlier one:
    the Python blocks before it under the same heading run first, in the same
    namespace and folder. Any ``Signer`` or ``TransferEngine`` left open in the
    namespace is closed afterwards.

The server
    ``BUCKETS`` exist and ``OBJECTS`` are stored before the first block, so
    each block can run alone (``pytest tests/test_readme.py -k large``).
    Blocks that mention ``DASK_SCHEDULER_ADDRESS`` get a local Dask cluster
    (two workers, in threads) and its address in that variable.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import inspect
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from asyncpresign import Signer, TransferEngine
from asyncpresign.testing import LocalS3

from .test_cli import base_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

PYTHON = {"python"}
SHELL = {"sh", "bash", "shell", "console"}
#: Fences that are not examples to run: output, markup, data.
NOT_RUN = {"text", "html", "json", "jsonl"}
#: Lines that are this harness's own entry points.
SKIPPED_COMMANDS = ("make demo", "make test")
BROWSER_MARKER = "<!-- readme-test: browser -->"
#: Fewer blocks than this means the parser lost some.
MIN_BLOCKS = 20
TIMEOUT = 180

#: The files the README's examples name, in every block's folder.
SAMPLE_FILES: dict[str, bytes] = {
    "report.pdf": b"%PDF-1.4\n% a small report\n" + bytes(range(256)) * 8,
    "reports/2026.csv": b"month,total\n" + b"".join(b"%d,%d\n" % (m, m * 7) for m in range(1, 13)),
    "photos/a.jpg": b"\xff\xd8\xff\xe0" + b"a" * 3000,
    "photos/b.jpg": b"\xff\xd8\xff\xe0" + b"b" * 5000,
    "photos/2026/c.jpg": b"\xff\xd8\xff\xe0" + b"c" * 1000,
    "outbox/a.csv": b"id,name\n1,ann\n",
    "outbox/b.csv": b"id,name\n2,bob\n",
    "cat.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 200,
    "disk.img": bytes(range(256)) * 256,  # 64 KiB: one part
}
BUCKETS = ("my-bucket", "old-bucket", "new-bucket", "uploads")
#: Objects the examples read before any example wrote them: (bucket, key, sample file).
OBJECTS = (
    ("my-bucket", "report.pdf", "report.pdf"),
    ("my-bucket", "reports/2026.csv", "reports/2026.csv"),
    ("my-bucket", "photos/a.jpg", "photos/a.jpg"),
    ("my-bucket", "photos/b.jpg", "photos/b.jpg"),
    ("old-bucket", "data/a.csv", "outbox/a.csv"),
    ("old-bucket", "data/b.csv", "outbox/b.csv"),
)


# -- finding the blocks --------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    heading: str
    code: str
    browser: bool  # marked for tests/test_readme_browser.py

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug}-L{self.line}"


FENCE = re.compile(r"^```\s*(?P<language>[^\s`]*)")


def find_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    heading = "top"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if heading_match := re.match(r"#{1,6}\s+(.*)", line):
            heading = heading_match[1].strip()
        elif fence := FENCE.match(line):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
            if end is None:
                raise AssertionError(f"README.md:{i + 1}: a fence that is never closed")
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            blocks.append(Block(
                line=i + 1,
                language=fence["language"],
                heading=heading,
                code="\n".join(lines[i + 1 : end]) + "\n",
                browser=before == BROWSER_MARKER,
            ))
            i = end
        i += 1
    return blocks


BLOCKS = find_blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.language in PYTHON | SHELL and not b.browser]


# -- the server and the folder -------------------------------------------------------------


def write_samples(folder: Path) -> None:
    for name, data in SAMPLE_FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture(scope="module")
def server(s3: LocalS3, tmp_path_factory: pytest.TempPathFactory) -> LocalS3:
    """The session's LocalS3 with the README's buckets and objects in it."""
    samples = tmp_path_factory.mktemp("readme-samples")
    write_samples(samples)

    async def seed() -> None:
        async with s3.signer() as signer, TransferEngine() as engine:
            for bucket in BUCKETS:
                await signer.ensure_bucket(bucket)
            for bucket, key, sample in OBJECTS:
                sign = signer.sign_later("PUT", bucket, key)
                await engine.upload(None, samples / sample, sign=sign)

    asyncio.run(seed())
    return s3


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
        host="127.0.0.1", dashboard_address="127.0.0.1:0",
    ) as cluster:
        yield cluster.scheduler_address


def readme_env(s3: LocalS3, tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = base_env(tmp_path)
    env.update(s3.env())
    env["AWS_REGION"] = s3.region
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


# -- running them --------------------------------------------------------------------------


def check_pip_install(line: str) -> None:
    """``pip install [-e] asyncpresign[extra]`` (or ``.[extra]``): the extras exist and
    what they bring is installed, which is what the line would have done."""
    provided = importlib.metadata.metadata("asyncpresign").get_all("Provides-Extra") or []
    requires = [Requirement(r) for r in importlib.metadata.requires("asyncpresign") or []]
    for arg in shlex.split(line, comments=True)[2:]:
        if arg in ("-e", "--editable"):
            continue
        match = re.fullmatch(r"(?:asyncpresign|\.)(?:\[(?P<extras>[\w,-]+)\])?", arg)
        assert match, f"{line!r}: the harness checks only asyncpresign and its extras"
        extras = (match["extras"] or "").split(",") if match["extras"] else []
        for extra in ["", *extras]:
            assert not extra or extra in provided, f"{line!r}: no extra {extra!r} in {provided}"
            for requirement in requires:
                if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                    try:
                        importlib.metadata.version(requirement.name)
                    except importlib.metadata.PackageNotFoundError:
                        pytest.fail(f"{line!r}: {requirement} is not installed here")


def shell_script(block: Block) -> str:
    """The block as a bash script: console prompts stripped, the entry points and
    ``pip install`` lines replaced by no-ops (keeping line numbers)."""
    if block.language == "console":
        lines, continued = [], False
        for line in block.code.splitlines():
            if continued or line.startswith("$ "):
                command = line if continued else line[2:]
                lines.append(command)
                continued = command.rstrip().endswith("\\")
            else:
                lines.append("")  # output
    else:
        lines = block.code.splitlines()
    script = []
    for line in lines:
        command = line.split("#", 1)[0].strip()
        if command in SKIPPED_COMMANDS:
            script.append(f": skipped, the harness's own entry point: {command}")
        elif command.startswith("pip install "):
            check_pip_install(line)
            script.append(": checked: " + shlex.quote(command))
        else:
            script.append(line)
    return "\n".join(script) + "\n"


def run_shell(block: Block, folder: Path, env: dict[str, str]) -> None:
    script = shell_script(block)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script, f"README.md:{block.line}"],
        cwd=folder, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )
    if done.returncode != 0:
        numbered = "\n".join(
            f"{block.line + n:5d}  {line}" for n, line in enumerate(script.splitlines(), 1)
        )
        pytest.fail(
            f"README.md:{block.line} ({block.heading}) exited {done.returncode}\n{numbered}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}",
            pytrace=False,
        )


def run_python(blocks: list[Block], s3: LocalS3) -> None:
    loop = asyncio.new_event_loop()
    signer, engine = s3.signer(), TransferEngine()
    namespace: dict[str, Any] = {"__name__": "__main__", "signer": signer, "engine": engine}
    try:
        loop.run_until_complete(signer.open())
        loop.run_until_complete(engine.open())
        for block in blocks:
            # Blank lines first, so tracebacks give README.md's line numbers.
            source = "\n" * block.line + block.code
            code = compile(source, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)
            if code.co_flags & inspect.CO_COROUTINE:
                loop.run_until_complete(asyncio.wait_for(result, TIMEOUT))
    finally:
        # The harness's own, and those a block opened (its names may now hold others).
        for value in {id(v): v for v in [signer, engine, *namespace.values()]}.values():
            if isinstance(value, (Signer, TransferEngine)):
                loop.run_until_complete(value.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_block(
    block: Block, server: LocalS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    write_samples(folder)
    extra = {}
    if "DASK_SCHEDULER_ADDRESS" in block.code:
        extra["DASK_SCHEDULER_ADDRESS"] = request.getfixturevalue("dask_scheduler")
    env = readme_env(server, tmp_path, extra)
    if block.language in SHELL:
        run_shell(block, folder, env)
        return
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(("AWS_", "DASK_")):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(folder)
    earlier = [b for b in RUN if b.heading == block.heading and b.language in PYTHON
               and b.line < block.line]
    run_python([*earlier, block], server)


def test_every_block_is_run_or_declared_not_runnable() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(RUN) >= MIN_BLOCKS, f"only {len(RUN)} runnable blocks found in README.md"
    undeclared = [
        f"README.md:{b.line}: ```{b.language}" for b in BLOCKS
        if b.language not in PYTHON | SHELL | NOT_RUN
    ]
    assert not undeclared, "fences the harness neither runs nor declares not runnable"
    hidden = [
        f"README.md:{n}" for n, line in enumerate(text.splitlines(), 1)
        if re.match(r"\s+```|\s*~~~", line)
    ]
    assert not hidden, "indented or ~~~ fences, which the harness does not read"
    skipped = {
        line.split("#", 1)[0].strip()
        for b in BLOCKS if b.language in SHELL
        for line in b.code.splitlines()
        if line.split("#", 1)[0].strip() in SKIPPED_COMMANDS
    }
    assert skipped == set(SKIPPED_COMMANDS)
    markers = text.count(BROWSER_MARKER)
    assert markers == sum(b.browser for b in BLOCKS), "a browser marker not right before a block"


def test_the_parser_skips_browser_blocks_and_runs_only_console_commands() -> None:
    blocks = find_blocks(
        "## Up\n\n<!-- readme-test: browser -->\n\n```python\nx = 1\n```\n\n"
        "```console\n$ echo one \\\n    two\none two\n$ make test\n```\n"
    )
    assert [(b.line, b.language, b.heading, b.browser) for b in blocks] == [
        (5, "python", "Up", True), (9, "console", "Up", False),
    ]
    assert shell_script(blocks[1]).splitlines() == [
        "echo one \\", "    two", "", ": skipped, the harness's own entry point: make test",
    ]
