"""One job across a local Dask cluster (2 worker processes), credentials on the driver only."""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

distributed = pytest.importorskip("distributed")

from asyncpresign import Signer, TransferEngine  # noqa: E402
from asyncpresign.dask import ObjectJob, transfer_on_dask  # noqa: E402
from asyncpresign.testing import LocalS3  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.dask]

FILES = 2000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import dask

    scratch = str(tmp_path_factory.mktemp("dask"))
    with dask.config.set({"temporary-directory": scratch}), distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
        local_directory=scratch,  # not /tmp/dask-scratch-space
    ) as cluster:
        yield cluster


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture
async def tree(tmp_path: Path) -> AsyncIterator[dict[str, bytes]]:
    src = tmp_path / "src"
    src.mkdir()
    files = {f"f{i:05d}.bin": os.urandom(100 + (i * 37) % 4000) for i in range(FILES)}

    def write() -> None:
        for name, data in files.items():
            (src / name).write_bytes(data)

    await anyio.to_thread.run_sync(write)
    return files


class PayloadSpy:
    """Wraps client.submit to keep the pickled bytes of everything sent to workers."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.real = client.submit
        self.payloads: list[bytes] = []

    def __call__(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.payloads.append(pickle.dumps((fn, args, kwargs)))
        return self.real(fn, *args, **kwargs)


async def test_2000_files_up_and_down_through_the_cluster_with_no_secrets_on_workers(
    client: Any, s3: LocalS3, signer: Signer, bucket: str, tree: dict[str, bytes],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = PayloadSpy(client)
    monkeypatch.setattr(client, "submit", spy)
    up = await transfer_on_dask(
        client,
        (ObjectJob(op="upload", bucket=bucket, key=f"d/{n}", path=str(tmp_path / "src" / n))
         for n in tree),
        signer=signer,
        partition_size=250,
    )
    assert up.ok, up.failed[:3]
    assert up.total == up.succeeded == FILES
    assert up.partitions == FILES // 250

    out = tmp_path / "out"
    out.mkdir()
    down = await transfer_on_dask(
        client,
        (ObjectJob(op="download", bucket=bucket, key=f"d/{n}", path=str(out / n)) for n in tree),
        signer=signer,
        partition_size=250,
    )
    assert down.ok
    assert down.nbytes == sum(len(d) for d in tree.values())
    for name, data in tree.items():
        assert (out / name).read_bytes() == data

    # What went to the workers: URLs and paths, never the key or the secret.
    everything = b"".join(spy.payloads)
    assert b"X-Amz-Signature" in everything  # the URLs did go
    assert s3.secret_key.encode() not in everything
    worker_envs = client.run(lambda: dict(os.environ))
    for env in worker_envs.values():
        assert s3.secret_key not in "".join(env.values())
        assert "AWS_SECRET_ACCESS_KEY" not in env


async def test_a_worker_killed_midway_still_ends_with_every_object_correct(
    client: Any, signer: Signer, bucket: str, tree: dict[str, bytes], tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    pids = list(client.run(os.getpid).values())
    done_at_kill: list[int] = []

    async def kill_one_worker_soon() -> None:
        while not journal.exists() or journal.stat().st_size < 200:  # noqa: ASYNC110
            await anyio.sleep(0.02)
        done_at_kill.append(len(journal.read_text().splitlines()) - 1)  # the header
        os.kill(pids[0], signal.SIGKILL)

    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_one_worker_soon)
        summary = await transfer_on_dask(
            client,
            (ObjectJob(op="upload", bucket=bucket, key=f"k/{n}", path=str(tmp_path / "src" / n))
             for n in tree),
            signer=signer,
            partition_size=100,
            journal=journal,
            engine_options={"concurrency": 4},
        )
    assert summary.ok, summary.failed[:3]
    assert summary.total == FILES
    assert done_at_kill
    assert done_at_kill[0] < FILES
    assert pids[0] not in client.run(os.getpid).values()  # that worker really died
    listed: set[str] = set()
    paginator = signer.client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix="k/"):
        listed.update(o["Key"] for o in page.get("Contents", []))
    assert listed == {f"k/{n}" for n in tree}
    async with TransferEngine() as engine:
        for name in list(tree)[::97]:
            await engine.download(await signer.presign_get(bucket, f"k/{name}"), tmp_path / "x")
            assert (tmp_path / "x").read_bytes() == tree[name]


@pytest.mark.parametrize(
    ("option", "match"),
    [({"window": 0}, "window"), ({"window": -1}, "window"),
     ({"partition_size": 1.5}, "partition_size"), ({"partition_size": 0}, "partition_size")],
)
async def test_a_window_or_partition_size_that_cannot_work_is_refused_at_the_call(
    option: dict[str, Any], match: str
) -> None:
    """window=0 waited for ever on no task, spinning the caller's event loop at
    100% CPU; partition_size=1.5 was never reached, so every job went into one
    partition (its memory bound gone)."""
    from asyncpresign import InvalidArgumentError

    with anyio.fail_after(10), pytest.raises(InvalidArgumentError, match=match):
        await transfer_on_dask(object(), [], **option)


async def test_jobs_with_signing_functions_are_refused_before_anything_is_sent(
    client: Any, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    from asyncpresign import InvalidArgumentError, Upload

    job = Upload(None, tmp_path / "f", sign=signer.sign_later("PUT", bucket, "k"))
    with pytest.raises(InvalidArgumentError, match="signing functions"):
        await transfer_on_dask(client, [job])


async def test_a_job_the_signer_refuses_fails_alone_and_the_run_goes_on(
    client: Any, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    """A key S3 cannot hold, or something that is not a job, among good jobs:
    those two fail on the driver with the reason; every other job is sent."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(b"%d" % i)
    jobs: list[Any] = [
        ObjectJob(op="upload", bucket=bucket, key=f"alone/f{i}", path=str(src / f"f{i}"))
        for i in range(20)
    ]
    jobs.insert(7, ObjectJob(op="upload", bucket=bucket, key="k" * 1100, path=str(src / "f1")))
    jobs.insert(13, "not a job")
    summary = await transfer_on_dask(client, jobs, signer=signer, partition_size=8)
    assert (summary.total, summary.succeeded, len(summary.failed)) == (22, 20, 2)
    errors = [f.error or "" for f in summary.failed]
    assert all(e.startswith("InvalidArgumentError: ") for e in errors)
    assert any("object key is 1100 bytes" in e for e in errors)
    assert any("not str" in e for e in errors)
    async with TransferEngine() as engine:
        for i in (0, 19):
            await engine.download(await signer.presign_get(bucket, f"alone/f{i}"), tmp_path / "x")
            assert (tmp_path / "x").read_bytes() == b"%d" % i


async def test_cli_runs_an_upload_and_a_download_on_the_cluster(
    cluster: Any, s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    files = {f"nested/f{i}.bin": os.urandom(i * 50) for i in range(60)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env())
    env["AWS_CONFIG_FILE"] = str(tmp_path / "none")

    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "asyncpresign", *args, "--json",
             "--dask-scheduler", cluster.scheduler_address],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 0, done.stderr
        assert s3.secret_key not in done.stdout + done.stderr
        return dict(json.loads(done.stdout))

    up = await anyio.to_thread.run_sync(cli, "upload", str(src), f"s3://{bucket}/cli")
    assert up["succeeded"] == 60
    down = await anyio.to_thread.run_sync(cli, "download", f"s3://{bucket}/cli",
                                          str(tmp_path / "out"))
    assert down["succeeded"] == 60
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    # Workers hold no credentials to sign a source's metadata into its PUT.
    copied = await anyio.to_thread.run_sync(
        cli, "copy", f"s3://{bucket}/cli", f"s3://{bucket}/copied", "--no-metadata"
    )
    assert copied["succeeded"] == 60


async def test_a_run_on_the_cluster_counts_transfers_no_check_could_confirm(
    cluster: Any, s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    """A Dask run's summary used to leave ``unverified`` out: uploads with checks
    off were reported as a plain success, as a checked one is."""
    import json
    import subprocess
    import sys

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(os.urandom(100))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env())
    env["AWS_CONFIG_FILE"] = str(tmp_path / "none")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "asyncpresign", *args,
             "--dask-scheduler", cluster.scheduler_address],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    checked = json.loads((await anyio.to_thread.run_sync(
        cli, "upload", str(src), f"s3://{bucket}/v", "--json")).stdout)
    assert (checked["succeeded"], checked["unverified"]) == (3, 0)
    unchecked = json.loads((await anyio.to_thread.run_sync(
        cli, "upload", str(src), f"s3://{bucket}/u", "--checksum", "none", "--json")).stdout)
    assert (unchecked["succeeded"], unchecked["unverified"]) == (3, 3)  # checks off
    human = await anyio.to_thread.run_sync(
        cli, "upload", str(src), f"s3://{bucket}/h", "--checksum", "none")
    assert "not verified: 3 of those done passed no check" in human.stdout


async def test_a_failure_on_a_worker_names_its_job_as_a_local_failure_does(
    client: Any, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    """A worker sees only URLs: its failures used to come back as an index and a
    redacted URL, with no operation, bucket, key or file to retry them by."""
    (tmp_path / "here").write_bytes(b"here")
    await signer.client.put_object(Bucket=bucket, Key="named/present", Body=b"present")
    jobs = [
        ObjectJob(op="upload", bucket=bucket, key="named/up-ok", path=str(tmp_path / "here")),
        ObjectJob(op="upload", bucket=bucket, key="named/up-gone",
                  path=str(tmp_path / "gone")),
        ObjectJob(op="download", bucket=bucket, key="named/absent",
                  path=str(tmp_path / "absent")),
        ObjectJob(op="download", bucket=bucket, key="named/present",
                  path=str(tmp_path / "present")),
    ]
    summary = await transfer_on_dask(client, jobs, signer=signer, partition_size=2)
    assert (summary.total, summary.succeeded, len(summary.failed)) == (4, 2, 2)
    failures = summary.as_dict()["failures"]
    gone, absent = failures
    assert {k: gone[k] for k in ("index", "op", "bucket", "key", "path", "url")} == {
        "index": 1, "op": "upload", "bucket": bucket, "key": "named/up-gone",
        "path": str(tmp_path / "gone"), "url": f"s3://{bucket}/named/up-gone",
    }
    assert gone["error"].startswith("LocalFileError: ")
    assert {k: absent[k] for k in ("index", "op", "bucket", "key", "path", "url", "status",
                                   "code")} == {
        "index": 2, "op": "download", "bucket": bucket, "key": "named/absent",
        "path": str(tmp_path / "absent"), "url": f"s3://{bucket}/named/absent",
        "status": 404, "code": "NoSuchKey",
    }
    assert absent["attempts"] >= 1
    assert not (tmp_path / "absent").exists()


async def test_cli_json_on_the_cluster_gives_each_failure_the_fields_a_local_run_gives(
    cluster: Any, s3: LocalS3, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    for name in ("a", "b", "c"):
        await signer.client.put_object(Bucket=bucket, Key=f"cj/{name}", Body=name.encode())
    out = tmp_path / "out"
    (out / "b").mkdir(parents=True)  # a folder where the object's file goes: fails alone
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env())
    env["AWS_CONFIG_FILE"] = str(tmp_path / "none")

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asyncpresign", "download", f"s3://{bucket}/cj", str(out),
             "--json", *extra],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )

    local = await anyio.to_thread.run_sync(cli)
    on_dask = await anyio.to_thread.run_sync(
        cli, "--dask-scheduler", cluster.scheduler_address)
    assert (local.returncode, on_dask.returncode) == (1, 1), on_dask.stderr
    (mine,) = json.loads(local.stdout)["failures"]
    (theirs,) = json.loads(on_dask.stdout)["failures"]
    assert set(theirs) == set(mine) | {"index"}
    for field in ("op", "bucket", "key", "path", "url", "code"):
        assert theirs[field] == mine[field], field
    assert (theirs["op"], theirs["key"], theirs["path"]) == ("download", "cj/b", str(out / "b"))
    assert theirs["error"].startswith("LocalFileError: ")
