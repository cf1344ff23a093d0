"""Journals record what a job moves, not where it sat in a list; manifests
travel (paths relative to themselves) and are private. Each test is a
"done" that was once false (issue 17)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from asyncpresign import Journal, Signer
from asyncpresign.testing import LocalS3

from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def rewrite_same_size(path: Path, data: bytes) -> None:
    """New content of the same size, with a later mtime (as an editor saves it)."""
    assert len(data) == path.stat().st_size
    before = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))


def run_in(
    folder: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncpresign", *args],
        cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=120,
    )


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    result: dict[str, object] = json.loads(done.stdout)
    return result


async def test_a_file_changed_at_the_same_size_is_uploaded_again_on_a_journalled_rerun(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("b.txt", "c.txt"):
        (src / name).write_bytes(b"first version")
    command = ("upload", str(src), f"s3://{bucket}/j", "--journal", str(tmp_path / "j"), "--json")
    assert summary(cli(*command, env=env))["succeeded"] == 2
    rewrite_same_size(src / "b.txt", b"second versio")
    (src / "a.txt").write_bytes(b"new, sorts first")
    again = summary(cli(*command, env=env))
    assert again["skipped"] == 1  # only c.txt, untouched
    assert again["succeeded"] == 2
    cli("download", f"s3://{bucket}/j", str(tmp_path / "out"), "--quiet", env=env)
    assert (tmp_path / "out" / "b.txt").read_bytes() == b"second versio"
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"new, sorts first"


async def test_a_file_edited_with_its_mtime_put_back_or_replaced_is_uploaded_again(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    """Size and mtime were all an upload's journal compared: a file edited in
    place with its mtime put back (touch -r, rsync -t), and one replaced by
    another of the same size and mtime (mv), were skipped for good."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("edited", "replaced", "kept"):
        (src / name).write_bytes(b"first version")
    command = ("upload", str(src), f"s3://{bucket}/t", "--journal", str(tmp_path / "j"), "--json")
    assert summary(cli(*command, env=env))["succeeded"] == 3
    edited = src / "edited"
    before = edited.stat()
    edited.write_bytes(b"second versio")
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r
    other = tmp_path / "other"
    other.write_bytes(b"other content")
    old = (src / "replaced").stat()
    os.utime(other, ns=(old.st_atime_ns, old.st_mtime_ns))
    other.replace(src / "replaced")  # mv, same size and mtime
    again = summary(cli(*command, env=env))
    assert (again["skipped"], again["succeeded"], again["failed"]) == (1, 2, 0)  # "kept"
    cli("download", f"s3://{bucket}/t", str(tmp_path / "out"), "--quiet", env=env)
    assert (tmp_path / "out" / "edited").read_bytes() == b"second versio"
    assert (tmp_path / "out" / "replaced").read_bytes() == b"other content"


async def test_sync_with_a_journal_sends_what_its_comparison_found_changed(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    """``sync --checksum`` found a file changed (same size, mtime put back) and
    its journal then skipped it: "changed: 1", exit 0, the old bytes kept."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"first version")
    command = ("sync", str(src), f"s3://{bucket}/s", "--journal", str(tmp_path / "j"),
               "--checksum", "--json")
    assert summary(cli(*command, env=env))["succeeded"] == 1
    before = (src / "f").stat()
    (src / "f").write_bytes(b"second versio")
    os.utime(src / "f", ns=(before.st_atime_ns, before.st_mtime_ns))
    # The journal alone would now tell (ctime): make it agree, as after a
    # restore that kept ctimes, so only the comparison can see the change.
    journal = tmp_path / "j"
    lines = journal.read_text().splitlines()
    now = (src / "f").stat()
    lines = [line.replace(f"ctime={before.st_ctime_ns}", f"ctime={now.st_ctime_ns}")
             for line in lines]
    journal.write_text("\n".join(lines) + "\n")
    again = summary(cli(*command, env=env))
    assert again["sync"]["changed"]["objects"] == 1  # type: ignore[index]
    assert (again["skipped"], again["failed"]) == (0, 0)
    cli("download", f"s3://{bucket}/s", str(tmp_path / "out"), "--quiet", env=env)
    assert (tmp_path / "out" / "f").read_bytes() == b"second versio"


def upload_x_and_y(env: dict[str, str], prefix: str, tmp_path: Path) -> None:
    """Two small files, x and y (100 bytes of their own name), uploaded under ``prefix``."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("x", "y"):
        (src / name).write_bytes(name.encode() * 100)
    cli("upload", str(src), prefix, "--quiet", env=env)


def sign_get_manifest(env: dict[str, str], prefix: str, tmp_path: Path) -> None:
    """tmp_path/get.jsonl: downloads of what is under ``prefix`` into tmp_path/out."""
    cli("sign", "get", prefix, "--manifest", str(tmp_path / "get.jsonl"),
        "--from", str(tmp_path / "out"), env=env)


async def test_a_download_deleted_locally_is_fetched_again_by_the_manifests_journal(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    upload_x_and_y(env, f"s3://{bucket}/d", tmp_path)
    sign_get_manifest(env, f"s3://{bucket}/d", tmp_path)
    no_credentials = base_env(tmp_path)
    first = summary(cli("transfer", str(tmp_path / "get.jsonl"), "--json", env=no_credentials))
    assert first["succeeded"] == 2
    (tmp_path / "out" / "x").unlink()
    again = summary(cli("transfer", str(tmp_path / "get.jsonl"), "--json", env=no_credentials))
    assert again["skipped"] == 1
    assert (tmp_path / "out" / "x").read_bytes() == b"x" * 100


def edit_in_place_keeping_times(path: Path, data: bytes) -> None:
    """New content of the same size, its mtime put back: what neither size
    nor mtime tells apart."""
    assert len(data) == path.stat().st_size
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("command", ["download", "transfer"])
async def test_a_download_edited_locally_at_the_same_size_is_fetched_again_on_a_rerun(
    env: dict[str, str], bucket: str, tmp_path: Path, command: str
) -> None:
    upload_x_and_y(env, f"s3://{bucket}/e", tmp_path)
    out = tmp_path / "out"
    if command == "download":
        args: tuple[str, ...] = ("download", f"s3://{bucket}/e", str(out),
                                 "--journal", str(tmp_path / "j"), "--json")
        run_env = env
    else:
        sign_get_manifest(env, f"s3://{bucket}/e", tmp_path)
        args = ("transfer", str(tmp_path / "get.jsonl"), "--json")
        run_env = base_env(tmp_path)
    assert summary(cli(*args, env=run_env))["succeeded"] == 2
    edit_in_place_keeping_times(out / "x", b"z" * 100)
    untouched = (out / "y").stat()
    again = summary(cli(*args, env=run_env))
    assert again["skipped"] == 1  # y alone
    assert (out / "x").read_bytes() == b"x" * 100
    assert (out / "y").stat().st_ino == untouched.st_ino  # not written again


async def test_a_resigned_upload_manifest_sends_a_file_changed_at_the_same_size(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.csv").write_bytes(b"a,b,c\n1,2,3\n")
    manifest = str(tmp_path / "jobs.jsonl")
    sign = ("sign", "put", f"s3://{bucket}/m", "--manifest", manifest, "--from", str(src))
    cli(*sign, env=env)
    assert summary(cli("transfer", manifest, "--json", env=env))["succeeded"] == 1
    rewrite_same_size(src / "f.csv", b"a,b,c\n4,5,6\n")
    cli(*sign, env=env)
    again = summary(cli("transfer", manifest, "--json", env=env))
    assert again["skipped"] == 0
    cli("download", f"s3://{bucket}/m", str(tmp_path / "out"), "--quiet", env=env)
    assert (tmp_path / "out" / "f.csv").read_bytes() == b"a,b,c\n4,5,6\n"


async def test_a_resigned_multipart_manifest_is_a_new_upload_and_skips_no_part(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "big").write_bytes(os.urandom(11 * 1024 * 1024))
    manifest = str(tmp_path / "parts.jsonl")
    sign = ("sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
            "--part-size", "5MiB", "--manifest", manifest)
    cli(*sign, env=env)
    assert summary(cli("transfer", manifest, "--json", env=env))["succeeded"] == 3
    (tmp_path / "parts.jsonl").unlink()
    cli(*sign, env=env)  # a new upload id
    again = summary(cli("transfer", manifest, "--json", env=env))
    assert again["skipped"] == 0
    assert again["succeeded"] == 3
    cli("complete", manifest, env=env)


async def test_a_journal_of_an_earlier_version_is_refused_not_misread(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    old = tmp_path / "old.journal"
    old.write_text(json.dumps({"id": f"put {bucket}/o/f", "size": 1}) + "\n")
    done = cli("upload", str(tmp_path / "src"), f"s3://{bucket}/o", "--journal", str(old),
               env=env, check=2)
    assert "not a journal of this version" in done.stderr
    assert "Traceback" not in done.stderr


async def test_manifests_and_journals_are_written_private(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    manifest = tmp_path / "jobs.jsonl"
    cli("sign", "put", f"s3://{bucket}/p", "--manifest", str(manifest),
        "--from", str(tmp_path / "src"), env=env)
    cli("transfer", str(manifest), "--quiet", env=env)
    for path in (manifest, tmp_path / "jobs.jsonl.journal"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


async def test_a_manifest_runs_from_another_folder(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "outbox").mkdir(parents=True)
    (project / "outbox" / "o1.csv").write_bytes(b"one")
    # Signed from inside the project with a relative folder, as a user would.
    signed = run_in(project, "sign", "put", f"s3://{bucket}/r", "--manifest", "jobs.jsonl",
                    "--from", "./outbox", env=env)
    assert signed.returncode == 0, signed.stderr
    line = json.loads((project / "jobs.jsonl").read_text().splitlines()[0])
    assert not os.path.isabs(line["path"])
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    done = run_in(elsewhere, "transfer", "../../project/jobs.jsonl", "--json",
                  env=base_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["succeeded"] == 1


async def test_a_dry_run_of_a_download_manifest_creates_no_folder(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src" / "deep" / "f").write_bytes(b"x")
    cli("upload", str(tmp_path / "src"), f"s3://{bucket}/dry", "--quiet", env=env)
    cli("sign", "get", f"s3://{bucket}/dry", "--manifest", str(tmp_path / "get.jsonl"),
        "--from", str(tmp_path / "out"), env=env)
    done = cli("transfer", str(tmp_path / "get.jsonl"), "--dry-run", env=env)
    assert f"would download s3://{bucket}/dry/deep/f to " in done.stdout
    assert "would download 1 object" in done.stdout
    assert not (tmp_path / "out").exists()


async def test_a_dry_run_of_sign_multipart_starts_no_upload_and_writes_no_manifest(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    (tmp_path / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    manifest = tmp_path / "parts.jsonl"
    done = cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
               "--part-size", "5MiB", "--manifest", str(manifest), "--dry-run", env=env)
    assert "would sign" in done.stderr
    assert not manifest.exists()
    listing = await signer.client.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []


async def test_a_dry_run_of_complete_abort_leaves_the_upload_open(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    (tmp_path / "big").write_bytes(os.urandom(6 * 1024 * 1024))
    manifest = str(tmp_path / "parts.jsonl")
    cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
        "--part-size", "5MiB", "--manifest", manifest, env=env)
    done = cli("complete", manifest, "--abort", "--dry-run", env=env)
    assert "would abort" in done.stdout
    assert "aborted" not in done.stdout
    listing = await signer.client.list_multipart_uploads(Bucket=bucket)
    assert [u["Key"] for u in listing.get("Uploads", [])] == ["big"]
    cli("complete", manifest, "--abort", env=env)


async def test_transfer_honours_exclude_and_a_json_dry_run_prints_only_json(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    for name in ("a.csv", "b.log"):
        (tmp_path / "src" / name).write_bytes(b"x")
    manifest = str(tmp_path / "jobs.jsonl")
    cli("sign", "put", f"s3://{bucket}/e", "--manifest", manifest, "--from",
        str(tmp_path / "src"), env=env)
    dry = cli("transfer", manifest, "--dry-run", "--json", env=env)
    plan = json.loads(dry.stdout)  # nothing but the JSON on stdout
    assert plan["dry_run"] is True
    assert sorted(p["target"] for p in plan["plan"]) == [f"s3://{bucket}/e/a.csv",
                                                          f"s3://{bucket}/e/b.log"]
    assert (plan["objects"], plan["bytes"]) == (2, 2)
    ran = summary(cli("transfer", manifest, "--exclude", "*.log", "--json", env=env))
    assert ran["succeeded"] == 1


async def test_an_excluded_download_creates_no_folder(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src" / "deep" / "f").write_bytes(b"x")
    cli("upload", str(tmp_path / "src"), f"s3://{bucket}/ex", "--quiet", env=env)
    cli("sign", "get", f"s3://{bucket}/ex", "--manifest", str(tmp_path / "get.jsonl"),
        "--from", str(tmp_path / "out"), env=env)
    ran = summary(cli("transfer", str(tmp_path / "get.jsonl"), "--exclude", "ex/deep/*",
                      "--json", env=env))
    assert ran["succeeded"] == 0
    assert not (tmp_path / "out").exists()


async def test_dry_runs_print_the_plan_and_its_totals_and_change_nothing(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.bin").write_bytes(b"x" * 1024)
    (tmp_path / "src" / "sub" / "b.bin").write_bytes(b"y" * 2048)
    up = cli("upload", str(tmp_path / "src"), f"s3://{bucket}/plan", "--dry-run", env=env)
    assert up.returncode == 0, up.stderr
    assert "would upload 2 objects, 3.0 KiB" in up.stdout
    listing = await signer.client.list_objects_v2(Bucket=bucket, Prefix="plan")
    assert listing.get("KeyCount", 0) == 0

    cli("upload", str(tmp_path / "src"), f"s3://{bucket}/plan", "--quiet", env=env)
    down = cli("download", f"s3://{bucket}/plan", str(tmp_path / "out"), "--dry-run",
               "--json", env=env)
    plan = json.loads(down.stdout)
    assert (plan["objects"], plan["bytes"], plan["failed"]) == (2, 3072, 0)
    assert {p["op"] for p in plan["plan"]} == {"download"}
    assert not (tmp_path / "out").exists()

    copy = cli("copy", f"s3://{bucket}/plan", f"s3://{bucket}/copied", "--dry-run", env=env)
    assert "would copy 2 objects, 3.0 KiB" in copy.stdout
    listing = await signer.client.list_objects_v2(Bucket=bucket, Prefix="copied")
    assert listing.get("KeyCount", 0) == 0


async def test_a_journalled_copy_skips_unchanged_sources_and_copies_changed_ones_again(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    for name in ("a", "b", "c"):
        await signer.client.put_object(Bucket=bucket, Key=f"from/{name}", Body=b"old")
    journal = str(tmp_path / "copy.journal")
    first = summary(cli("copy", f"s3://{bucket}/from", f"s3://{bucket}/to", "--journal",
                        journal, "--json", env=env))
    assert (first["succeeded"], first["skipped"]) == (3, 0)
    again = summary(cli("copy", f"s3://{bucket}/from", f"s3://{bucket}/to", "--journal",
                        journal, "--json", env=env))
    assert (again["succeeded"], again["skipped"]) == (0, 3)
    await signer.client.put_object(Bucket=bucket, Key="from/b", Body=b"new")
    changed = summary(cli("copy", f"s3://{bucket}/from", f"s3://{bucket}/to", "--journal",
                          journal, "--json", env=env))
    assert (changed["succeeded"], changed["skipped"]) == (1, 2)
    answer = await signer.client.get_object(Bucket=bucket, Key="to/b")
    async with answer["Body"] as body:
        assert await body.read() == b"new"


def test_a_queued_download_is_recorded_with_its_file_and_skipped_only_while_untouched(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "file"
    dest.write_bytes(b"abc")
    journal = Journal(str(tmp_path / "j"))
    assert not journal.record_download("job", "etag=x", 3, str(dest))  # queued, not yet due
    journal.close()  # records what was queued
    assert Journal(str(tmp_path / "j")).download_done("job", "etag=x", str(dest))
    assert not Journal(str(tmp_path / "j")).download_done("job", "etag=y", str(dest))
    edit_in_place_keeping_times(dest, b"xyz")
    assert not Journal(str(tmp_path / "j")).download_done("job", "etag=x", str(dest))


def test_a_download_replaced_by_a_file_of_the_same_size_and_mtime_is_not_skipped(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "file"
    dest.write_bytes(b"abc")
    journal = Journal(str(tmp_path / "j"))
    journal.record_download("job", "etag=x", 3, str(dest))
    journal.close()
    other = tmp_path / "other"
    other.write_bytes(b"xyz")
    os.utime(other, ns=(dest.stat().st_atime_ns, dest.stat().st_mtime_ns))
    other.replace(dest)
    assert not Journal(str(tmp_path / "j")).download_done("job", "etag=x", str(dest))


def test_queued_downloads_fall_due_at_32_and_a_journal_without_a_file_queues_none(
    tmp_path: Path,
) -> None:
    journal = Journal(str(tmp_path / "j"))
    due = [journal.record_download(f"job{i}", "etag=x", 1, str(tmp_path)) for i in range(32)]
    assert due == [False] * 31 + [True]
    journal.flush()
    assert journal.queued == 0
    journal.close()
    assert not Journal(None).record_download("job", "etag=x", 1, str(tmp_path))


def test_a_journal_of_downloads_without_their_files_skips_none_of_them(tmp_path: Path) -> None:
    dest = tmp_path / "file"
    dest.write_bytes(b"abc")
    (tmp_path / "j").write_text(
        json.dumps({"journal": "asyncpresign", "version": 2}) + "\n"
        + json.dumps({"id": "job", "state": "etag=x", "size": 3}) + "\n"
    )
    assert not Journal(str(tmp_path / "j")).download_done("job", "etag=x", str(dest))


def test_a_record_only_buffers_and_says_when_a_flush_to_disk_is_due(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "j"))
    due = [journal.record(f"job{i}", "size=1 mtime=1", 1) for i in range(32)]
    assert due == [False] * 31 + [True]  # the caller flushes, in a thread
    assert "job0" not in Journal(str(tmp_path / "j")).done  # nothing synced yet
    journal.flush()
    assert len(Journal(str(tmp_path / "j")).done) == 32
    journal.close()
