"""The bandwidth limit: its token bucket (pure: a clock of our own, no server,
no event loop), the engine's ``max_rate`` and the CLI's ``--limit-rate``. The
limit at work on real transfers is in test_bandwidth_live.py."""

from __future__ import annotations

import argparse
import heapq
import math
from pathlib import Path

import pytest

from asyncpresign import InvalidArgumentError, TransferEngine
from asyncpresign._bandwidth import BURST_SECONDS, TokenBucket, check_max_rate
from asyncpresign._cli_args import parse_rate

from .test_cli import base_env, cli

MiB = 1024 * 1024
KiB = 1024


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def wait(bucket: TokenBucket, clock: Clock, ticket: float | None) -> float:
    """Let the clock run until ``ticket`` is paid; returns the seconds waited."""
    if ticket is None:
        return 0.0
    waited = bucket.delay(ticket)
    clock.now += waited
    assert bucket.delay(ticket) == pytest.approx(0.0, abs=1e-9)
    return waited


def stream(bucket: TokenBucket, clock: Clock, total: int, piece: int) -> float:
    """One transfer moving ``total`` bytes a ``piece`` at a time; its seconds."""
    started = clock.now
    left = total
    while left > 0:
        n = min(piece, left)
        left -= n
        wait(bucket, clock, bucket.take(n))
    return clock.now - started


def test_a_stream_moves_at_the_rate_after_the_first_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(8 * MiB, clock=clock)
    seconds = stream(bucket, clock, 24 * MiB, 64 * KiB)
    # The bucket starts full: a quarter second's worth goes at once.
    assert seconds == pytest.approx(3.0 - BURST_SECONDS)


@pytest.mark.parametrize("rate", [1, 1000, 50 * MiB, 10 * 1024**3])
def test_any_rate_holds_over_a_few_seconds(rate: int) -> None:
    clock = Clock()
    bucket = TokenBucket(rate, clock=clock)
    piece = max(1, rate // 64)  # some 256 takes, whatever the rate
    seconds = stream(bucket, clock, 4 * rate, piece)
    assert seconds == pytest.approx(4 - BURST_SECONDS, rel=1e-6)


def test_the_burst_is_a_quarter_second_and_an_idle_bucket_holds_no_more() -> None:
    clock = Clock()
    bucket = TokenBucket(4 * MiB, clock=clock)
    assert bucket.burst == MiB
    assert bucket.tokens == MiB  # starts full
    assert bucket.take(MiB) is None
    ticket = bucket.take(1)
    assert ticket is not None
    assert bucket.delay(ticket) == pytest.approx(1 / (4 * MiB))
    clock.now += 3600.0  # an hour idle saves up no more than the burst
    assert bucket.tokens == MiB
    assert bucket.take(MiB) is None
    assert bucket.take(1) is not None


def test_a_large_buffered_body_goes_into_debt_and_those_behind_it_wait_for_it() -> None:
    clock = Clock()
    bucket = TokenBucket(MiB, clock=clock)
    large = bucket.take(5 * MiB)  # one 5 MiB buffer, taken at once
    assert large is not None
    assert bucket.tokens == pytest.approx(-(5 * MiB - MiB / 4))
    assert bucket.delay(large) == pytest.approx(4.75)
    small = bucket.take(64 * KiB)  # first come, first served: behind the buffer
    assert small is not None
    assert bucket.delay(small) == pytest.approx(4.75 + 1 / 16)
    clock.now += 4.75
    assert bucket.delay(large) == 0.0
    assert bucket.delay(small) == pytest.approx(1 / 16)
    clock.now += 1 / 16
    assert bucket.delay(small) == 0.0
    assert bucket.tokens == pytest.approx(0.0, abs=1e-6)


def test_many_transfers_share_the_rate_evenly() -> None:
    """Forty transfers, each paying for a chunk, sending it once paid, then
    paying for the next: together they move at the rate, each its fortieth."""
    clock = Clock()
    rate, chunk, count, span = 8 * MiB, 64 * KiB, 40, 10.0
    bucket = TokenBucket(rate, clock=clock)
    end = clock.now + span
    moved = [0] * count
    # (when the transfer takes its next chunk, in which order, which transfer)
    ready = [(clock.now, who, who) for who in range(count)]
    order = count
    while ready:
        when, _, who = heapq.heappop(ready)
        clock.now = when
        ticket = bucket.take(chunk)
        sent = when if ticket is None else when + bucket.delay(ticket)
        if sent <= end:
            moved[who] += chunk
            heapq.heappush(ready, (sent, order, who))
            order += 1
    assert sum(moved) == pytest.approx(rate * span + bucket.burst, abs=count * chunk)
    assert sum(moved) <= rate * span + bucket.burst
    assert max(moved) - min(moved) <= chunk


def test_a_rate_change_applies_to_the_debt_still_unpaid() -> None:
    clock = Clock()
    bucket = TokenBucket(MiB, clock=clock)
    ticket = bucket.take(MiB + MiB // 4)  # a debt of 1 MiB at 1 MiB/s
    assert ticket is not None
    clock.now += 0.5  # half of it paid
    assert bucket.delay(ticket) == pytest.approx(0.5)
    bucket.set_rate(4 * MiB)  # the other half, four times as fast
    assert bucket.rate == 4 * MiB
    assert bucket.delay(ticket) == pytest.approx(0.125)
    assert bucket.burst == MiB
    clock.now += 0.125 + 0.25
    assert bucket.tokens == pytest.approx(MiB)
    bucket.set_rate(MiB // 4)  # lower: what is held shrinks to the new burst
    assert bucket.burst == MiB / 16
    assert bucket.tokens == MiB / 16
    ticket = bucket.take(MiB // 16 + MiB // 4)
    assert ticket is not None
    assert bucket.delay(ticket) == pytest.approx(1.0)


def test_a_lifted_limit_forgives_the_debt_and_lets_everything_through() -> None:
    clock = Clock()
    bucket = TokenBucket(KiB, clock=clock)
    ticket = bucket.take(MiB)
    assert ticket is not None
    assert bucket.delay(ticket) > 1000
    bucket.lift()
    assert bucket.delay(ticket) == 0.0
    assert bucket.take(MiB) is None


def test_time_that_runs_backwards_adds_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(MiB, clock=clock)
    bucket.take(MiB // 4)
    clock.now -= 10
    assert bucket.tokens == 0.0
    clock.now += 10.5  # from the last reading, not the earlier one
    assert bucket.tokens == pytest.approx(MiB / 4)


@pytest.mark.parametrize(
    "value", [0, -1, 0.0, -0.5, math.nan, math.inf, True, "50MiB", None, [1]]
)
def test_max_rate_must_be_a_positive_finite_number(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_rate must be a positive number"):
        check_max_rate(value)
    with pytest.raises(InvalidArgumentError, match=r"got " + repr(value).replace("[", r"\[")):
        TokenBucket(value)  # type: ignore[arg-type]


def test_max_rate_may_be_an_int_or_a_float() -> None:
    assert check_max_rate(8 * MiB) == 8 * MiB
    assert check_max_rate(0.5) == 0.5
    assert repr(TokenBucket(1000)) == "TokenBucket(rate=1000)"


def test_the_engine_takes_max_rate_shows_it_and_may_change_or_lift_it() -> None:
    engine = TransferEngine(max_rate=8 * MiB)
    assert engine.max_rate == 8 * MiB
    assert repr(engine) == "TransferEngine(concurrency=64, chunk_size=65536, max_rate=8388608)"
    assert engine.statistics().max_rate == 8 * MiB
    bucket = engine._rt.transport.bucket
    assert bucket is not None
    engine.max_rate = MiB  # the same bucket, so transfers held now see the change
    assert engine._rt.transport.bucket is bucket
    assert bucket.rate == MiB
    engine.max_rate = None
    assert engine._rt.transport.bucket is None
    assert bucket.take(10 * MiB) is None  # lifted: what was held goes
    assert engine.statistics().max_rate is None
    assert "max_rate" not in repr(engine)
    assert TransferEngine().max_rate is None


@pytest.mark.parametrize("value", [0, -8, math.inf, "8MiB", True])
def test_the_engine_refuses_a_max_rate_that_is_not_a_positive_number(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_rate must be a positive number"):
        TransferEngine(max_rate=value)  # type: ignore[arg-type]
    engine = TransferEngine()
    with pytest.raises(InvalidArgumentError, match="max_rate must be a positive number"):
        engine.max_rate = value  # type: ignore[assignment]
    assert engine.max_rate is None


@pytest.mark.parametrize(
    ("text", "rate"),
    [("50MiB", 50 * MiB), ("50MiB/s", 50 * MiB), ("800k", 800_000), ("1000000", 1_000_000),
     (" 2 GiB/S ", 2 * 1024**3)],
)
def test_limit_rate_reads_sizes_as_the_other_options_do(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "0MiB/s", "fast", "-1MiB", "8 MiB per second", "/s"])
def test_limit_rate_refuses_what_is_not_a_positive_rate(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate(text)


def test_the_cli_refuses_a_zero_limit_rate_with_exit_2(tmp_path: Path) -> None:
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("")
    done = cli("transfer", str(manifest), "--limit-rate", "0", env=base_env(tmp_path), check=2)
    assert "--limit-rate: must be more than 0 bytes per second" in done.stderr
    assert "Traceback" not in done.stderr
