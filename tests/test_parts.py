import sys

import pytest

from asyncpresign import InvalidArgumentError
from asyncpresign._parts import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    GiB,
    MiB,
    Part,
    choose_part_size,
    plan_parts,
    plan_ranges,
)

from .conftest import address_space_capped


def covers_exactly(parts: list[Part], size: int) -> None:
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert sum(p.length for p in parts) == size
    offset = 0
    for part in parts:
        assert part.offset == offset
        offset += part.length
    assert all(p.length >= MIN_PART_SIZE for p in parts[:-1])
    assert all(p.length <= MAX_PART_SIZE for p in parts)
    assert len(parts) <= MAX_PARTS


def test_empty_object_is_one_empty_part() -> None:
    assert plan_parts(0) == [Part(1, 0, 0)]


def test_exactly_5_mib_is_one_part() -> None:
    assert plan_parts(5 * MiB, 5 * MiB) == [Part(1, 0, 5 * MiB)]


def test_5_mib_plus_1_byte_is_a_full_part_and_a_one_byte_last_part() -> None:
    assert plan_parts(5 * MiB + 1, 5 * MiB) == [Part(1, 0, 5 * MiB), Part(2, 5 * MiB, 1)]


def test_preferred_size_below_the_minimum_is_raised_to_5_mib() -> None:
    assert choose_part_size(100 * MiB, 1 * MiB) == MIN_PART_SIZE


def test_preferred_size_above_the_maximum_is_lowered_to_5_gib() -> None:
    assert choose_part_size(100 * GiB, 10 * GiB) == MAX_PART_SIZE


def test_size_needing_more_than_10000_parts_grows_the_part_size() -> None:
    size = 100 * GiB  # 12,800 parts of 8 MiB
    part_size = choose_part_size(size, 8 * MiB)
    assert part_size % MiB == 0
    assert -(-size // part_size) <= MAX_PARTS
    assert part_size == 11 * MiB  # the smallest whole MiB that fits
    covers_exactly(plan_parts(size, 8 * MiB), size)


def test_largest_object_uses_10000_parts_of_5_gib() -> None:
    assert 10_000 * 5 * GiB == MAX_OBJECT_SIZE  # 48.8 TiB
    assert choose_part_size(MAX_OBJECT_SIZE) == MAX_PART_SIZE
    assert -(-MAX_OBJECT_SIZE // MAX_PART_SIZE) == MAX_PARTS


def test_an_object_over_48_8_tib_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="maximum"):
        choose_part_size(MAX_OBJECT_SIZE + 1)


@pytest.mark.parametrize("size", [1, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1, 64 * MiB + 7, 3 * GiB])
def test_plans_cover_the_object_exactly_within_the_rules(size: int) -> None:
    covers_exactly(plan_parts(size, 8 * MiB), size)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_sizes_are_rejected(bad: int) -> None:
    with pytest.raises(InvalidArgumentError):
        choose_part_size(bad)


def test_ranges_cover_from_start_to_end_inclusively() -> None:
    assert list(plan_ranges(10, 4)) == [(0, 3), (4, 7), (8, 9)]
    assert list(plan_ranges(10, 4, start=4)) == [(4, 7), (8, 9)]
    assert list(plan_ranges(8, 4)) == [(0, 3), (4, 7)]
    assert list(plan_ranges(0, 4)) == []


def test_ranges_are_worked_out_when_asked_for_not_held_for_a_claimed_10_to_the_15_bytes() -> None:
    # A server's claim of 10^15 bytes: as a list, 119 million ranges of 8 MiB.
    size = 10**15
    with address_space_capped(256 * MiB):
        ranges = plan_ranges(size, 8 * MiB, start=8 * MiB)
        assert len(ranges) == -(-size // (8 * MiB)) - 1
        assert ranges
        assert ranges[0] == (8 * MiB, 16 * MiB - 1)
        assert ranges[-1] == (len(ranges) * 8 * MiB, size - 1)
        assert list(ranges[1:3]) == [(16 * MiB, 24 * MiB - 1), (24 * MiB, 32 * MiB - 1)]
        taken = iter(ranges)
        assert [next(taken) for _ in range(2)] == list(ranges[:2])
    assert sys.getsizeof(ranges) < 1024
    # Indexed and sliced, a plan gives what the list of its ranges would.
    planned = plan_ranges(100, 7, start=3)
    listed = list(planned)
    assert len(planned) == len(listed) == 14
    assert [planned[i] for i in range(-14, 14)] == [listed[i] for i in range(-14, 14)]
    for piece in (slice(None, None, -1), slice(2, 9, 3), slice(-3, None), slice(5, 2)):
        assert list(planned[piece]) == listed[piece]
    with pytest.raises(IndexError):
        planned[14]
