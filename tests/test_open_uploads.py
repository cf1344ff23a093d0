"""Open multipart uploads: listed, aborted, and never orphaned by a re-signed
manifest (the Signer, and the real command against SeaweedFS)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from asyncpresign import HTTPStatusError, InvalidArgumentError, Signer
from asyncpresign.testing import LocalS3

from .proxy import Rule, S3Proxy
from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


async def open_upload_ids(signer: Signer, bucket: str) -> set[str]:
    """Ask the server directly (not through the code under test) which uploads are open."""
    answer = await signer.client.list_multipart_uploads(Bucket=bucket)
    return {u["UploadId"] for u in answer.get("Uploads", [])}


async def send_part(signer: Signer, bucket: str, key: str, upload_id: str) -> None:
    await signer.client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024
    )


# -- the Signer ---------------------------------------------------------------------------


async def test_list_multipart_uploads_yields_the_open_uploads_under_the_prefix(
    signer: Signer, bucket: str
) -> None:
    first = await signer.create_multipart_upload(bucket, "logs/a.bin")
    second = await signer.create_multipart_upload(bucket, "logs/a.bin")
    await signer.create_multipart_upload(bucket, "other/b.bin")
    await send_part(signer, bucket, "logs/a.bin", first)
    before = dt.datetime.now(dt.timezone.utc)

    plain = [u async for u in signer.list_multipart_uploads(bucket, "logs/")]
    assert {(u.key, u.upload_id) for u in plain} == {
        ("logs/a.bin", first), ("logs/a.bin", second)
    }
    assert all(u.parts is None and u.bucket == bucket for u in plain)
    for upload in plain:
        assert upload.initiated.tzinfo == dt.timezone.utc
        assert before - dt.timedelta(minutes=5) < upload.initiated <= before

    counted = {u.upload_id: u.parts async for u in signer.list_multipart_uploads(
        bucket, "logs/", with_parts=True
    )}
    assert counted == {first: 1, second: 0}
    assert len([u async for u in signer.list_multipart_uploads(bucket)]) == 3


async def test_count_parts_is_none_once_the_upload_is_aborted(
    signer: Signer, bucket: str
) -> None:
    upload_id = await signer.create_multipart_upload(bucket, "k")
    await send_part(signer, bucket, "k", upload_id)
    assert await signer.count_parts(bucket, "k", upload_id) == 1
    await signer.abort_multipart_upload(bucket, "k", upload_id)
    assert await signer.count_parts(bucket, "k", upload_id) is None


async def test_abort_multipart_uploads_older_than_spares_fresh_ones_and_aborts_the_rest(
    signer: Signer, bucket: str
) -> None:
    stale = await signer.create_multipart_upload(bucket, "tmp/stale")
    kept = await signer.create_multipart_upload(bucket, "keep/this")
    assert await signer.abort_multipart_uploads(
        bucket, "tmp/", older_than=dt.timedelta(days=7)
    ) == []
    assert await open_upload_ids(signer, bucket) == {stale, kept}

    outcomes = await signer.abort_multipart_uploads(bucket, "tmp/")
    assert [(u.key, u.upload_id, error) for u, error in outcomes] == [
        ("tmp/stale", stale, None)
    ]
    assert await open_upload_ids(signer, bucket) == {kept}


async def test_an_upload_that_cannot_be_aborted_is_returned_with_its_error_and_the_others_are(
    proxied: Signer, proxy: S3Proxy, signer: Signer, bucket: str
) -> None:
    denied = await signer.create_multipart_upload(bucket, "p/denied")
    other = await signer.create_multipart_upload(bucket, "p/other")
    proxy.add(Rule("DELETE", "/p/denied?uploadId", times=100, status=403, code="AccessDenied"))
    outcomes = {u.upload_id: error for u, error in await proxied.abort_multipart_uploads(
        bucket, "p/"
    )}
    assert outcomes[other] is None
    assert isinstance(outcomes[denied], HTTPStatusError)
    assert outcomes[denied].status == 403
    assert await open_upload_ids(signer, bucket) == {denied}


async def test_many_open_uploads_are_aborted_side_by_side_not_one_after_another(
    proxied: Signer, proxy: S3Proxy, signer: Signer, bucket: str
) -> None:
    """A crashed job can leave thousands open: each abort held 1 s by the proxy,
    the first ten must all be under way before the first is answered."""
    ids = {await signer.create_multipart_upload(bucket, f"many/k{i:02d}") for i in range(12)}
    listed = [u.upload_id async for u in signer.list_multipart_uploads(bucket, "many/")]
    proxy.add(Rule("DELETE", "/many/", times=100, delay=1.0))
    outcomes = await proxied.abort_multipart_uploads(bucket, "many/")
    assert [u.upload_id for u, error in outcomes if error is None] == listed
    assert set(listed) == ids
    arrivals = sorted(
        when for (method, _), when in zip(proxy.seen, proxy.times, strict=True)
        if method == "DELETE"
    )
    assert len(arrivals) == 12
    assert arrivals[9] - arrivals[0] < 1.0
    assert await open_upload_ids(signer, bucket) == set()


@pytest.mark.parametrize("older_than", [-1, float("nan"), "7d", True])
async def test_older_than_must_be_a_timedelta_or_seconds_of_at_least_zero(
    signer: Signer, bucket: str, older_than: object
) -> None:
    with pytest.raises(InvalidArgumentError, match="older_than"):
        await signer.abort_multipart_uploads(bucket, older_than=older_than)  # type: ignore[arg-type]


# -- sign put --multipart over an existing manifest -----------------------------------------


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def sign_parts(
    env: dict[str, str], bucket: str, source: Path, manifest: Path, *extra: str, check: int = 0
) -> tuple[str, str]:
    """Run ``sign put --multipart``; its (stdout, stderr)."""
    done = cli("sign", "put", f"s3://{bucket}/big", "--multipart", str(source),
               "--part-size", "5MiB", "--manifest", str(manifest), *extra, env=env, check=check)
    return done.stdout, done.stderr


def upload_id_in(manifest: Path) -> str:
    ids = {json.loads(line)["upload_id"] for line in manifest.read_text().splitlines()}
    assert len(ids) == 1
    return str(ids.pop())


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big"
    path.write_bytes(os.urandom(5 * MiB + 7))
    return path


async def test_resigning_over_the_manifest_of_an_open_upload_is_refused_and_changes_nothing(
    env: dict[str, str], bucket: str, big: Path, tmp_path: Path, signer: Signer
) -> None:
    manifest = tmp_path / "parts.jsonl"
    sign_parts(env, bucket, big, manifest)
    cli("transfer", str(manifest), "--quiet", env=base_env(tmp_path))  # its parts are stored
    before = manifest.read_bytes()
    old = upload_id_in(manifest)

    for extra in ((), ("--dry-run",)):
        _, stderr = sign_parts(env, bucket, big, manifest, *extra, check=2)
        assert str(manifest) in stderr
        assert f"s3://{bucket}/big" in stderr
        assert old in stderr
        assert "2 parts stored" in stderr
        assert "--force" in stderr
        assert "Traceback" not in stderr
    assert manifest.read_bytes() == before
    assert await open_upload_ids(signer, bucket) == {old}  # and no new one started


async def test_force_aborts_the_open_upload_and_writes_the_new_manifest(
    env: dict[str, str], bucket: str, big: Path, tmp_path: Path, signer: Signer
) -> None:
    manifest = tmp_path / "parts.jsonl"
    sign_parts(env, bucket, big, manifest)
    old = upload_id_in(manifest)
    _, stderr = sign_parts(env, bucket, big, manifest, "--force")
    assert f"aborted s3://{bucket}/big (upload id {old}" in stderr
    new = upload_id_in(manifest)
    assert new != old
    assert await open_upload_ids(signer, bucket) == {new}


async def test_the_manifest_of_a_completed_upload_is_replaced_without_force(
    env: dict[str, str], bucket: str, big: Path, tmp_path: Path, signer: Signer
) -> None:
    manifest = tmp_path / "parts.jsonl"
    sign_parts(env, bucket, big, manifest)
    old = upload_id_in(manifest)
    cli("transfer", str(manifest), "--quiet", env=base_env(tmp_path))
    cli("complete", str(manifest), env=env)
    sign_parts(env, bucket, big, manifest)
    new = upload_id_in(manifest)
    assert new != old
    assert await open_upload_ids(signer, bucket) == {new}


async def test_dry_run_force_aborts_nothing_starts_nothing_and_writes_nothing(
    env: dict[str, str], bucket: str, big: Path, tmp_path: Path, signer: Signer
) -> None:
    manifest = tmp_path / "parts.jsonl"
    sign_parts(env, bucket, big, manifest)
    before = manifest.read_bytes()
    old = upload_id_in(manifest)
    stdout, stderr = sign_parts(env, bucket, big, manifest, "--force", "--dry-run")
    assert f"would abort s3://{bucket}/big (upload id {old}" in stderr
    assert "would sign a multipart upload" in stderr
    assert "2 parts)" in stderr
    assert stdout == ""
    assert manifest.read_bytes() == before
    assert await open_upload_ids(signer, bucket) == {old}


@pytest.mark.parametrize("force", [(), ("--force",)])
async def test_a_file_that_is_not_a_manifest_is_never_overwritten(
    env: dict[str, str], bucket: str, big: Path, tmp_path: Path, signer: Signer,
    force: tuple[str, ...],
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a manifest\n")
    _, stderr = sign_parts(env, bucket, big, notes, *force, check=2)
    assert "not a manifest" in stderr
    assert "not overwriting" in stderr
    assert notes.read_text() == "my notes, not a manifest\n"
    assert await open_upload_ids(signer, bucket) == set()


async def test_an_upload_whose_manifest_cannot_be_written_is_aborted_not_left_open(
    env: dict[str, str], bucket: str, big: Path, tmp_path: Path, signer: Signer
) -> None:
    _, stderr = sign_parts(env, bucket, big, tmp_path / "missing" / "parts.jsonl", check=2)
    assert "cannot write manifest" in stderr
    assert await open_upload_ids(signer, bucket) == set()


async def test_force_goes_with_multipart_and_multipart_with_a_manifest(
    env: dict[str, str], bucket: str, big: Path
) -> None:
    done = cli("sign", "put", f"s3://{bucket}/k", "--force", env=env, check=2)
    assert "--force goes with --multipart" in done.stderr
    done = cli("sign", "put", f"s3://{bucket}/k", "--multipart", str(big), env=env, check=2)
    assert "--multipart needs --manifest" in done.stderr


# -- asyncpresign uploads --------------------------------------------------------------------


async def test_uploads_lists_each_open_upload_with_its_key_id_start_and_parts(
    env: dict[str, str], bucket: str, signer: Signer
) -> None:
    upload_id = await signer.create_multipart_upload(bucket, "in/a.bin")
    await send_part(signer, bucket, "in/a.bin", upload_id)
    await signer.create_multipart_upload(bucket, "elsewhere/b.bin")

    text = cli("uploads", f"s3://{bucket}/in/", env=env)
    line, summary = text.stdout.splitlines()
    assert f"s3://{bucket}/in/a.bin" in line
    assert upload_id in line
    assert "1 parts" in line
    assert "started 20" in line
    assert summary == f"1 open multipart upload under s3://{bucket}/in/"

    listed = json.loads(cli("uploads", f"s3://{bucket}/in/", "--json", env=env).stdout)
    assert listed["total"] == 1
    [row] = listed["uploads"]
    assert (row["key"], row["upload_id"], row["parts"], row["status"]) == (
        "in/a.bin", upload_id, 1, "open"
    )
    assert dt.datetime.fromisoformat(row["initiated"]).tzinfo is not None


async def test_uploads_abort_older_than_7d_spares_a_fresh_upload_and_abort_aborts_it(
    env: dict[str, str], bucket: str, signer: Signer
) -> None:
    upload_id = await signer.create_multipart_upload(bucket, "in/a.bin")
    spared = cli("uploads", f"s3://{bucket}/in", "--abort", "--older-than", "7d", "--json",
                 env=env)
    assert json.loads(spared.stdout)["total"] == 0
    assert await open_upload_ids(signer, bucket) == {upload_id}

    done = cli("uploads", f"s3://{bucket}/in", "--abort", env=env)
    assert f"aborted s3://{bucket}/in/a.bin  upload id {upload_id}" in done.stdout
    assert "1 aborted, 0 failed" in done.stdout
    assert await open_upload_ids(signer, bucket) == set()


async def test_uploads_abort_dry_run_aborts_nothing(
    env: dict[str, str], bucket: str, signer: Signer
) -> None:
    upload_id = await signer.create_multipart_upload(bucket, "in/a.bin")
    done = cli("uploads", f"s3://{bucket}", "--abort", "--dry-run", env=env)
    assert f"would abort s3://{bucket}/in/a.bin  upload id {upload_id}" in done.stdout
    assert "none aborted (dry run)" in done.stdout
    dry = json.loads(cli("uploads", f"s3://{bucket}", "--abort", "--dry-run", "--json",
                         env=env).stdout)
    assert [row["status"] for row in dry["uploads"]] == ["would abort"]
    assert dry["aborted"] == 0
    assert await open_upload_ids(signer, bucket) == {upload_id}


@pytest.fixture
async def proxy(s3: LocalS3) -> AsyncIterator[S3Proxy]:
    async with S3Proxy(s3.endpoint_url) as proxy:
        yield proxy


async def test_uploads_abort_reports_each_failure_tries_the_others_and_exits_1(
    s3: LocalS3, proxy: S3Proxy, bucket: str, tmp_path: Path, signer: Signer
) -> None:
    denied = await signer.create_multipart_upload(bucket, "p/denied")
    await signer.create_multipart_upload(bucket, "p/other")
    proxy.add(Rule("DELETE", "/p/denied?uploadId", times=100, status=403, code="AccessDenied"))
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    # In a thread: the proxy serves from this event loop and must keep running.
    done = await anyio.to_thread.run_sync(
        lambda: cli("uploads", f"s3://{bucket}/p/", "--abort", "--json", env=env, check=1)
    )
    report = json.loads(done.stdout)
    assert (report["aborted"], report["failed"]) == (1, 1)
    [failure] = [row for row in report["uploads"] if row["status"] == "failed"]
    assert failure["upload_id"] == denied
    assert "AccessDenied" in failure["error"]
    assert await open_upload_ids(signer, bucket) == {denied}  # the other one aborted


async def test_uploads_offers_only_the_options_it_honours(env: dict[str, str]) -> None:
    for option in ("--concurrency", "--journal", "--include"):
        done = cli("uploads", "s3://b/p", option, "x", env=env, check=2)
        assert "unrecognized arguments" in done.stderr
