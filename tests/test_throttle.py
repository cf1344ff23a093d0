"""The endpoint health the engine keeps: the retry budget's clock and the
adaptive rate limiter (pure: no server; the live storm is in test_outages.py)."""

from __future__ import annotations

import pytest

from asyncpresign import HTTPStatusError, LocalFileError, TransportError
from asyncpresign._descriptors import PER_SLOT, SPARE, plan_descriptors
from asyncpresign._throttle import Endpoints, endpoint_of, is_throttling

pytestmark = pytest.mark.anyio
URL = "http://127.0.0.1:9000/bucket/key?X-Amz-Signature=x"
SLOW_DOWN = HTTPStatusError("slow down", status=503, code="SlowDown")


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        (URL, "http://127.0.0.1:9000"),
        ("https://b.s3.amazonaws.com/k", "https://b.s3.amazonaws.com"),
        ("https://host", "https://host"),
    ],
)
def test_the_endpoint_of_a_url_is_its_scheme_host_and_port(url: str, endpoint: str) -> None:
    assert endpoint_of(url) == endpoint


@pytest.mark.parametrize(
    ("error", "throttling"),
    [
        (SLOW_DOWN, True),
        (HTTPStatusError("x", status=429), True),
        (HTTPStatusError("x", status=503, retry_after=1.0), True),
        (HTTPStatusError("x", status=503), False),  # a restart, not a throttle
        (HTTPStatusError("x", status=500, code="InternalError"), False),
        (TransportError("reset"), False),
        (None, False),
    ],
)
def test_throttling_answers_are_429_and_503_slowdown(
    error: BaseException | None, throttling: bool
) -> None:
    assert is_throttling(error) is throttling


def test_the_failure_clock_starts_at_the_first_outage_and_stops_at_any_success() -> None:
    endpoints = Endpoints()
    assert endpoints.failing_for(URL) == 0.0
    endpoints.record(URL, TransportError("refused"))
    assert endpoints.failing_for(URL) >= 0.0
    first = endpoints._get(URL).failing_since
    endpoints.record(URL, HTTPStatusError("x", status=500))
    assert endpoints._get(URL).failing_since == first  # still the same outage
    endpoints.record(URL, None)
    assert endpoints._get(URL).failing_since is None


def test_an_answer_about_the_request_says_the_endpoint_is_up() -> None:
    endpoints = Endpoints()
    endpoints.record(URL, TransportError("refused"))
    endpoints.record(URL, HTTPStatusError("missing", status=404, code="NoSuchKey"))
    assert endpoints._get(URL).failing_since is None
    endpoints.record(URL, LocalFileError("too many open files", errno=24))
    assert endpoints._get(URL).failing_since is None


def test_each_endpoint_has_its_own_clock() -> None:
    endpoints = Endpoints()
    endpoints.record(URL, TransportError("refused"))
    endpoints.record("http://127.0.0.1:9001/b/k", None)
    assert endpoints._get(URL).failing_since is not None


def warmed_up(endpoints: Endpoints) -> Endpoints:
    """As if the endpoint had been measured for a while already."""
    endpoints._get(URL).created -= 10
    return endpoints


async def test_a_throttle_in_the_first_second_leaves_the_rate_alone() -> None:
    endpoints = Endpoints()
    assert endpoints.record(URL, SLOW_DOWN) is None
    assert endpoints.limiter(URL) is None
    assert endpoints.states()[0].throttle_responses == 1


async def test_no_limiter_until_the_first_throttle_then_a_rate_below_the_measured_one() -> None:
    endpoints = warmed_up(Endpoints())
    for _ in range(50):
        assert endpoints.record(URL, None) is None
    assert endpoints.limiter(URL) is None
    assert endpoints.rate_limit() is None
    throttled = endpoints.record(URL, SLOW_DOWN)
    assert throttled is not None
    await throttled.hear(SLOW_DOWN)
    assert endpoints.limiter(URL) is throttled.limiter
    (state,) = endpoints.states()
    assert state.throttled
    assert state.throttle_responses == 1
    assert state.rate_limit is not None
    assert endpoints.rate_limit() == state.rate_limit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def current_time(self) -> float:
        return self.now

    def sleep(self, amount: float) -> None:
        self.now += amount


async def test_the_rate_drops_on_a_throttle_and_climbs_back_as_requests_succeed() -> None:
    clock = FakeClock()
    endpoints = warmed_up(Endpoints(clock))  # type: ignore[arg-type]

    async def answer(error: BaseException | None, per_second: float, seconds: float) -> None:
        for _ in range(int(per_second * seconds)):
            clock.now += 1 / per_second
            throttled = endpoints.record(URL, error)
            if throttled is not None:
                await throttled.hear(error)

    await answer(None, 200, 3)  # 200 req/s, unthrottled
    await answer(SLOW_DOWN, 200, 0.05)
    dropped = endpoints.rate_limit()
    assert dropped is not None
    assert dropped < 200 * 0.75
    await answer(SLOW_DOWN, 200, 1)  # a storm that does not depend on the load
    floor = endpoints.rate_limit()
    assert floor is not None
    assert floor >= 200 * 0.25 * 0.9  # held at a quarter of the rate before it
    dropped = floor
    await answer(None, dropped, 6)
    (state,) = endpoints.states()
    assert state.rate_limit is None or state.rate_limit > dropped
    assert endpoints._get(URL).bucket.max_rate > dropped  # type: ignore[union-attr]


# -- file descriptors ------------------------------------------------------------------------


def test_enough_descriptors_change_nothing() -> None:
    plan = plan_descriptors(64, soft=20_000, hard=20_000, in_use=10)
    assert (plan.concurrency, plan.raise_soft_to) == (64, None)


def test_unlimited_descriptors_change_nothing() -> None:
    assert plan_descriptors(5000, soft=-1, hard=-1, in_use=10).concurrency == 5000


def test_a_low_soft_limit_is_raised_as_far_as_needed() -> None:
    plan = plan_descriptors(512, soft=256, hard=1 << 20, in_use=10)
    assert plan.concurrency == 512
    assert plan.raise_soft_to == 10 + SPARE + PER_SLOT * 512


def test_a_low_hard_limit_caps_the_concurrency_instead() -> None:
    plan = plan_descriptors(512, soft=256, hard=256, in_use=10)
    assert plan.raise_soft_to is None
    assert plan.concurrency == (256 - 10 - SPARE) // PER_SLOT
    assert 10 + SPARE + PER_SLOT * plan.concurrency <= 256


def test_the_hard_limit_is_used_as_far_as_it_goes() -> None:
    plan = plan_descriptors(512, soft=256, hard=1024, in_use=10)
    assert plan.raise_soft_to == 1024
    assert plan.concurrency == (1024 - 10 - SPARE) // PER_SLOT


def test_a_limit_below_what_is_already_open_still_runs_one_transfer() -> None:
    assert plan_descriptors(64, soft=20, hard=20, in_use=30).concurrency == 1
