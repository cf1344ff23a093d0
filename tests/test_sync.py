"""``sync``: the merge and the walk in key order (pure), then the command in all
three directions against SeaweedFS."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncpresign import (
    Filters,
    ListingOrderError,
    Signer,
    TransferEngine,
    sync,
)
from asyncpresign._sync import Listed, _Sync, differs, folder_order, merge_join, s3_order
from asyncpresign._walk import walk_keys
from asyncpresign.testing import LocalS3

from .conftest import FULL_METADATA, described
from .proxy import Rule, S3Proxy
from .test_cli import base_env, cli

# -- the merge, pure --------------------------------------------------------------------

#: Names that sort around "/" (0x2f): "-" and "." below it, "0" above, and a
#: letter beyond ASCII, so that the two orders differ.
NAME = st.text(alphabet="ab-.0é", min_size=1, max_size=3).filter(lambda n: n not in (".", ".."))
KEY = st.lists(NAME, min_size=1, max_size=3).map("/".join)


def listed(relatives: Iterable[str]) -> list[Listed]:
    return [Listed(r, len(r), 0.0, r) for r in relatives]


async def stream(items: Iterable[Listed]) -> AsyncIterator[Listed]:
    for item in items:
        await asyncio.sleep(0)
        yield item


def merged(source: list[str], dest: list[str], order: Any) -> list[tuple[str, bool, bool]]:
    async def run() -> list[tuple[str, bool, bool]]:
        return [
            (relative, s is not None, d is not None)
            async for relative, s, d in merge_join(
                stream(listed(source)), stream(listed(dest)), order=order
            )
        ]

    return asyncio.run(run())


@pytest.mark.parametrize("order", [s3_order, folder_order])
@settings(max_examples=100, deadline=None)
@given(source=st.sets(KEY, max_size=30), dest=st.sets(KEY, max_size=30))
def test_merge_join_yields_every_key_once_in_order_with_its_sides(
    order: Any, source: set[str], dest: set[str]
) -> None:
    result = merged(sorted(source, key=order), sorted(dest, key=order), order)
    assert [r for r, _, _ in result] == sorted(source | dest, key=order)
    assert all((s, d) == (r in source, r in dest) for r, s, d in result)


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(KEY, min_size=2, max_size=30, unique=True), data=st.data(),
       side=st.sampled_from(["source", "destination"]))
def test_merge_join_refuses_a_listing_out_of_order(
    keys: list[str], data: st.DataObject, side: str
) -> None:
    ordered = sorted(keys)
    i = data.draw(st.integers(0, len(ordered) - 2))
    broken = [*ordered[:i], ordered[i + 1], ordered[i], *ordered[i + 2:]]  # one swap
    if data.draw(st.booleans()):
        broken = [*ordered[: i + 1], ordered[i], *ordered[i + 1:]]  # or a key twice
    source, dest = (broken, []) if side == "source" else ([], broken)
    with pytest.raises(ListingOrderError) as caught:
        merged(source, dest, s3_order)
    assert caught.value.side == side


def test_s3_order_and_folder_order_differ_where_a_name_sorts_below_the_slash() -> None:
    keys = ["a/x", "a-b", "a.c", "a0"]
    assert sorted(keys, key=s3_order) == ["a-b", "a.c", "a/x", "a0"]
    assert sorted(keys, key=folder_order) == ["a/x", "a-b", "a.c", "a0"]
    # The orders of str and of UTF-8 bytes agree (what S3 lists by).
    more = [*keys, "é", "z"]
    assert sorted(more) == sorted(more, key=str.encode)


def test_the_default_comparison_is_size_then_newer_source_to_the_second() -> None:
    old = Listed("k", 10, 1000.9, "k")
    assert not differs(old, Listed("k", 10, 1000.0, "k"))  # same second
    assert not differs(old, Listed("k", 10, 2000.0, "k"))  # destination newer
    assert differs(old, Listed("k", 11, 2000.0, "k"))  # size
    assert differs(Listed("k", 10, 1001.0, "k"), Listed("k", 10, 1000.5, "k"))  # newer


@pytest.mark.parametrize("folders_first", [False, True])
@settings(max_examples=30, deadline=None)
@given(keys=st.sets(KEY, min_size=1, max_size=25))
def test_walk_keys_walks_a_folder_in_the_order_of_its_keys(
    folders_first: bool, keys: set[str]
) -> None:
    # A file and a folder cannot share a name: drop keys that are a folder of another.
    files = {k for k in keys if not any(o.startswith(k + "/") for o in keys)}
    with tempfile.TemporaryDirectory() as root:
        for key in files:
            path = Path(root, *key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(key.encode())
        walked = [e.relative for e in walk_keys(root, Filters(), folders_first=folders_first)]
    order = folder_order if folders_first else s3_order
    assert walked == sorted(files, key=order)


# -- against SeaweedFS ------------------------------------------------------------------

#: Names where the two orders differ ("a-b.txt" and "a.txt" beside the folder "a").
TREE = {
    "a.txt": b"top a" * 10,
    "a-b.txt": b"dash" * 7,
    "a/x.txt": b"in a" * 30,
    "a/y/z.bin": os.urandom(3000),
    "b.txt": b"bee" * 5,
    "ünï/cödé.txt": b"unicode" * 3,
}


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


def run_sync(*args: str, env: dict[str, str], check: int | None = 0) -> dict[str, Any]:
    done = cli("sync", *args, "--json", env=env, check=check)
    return dict(json.loads(done.stdout))


def counts(summary: dict[str, Any]) -> dict[str, int]:
    return {kind: summary["sync"][kind]["objects"]
            for kind in ("new", "changed", "unchanged", "deleted")}


async def stored(signer: Signer, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """What the server holds under ``prefix`` (asked directly, not through sync)."""
    found = {}
    paginator = signer.client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            answer = await signer.client.get_object(Bucket=bucket, Key=item["Key"])
            async with answer["Body"] as body:
                found[item["Key"][len(prefix):]] = await body.read()
    return found


async def put(signer: Signer, bucket: str, key: str, data: bytes) -> None:
    await signer.client.put_object(Bucket=bucket, Key=key, Body=data)


async def put_all(signer: Signer, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        await put(signer, bucket, prefix + relative, data)


@pytest.mark.anyio
async def test_folder_to_bucket_moves_what_changed_and_deletes_only_the_extra_keys(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, TREE)
    first = run_sync(str(src), f"s3://{bucket}/p", env=env)
    assert counts(first) == {"new": 6, "changed": 0, "unchanged": 0, "deleted": 0}
    assert first["succeeded"] == first["total"] == 6
    assert await stored(signer, bucket, "p/") == TREE
    # The file's mtime travels, as rclone stores it.
    head = await signer.client.head_object(Bucket=bucket, Key="p/a/x.txt")
    mtime_ns = (src / "a/x.txt").stat().st_mtime_ns
    assert head["Metadata"]["mtime"] == f"{mtime_ns // 10**9}.{mtime_ns % 10**9:09d}"

    second = run_sync(str(src), f"s3://{bucket}/p", env=env)
    assert counts(second) == {"new": 0, "changed": 0, "unchanged": 6, "deleted": 0}
    assert second["total"] == 0

    await anyio.sleep(1.1)  # newer by a second at least: LastModified has seconds
    (src / "a/x.txt").touch()
    third = run_sync(str(src), f"s3://{bucket}/p", env=env)
    assert counts(third) == {"new": 0, "changed": 1, "unchanged": 5, "deleted": 0}

    # Extra keys: two under the folder go; one beside it (p-old/), one outside
    # it, and one the excludes leave out all stay.
    for key in ("p/gone.txt", "p/a/gone.bin", "p-old/keep.txt", "q/keep.txt", "p/x.keep"):
        await put(signer, bucket, key, b"extra")
    (src / "b.txt").unlink()
    fourth = run_sync(str(src), f"s3://{bucket}/p", "--delete", "--exclude", "*.keep", env=env)
    assert counts(fourth) == {"new": 0, "changed": 0, "unchanged": 5, "deleted": 3}
    assert fourth["sync"]["deleted"]["bytes"] == 5 + 5 + len(TREE["b.txt"])
    expected = {k: v for k, v in TREE.items() if k != "b.txt"}
    assert await stored(signer, bucket, "p/") == {**expected, "x.keep": b"extra"}
    assert set(await stored(signer, bucket, "p-old/")) == {"keep.txt"}
    assert set(await stored(signer, bucket, "q/")) == {"keep.txt"}


@pytest.mark.anyio
async def test_dry_run_changes_nothing_and_counts_what_a_run_would_do(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, TREE)
    run_sync(str(src), f"s3://{bucket}/p", env=env)
    await anyio.sleep(1.1)
    (src / "new.txt").write_bytes(b"n" * 11)
    (src / "a.txt").write_bytes(b"changed" * 3)  # 21 bytes, and newer
    await put(signer, bucket, "p/extra.bin", b"e" * 13)
    before = await stored(signer, bucket)

    dry = run_sync(str(src), f"s3://{bucket}/p", "--delete", "--dry-run", env=env)
    assert dry["dry_run"] is True
    assert dry["sync"] == {
        "new": {"objects": 1, "bytes": 11}, "changed": {"objects": 1, "bytes": 21},
        "unchanged": {"objects": 5, "bytes": sum(len(v) for k, v in TREE.items()
                                                 if k != "a.txt")},
        "deleted": {"objects": 1, "bytes": 13}, "not_deleted": 0,
    }
    assert dry["objects"] == 2
    assert dry["bytes"] == 32
    assert sorted((p["op"], p["target"]) for p in dry["plan"]) == [
        ("delete", f"s3://{bucket}/p/extra.bin"),
        ("upload", f"s3://{bucket}/p/a.txt"),
        ("upload", f"s3://{bucket}/p/new.txt"),
    ]
    assert await stored(signer, bucket) == before
    # Lines, without --json: one per transfer and deletion, then the counts.
    text = cli("sync", str(src), f"s3://{bucket}/p", "--delete", "--dry-run", env=env).stdout
    assert f"would delete s3://{bucket}/p/extra.bin" in text
    assert "1 new (11 B), 1 changed (21 B), 5 unchanged" in text
    assert "1 would delete (13 B)" in text


@pytest.mark.anyio
async def test_bucket_to_folder_sets_mtimes_so_a_second_run_moves_nothing(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    await put_all(signer, bucket, "d/", TREE)
    await put(signer, bucket, "d-beside/no.txt", b"not in d/")
    out = tmp_path / "out"
    first = run_sync(f"s3://{bucket}/d", str(out), env=env)
    assert counts(first) == {"new": 6, "changed": 0, "unchanged": 0, "deleted": 0}
    assert read_tree(out) == TREE
    head = await signer.client.head_object(Bucket=bucket, Key="d/a/x.txt")
    assert (out / "a/x.txt").stat().st_mtime == head["LastModified"].timestamp()

    second = run_sync(f"s3://{bucket}/d", str(out), env=env)
    assert counts(second) == {"new": 0, "changed": 0, "unchanged": 6, "deleted": 0}

    await anyio.sleep(1.1)
    await put(signer, bucket, "d/a.txt", b"TOP A" * 10)  # same size, newer
    third = run_sync(f"s3://{bucket}/d", str(out), env=env)
    assert counts(third) == {"new": 0, "changed": 1, "unchanged": 5, "deleted": 0}
    assert (out / "a.txt").read_bytes() == b"TOP A" * 10

    (out / "extra.txt").write_bytes(b"x")
    (out / "a" / "y" / "extra.bin").write_bytes(b"yy")
    (out / "empty-folder").mkdir()
    (out / "kept.keep").write_bytes(b"k")
    fourth = run_sync(f"s3://{bucket}/d", str(out), "--delete", "--exclude", "*.keep", env=env)
    assert counts(fourth) == {"new": 0, "changed": 0, "unchanged": 6, "deleted": 2}
    assert read_tree(out) == {**TREE, "a.txt": b"TOP A" * 10, "kept.keep": b"k"}
    assert (out / "empty-folder").is_dir()  # folders are never deleted


@pytest.mark.anyio
async def test_bucket_to_bucket_copies_what_changed_and_deletes_the_extra_keys(
    env: dict[str, str], signer: Signer, bucket: str
) -> None:
    other = bucket + "-to"
    await signer.ensure_bucket(other)
    await put_all(signer, bucket, "s/", TREE)
    first = run_sync(f"s3://{bucket}/s", f"s3://{other}/t", env=env)
    assert counts(first) == {"new": 6, "changed": 0, "unchanged": 0, "deleted": 0}
    assert await stored(signer, other, "t/") == TREE
    second = run_sync(f"s3://{bucket}/s", f"s3://{other}/t", env=env)
    assert counts(second) == {"new": 0, "changed": 0, "unchanged": 6, "deleted": 0}

    await anyio.sleep(1.1)
    await put(signer, bucket, "s/b.txt", b"BEE" * 5)
    await put(signer, other, "t/extra.txt", b"xx")
    await put(signer, other, "keep/outside.txt", b"xx")
    third = run_sync(f"s3://{bucket}/s", f"s3://{other}/t", "--delete", env=env)
    assert counts(third) == {"new": 0, "changed": 1, "unchanged": 5, "deleted": 1}
    assert await stored(signer, other, "t/") == {**TREE, "b.txt": b"BEE" * 5}
    assert set(await stored(signer, other, "keep/")) == {"outside.txt"}


@pytest.mark.anyio
async def test_a_failed_transfer_holds_back_every_deletion(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    # Upload: a FIFO cannot be sent; the extra key stays.
    src = tmp_path / "src"
    write_tree(src, {"ok.txt": b"ok"})
    os.mkfifo(src / "pipe")
    await put(signer, bucket, "u/extra.txt", b"stay")
    up = run_sync(str(src), f"s3://{bucket}/u", "--delete", env=env, check=1)
    assert up["failed"] == 1
    assert up["sync"]["deleted"]["objects"] == 0
    assert up["sync"]["not_deleted"] == 1
    assert set(await stored(signer, bucket, "u/")) == {"ok.txt", "extra.txt"}
    text = cli("sync", str(src), f"s3://{bucket}/u", "--delete", env=env, check=1).stdout
    assert "1 not deleted: a transfer failed" in text

    # Download: a file in the way of a folder; no local file is deleted.
    await put_all(signer, bucket, "v/", {"blocked/x.txt": b"x", "fine.txt": b"f"})
    out = tmp_path / "out"
    write_tree(out, {"blocked": b"a file where a folder must go", "old.txt": b"o"})
    down = run_sync(f"s3://{bucket}/v", str(out), "--delete", env=env, check=1)
    assert down["failed"] == 1
    assert down["sync"]["not_deleted"] == 2
    assert read_tree(out) == {"blocked": b"a file where a folder must go", "old.txt": b"o",
                              "fine.txt": b"f"}


@pytest.mark.anyio
async def test_a_failed_copy_holds_back_every_deletion(
    s3: LocalS3, proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    other = bucket + "-to"
    await signer.ensure_bucket(other)
    await put_all(signer, bucket, "s/", {"a.txt": b"a", "b.txt": b"b"})
    await put(signer, other, "t/extra.txt", b"stay")
    proxy.add(Rule("GET", "/s/b.txt", times=100, status=500))
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    summary = await anyio.to_thread.run_sync(lambda: run_sync(
        f"s3://{bucket}/s", f"s3://{other}/t", "--delete", "--retries", "1", env=env, check=1
    ))
    assert summary["failed"] == 1
    assert summary["sync"]["not_deleted"] == 1
    assert await stored(signer, other, "t/") == {"a.txt": b"a", "extra.txt": b"stay"}


@pytest.mark.anyio
async def test_a_listing_out_of_order_stops_the_sync_before_any_deletion(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "src"
    write_tree(src, {"m.txt": b"m"})
    await put_all(signer, bucket, "p/", {"a-gone.txt": b"1", "z.txt": b"2", "c.txt": b"3"})

    async def out_of_order(self: Any, signer: Signer, bucket: str, prefix: str,
                           **_: Any) -> AsyncIterator[Listed]:
        # "a-gone.txt" is spooled to delete before "c.txt" comes after "z.txt".
        for relative in ("a-gone.txt", "z.txt", "c.txt"):
            yield Listed(relative, 1, 0.0, prefix + relative)

    monkeypatch.setattr(_Sync, "_bucket_side", out_of_order)
    with pytest.raises(ListingOrderError, match=r"'c\.txt' came after 'z\.txt'"):
        await sync(signer, engine, src, f"s3://{bucket}/p", delete=True)
    assert set(await stored(signer, bucket, "p/")) >= {"a-gone.txt", "z.txt", "c.txt"}


@pytest.mark.anyio
async def test_checksum_catches_a_same_size_older_change_that_mtimes_miss(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_tree(src, {"data.bin": b"A" * 1000, "same.bin": b"S" * 500})
    run_sync(str(src), f"s3://{bucket}/c", env=env)
    (src / "data.bin").write_bytes(b"B" * 1000)  # same size ...
    os.utime(src / "data.bin", (1_000_000_000, 1_000_000_000))  # ... and older (2001)
    default = run_sync(str(src), f"s3://{bucket}/c", env=env)
    assert counts(default)["changed"] == 0  # the default cannot see it
    assert (await stored(signer, bucket, "c/"))["data.bin"] == b"A" * 1000
    checked = run_sync(str(src), f"s3://{bucket}/c", "--checksum", env=env)
    assert counts(checked) == {"new": 0, "changed": 1, "unchanged": 1, "deleted": 0}
    assert (await stored(signer, bucket, "c/"))["data.bin"] == b"B" * 1000


@pytest.mark.anyio
async def test_an_interrupted_sync_resumes_and_finishes_with_the_right_content(
    s3: LocalS3, proxy: S3Proxy, signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    rng = random.Random(19)
    files = {f"f{i // 20}/{i:03d}.bin": rng.randbytes(1000 + i) for i in range(120)}
    write_tree(src, files)
    proxy.add(Rule("PUT", f"/{bucket}/", times=10_000, delay=0.05))
    env = {**base_env(tmp_path), **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    journal = tmp_path / "sync.journal"
    command = [sys.executable, "-m", "asyncpresign", "sync", str(src), f"s3://{bucket}/r",
               "--journal", str(journal), "--concurrency", "4"]
    # A suite started in the background has SIGINT ignored, and a child would
    # inherit that (see test_cli's interrupted upload).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = await anyio.open_process(command, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    while proxy.count(lambda m, t: m == "PUT") < 40:  # noqa: ASYNC110 - another process
        await anyio.sleep(0.02)
    process.send_signal(signal.SIGINT)
    assert await process.wait() == 130
    done_before = await stored(signer, bucket, "r/")
    assert 0 < len(done_before) < len(files)

    resumed = await anyio.to_thread.run_sync(lambda: cli(*command[3:], "--json", env=env))
    summary = json.loads(resumed.stdout)
    assert summary["failed"] == 0
    # What finished before is not sent again: unchanged, or skipped by the journal.
    moved = summary["succeeded"] - summary["skipped"]
    assert moved == len(files) - len(done_before)
    assert await stored(signer, bucket, "r/") == files


@pytest.mark.anyio
async def test_bad_pairs_of_sides_are_refused_with_exit_2(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    (tmp_path / "a").mkdir()
    await put(signer, bucket, "x/one.txt", b"1")
    for args, says in (
        ((str(tmp_path / "a"), str(tmp_path / "b")), "a bucket on one side"),
        ((f"s3://{bucket}/x", f"s3://{bucket}/x/inner"), "overlap"),
        ((f"s3://{bucket}/nothing-here", str(tmp_path / "b")), "nothing is stored"),
        ((str(tmp_path / "missing"), f"s3://{bucket}/x"), "is not a folder"),
    ):
        done = cli("sync", *args, env=env, check=2)
        assert says in done.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.anyio
async def test_a_bare_dash_is_not_a_sync_side_and_makes_no_folder_named_dash(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    # - is stdin/stdout for every other command: a sync to it is a mistake,
    # refused before anything moves (it used to download into a folder "-").
    import subprocess

    await put(signer, bucket, "dash/one.txt", b"1")
    (tmp_path / "work").mkdir()
    for args in ((f"s3://{bucket}/dash", "-"), ("-", f"s3://{bucket}/dash")):
        done = await anyio.to_thread.run_sync(functools.partial(
            subprocess.run, [sys.executable, "-m", "asyncpresign", "sync", *args],
            cwd=tmp_path / "work", env=env, capture_output=True, text=True, timeout=60,
            check=False,
        ))
        assert done.returncode == 2, done.stderr
        assert "(stdin/stdout) is not one" in done.stderr
        assert "Traceback" not in done.stderr
    assert list((tmp_path / "work").iterdir()) == []
    assert await stored(signer, bucket, "dash/") == {"one.txt": b"1"}


def test_sync_help_names_every_option_with_its_default(tmp_path: Path) -> None:
    text = cli("sync", "--help", env=base_env(tmp_path)).stdout
    for option in ("--delete", "--checksum", "--dry-run", "--journal", "--json", "--include",
                   "--exclude", "--dest-endpoint-url", "--dest-region", "--dest-profile"):
        assert option in text
    assert "one HEAD per object" in text
    assert "examples:" in text
    assert "--dask-scheduler" not in text
    assert "crc64nvme,crc32c" not in text  # --checksum is the comparison here


def test_the_cli_runs_this_checkout(tmp_path: Path) -> None:
    done = cli("--version", env=base_env(tmp_path))
    found = cli_path(base_env(tmp_path))
    assert done.returncode == 0
    assert found == str(Path(__file__).resolve().parent.parent / "asyncpresign")


def cli_path(env: dict[str, str]) -> str:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", "import asyncpresign, os; "
         "print(os.path.dirname(asyncpresign.__file__))"],
        env=env, capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()



@pytest.mark.anyio
async def test_a_bucket_to_bucket_sync_keeps_each_objects_metadata(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    other = bucket + "-meta"
    await signer.ensure_bucket(other)
    await signer.client.put_object(Bucket=bucket, Key="m/report.csv", Body=b"a,b\n",
                                   **FULL_METADATA)
    # A file synced up carries its mtime, which a bucket-to-bucket sync keeps too.
    write_tree(tmp_path / "up", {"notes.txt": b"n"})
    run_sync(str(tmp_path / "up"), f"s3://{bucket}/m", env=env)
    run_sync(f"s3://{bucket}/m", f"s3://{other}/m", env=env)
    assert await described(signer, other, "m/report.csv") == await described(
        signer, bucket, "m/report.csv"
    )
    copied = await signer.client.head_object(Bucket=other, Key="m/notes.txt")
    assert copied["Metadata"]["mtime"]


@pytest.mark.anyio
async def test_a_dry_run_refuses_the_deletions_a_real_sync_would_refuse(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    """A file reached through a link that leads outside the destination: the dry
    run listed it as 'would delete' (0 would fail, exit 0); the real run refuses
    to delete it (exit 1). Both now say the same."""
    await signer.client.put_object(Bucket=bucket, Key="photos/p.txt", Body=b"p")
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    dst.mkdir()
    outside.mkdir()
    (outside / "o").write_bytes(b"keep me")
    (dst / "extra").write_bytes(b"x")
    (dst / "lnk").symlink_to(outside, target_is_directory=True)
    command = ("sync", f"s3://{bucket}/photos", str(dst), "--delete", "--json")
    dry = cli(*command, "--dry-run", env=env, check=1)
    planned = json.loads(dry.stdout)
    assert planned["failed"] == 1
    assert "outside" in planned["failures"][0]["error"]
    assert (dst / "extra").exists()
    real = json.loads(cli(*command, env=env, check=1).stdout)
    assert real["failed"] == 1
    assert (outside / "o").read_bytes() == b"keep me"
    assert not (dst / "extra").exists()


@pytest.mark.anyio
async def test_sync_delete_never_deletes_through_a_link_to_a_folder_inside_the_destination(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path
) -> None:
    """``dst/latest -> v2``: the walk lists v2's files twice, once as latest/*,
    which the bucket does not hold. --delete unlinked latest/a, that is v2/a,
    reported "2 unchanged, 2 deleted" and exited 0 with dst/v2 empty; the next
    run fetched them again, and the one after deleted them again."""
    for name in ("a", "b"):
        await signer.client.put_object(Bucket=bucket, Key=f"data/v2/{name}", Body=name.encode())
    dst = tmp_path / "dst"
    cli("sync", f"s3://{bucket}/data", str(dst), env=env)
    (dst / "latest").symlink_to("v2", target_is_directory=True)
    command = ("sync", f"s3://{bucket}/data", str(dst), "--delete", "--json")
    planned = json.loads(cli(*command, "--dry-run", env=env, check=1).stdout)
    real = json.loads(cli(*command, env=env, check=1).stdout)
    for outcome in (planned, real):
        assert outcome["failed"] == 2
        assert all("link to a folder" in f["error"] for f in outcome["failures"])
    assert real["sync"]["deleted"]["objects"] == 0
    assert (dst / "v2" / "a").read_bytes() == b"a"
    assert (dst / "v2" / "b").read_bytes() == b"b"
    assert (dst / "latest").is_symlink()


@pytest.mark.anyio
@pytest.mark.parametrize("command", ["download", "sync"])
async def test_two_keys_never_land_on_one_file_through_a_link_in_the_destination(
    env: dict[str, str], signer: Signer, bucket: str, tmp_path: Path, command: str
) -> None:
    """data/v2/a and data/latest/a, with dst/latest -> v2: both were written to
    dst/v2/a, one over the other, "2 succeeded", exit 0; a journalled re-run
    then skipped both. Now the key under the link fails alone, every run."""
    await signer.client.put_object(Bucket=bucket, Key="data/v2/a", Body=b"version two")
    await signer.client.put_object(Bucket=bucket, Key="data/latest/a", Body=b"latest")
    dst = tmp_path / "dst"
    (dst / "v2").mkdir(parents=True)
    (dst / "latest").symlink_to("v2", target_is_directory=True)
    journal = ("--journal", str(tmp_path / "j")) if command == "download" else ()
    for _ in range(2):
        outcome = json.loads(cli(command, f"s3://{bucket}/data", str(dst), *journal, "--json",
                                 env=env, check=1).stdout)
        assert outcome["failed"] == 1
        assert outcome["failures"][0]["url"] == f"s3://{bucket}/data/latest/a"
        assert (dst / "v2" / "a").read_bytes() == b"version two"
