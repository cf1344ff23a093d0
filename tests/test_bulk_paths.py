import contextlib
import os
import random
from pathlib import Path

import pytest

from asyncpresign import InvalidArgumentError
from asyncpresign._bulk import (
    Filters,
    SamePath,
    ignores_case,
    local_path,
    local_relative,
    relative_key,
    same_path_as,
)


@pytest.mark.parametrize(
    ("prefix", "key", "relative"),
    [
        ("photos", "photos/a.jpg", "a.jpg"),
        ("photos/", "photos/2026/b.jpg", "2026/b.jpg"),
        ("photos/a.jpg", "photos/a.jpg", "a.jpg"),
        ("big", "big", "big"),
        ("logs/2026-", "logs/2026-01.gz", "2026-01.gz"),
        ("", "x/y", "x/y"),
        ("backup", "backup2/y", "backup2/y"),
    ],
)
def test_keys_are_relative_to_their_prefix_as_a_folder_sees_them(
    prefix: str, key: str, relative: str
) -> None:
    assert relative_key(prefix, key) == relative


@pytest.mark.parametrize("key", ["p/../../etc/passwd", "p/a/../../..", "p/dir/"])
def test_keys_that_would_escape_the_folder_are_refused(key: str) -> None:
    with pytest.raises(InvalidArgumentError, match="does not map"):
        local_path("/safe", "p", key)


def test_local_paths_drop_empty_and_dot_segments() -> None:
    assert local_path("/safe", "p", "p//a/./b") == "/safe/a/b"


def test_excludes_win_over_includes() -> None:
    only_csv_but_not_tmp = Filters(include=["*.csv"], exclude=["tmp/*"])
    assert only_csv_but_not_tmp("a/b.csv")
    assert not only_csv_but_not_tmp("tmp/b.csv")
    assert not only_csv_but_not_tmp("a/b.txt")


# -- keys that land on one local path ------------------------------------------------------


async def failing(prefix: str, keys: list[str], *, fold_case: bool = False) -> list[str]:
    """The keys a download of ``keys`` (listed in S3's order, UTF-8 bytes) fails
    because an earlier one lands on the same path; the server has every key."""
    paths = SamePath(prefix, fold_case=fold_case)
    listing = set(keys)

    async def listed(key: str) -> bool:
        return key in listing

    failed = []
    for key in sorted(listing, key=str.encode):
        with contextlib.suppress(InvalidArgumentError):  # keys that escape: refused apart
            if await same_path_as(paths, key, listed) is not None:
                failed.append(key)
    return failed


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("prefix", "keys", "failed"),
    [
        # In S3's order (UTF-8 bytes) "p//a/b" comes first: it is downloaded.
        ("p", ["p/a/b", "p/a//b", "p/a/./b", "p//a/b", "p/a/b/."],
         ["p/a/./b", "p/a//b", "p/a/b", "p/a/b/."]),
        ("p/", ["p/x/-y", "p/x//-y"], ["p/x//-y"]),  # the plain key sorts after
        ("photos", ["photos/photos-old/a.jpg", "photos-old/a.jpg", "photos/b.jpg"],
         ["photos/photos-old/a.jpg"]),  # in the folder and beside it
        ("logs/2026-", ["logs/2026-01.gz", "logs/2026-/2026-01.gz"], ["logs/2026-01.gz"]),
        ("", ["a", "./a", "/a", "b"], ["/a", "a"]),
    ],
)
async def test_keys_landing_on_one_path_fail_but_one(
    prefix: str, keys: list[str], failed: list[str]
) -> None:
    assert await failing(prefix, keys) == failed


@pytest.mark.anyio
async def test_on_a_case_insensitive_destination_keys_differing_in_case_collide() -> None:
    keys = ["p/Read.me", "p/read.ME", "p/other", "p/caf\u00e9", "p/CAFE\u0301"]
    assert await failing("p", keys) == []
    assert await failing("p", keys, fold_case=True) == ["p/caf\u00e9", "p/read.ME"]


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(4))
async def test_exactly_one_key_per_local_path_is_kept_in_any_listing(seed: int) -> None:
    """Against the obvious way (every path in a set), on random listings of the
    keys that are hard to tell apart: empty and dot segments, prefixes that
    are not folders, names beside them, capitals."""
    rng = random.Random(seed)
    segments = ["a", "A", "b", "a-", "-", ".", "", "a.b", "ab"]
    for _ in range(300):
        prefix = rng.choice(["", "a", "a/", "a-", "a/b", "a//", "/"])
        fold_case = rng.random() < 0.5
        keys = {
            prefix + "/".join(rng.choice(segments) for _ in range(rng.randint(1, 4)))
            for _ in range(rng.randint(1, 12))
        }
        kept: dict[str, list[str]] = {}
        for key in keys:
            with contextlib.suppress(InvalidArgumentError):
                relative = local_relative(prefix, key)
                folded = relative.casefold() if fold_case else relative
                kept.setdefault(folded, []).append(key)
        failed = set(await failing(prefix, sorted(keys), fold_case=fold_case))
        for same in kept.values():
            assert len(set(same) - failed) == 1, (prefix, fold_case, sorted(keys), failed)


def test_only_keys_that_need_normalising_are_held_in_memory() -> None:
    paths = SamePath("data/")
    for i in range(10_000):
        key = f"data/{i % 97}/file-{i}.csv"
        assert paths.check(key, local_relative("data/", key)) == (None, None)
    assert len(paths) == 0
    paths.check("data//odd", "odd")
    assert len(paths) == 1


def test_this_file_system_is_probed_for_case_without_leaving_anything(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    assert not ignores_case(str(tmp_path / "dest"))
    assert not ignores_case(str(tmp_path / "dest" / "not" / "made"), dry_run=True)
    assert os.listdir(tmp_path / "dest") == []


@pytest.mark.anyio
async def test_a_folder_that_a_link_makes_one_with_another_is_refused(tmp_path: Path) -> None:
    """Keys of two folders that are one folder land on one file: each overwrote
    the other and both were reported done (and skipped by the next journalled
    run). A link inside the destination to a folder in it is refused, and so is
    a second link to one folder outside; a link to a folder of its own is not."""
    from asyncpresign._bulk import FolderCache

    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (dest / "v2").mkdir(parents=True)
    (outside / "big").mkdir(parents=True)
    (dest / "latest").symlink_to("v2", target_is_directory=True)
    (dest / "big").symlink_to(outside / "big", target_is_directory=True)
    (dest / "also-big").symlink_to(outside / "big", target_is_directory=True)
    folders = FolderCache(str(dest))
    assert await folders.make(str(dest / "v2")) is None
    assert await folders.make(str(dest / "v2" / "new")) is None
    assert await folders.make(str(dest / "big")) is None  # a disk of its own: fine
    alias = await folders.make(str(dest / "latest"))
    assert alias is not None
    assert "link to a folder" in alias
    assert await folders.make(str(dest / "latest" / "deeper")) is not None
    second = await folders.make(str(dest / "also-big"))
    assert second is not None
    assert "big" in second
