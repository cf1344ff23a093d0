"""Where one object goes (pure): upload keys, download files, stream part
sizes and the check of a range answer held in memory."""

from __future__ import annotations

import os

import pytest

from asyncpresign import IntegrityError, InvalidArgumentError
from asyncpresign._checks import check_part_answer
from asyncpresign._parts import MAX_PART_SIZE, MAX_PARTS, MiB, stream_part_size
from asyncpresign._targets import download_dest, object_target


@pytest.mark.parametrize(
    ("target", "source", "expected"),
    [
        ("s3://b/docs/q3.pdf", "report.pdf", ("b", "docs/q3.pdf")),
        ("s3://b/docs/", "report.pdf", ("b", "docs/report.pdf")),
        ("s3://b", "dir/report.pdf", ("b", "report.pdf")),
        ("s3://b/", "./report.pdf", ("b", "report.pdf")),
        ("s3://b/key", "-", ("b", "key")),
    ],
)
def test_an_upload_target_is_the_key_given_or_the_file_name_under_a_folder(
    target: str, source: str, expected: tuple[str, str]
) -> None:
    assert object_target(target, source) == expected


@pytest.mark.parametrize(("target", "source"), [("s3://b/", "-"), ("s3://b", "-"),
                                                 ("s3://b/", "/"), ("s3://b/x/", "..")])
def test_an_upload_target_without_a_name_to_use_is_refused(target: str, source: str) -> None:
    with pytest.raises(InvalidArgumentError):
        object_target(target, source)


def test_a_download_goes_to_the_file_named_or_into_a_folder() -> None:
    assert download_dest("copy.pdf", "docs/report.pdf", is_folder=False) == "copy.pdf"
    assert download_dest("out", "docs/report.pdf", is_folder=True) == os.path.join(
        "out", "report.pdf"
    )
    assert download_dest("new/", "docs/report.pdf", is_folder=False) == os.path.join(
        "new/", "report.pdf"
    )
    with pytest.raises(InvalidArgumentError):
        download_dest("out/", "docs/..", is_folder=True)
    with pytest.raises(InvalidArgumentError):
        download_dest("", "k", is_folder=False)


def test_stream_parts_start_at_the_preferred_size_and_double_every_1000() -> None:
    assert stream_part_size(1) == 8 * MiB
    assert stream_part_size(1000) == 8 * MiB
    assert stream_part_size(1001) == 16 * MiB
    assert stream_part_size(1, 1) == 5 * MiB  # S3's minimum
    total = sum(stream_part_size(n) for n in range(1, MAX_PARTS + 1))
    assert total == 8 * MiB * 1000 * 1023  # 7.8 TiB in 10,000 parts
    assert all(stream_part_size(n, 4 * 1024**3) <= MAX_PART_SIZE for n in (1, 1001, 9999))


def test_a_stream_past_10000_parts_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="at most 10000 parts"):
        stream_part_size(MAX_PARTS + 1)
    with pytest.raises(InvalidArgumentError):
        stream_part_size(0)


def test_a_range_answer_must_be_exactly_the_range_asked() -> None:
    good = {"Content-Range": "bytes 10-19/100", "Content-Length": "10"}
    check_part_answer(206, good, (10, 19), 100, "u")
    for status, headers in [
        (200, {"Content-Length": "100"}),  # the whole object
        (206, {"Content-Range": "bytes 0-9/100"}),  # another range
        (206, {"Content-Range": "bytes 10-19/101"}),  # another object
        (206, {"Content-Range": "bytes 10-19/100", "Content-Length": "11"}),
    ]:
        with pytest.raises(IntegrityError):
            check_part_answer(status, headers, (10, 19), 100, "u")
