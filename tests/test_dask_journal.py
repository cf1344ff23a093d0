"""Dask journals record what a job moves, not where it sat in the stream: a
re-run on the cluster skips a job only while its file, its object and its
destination are as they were (issue 17, item 1)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

distributed = pytest.importorskip("distributed")

from asyncpresign import InvalidArgumentError, Signer, TransferEngine  # noqa: E402
from asyncpresign._manifest import read_manifest  # noqa: E402
from asyncpresign.dask import ObjectJob, transfer_on_dask  # noqa: E402
from asyncpresign.testing import LocalS3  # noqa: E402

from . import test_dask  # noqa: E402
from .test_cli import base_env, cli  # noqa: E402
from .test_journals import rewrite_same_size, summary  # noqa: E402
from .test_local_hazards import run_on_a_full_disk  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.dask]

cluster = test_dask.cluster  # a local cluster of 2 worker processes for this module


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def write_files(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(1, count + 1):
        (folder / f"f{i:02d}.bin").write_bytes(f"file {i:02d}".encode())


async def dask_cli(env: dict[str, str], cluster: Any, *args: str) -> dict[str, object]:
    done = await anyio.to_thread.run_sync(
        lambda: cli(*args, "--json", "--dask-scheduler", cluster.scheduler_address, env=env)
    )
    return summary(done)


async def read_object(signer: Signer, bucket: str, key: str, where: Path) -> bytes:
    async with TransferEngine() as engine:
        await engine.download(await signer.presign_get(bucket, key), where)
    return await anyio.Path(where).read_bytes()


async def test_a_file_that_sorts_first_or_changed_after_a_journalled_dask_upload_is_sent_again(
    cluster: Any, env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_files(src, 20)
    command = ("upload", str(src), f"s3://{bucket}/u", "--journal", str(tmp_path / "dd.journal"))
    first = await dask_cli(env, cluster, *command)
    assert first["succeeded"] == 20
    (src / "a00.bin").write_bytes(b"new, sorts first")
    rewrite_same_size(src / "f07.bin", b"FILE 07")

    again = await dask_cli(env, cluster, *command)
    assert again["failed"] == 0
    assert again["succeeded"] == 2
    assert again["skipped"] == 19  # all but the new file and the changed one
    assert await read_object(signer, bucket, "u/a00.bin", tmp_path / "a") == b"new, sorts first"
    assert await read_object(signer, bucket, "u/f07.bin", tmp_path / "b") == b"FILE 07"


async def test_transfer_on_dask_journals_uploads_by_path_and_state_not_by_position(
    client: Any, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_files(src, 20)
    journal = tmp_path / "journal"

    def jobs() -> Iterator[ObjectJob]:
        for path in sorted(src.iterdir()):
            yield ObjectJob(op="upload", bucket=bucket, key=f"l/{path.name}", path=str(path))

    first = await transfer_on_dask(client, jobs(), signer=signer, journal=journal,
                                   partition_size=8)
    assert first.ok
    assert first.succeeded == 20
    (src / "a00.bin").write_bytes(b"new, sorts first")
    rewrite_same_size(src / "f20.bin", b"FILE 20")

    again = await transfer_on_dask(client, jobs(), signer=signer, journal=journal,
                                   partition_size=8)
    assert again.ok
    assert (again.total, again.succeeded, again.skipped) == (21, 21, 19)
    assert await read_object(signer, bucket, "l/a00.bin", tmp_path / "a") == b"new, sorts first"
    assert await read_object(signer, bucket, "l/f20.bin", tmp_path / "b") == b"FILE 20"
    assert journal.stat().st_mode & 0o777 == 0o600


async def test_a_deleted_or_changed_download_is_fetched_again_by_a_dask_journal(
    cluster: Any, env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    async with TransferEngine() as engine:
        for i in range(5):
            await engine.upload(await signer.presign_put(bucket, f"d/k{i}"), f"object {i}".encode())
    out = tmp_path / "out"
    command = ("download", f"s3://{bucket}/d", str(out), "--journal", str(tmp_path / "j"))
    assert (await dask_cli(env, cluster, *command))["succeeded"] == 5
    (out / "k1").unlink()
    async with TransferEngine() as engine:  # same size, new content: a new ETag
        await engine.upload(await signer.presign_put(bucket, "d/k3"), b"OBJECT 3")

    again = await dask_cli(env, cluster, *command)
    assert again["failed"] == 0
    assert again["skipped"] == 3
    assert (out / "k1").read_bytes() == b"object 1"
    assert (out / "k3").read_bytes() == b"OBJECT 3"


async def test_transfer_on_dask_with_a_manifest_sends_added_and_changed_jobs_again(
    client: Any, env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_files(src, 6)
    manifest = str(tmp_path / "jobs.jsonl")
    journal = tmp_path / "jobs.journal"
    sign = ("sign", "put", f"s3://{bucket}/m", "--manifest", manifest, "--from", str(src))
    await anyio.to_thread.run_sync(lambda: cli(*sign, env=env))
    first = await transfer_on_dask(client, read_manifest(manifest), journal=journal)
    assert first.ok
    assert first.succeeded == 6
    (src / "a00.bin").write_bytes(b"new, sorts first")
    rewrite_same_size(src / "f03.bin", b"FILE 03")
    await anyio.to_thread.run_sync(lambda: cli(*sign, env=env))  # re-signed: new URLs

    again = await transfer_on_dask(client, read_manifest(manifest), journal=journal)
    assert again.ok
    assert (again.total, again.skipped) == (7, 5)
    assert await read_object(signer, bucket, "m/a00.bin", tmp_path / "a") == b"new, sorts first"
    assert await read_object(signer, bucket, "m/f03.bin", tmp_path / "b") == b"FILE 03"


async def test_complete_finishes_a_multipart_upload_whose_parts_ran_on_dask(
    cluster: Any, env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    manifest = str(tmp_path / "parts.jsonl")
    await anyio.to_thread.run_sync(lambda: cli(
        "sign", "put", f"s3://{bucket}/big", "--multipart", str(tmp_path / "big"),
        "--part-size", "5MiB", "--manifest", manifest, env=env,
    ))
    assert (await dask_cli(env, cluster, "transfer", manifest))["succeeded"] == 3
    await anyio.to_thread.run_sync(lambda: cli("complete", manifest, env=env))
    assert await read_object(signer, bucket, "big", tmp_path / "back") == data


async def test_a_dask_journal_of_positions_is_refused_not_misread(
    client: Any, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(b"x")
    journal = tmp_path / "old.journal"
    journal.write_text("0\n1\n")
    with pytest.raises(InvalidArgumentError, match="not a journal of this version"):
        await transfer_on_dask(
            client, [ObjectJob(op="upload", bucket=bucket, key="f", path=str(tmp_path / "f"))],
            signer=signer, journal=journal,
        )


async def test_a_dask_run_whose_journal_cannot_be_written_prints_its_summary_and_exits_1(
    env: dict[str, str], cluster: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_files(src, 40)
    command = [sys.executable, "-m", "asyncpresign", "upload", str(src), f"s3://{bucket}/dj/",
               "--journal", str(tmp_path / "journal"), "--json",
               "--dask-scheduler", cluster.scheduler_address]
    done = await run_on_a_full_disk(command, env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot write journal" in done.stderr
    result = json.loads(done.stdout)
    assert (result["succeeded"], result["failed"]) == (40, 0)  # the uploads stand
    assert "cannot write journal" in result["journal_error"]
