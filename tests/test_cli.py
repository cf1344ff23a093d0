"""The real ``asyncpresign`` command, run as a subprocess against SeaweedFS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest

from asyncpresign import Signer
from asyncpresign.testing import LocalS3

from .conftest import FULL_METADATA, described
from .proxy import Rule, S3Proxy

pytestmark = pytest.mark.anyio

ODD_NAMES = ["plain.txt", "with space.bin", "ünïcödé.dat", "a+b=c.csv", "deep/er/nest.bin",
             "deep/sibling (1).txt", "x/y/z/last.bin"]


def base_env(tmp_path: Path) -> dict[str, str]:
    """No AWS settings from the developer's machine: only what a test adds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def cli(*args: str, env: dict[str, str], check: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "asyncpresign", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    if check is not None:
        assert done.returncode == check, done.stderr + done.stdout
    return done


def make_tree(root: Path, count: int) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        name = ODD_NAMES[i % len(ODD_NAMES)]
        relative = f"d{i % 5}/{i:04d}-{name}"
        data = os.urandom(i * 13 % 5000)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[relative] = data
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


async def test_upload_a_tree_and_download_it_back_byte_for_byte(
    env: dict[str, str], bucket: str, tmp_path: Path, s3: LocalS3
) -> None:
    files = make_tree(tmp_path / "src", 210)
    up = cli("upload", str(tmp_path / "src"), f"s3://{bucket}/backup", "--json", env=env)
    summary = json.loads(up.stdout)
    assert summary["succeeded"] == summary["total"] == 210
    assert summary["failed"] == 0
    cli("download", f"s3://{bucket}/backup", str(tmp_path / "out"), "--quiet", env=env)
    assert read_tree(tmp_path / "out") == files
    assert s3.secret_key not in up.stdout + up.stderr


async def test_include_exclude_and_dry_run(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", 20)
    dry = cli("upload", str(tmp_path / "src"), f"s3://{bucket}/p", "--include", "*.csv",
              "--dry-run", "--quiet", env=env)
    assert "would upload" in dry.stdout
    planned = [line for line in dry.stdout.splitlines() if line.startswith("would upload /")]
    assert planned
    assert all(".csv" in line for line in planned)
    cli("upload", str(tmp_path / "src"), f"s3://{bucket}/p", "--exclude", "*.bin",
        "--quiet", env=env)
    cli("download", f"s3://{bucket}/p", str(tmp_path / "out"), "--quiet", env=env)
    names = list(read_tree(tmp_path / "out"))
    assert names
    assert not any(n.endswith(".bin") for n in names)


async def test_copy_between_buckets(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: object
) -> None:
    files = make_tree(tmp_path / "src", 30)
    cli("upload", str(tmp_path / "src"), f"s3://{bucket}/from", "--quiet", env=env)
    other = bucket + "-copy"
    await signer.ensure_bucket(other)  # type: ignore[attr-defined]
    copied = cli("copy", f"s3://{bucket}/from", f"s3://{other}/to", "--json", env=env)
    assert json.loads(copied.stdout)["succeeded"] == 30
    cli("download", f"s3://{other}/to", str(tmp_path / "out"), "--quiet", env=env)
    assert read_tree(tmp_path / "out") == files


async def test_copy_keeps_each_objects_metadata_unless_told_not_to(
    env: dict[str, str], bucket: str, signer: Signer
) -> None:
    for i in range(3):
        extra = {**FULL_METADATA, "Metadata": {"index": str(i), "owner": "team-a"}}
        await signer.client.put_object(Bucket=bucket, Key=f"meta/{i}.csv", Body=b"1,2", **extra)
    cli("copy", f"s3://{bucket}/meta", f"s3://{bucket}/kept", "--quiet", env=env)
    cli("copy", f"s3://{bucket}/meta", f"s3://{bucket}/bare", "--no-metadata", "--quiet", env=env)
    for i in range(3):
        source = await described(signer, bucket, f"meta/{i}.csv")
        assert source["Metadata"] == {"index": str(i), "owner": "team-a"}
        assert await described(signer, bucket, f"kept/{i}.csv") == source
        bare = await described(signer, bucket, f"bare/{i}.csv")
        assert bare["Metadata"] == {}
        assert bare["CacheControl"] is None
        assert bare["ContentType"] != source["ContentType"]


def test_a_copy_on_dask_says_it_cannot_carry_metadata(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    done = cli("copy", "s3://bucket-a/x", "s3://bucket-b/x", "--dask-scheduler",
               "tcp://127.0.0.1:1", env=base_env(tmp_path), check=2)
    assert "--no-metadata" in done.stderr


async def test_manifest_signed_here_runs_elsewhere_without_credentials(
    env: dict[str, str], bucket: str, tmp_path: Path, s3: LocalS3
) -> None:
    files = make_tree(tmp_path / "src", 40)
    cli("sign", "put", f"s3://{bucket}/m", "--manifest", str(tmp_path / "up.jsonl"),
        "--from", str(tmp_path / "src"), env=env)
    manifest_text = (tmp_path / "up.jsonl").read_text()
    assert s3.secret_key not in manifest_text
    no_credentials = base_env(tmp_path)
    ran = cli("transfer", str(tmp_path / "up.jsonl"), "--json", env=no_credentials)
    assert json.loads(ran.stdout)["succeeded"] == 40

    cli("sign", "get", f"s3://{bucket}/m", "--manifest", str(tmp_path / "down.jsonl"),
        "--from", str(tmp_path / "out"), env=env)
    cli("transfer", str(tmp_path / "down.jsonl"), "--quiet", env=no_credentials)
    assert read_tree(tmp_path / "out") == files
    # Run again: the journal beside the manifest says everything is done.
    again = cli("transfer", str(tmp_path / "down.jsonl"), "--json", env=no_credentials)
    assert json.loads(again.stdout)["skipped"] == 40


async def test_sign_prints_a_working_url_and_never_the_secret(
    env: dict[str, str], bucket: str, s3: LocalS3
) -> None:
    put = cli("sign", "put", f"s3://{bucket}/one", "--expires", "15m", "--json", env=env)
    data = json.loads(put.stdout)
    assert "X-Amz-Expires=900" in data["url"]
    assert s3.secret_key not in put.stdout + put.stderr
    post = cli("sign", "post", f"s3://{bucket}/form", "--max-size", "1MiB", env=env)
    assert "policy" in json.loads(post.stdout)["fields"]


async def test_failing_jobs_exit_1_and_are_listed_in_the_json_summary(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 6)
    cli("sign", "put", f"s3://{bucket}/f", "--manifest", str(tmp_path / "m.jsonl"),
        "--from", str(tmp_path / "src"), env=env)
    for relative in list(files)[:2]:
        (tmp_path / "src" / relative).unlink()  # two sources vanish before the run
    ran = cli("transfer", str(tmp_path / "m.jsonl"), "--json", env=base_env(tmp_path), check=1)
    summary = json.loads(ran.stdout)
    assert summary["failed"] == 2
    assert summary["succeeded"] == 4
    assert all("LocalFileError" in f["error"] for f in summary["failures"])


@pytest.mark.parametrize(
    "args",
    [
        ["upload"],
        ["upload", "/nonexistent-folder", "s3://b/p"],
        ["download", "not-an-s3-uri", "/tmp/x"],
        ["upload", ".", "s3://b/p", "--chunk-size", "1KiB"],
        ["sign", "get", "s3://bad..bucket/k"],
    ],
)
async def test_bad_usage_exits_2_with_one_clear_line(
    args: list[str], env: dict[str, str]
) -> None:
    done = cli(*args, env=env, check=2)
    assert "Traceback" not in done.stderr
    assert "error:" in done.stderr


@pytest.fixture
async def proxy(s3: LocalS3) -> AsyncIterator[S3Proxy]:
    async with S3Proxy(s3.endpoint_url) as proxy:
        yield proxy


async def test_interrupted_upload_resumes_and_transfers_nothing_twice(
    s3: LocalS3, proxy: S3Proxy, bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 120)
    proxy.add(Rule("PUT", f"/{bucket}/", times=10_000, delay=0.05))
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    journal = tmp_path / "run.journal"
    command = [sys.executable, "-m", "asyncpresign", "upload", str(tmp_path / "src"),
               f"s3://{bucket}/r", "--journal", str(journal), "--concurrency", "4"]
    # A suite started in the background by a non-interactive shell has SIGINT
    # ignored, and a child inherits that and sleeps through Ctrl-C; a handled
    # SIGINT is reset to the default at exec instead, as under a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = await anyio.open_process(command, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    while proxy.count(lambda m, t: m == "PUT") < 40:  # noqa: ASYNC110 - another process
        await anyio.sleep(0.02)
    process.send_signal(signal.SIGINT)
    assert await process.wait() == 130
    header, *lines = journal.read_text().splitlines()
    assert json.loads(header) == {"journal": "asyncpresign", "version": 2}
    recorded = {json.loads(line)["id"] for line in lines}
    assert 0 < len(recorded) < len(files)

    # In a thread: the proxy serves from this event loop and must keep running.
    resumed = await anyio.to_thread.run_sync(lambda: cli(*command[3:], "--json", env=env))
    summary = json.loads(resumed.stdout)
    assert summary["skipped"] == len(recorded)
    assert summary["succeeded"] == len(files) - len(recorded)
    for job_id in recorded:  # what the journal held was never sent again
        # "put BUCKET/KEY SOURCE-PATH": the key is what precedes the source folder.
        key = job_id.partition(f" {tmp_path / 'src'}/")[0].split("/", 1)[1]
        path = f"/{bucket}/" + quote(key, safe="/~")
        sent = proxy.count(lambda m, t, p=path: m == "PUT" and t.split("?")[0] == p)
        assert sent == 1, path
    cli("download", f"s3://{bucket}/r", str(tmp_path / "out"), "--quiet",
        env={**base_env(tmp_path), **s3.env()})
    assert read_tree(tmp_path / "out") == files
    assert not list((tmp_path / "out").rglob("*.asyncpresign-partial"))


async def test_multipart_parts_signed_here_are_sent_elsewhere_and_completed_here(
    env: dict[str, str], bucket: str, tmp_path: Path, s3: LocalS3
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 7)
    (tmp_path / "big").write_bytes(data)
    manifest = str(tmp_path / "parts.jsonl")
    cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
        "--part-size", "5MiB", "--manifest", manifest, env=env)
    lines = (tmp_path / "parts.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # Each part URL carries its part's own CRC64NVME, signed in.
    part_sums = [json.loads(line)["headers"]["x-amz-checksum-crc64nvme"] for line in lines]
    assert part_sums[0] == crc64(data[: 5 * 1024 * 1024])
    early = cli("complete", manifest, env=env, check=1)  # nothing sent yet
    assert "not uploaded yet" in early.stderr
    # A dry run says what the real one would: it said "would complete", exit 0.
    early_dry = cli("complete", manifest, "--dry-run", env=env, check=1)
    assert "not uploaded yet" in early_dry.stderr
    assert "would complete" not in early_dry.stdout
    ran = cli("transfer", manifest, "--json", env=base_env(tmp_path))  # no credentials
    assert json.loads(ran.stdout)["succeeded"] == 3
    dry = cli("complete", manifest, "--dry-run", env=env)
    assert "would complete" in dry.stdout
    done = cli("complete", manifest, env=env)
    assert "completed" in done.stdout
    cli("download", f"s3://{bucket}/big", str(tmp_path / "big"), "--quiet", env=env)
    assert (tmp_path / "big").read_bytes() == data
    assert s3.secret_key not in (tmp_path / "parts.jsonl").read_text()
    # Completed with the whole file's own checksum, which the server now reports.
    async with s3.signer() as signer:
        head = await signer.client.head_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == crc64(data)
    assert head["ChecksumType"] == "FULL_OBJECT"


def crc64(data: bytes) -> str:
    import base64

    from awscrt import checksums

    return base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()


@pytest.mark.parametrize("size", ["1MiB", "6GiB"])
async def test_a_part_size_outside_s3s_limits_is_refused_not_changed_unsaid(
    env: dict[str, str], bucket: str, tmp_path: Path, s3: LocalS3, signer: Signer, size: str
) -> None:
    """It used to be moved into range without a word: asked for 1 MiB parts, a
    user got a manifest of 5 MiB parts."""
    (tmp_path / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    manifest = tmp_path / "parts.jsonl"
    refused = cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
                  "--part-size", size, "--manifest", str(manifest), env=env, check=2)
    assert "--part-size must be from 5 MiB to 5 GiB" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not manifest.exists()
    listing = await signer.client.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []


async def test_signing_into_a_manifest_with_json_prints_one_document(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    # --json was taken and nothing printed on stdout (exit 0).
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for name in ("a", "b"):
        (outbox / name).write_bytes(name.encode())
    manifest = tmp_path / "jobs.jsonl"
    done = cli("sign", "put", f"s3://{bucket}/in", "--manifest", str(manifest), "--from",
               str(outbox), "--json", env=env)
    document = json.loads(done.stdout)
    assert (document["jobs"], document["manifest"], document["not_signed"]) == (
        2, str(manifest), [])
    dry = json.loads(cli("sign", "put", f"s3://{bucket}/in", "--manifest",
                         str(tmp_path / "other.jsonl"), "--from", str(outbox), "--json",
                         "--dry-run", env=env).stdout)
    assert (dry["dry_run"], dry["jobs"]) == (True, 0)
    assert not (tmp_path / "other.jsonl").exists()
    (tmp_path / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    parts = json.loads(cli("sign", "put", f"s3://{bucket}/big", "--multipart",
                           str(tmp_path / "big"), "--part-size", "5MiB", "--manifest",
                           str(tmp_path / "parts.jsonl"), "--json", env=env).stdout)
    assert parts["parts"] == 2
    cli("complete", str(tmp_path / "parts.jsonl"), "--abort", env=env)
