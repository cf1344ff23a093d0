"""The folder walk of uploads: every entry sent or reported with its reason,
nothing opened that is not a regular file, links followed or not on request."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncpresign import Filters, Signer, TransferEngine, upload_tree
from asyncpresign._walk import WalkEntry, walk_files, walk_tree

pytestmark = pytest.mark.anyio

NOT_UTF8 = b"caf\xe9.txt"  # Latin-1 bytes: a name Linux allows and no S3 key can hold


def walked(root: Path, **options: bool) -> dict[str, WalkEntry]:
    return {entry.relative: entry for entry in walk_tree(str(root), Filters(), **options)}


@pytest.fixture
def odd_tree(tmp_path: Path) -> Iterator[Path]:
    """A folder with one of everything a walk can meet."""
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "sub" / "b.txt").write_bytes(b"bb")
    os.mkfifo(root / "fifo")
    (root / "broken").symlink_to(root / "nowhere")
    (root / "self").symlink_to(root / "self")
    (root / "sub" / "up").symlink_to(root)  # a folder loop
    os.mkdir(os.path.join(os.fsencode(root), b"dir-\xe9"))
    open(os.path.join(os.fsencode(root), NOT_UTF8), "wb").close()
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(root / "sock"))
    yield root
    listening.close()


def test_the_walk_reports_every_entry_it_will_not_send_with_its_reason(
    odd_tree: Path,
) -> None:
    found = walked(odd_tree)
    assert list(found) == sorted(found, key=lambda r: (r.count("/"), r))  # files, then folders
    sent = {r for r, e in found.items() if e.problem is None}
    assert sent == {"a.txt", "sub/b.txt"}
    assert found["a.txt"].size == 1
    assert found["a.txt"].state is not None
    problems = {r: e.problem for r, e in found.items() if e.problem}
    assert "FIFO" in str(problems["fifo"])
    assert "socket" in str(problems["sock"])
    assert "broken symbolic link" in str(problems["broken"])
    assert "loop" in str(problems["self"])
    assert "loop" in str(problems["sub/up"])
    assert str(odd_tree) in str(problems["sub/up"])
    assert "not valid UTF-8" in str(problems["caf\udce9.txt"])
    assert "not valid UTF-8" in str(problems["dir-\udce9"])
    assert len(problems) == 7
    error = found["fifo"].error()
    assert error.path == str(odd_tree / "fifo")
    assert str(odd_tree / "fifo") in str(error)


def test_the_walk_follows_links_to_files_and_folders_outside_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.txt").write_bytes(b"out")
    root = tmp_path / "tree"
    root.mkdir()
    (root / "folder").symlink_to(outside)
    (root / "file").symlink_to(outside / "o.txt")
    found = walked(root)
    assert {r: (e.size, e.problem) for r, e in found.items()} == {
        "file": (3, None), "folder/o.txt": (3, None),
    }


def test_without_following_links_are_listed_as_not_followed(
    odd_tree: Path, tmp_path: Path
) -> None:
    (odd_tree / "link-to-a").symlink_to(odd_tree / "a.txt")
    found = walked(odd_tree, follow_symlinks=False)
    assert {r for r, e in found.items() if e.not_followed} == {
        "broken", "self", "sub/up", "link-to-a",
    }
    assert all(e.problem is None for e in found.values() if e.not_followed)
    assert "sub/b.txt" in found


def test_a_folder_that_cannot_be_read_is_reported_not_skipped(tmp_path: Path) -> None:
    """Works as root too: the folder vanishes between being listed and being read."""
    root = tmp_path / "tree"
    (root / "gone").mkdir(parents=True)
    (root / "gone" / "lost.txt").write_bytes(b"x")
    (root / "z.txt").write_bytes(b"z")
    walk = walk_tree(str(root), Filters())
    assert next(walk).relative == "z.txt"  # the root's files come before its folders
    shutil.rmtree(root / "gone")
    rest = list(walk)
    assert [(e.relative, e.problem) for e in rest] == [
        ("gone", "cannot read folder: No such file or directory")
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_a_folder_without_read_permission_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "secret").mkdir(parents=True)
    (root / "secret" / "s.txt").write_bytes(b"s")
    (root / "secret").chmod(0)
    try:
        found = walked(root)
    finally:
        (root / "secret").chmod(0o700)
    assert found["secret"].problem == "cannot read folder: Permission denied"


def test_a_folder_the_excludes_drop_entirely_is_not_reported(odd_tree: Path) -> None:
    assert Filters(exclude=["sub/*"]).covers_folder("sub")
    assert not Filters(exclude=["sub/*.txt"]).covers_folder("sub")
    assert not Filters(include=["*.txt"]).covers_folder("sub")  # it may hold .txt files
    found = {e.relative for e in walk_tree(str(odd_tree), Filters(exclude=["sub/*", "dir-*"]))}
    assert "sub/up" not in found
    assert "dir-\udce9" not in found
    assert "fifo" in found


def test_walk_files_gives_what_it_will_not_send_with_no_size(odd_tree: Path) -> None:
    """Its callers (Dask uploads) make jobs of them, which fail with their reason."""
    sizes = {relative: size for _, relative, size in walk_files(str(odd_tree), Filters())}
    assert sizes["a.txt"] == 1
    assert sizes["fifo"] == -1


async def test_upload_tree_fails_each_entry_it_will_not_send_and_sends_the_rest(
    signer: Signer, bucket: str, odd_tree: Path
) -> None:
    async with TransferEngine() as engine:
        batch = await upload_tree(signer, engine, odd_tree, bucket, "t")
    assert batch.succeeded == 2
    assert batch.total == 9
    failed = {r.url: r.error for r in batch.failed}
    assert "FIFO" in str(failed[f"s3://{bucket}/t/fifo"])
    assert f"s3://{bucket}/t/caf\\udce9.txt" in failed  # shown escaped, never mangled
    listing = await signer.client.list_objects_v2(Bucket=bucket, Prefix="t/")
    assert sorted(o["Key"] for o in listing["Contents"]) == ["t/a.txt", "t/sub/b.txt"]


async def test_upload_tree_lists_links_it_does_not_follow(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a")
    (root / "link").symlink_to(root / "a.txt")
    async with TransferEngine() as engine:
        batch = await upload_tree(signer, engine, root, bucket, "t", follow_symlinks=False)
    assert batch.ok
    assert (batch.succeeded, batch.total) == (1, 1)
    assert batch.not_followed == (str(root / "link"),)


@pytest.mark.parametrize(
    ("pattern", "covers"),
    [("*", True), ("sub/*", True), ("sub*", True), ("*[!v]", False), ("*/?", False),
     ("sub/*.csv", False), ("*.tmp", False)],
)
def test_only_an_exclude_that_drops_everything_under_a_folder_covers_it(
    pattern: str, covers: bool
) -> None:
    assert Filters(exclude=[pattern]).covers_folder("sub") is covers


def test_a_socket_is_named_as_a_socket_and_not_read(tmp_path: Path) -> None:
    import socket

    from asyncpresign import LocalFileError
    from asyncpresign._files import open_regular

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(LocalFileError, match="is a socket"):
            open_regular(str(path))
