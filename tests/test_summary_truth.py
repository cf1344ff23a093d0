"""What a run's summary says against what is true afterwards, with faults on the way.

Each command runs as a subprocess through a proxy in front of SeaweedFS that
refuses some objects for good; the ``--json`` summary (its counts and each
failure: what a script needs to retry it), the exit status and the state left
behind (objects in the bucket, local files, partial files) must agree.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncpresign import Signer
from asyncpresign.testing import LocalS3

from .conftest import object_exists
from .proxy import Rule, S3Proxy
from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture
async def proxy(s3: LocalS3) -> AsyncIterator[S3Proxy]:
    async with S3Proxy(s3.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def env(s3: LocalS3, proxy: S3Proxy, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: signing for the proxy, which forwards to SeaweedFS."""
    return {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}


async def run(*args: str, env: dict[str, str], check: int | None) -> dict[str, Any]:
    """The command's ``--json`` summary; stdout must hold that one document alone.
    ``check=None``: the exit status must be what the summary says (1 if a job failed)."""
    # In a thread: the proxy serves from this event loop and must keep running.
    done = await anyio.to_thread.run_sync(lambda: cli(*args, "--json", env=env, check=check))
    summary: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (1 if summary["failed"] else 0), done.stderr
    assert summary["succeeded"] + summary["skipped"] + summary["failed"] == summary["total"]
    return summary


def write_files(folder: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, size in sizes.items():
        files[name] = os.urandom(size)
        (folder / name).write_bytes(files[name])
    return files


async def seed(signer: Signer, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        await signer.client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)


def refuse(proxy: S3Proxy, name: str) -> None:
    """Every request for an object named ``name`` is refused (403: not retried)."""
    proxy.add(Rule("*", f"/{name}", times=10**9, status=403, code="AccessDenied"))


def the_failure(summary: dict[str, Any]) -> dict[str, Any]:
    assert (summary["failed"], len(summary["failures"])) == (1, 1), summary
    failure: dict[str, Any] = summary["failures"][0]
    return failure


async def test_a_failed_upload_names_its_bucket_key_and_file_small_or_multipart(
    env: dict[str, str], proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    files = write_files(tmp_path / "src", {"a.txt": 100, "no.txt": 200, "big.bin": 9 * MiB})
    for name in ("no.txt", "big.bin"):
        refuse(proxy, name)
    summary = await run("upload", str(tmp_path / "src"), f"s3://{bucket}/up", env=env, check=1)
    assert (summary["total"], summary["succeeded"], summary["bytes"]) == (3, 1, 100)
    failures = {(f["bucket"], f["key"]): f for f in summary["failures"]}
    assert set(failures) == {(bucket, "up/no.txt"), (bucket, "up/big.bin")}
    for (_, key), failure in failures.items():
        name = key.rsplit("/", 1)[-1]
        assert (failure["op"], failure["path"]) == ("upload", str(tmp_path / "src" / name))
        assert not await object_exists(signer, bucket, key)
    found = await signer.client.get_object(Bucket=bucket, Key="up/a.txt")
    assert await found["Body"].read() == files["a.txt"]


async def test_a_failed_download_names_its_bucket_and_key_and_leaves_no_file(
    env: dict[str, str], proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    files = {"a.txt": os.urandom(100), "no.txt": os.urandom(200)}
    await seed(signer, bucket, "d", files)
    refuse(proxy, "no.txt")
    out = tmp_path / "out"
    summary = await run("download", f"s3://{bucket}/d", str(out), env=env, check=1)
    assert (summary["total"], summary["succeeded"], summary["bytes"]) == (2, 1, 100)
    failure = the_failure(summary)
    assert (failure["op"], failure["bucket"], failure["key"], failure["path"]) == (
        "download", bucket, "d/no.txt", str(out / "no.txt"))
    assert sorted(os.listdir(out)) == ["a.txt"]  # no partial file either
    assert (out / "a.txt").read_bytes() == files["a.txt"]


async def test_a_failed_copy_names_a_bucket_and_key_and_stores_nothing(
    env: dict[str, str], proxy: S3Proxy, signer: Signer, bucket: str
) -> None:
    await seed(signer, bucket, "c", {"a.txt": os.urandom(100), "no.txt": os.urandom(200)})
    refuse(proxy, "no.txt")
    summary = await run("copy", f"s3://{bucket}/c", f"s3://{bucket}/to", env=env, check=1)
    assert (summary["total"], summary["succeeded"], summary["bytes"]) == (2, 1, 100)
    failure = the_failure(summary)
    # A copy is named by its destination (the source is in the error's URL).
    assert (failure["op"], failure["bucket"], failure["key"]) == ("copy", bucket, "to/no.txt")
    assert f"/{bucket}/c/no.txt" in failure["error"]
    assert await object_exists(signer, bucket, "to/a.txt")
    assert not await object_exists(signer, bucket, "to/no.txt")


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_a_failed_sync_transfer_names_its_bucket_and_key(
    env: dict[str, str], proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path,
    direction: str,
) -> None:
    files = write_files(tmp_path / "src", {"a.txt": 100, "no.txt": 200})
    await seed(signer, bucket, "s", files)
    refuse(proxy, "no.txt")
    if direction == "up":
        where = (str(tmp_path / "src"), f"s3://{bucket}/s2")
        key, path, op = "s2/no.txt", tmp_path / "src" / "no.txt", "upload"
    else:
        where = (f"s3://{bucket}/s", str(tmp_path / "out"))
        key, path, op = "s/no.txt", tmp_path / "out" / "no.txt", "download"
    summary = await run("sync", *where, env=env, check=1)
    assert (summary["total"], summary["succeeded"], summary["bytes"]) == (2, 1, 100)
    failure = the_failure(summary)
    assert (failure["op"], failure["bucket"], failure["key"], failure["path"]) == (
        op, bucket, key, str(path))
    if direction == "up":
        assert not await object_exists(signer, bucket, key)
    else:
        assert sorted(os.listdir(tmp_path / "out")) == ["a.txt"]


async def test_a_failed_part_in_transfer_names_its_file(
    env: dict[str, str], proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "big").write_bytes(os.urandom(11 * MiB))
    manifest = str(tmp_path / "parts.jsonl")
    await anyio.to_thread.run_sync(lambda: cli(
        "sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
        "--part-size", "5MiB", "--manifest", manifest, env=env))
    proxy.add(Rule("PUT", "partNumber=2", times=10**9, status=403, code="AccessDenied"))
    summary = await run("transfer", manifest, env=env, check=1)
    assert (summary["total"], summary["succeeded"], summary["bytes"]) == (3, 2, 6 * MiB)
    failure = the_failure(summary)
    assert (failure["op"], failure["bucket"], failure["key"], failure["path"]) == (
        "upload", bucket, "big", str(tmp_path / "big"))
    # And complete says the part is missing rather than finish a torn object.
    done = await anyio.to_thread.run_sync(lambda: cli("complete", manifest, env=env, check=1))
    assert "not uploaded yet" in done.stderr


async def test_json_before_complete_is_refused_not_answered_with_text(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    """``complete`` has no JSON output: ``--json`` before it (accepted there for
    every command) printed its text lines on stdout, which a script then failed
    to parse after an upload that may have completed."""
    (tmp_path / "big").write_bytes(os.urandom(6 * MiB))
    manifest = str(tmp_path / "parts.jsonl")
    await anyio.to_thread.run_sync(lambda: cli(
        "sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
        "--part-size", "5MiB", "--manifest", manifest, env=env))
    done = await anyio.to_thread.run_sync(
        lambda: cli("--json", "complete", manifest, "--abort", env=env, check=2))
    assert done.stdout == ""
    assert "--json" in done.stderr
    still = await anyio.to_thread.run_sync(
        lambda: cli("uploads", f"s3://{bucket}", "--json", env=env))
    assert len(json.loads(still.stdout)["uploads"]) == 1  # refused before anything ran


def storm(proxy: S3Proxy, bucket: str) -> None:
    """Object requests (not listings) answered 500 or 503, cut mid-body, flipped
    on the way in or out, or held: each to about one request in ten."""
    for rule in (
        Rule("*", f"/{bucket}/t/", times=10**9, status=500, probability=0.06),
        Rule("*", f"/{bucket}/t/", times=10**9, status=503, code="SlowDown", probability=0.06),
        Rule("GET", f"/{bucket}/t/", times=10**9, cut=True, probability=0.08),
        Rule("GET", f"/{bucket}/t/", times=10**9, flip="response", probability=0.08),
        Rule("PUT", f"/{bucket}/t/", times=10**9, flip="request", probability=0.08),
        Rule("*", f"/{bucket}/t/", times=10**9, delay=0.2, probability=0.06),
    ):
        proxy.add(rule)


async def test_under_random_faults_the_counts_and_bytes_are_what_landed(
    env: dict[str, str], proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    sizes = {f"f{i:02d}.bin": (i * 7919) % 90_000 for i in range(40)} | {"big.bin": 10 * MiB}
    files = write_files(tmp_path / "src", sizes)
    storm(proxy, bucket)
    # Few retries, so that some jobs fail: the summary must say which.
    up = await run("upload", str(tmp_path / "src"), f"s3://{bucket}/t", "--retries", "2",
                   env=env, check=None)
    failed = {f["key"] for f in up["failures"]}
    listing = await signer.client.list_objects_v2(Bucket=bucket, Prefix="t/")
    stored = {o["Key"] for o in listing.get("Contents", [])}
    assert stored == {f"t/{name}" for name in files} - failed
    for key in stored:  # each one whole and right
        found = await signer.client.get_object(Bucket=bucket, Key=key)
        assert await found["Body"].read() == files[key[2:]], key
    assert (up["total"], up["succeeded"], up["failed"]) == (len(files), len(stored), len(failed))
    assert up["bytes"] == sum(len(files[key[2:]]) for key in stored)  # retries counted once
    open_uploads = await signer.client.list_multipart_uploads(Bucket=bucket)
    assert not open_uploads.get("Uploads")  # a failed multipart upload was aborted

    out = tmp_path / "out"
    down = await run("download", f"s3://{bucket}/t", str(out), "--retries", "2", env=env,
                     check=None)
    landed = {p.name: p.read_bytes() for p in out.iterdir()}  # partial files included
    missing = {f["key"][2:] for f in down["failures"]}
    assert set(landed) == {key[2:] for key in stored} - missing
    assert all(data == files[name] for name, data in landed.items())
    assert (down["total"], down["succeeded"]) == (len(stored), len(landed))
    assert down["bytes"] == sum(len(data) for data in landed.values())


async def test_the_summary_counts_transfers_no_check_could_confirm(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    env = {**base_env(tmp_path), **s3.env()}
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(os.urandom(100))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, env=env)

    checked = json.loads((await anyio.to_thread.run_sync(
        lambda: run("upload", str(src), f"s3://{bucket}/v", "--json"))).stdout)
    assert (checked["succeeded"], checked["unverified"]) == (3, 0)
    unchecked = json.loads((await anyio.to_thread.run_sync(
        lambda: run("upload", str(src), f"s3://{bucket}/u", "--checksum", "none",
                    "--json"))).stdout)
    assert (unchecked["succeeded"], unchecked["unverified"]) == (3, 3)  # checks off
    human = await anyio.to_thread.run_sync(
        lambda: run("upload", str(src), f"s3://{bucket}/w", "--checksum", "none"))
    assert "not verified: 3 of those done passed no check" in human.stdout
    quiet = await anyio.to_thread.run_sync(lambda: run("upload", str(src), f"s3://{bucket}/x"))
    assert "not verified" not in quiet.stdout


async def _interrupted_upload(
    s3: LocalS3, proxy: S3Proxy, tmp_path: Path, target: str, files: dict[str, bytes],
    *, flag: str, signum: int, twice: bool = False,
) -> tuple[int, str, str]:
    """Upload ``files`` and one more that the proxy holds, with ``flag``; once the
    held one is sent, stop the run with ``signum`` (``twice``: sent again at once,
    as one Ctrl-C under ``timeout`` arrives). The exit status, stdout, stderr."""
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    (src / "zz-held").write_bytes(b"held by the proxy")
    proxy.add(Rule("PUT", "zz-held", times=100, delay=120.0))
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    command = [sys.executable, "-m", "asyncpresign", "upload", str(src), target, flag,
               "--concurrency", "2"]
    # A suite started in the background has SIGINT ignored, and a child would
    # inherit that; a handled SIGINT is reset to the default at exec instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = await anyio.open_process(command, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    with anyio.fail_after(60):
        while proxy.count(lambda m, t: m == "PUT" and "zz-held" in t) == 0:  # noqa: ASYNC110
            await anyio.sleep(0.02)
        await anyio.sleep(0.5)  # the others' answers reach the client
        process.send_signal(signum)
        if twice:
            # Apart enough not to merge into one (a loop's sleep is too coarse).
            time.sleep(0.002)  # noqa: ASYNC251
            process.send_signal(signum)
        code = await process.wait()
    assert process.stdout is not None
    assert process.stderr is not None
    out = (await process.stdout.receive(1 << 20)).decode()
    err = (await process.stderr.receive(1 << 20)).decode()
    return code, out, err


@pytest.mark.parametrize(
    ("signum", "code", "twice"),
    [(signal.SIGINT, 130, False), (signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    ids=["SIGINT", "SIGINT-twice-at-once", "SIGTERM"],
)
async def test_an_interrupted_run_with_json_says_which_jobs_ended_before_it(
    s3: LocalS3, signer: Signer, proxy: S3Proxy, bucket: str, tmp_path: Path,
    signum: int, code: int, twice: bool,
) -> None:
    """A script reading --json used to get nothing at all from a stopped run: it
    could not tell the 8 uploads that finished from the one that did not. A
    second SIGINT right after the first (one Ctrl-C, passed on by ``timeout``)
    cut the summary off."""
    exit_code, out, err = await _interrupted_upload(
        s3, proxy, tmp_path, f"s3://{bucket}/i",
        {f"a{i}": os.urandom(1000 + i) for i in range(8)}, flag="--json", signum=signum,
        twice=twice,
    )
    assert exit_code == code, err
    assert "Traceback" not in err
    summary = json.loads(out)
    listing = await signer.client.list_objects_v2(Bucket=bucket, Prefix="i/")
    stored = {o["Key"]: o["Size"] for o in listing.get("Contents", [])}
    assert "i/zz-held" not in stored
    assert stored  # some ended before the signal, to be counted
    assert summary["interrupted"] is True
    assert summary["succeeded"] == len(stored) == summary["total"]
    assert summary["failed"] == 0
    assert summary["failures"] == []
    assert summary["bytes"] == sum(stored.values())


async def test_an_interrupted_run_prints_what_ended_before_it(
    s3: LocalS3, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    exit_code, out, err = await _interrupted_upload(
        s3, proxy, tmp_path, f"s3://{bucket}/t", {f"a{i}": b"x" * 10 for i in range(3)},
        flag="--quiet", signum=signal.SIGINT,
    )
    assert exit_code == 130, err
    said = re.search(r"^upload: interrupted after (\d) done, 0 already done, 0 failed of \1 "
                     r"ended;", out, re.MULTILINE)
    assert said, out
    assert int(said.group(1)) >= 1
    assert "interrupted" in err
    assert "--journal" in err
