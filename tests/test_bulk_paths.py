import pytest

from asyncpresign import InvalidArgumentError
from asyncpresign._bulk import Filters, local_path, relative_key


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
