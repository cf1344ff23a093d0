"""One bad job fails alone, with its reason in the summary and in --json; the
others run; exit 1. Every file of a folder is sent or accounted for, and no
two keys share a local file (issue 17, items 10, 12 and 13)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest

from asyncpresign import Signer, TransferEngine
from asyncpresign.testing import LocalS3

from .fault_server import Fault, FaultServer
from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def failures(done: object) -> dict[str, str]:
    summary = json.loads(done.stdout)  # type: ignore[attr-defined]
    return {f["url"]: f["error"] for f in summary["failures"]}


async def keys(signer: Signer, bucket: str, prefix: str = "") -> list[str]:
    listing = await signer.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


async def put(signer: Signer, bucket: str, objects: dict[str, bytes]) -> None:
    async with TransferEngine() as engine:
        for key, data in objects.items():
            await engine.upload(await signer.presign_put(bucket, key), data)


async def test_upload_fails_only_the_file_whose_name_is_not_utf8(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    (src / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"c")  # Latin-1: not UTF-8
    done = cli("upload", str(src), f"s3://{bucket}/u", "--json", env=env, check=1)
    summary = json.loads(done.stdout)
    assert (summary["succeeded"], summary["failed"], summary["total"]) == (2, 1, 3)
    [(url, error)] = failures(done).items()
    assert url == f"s3://{bucket}/u/caf\\udce9.txt"
    assert "file name is not valid UTF-8, cannot be an S3 key" in error
    assert await keys(signer, bucket) == ["u/a.txt", "u/b.txt"]


async def test_upload_reports_every_entry_it_cannot_send_and_follows_links(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.txt").write_bytes(b"o")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "linked").symlink_to(outside)
    (src / "sub" / "up").symlink_to(src)
    (src / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(src / "fifo")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(src / "sock"))  # the socket file outlives it
    done = cli("upload", str(src), f"s3://{bucket}/t", "--json", env=env, check=1)
    failed = failures(done)
    assert sorted(failed) == [f"s3://{bucket}/t/{name}"
                              for name in ("broken", "fifo", "sock", "sub/up")]
    assert f"{str(src / 'fifo')!r}: a FIFO (named pipe)" in failed[f"s3://{bucket}/t/fifo"]
    assert "loop" in failed[f"s3://{bucket}/t/sub/up"]
    assert json.loads(done.stdout)["succeeded"] == 2
    assert await keys(signer, bucket) == ["t/a.txt", "t/linked/o.txt"]


async def test_upload_without_following_links_lists_them_as_not_followed(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "link").symlink_to(src / "a.txt")
    done = cli("upload", str(src), f"s3://{bucket}/n", "--no-follow-symlinks", env=env)
    assert "1 done" in done.stdout
    assert "1 symbolic links not followed" in done.stdout
    assert f"not followed: {src / 'link'}" in done.stdout
    as_json = cli("upload", str(src), f"s3://{bucket}/n", "--no-follow-symlinks", "--json",
                  env=env)
    assert json.loads(as_json.stdout)["not_followed"] == [str(src / "link")]
    assert await keys(signer, bucket) == ["n/a.txt"]


async def test_sign_put_leaves_out_what_it_cannot_send_and_signs_the_rest(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    os.mkfifo(src / "fifo")
    manifest = tmp_path / "jobs.jsonl"
    done = cli("sign", "put", f"s3://{bucket}/m", "--manifest", str(manifest),
               "--from", str(src), env=env, check=1)
    assert f"not signed: {str(src / 'fifo')!r}: a FIFO" in done.stderr
    assert [json.loads(line)["key"] for line in manifest.read_text().splitlines()] == ["m/a.txt"]


async def test_download_fails_only_the_keys_whose_folder_cannot_be_made(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    await put_via_cli(env, bucket, tmp_path, ["blocked/f", "blocked/g/h", "proc/new/f",
                                              "ok/g", "z"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_bytes(b"a file where a folder is needed")
    (out / "proc").symlink_to("/proc")  # no folder can be made there, even by root
    done = cli("download", f"s3://{bucket}/d", str(out), "--json", env=env, check=1)
    failed = failures(done)
    assert sorted(failed) == [f"s3://{bucket}/d/{key}"
                              for key in ("blocked/f", "blocked/g/h", "proc/new/f")]
    assert f"{str(out / 'blocked')!r} is a file, not a folder" in failed[
        f"s3://{bucket}/d/blocked/g/h"]
    assert f"cannot create folder {str(out / 'proc' / 'new')!r}" in failed[
        f"s3://{bucket}/d/proc/new/f"]
    assert (out / "ok" / "g").read_bytes() == b"ok/g"
    assert (out / "z").read_bytes() == b"z"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
async def test_download_into_a_read_only_folder_fails_those_keys_alone(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    await put_via_cli(env, bucket, tmp_path, ["ro/sub/f", "z"])
    out = tmp_path / "out"
    (out / "ro").mkdir(parents=True)
    (out / "ro").chmod(0o500)
    try:
        done = cli("download", f"s3://{bucket}/d", str(out), "--json", env=env, check=1)
    finally:
        (out / "ro").chmod(0o700)
    assert "Permission denied" in failures(done)[f"s3://{bucket}/d/ro/sub/f"]
    assert (out / "z").read_bytes() == b"z"


async def put_via_cli(
    env: dict[str, str], bucket: str, tmp_path: Path, names: list[str]
) -> None:
    """Upload ``names`` (each holding its own name) under ``d/``."""
    src = tmp_path / "src"
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(name.encode())
    cli("upload", str(src), f"s3://{bucket}/d", "--quiet", env=env)


# SeaweedFS stores "a//b" as "a/b" and refuses "a/./b"; keys in a prefix's folder
# and beside it (listed with --prefix-match) are the collision it can hold: both
# of these land on photos-old/a.jpg.
SAME_PATH = {"photos/photos-old/a.jpg": b"in the folder", "photos-old/a.jpg": b"beside it",
             "photos/b.jpg": b"b"}


async def test_download_never_lets_two_keys_share_a_file(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    await put(signer, bucket, SAME_PATH)
    out = tmp_path / "out"
    done = cli("download", f"s3://{bucket}/photos", str(out), "--json", "--prefix-match",
               env=env, check=1)
    summary = json.loads(done.stdout)
    assert (summary["succeeded"], summary["failed"]) == (2, 1)
    [(url, error)] = failures(done).items()
    loser = url.removeprefix(f"s3://{bucket}/")
    winner = next(k for k in SAME_PATH if k != loser and k.endswith("a.jpg"))
    assert f"s3://{bucket}/{winner}" in error
    assert str(out / "photos-old" / "a.jpg") in error
    assert (out / "photos-old" / "a.jpg").read_bytes() == SAME_PATH[winner]
    assert (out / "b.jpg").read_bytes() == b"b"


async def test_sign_get_leaves_out_a_key_that_lands_where_another_does(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    await put(signer, bucket, SAME_PATH)
    manifest = tmp_path / "get.jsonl"
    done = cli("sign", "get", f"s3://{bucket}/photos", "--manifest", str(manifest),
               "--from", str(tmp_path / "out"), "--prefix-match", env=env, check=1)
    assert "not signed: " in done.stderr
    assert "lands on" in done.stderr
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 2
    assert len({line["path"] for line in lines}) == 2


async def test_transfer_runs_every_valid_line_around_a_malformed_one(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02d}").write_bytes(b"%d" % i)
    manifest = tmp_path / "jobs.jsonl"
    cli("sign", "put", f"s3://{bucket}/m", "--manifest", str(manifest), "--from", str(src),
        env=env)
    lines = manifest.read_bytes().splitlines()
    lines[19] = b'{"op": "put", "url": '  # line 20, cut short
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    done = cli("transfer", str(manifest), "--json", env=base_env(tmp_path), check=1)
    summary = json.loads(done.stdout)
    assert (summary["succeeded"], summary["failed"], summary["total"]) == (39, 1, 40)
    assert "manifest line 20: not JSON" in summary["failures"][0]["error"]
    assert len(await keys(signer, bucket, "m/")) == 39


async def test_a_journal_records_uploads_from_a_folder_whose_name_is_not_utf8(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / os.fsdecode(b"caf\xe9")  # the folder, not the keys below it
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    journal = str(tmp_path / "up.journal")
    cli("upload", str(src), f"s3://{bucket}/j", "--journal", journal, "--quiet", env=env)
    again = cli("upload", str(src), f"s3://{bucket}/j", "--journal", journal, "--json",
                env=env)
    assert json.loads(again.stdout)["skipped"] == 1


async def test_a_manifest_holds_files_from_a_folder_whose_name_is_not_utf8(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    src = tmp_path / os.fsdecode(b"caf\xe9")
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    manifest = tmp_path / "jobs.jsonl"
    cli("sign", "put", f"s3://{bucket}/m", "--manifest", str(manifest), "--from", str(src),
        env=env)
    cli("transfer", str(manifest), "--quiet", env=base_env(tmp_path))
    assert await keys(signer, bucket) == ["m/a.txt"]


async def test_a_failure_whose_message_echoes_the_url_percent_encoded_shows_no_secret(
    tmp_path: Path,
) -> None:
    """A server (or a gateway before it) that quotes the request URL
    percent-encoded in its error (X-Amz-Signature%3D...) put the live signature
    in the --json document and in the summary."""
    signature, token = "c0ffee" * 10 + "beef", "FwoGZXIvYXdzSECRET/TOKEN+value="
    async with FaultServer() as server:
        url = (f"http://127.0.0.1:{server.port}/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
               "&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
               f"&X-Amz-Security-Token={quote(token, safe='')}&X-Amz-Signature={signature}")
        echo = Fault("status", status=403, code="AccessDenied",
                     message=f"Cannot serve {quote(url, safe='')}")
        server.script("k", [echo] * 4)
        manifest = tmp_path / "jobs.jsonl"
        manifest.write_text(json.dumps({"op": "get", "url": url, "path": "out"}) + "\n")
        env = base_env(tmp_path)
        as_json, human = await anyio.to_thread.run_sync(lambda: (
            cli("transfer", str(manifest), "--json", env=env, check=1),
            cli("transfer", str(manifest), env=env, check=1),
        ))
    [error] = failures(as_json).values()
    assert "AccessDenied: Cannot serve http%3A%2F%2F127.0.0.1" in error  # still said
    assert "X-Amz-Signature%3DREDACTED" in error
    for shown in (as_json.stdout, as_json.stderr, human.stdout, human.stderr):
        assert signature not in shown
        assert quote(token, safe="") not in shown
        assert quote(quote(token, safe=""), safe="") not in shown
    assert "AccessDenied" in human.stdout + human.stderr
