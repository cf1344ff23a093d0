"""Manifests, journals and ``complete`` under hostile or broken input: each
test pins a behaviour that was once wrong (a race reported as success, a torn
object completed, a journal record lost, a manifest read twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from asyncpresign import InvalidArgumentError, Signer
from asyncpresign._manifest import read_manifest_lines
from asyncpresign._redact import redact_url
from asyncpresign._validation import check_http_url
from asyncpresign.testing import LocalS3

from .conftest import object_exists
from .test_bad_input import release_after
from .test_cli import base_env, cli
from .test_journals import summary

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def lines_of(manifest: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def write_lines(manifest: Path, lines: list[dict[str, object]]) -> None:
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))


def run_briefly(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command, killed after 60 s (a run that hangs fails its test, not the suite)."""
    return subprocess.run(
        [sys.executable, "-m", "asyncpresign", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


async def object_body(signer: Signer, bucket: str, key: str) -> bytes:
    answer = await signer.client.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        data: bytes = await body.read()
    return data


async def test_two_download_jobs_with_one_destination_run_one_and_fail_the_other(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    for name in ("a", "b", "c"):
        await signer.client.put_object(Bucket=bucket, Key=f"d/{name}", Body=name.encode() * 10)
    manifest = tmp_path / "get.jsonl"
    cli("sign", "get", f"s3://{bucket}/d", "--manifest", str(manifest),
        "--from", str(tmp_path / "out"), env=env)
    lines = sorted(lines_of(manifest), key=lambda line: str(line["key"]))
    for line in lines:
        line["path"] = "out/same"  # three objects, one file: they would race
    write_lines(manifest, lines)

    done = summary(cli("transfer", str(manifest), "--json", env=base_env(tmp_path), check=1))
    assert (done["succeeded"], done["failed"], done["total"]) == (1, 2, 3)
    errors = [str(f["error"]) for f in done["failures"]]  # type: ignore[attr-defined]
    assert all("as line 1 does: not run" in error for error in errors), errors
    assert (tmp_path / "out" / "same").read_bytes() == b"a" * 10
    # The journal holds the one that ran: a re-run skips it and fails the others again.
    again = summary(cli("transfer", str(manifest), "--json", env=base_env(tmp_path), check=1))
    assert (again["skipped"], again["failed"], again["total"]) == (1, 2, 3)
    assert (tmp_path / "out" / "same").read_bytes() == b"a" * 10


async def test_two_upload_jobs_to_one_object_run_one_and_fail_the_other(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "first").write_bytes(b"first file")
    (src / "second").write_bytes(b"second file, longer")
    manifest = tmp_path / "put.jsonl"
    # No checksum signed in, so nothing but the manifest stops the second PUT.
    cli("sign", "put", f"s3://{bucket}/u", "--manifest", str(manifest), "--from", str(src),
        "--checksum", "none", env=env)
    lines = sorted(lines_of(manifest), key=lambda line: str(line["key"]))
    lines[1].update(url=lines[0]["url"], key=lines[0]["key"], headers=lines[0].get("headers"))
    write_lines(manifest, lines)

    done = cli("transfer", str(manifest), "--json", env=base_env(tmp_path), check=1)
    result = summary(done)
    assert (result["succeeded"], result["failed"]) == (1, 1)
    error = str(result["failures"][0]["error"])  # type: ignore[index]
    assert f"/{bucket}/u/first, as line 1 does: not run" in error
    assert "manifest line 2 uploads to http" in error
    assert await object_body(signer, bucket, "u/first") == b"first file"
    assert "X-Amz-Signature=" not in done.stdout.replace("X-Amz-Signature=REDACTED", "")


async def test_a_manifest_missing_its_last_part_lines_is_not_completed_into_a_torn_object(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    data = os.urandom(11 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    manifest = tmp_path / "parts.jsonl"
    cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
        "--part-size", "5MiB", "--manifest", str(manifest), env=env)
    whole = manifest.read_text().splitlines(keepends=True)
    assert len(whole) == 3
    manifest.write_text("".join(whole[:2]))  # cut short: the last part's line is gone
    cli("transfer", str(manifest), "--quiet", env=base_env(tmp_path))

    done = cli("complete", str(manifest), env=env, check=2)
    assert "its 2 parts hold 10,485,760 bytes of the file's 11,534,336" in done.stderr
    assert "Traceback" not in done.stderr
    assert not await object_exists(signer, bucket, "big")
    # The whole manifest back: its last part is sent, and the object is whole.
    manifest.write_text("".join(whole))
    cli("transfer", str(manifest), "--quiet", env=base_env(tmp_path))
    cli("complete", str(manifest), env=env)
    assert await object_body(signer, bucket, "big") == data


async def test_a_journal_torn_by_a_killed_run_keeps_every_record_of_the_next_run(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    signed_uploads(tmp_path, 3, f"s3://{bucket}/t", env=env)
    manifest = tmp_path / "jobs.jsonl"
    journal = tmp_path / "jobs.jsonl.journal"
    # A run killed while writing its second line: no newline at the end.
    journal.write_text('{"journal": "asyncpresign", "version": 2}\n{"id": "put x/y /z", "sta')
    first = summary(cli("transfer", str(manifest), "--json", env=base_env(tmp_path)))
    assert first["succeeded"] == 3
    again = summary(cli("transfer", str(manifest), "--json", env=base_env(tmp_path)))
    assert (again["skipped"], again["succeeded"], again["total"]) == (3, 0, 3)


def signed_uploads(tmp_path: Path, count: int, target: str, *, env: dict[str, str]) -> str:
    """A manifest's text (its paths absolute, to be read from anywhere) uploading
    ``count`` small files of ``tmp_path/src`` to ``target``."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(count):
        (src / f"f{i:02d}").write_bytes(b"%d" % i)
    manifest = tmp_path / "jobs.jsonl"
    cli("sign", "put", target, "--manifest", str(manifest), "--from", str(src), env=env)
    return manifest.read_text().replace('"path": "src/', f'"path": "{src}/')


async def test_a_manifest_read_from_a_pipe_runs_every_line_once_with_progress_on(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    text = signed_uploads(tmp_path, 20, f"s3://{bucket}/p", env=env)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as f:  # blocks until a reader opens it
            f.write(text)

    threading.Thread(target=feed, daemon=True).start()
    try:
        # No --json or --quiet: the progress display counts the jobs ahead, which
        # read the manifest a second time, taking lines from the run.
        done = run_briefly("transfer", str(fifo), "--journal", str(tmp_path / "pipe.journal"),
                           env=base_env(tmp_path))
    finally:
        release_after(fifo, 0)  # a reader or writer still waiting is let go
    assert done.returncode == 0, done.stderr + done.stdout
    assert "transfer: 20 done, 0 already done, 0 failed of 20" in done.stdout
    listed = await signer.client.list_objects_v2(Bucket=bucket, Prefix="p/")
    assert len(listed["Contents"]) == 20


def test_a_manifest_line_over_a_mebibyte_fails_alone_and_is_never_held_whole(
    tmp_path: Path,
) -> None:
    job = {"op": "put", "url": "https://s3.example.com/b/k?X-Amz-Signature=x", "path": "a"}
    padded = {**job, "headers": {"x-amz-meta-pad": "p" * (2 * 1024 * 1024)}}
    manifest = tmp_path / "jobs.jsonl"
    write_lines(manifest, [job, padded, {**job, "path": "c"}])
    tracemalloc.start()
    try:
        read = list(read_manifest_lines(str(manifest)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(item).__name__ for item in read] == [
        "ManifestEntry", "InvalidArgumentError", "ManifestEntry"
    ]
    assert "manifest line 2: over 1,048,576 bytes" in str(read[1])
    assert peak < 4 * 1024 * 1024, peak


def test_a_big_file_without_newlines_given_as_a_manifest_is_refused_without_reading_it_whole(
    tmp_path: Path,
) -> None:
    image = tmp_path / "disk.img"  # given by mistake: no newline in 64 MiB
    with open(image, "wb") as f:
        for _ in range(64):
            f.write(b"\xaa" * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgumentError, match="is not a manifest: its line 1 is over"):
            list(read_manifest_lines(str(image)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak


@pytest.fixture
def dask_scheduler(tmp_path: Path) -> Iterator[str]:
    """A local Dask cluster of one worker process (as test_dask's, smaller)."""
    distributed = pytest.importorskip("distributed")
    dask = pytest.importorskip("dask")
    scratch = str(tmp_path / "dask")
    with dask.config.set({"temporary-directory": scratch}), distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", worker_dashboard_address=None, local_directory=scratch,
    ) as cluster:
        yield str(cluster.scheduler_address)


@pytest.mark.dask
async def test_two_download_jobs_with_one_destination_on_dask_run_one_and_fail_the_other(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer, dask_scheduler: str
) -> None:
    for name in ("a", "b"):
        await signer.client.put_object(Bucket=bucket, Key=f"d/{name}", Body=name.encode() * 10)
    manifest = tmp_path / "get.jsonl"
    cli("sign", "get", f"s3://{bucket}/d", "--manifest", str(manifest),
        "--from", str(tmp_path / "out"), env=env)
    lines = sorted(lines_of(manifest), key=lambda line: str(line["key"]))
    for line in lines:
        line["path"] = "out/same"
    write_lines(manifest, lines)
    done = await anyio.to_thread.run_sync(lambda: cli(
        "transfer", str(manifest), "--json", "--dask-scheduler", dask_scheduler,
        env=base_env(tmp_path), check=1,
    ))
    result = summary(done)
    assert (result["succeeded"], result["failed"], result["total"]) == (1, 1, 2)
    assert "manifest line 2 downloads to" in str(result["failures"])
    assert (tmp_path / "out" / "same").read_bytes() == b"a" * 10


async def test_a_password_in_a_manifest_url_is_never_shown_in_any_output(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="d/a", Body=b"a")
    manifest = tmp_path / "get.jsonl"
    cli("sign", "get", f"s3://{bucket}/d", "--manifest", str(manifest),
        "--from", str(tmp_path / "out"), env=env)
    (line,) = lines_of(manifest)
    url = str(line["url"]).replace("://", "://admin:hunter2-SECRET@", 1)
    # No bucket and key: the URL is what names the job, in failures and plans.
    failing = {"op": "get", "url": url.replace("X-Amz-Signature=", "X-Amz-Signature=0"),
               "path": "out/b"}
    write_lines(manifest, [failing])
    for args in (("--json",), ("--debug",), ("--dry-run",)):
        done = cli("transfer", str(manifest), "--retries", "1", *args,
                   env=base_env(tmp_path), check=None)
        assert done.returncode == (0 if "--dry-run" in args else 1), done.stderr
        assert "hunter2-SECRET" not in done.stdout + done.stderr, args
        assert "admin:REDACTED@" in done.stdout + done.stderr, args


@pytest.mark.parametrize("how", ["--journal", "link"])
async def test_a_journal_that_is_the_manifest_itself_is_refused_without_saying_delete_it(
    env: dict[str, str], bucket: str, tmp_path: Path, how: str
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    manifest = tmp_path / "jobs.jsonl"
    cli("sign", "put", f"s3://{bucket}/s", "--manifest", str(manifest),
        "--from", str(tmp_path / "src"), env=env)
    before = manifest.read_bytes()
    if how == "link":  # the default journal, jobs.jsonl.journal, links to the manifest
        (tmp_path / "jobs.jsonl.journal").symlink_to(manifest)
        args: tuple[str, ...] = ()
    else:
        args = ("--journal", str(manifest))
    for command in ("transfer", "complete"):
        done = cli(command, str(manifest), *args, env=base_env(tmp_path), check=2)
        assert "is the manifest itself" in done.stderr
        assert "delete it" not in done.stderr
    assert manifest.read_bytes() == before


async def test_a_journal_given_as_the_manifest_is_refused_whole_not_failed_line_by_line(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"f{i}").write_bytes(b"x")
    manifest = tmp_path / "jobs.jsonl"
    cli("sign", "put", f"s3://{bucket}/j", "--manifest", str(manifest),
        "--from", str(tmp_path / "src"), env=env)
    cli("transfer", str(manifest), "--quiet", env=base_env(tmp_path))
    journal = str(tmp_path / "jobs.jsonl.journal")  # what tab completion offers next
    for command in ("transfer", "complete"):
        done = cli(command, journal, env=base_env(tmp_path), check=2)
        assert "is a journal, not a manifest" in done.stderr, command
    assert not (tmp_path / "jobs.jsonl.journal.journal").exists()


def test_a_manifest_saved_with_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    job = {"op": "put", "url": "https://s3.example.com/b/k?X-Amz-Signature=x", "path": "a"}
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_bytes(b"\xef\xbb\xbf" + json.dumps(job).encode() + b"\r\n")  # Notepad's
    (entry,) = read_manifest_lines(str(manifest))
    assert not isinstance(entry, InvalidArgumentError), entry
    assert entry.path == str(tmp_path / "a")


@pytest.mark.parametrize(
    "url",
    [
        "https://admin:hunter2-SECRET@s3.example.com/b/k",
        "ftp://admin:hunter2-SECRET@h/x",
        "ftp://admin:hunter2-SECRET" + "x" * 100 + "@h/x",  # longer than an error shows
    ],
)
def test_a_password_in_a_url_is_redacted_wherever_the_url_is_shown(url: str) -> None:
    assert "hunter2-SECRET" not in redact_url(url)
    assert "admin:REDACTED@" in redact_url(url)
    with pytest.raises(InvalidArgumentError) as refused:
        check_http_url(url.replace("s3.example.com", "").replace("https", "ftp"))
    assert "hunter2-SECRET" not in str(refused.value)


async def test_a_manifest_on_stdin_runs_without_a_journal_beside_dev_stdin(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    # The default journal was "/dev/stdin.journal": refused (exit 2) for a
    # user, and for root a file made in /dev.
    text = signed_uploads(tmp_path, 5, f"s3://{bucket}/stdin", env=env)
    made_in_dev = anyio.Path("/dev/stdin.journal")
    try:
        done = await anyio.to_thread.run_sync(lambda: subprocess.run(
            [sys.executable, "-m", "asyncpresign", "transfer", "/dev/stdin", "--json"],
            input=text, env=base_env(tmp_path), capture_output=True, text=True, timeout=120,
            check=False,
        ))
        assert not await made_in_dev.exists()
    finally:
        await made_in_dev.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr
    assert summary(done)["succeeded"] == 5


@pytest.mark.parametrize("size", [2, 3 * 1024 * 1024], ids=["read-whole", "streamed"])
async def test_a_file_changed_since_its_put_was_signed_fails_at_once_saying_so(
    env: dict[str, str], bucket: str, tmp_path: Path, size: int
) -> None:
    """Its signed checksum no longer matched: the server refused each attempt as
    a corruption in transit (BadDigest), 20 times over minutes, and the error
    never said the file had changed."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "a").write_bytes(b"x" * size)
    manifest = tmp_path / "jobs.jsonl"
    cli("sign", "put", f"s3://{bucket}/in", "--manifest", str(manifest), "--from",
        str(outbox), env=env)
    (outbox / "a").write_bytes(b"y" * size)  # same size, other bytes
    done = cli("transfer", str(manifest), "--json", env=base_env(tmp_path), check=1)
    (failure,) = summary(done)["failures"]  # type: ignore[misc]
    assert failure["attempts"] == 1
    assert failure["error"].startswith("LocalFileError: ")
    assert "changed since the request was signed" in failure["error"]
    assert "X-Amz-Signature=" not in failure["error"] or "REDACTED" in failure["error"]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_named_as_a_manifest_is_refused(tmp_path: Path, device: str) -> None:
    # /dev/zero was read for ever at 100% CPU (and SIGTERM did not stop it);
    # /dev/null was "0 of 0 done", exit 0.
    done = subprocess.run(
        [sys.executable, "-m", "asyncpresign", "transfer", device], env=base_env(tmp_path),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "is a character device, not a file of jobs" in done.stderr


async def test_a_fifo_manifest_with_no_writer_still_stops_on_sigterm(tmp_path: Path) -> None:
    # The read waited in a worker thread the run then waited for: SIGTERM, and
    # then SIGINT, were ignored until a SIGKILL.
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    process = await anyio.open_process(
        [sys.executable, "-m", "asyncpresign", "transfer", str(fifo), "--json"],
        env=base_env(tmp_path),
    )
    try:
        await anyio.sleep(2)  # started, and waiting on the pipe
        process.terminate()
        with anyio.fail_after(30):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 143
    assert process.stdout is not None
    summary = json.loads((await process.stdout.receive(1 << 16)).decode())
    assert (summary["interrupted"], summary["total"]) == (True, 0)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
async def test_a_dry_run_plan_stopped_by_a_signal_is_one_json_document_saying_so(
    tmp_path: Path, signum: int, code: int
) -> None:
    """The plan streams: once part of it was out, a stopped dry run left half a
    JSON document on stdout (it said nothing more)."""
    lines = "".join(json.dumps({
        "op": "put", "path": f"f{i}", "size": 1, "bucket": "bucket", "key": f"k{i}",
        "url": f"http://127.0.0.1:9/bucket/k{i}?X-Amz-Signature=" + "0" * 64,
    }) + "\n" for i in range(600))  # more than a batch of 500: the plan is under way
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    # A suite started in the background has SIGINT ignored, and a child would
    # inherit that; a handled SIGINT is reset to the default at exec instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = await anyio.open_process(
            [sys.executable, "-m", "asyncpresign", "transfer", str(fifo), "--dry-run",
             "--json"], env=base_env(tmp_path),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert process.stdout is not None
    try:
        # The writer stays open: the rest of the manifest is still to come.
        async with await anyio.open_file(fifo, "w") as writer:
            await writer.write(lines)
            await writer.flush()
            with anyio.fail_after(30):
                out = await process.stdout.receive(1 << 20)  # the plan under way
                process.send_signal(signum)
                assert await process.wait() == code
        async for more in process.stdout:
            out += more
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    document = json.loads(out.decode())
    assert (document["dry_run"], document["interrupted"]) == (True, True)
    assert document["objects"] == len(document["plan"]) >= 500
    assert document["plan"][0]["target"] == "s3://bucket/k0"


async def test_a_part_stored_without_an_etag_fails_and_is_sent_again_next_run(
    env: dict[str, str], bucket: str, tmp_path: Path, serve: object
) -> None:
    """A server answering a part's PUT 200 with no ETag: transfer said "2 done",
    journalled them without one; complete then said "not uploaded yet", the
    next transfer skipped them as done, and the upload could never complete."""
    from .rawserver import Reply, Request, head_bytes

    def no_etag(request: Request) -> Reply:
        return Reply([head_bytes("HTTP/1.1 200 OK", "Content-Length: 0")])

    server = await serve(no_etag)  # type: ignore[operator]
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(6 * 1024 * 1024))
    manifest = tmp_path / "parts.jsonl"
    cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(path), "--part-size", "5MiB",
        "--manifest", str(manifest), env=env)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    upstream = env["AWS_ENDPOINT_URL"]
    manifest.write_text("".join(
        json.dumps({**line, "url": line["url"].replace(upstream, server.url)}) + "\n"
        for line in lines
    ))
    journal = str(tmp_path / "j")
    for _ in range(2):  # the second run sends them again: nothing was journalled done
        # In a thread: the raw server answers on this test's event loop.
        done = await anyio.to_thread.run_sync(lambda: cli(
            "transfer", str(manifest), "--journal", journal, "--json", env=env, check=1
        ))
        ran = json.loads(done.stdout)
        assert (ran["succeeded"], ran["failed"], ran["skipped"]) == (0, 2, 0)
        assert all("without an ETag" in f["error"] for f in ran["failures"])
    cli("complete", str(manifest), "--abort", env=env)
