"""What the engine knows about each endpoint's health: since when it has been
failing (the retry budget's clock), and how fast it may be sent requests after
it said to slow down.

The rate limiter is the AWS SDKs' "adaptive" retry mode, built from the same
parts aiobotocore uses: botocore's CUBIC calculator and rate clock with
aiobotocore's non-blocking token bucket. On a throttling answer (429, or 503
SlowDown) the send rate drops to 70% of the rate measured; as requests succeed
it climbs back along a cubic curve. Until the first throttle nothing is
limited and a response costs one counter update.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from aiobotocore.retries.adaptive import AsyncClientRateLimiter
from aiobotocore.retries.bucket import AsyncTokenBucket, Clock
from botocore.retries.adaptive import RateClocker
from botocore.retries.throttling import CubicCalculator

from ._exceptions import HTTPStatusError, TransferTimeoutError, TransportError

__all__ = [
    "Endpoints",
    "ThrottleState",
    "endpoint_of",
    "is_outage",
    "is_throttling",
    "lowest_rate_limit",
]

#: S3's codes for "too many requests" (503 SlowDown is what S3 sends, without
#: Retry-After); any 429 is one too.
THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
     "TooManyRequests", "TooManyRequestsException", "RequestThrottled",
     "ProvisionedThroughputExceededException", "BandwidthLimitExceeded"}
)


#: Seconds of measuring before a throttle may start the limiter.
WARM_UP = 1.0
#: The token bucket's own minimum (requests per second).
MIN_RATE = 0.5
#: The limiter never goes below this share of the rate that drew the first throttle.
FLOOR_SHARE = 0.25


def is_throttling(error: BaseException | None) -> bool:
    if not isinstance(error, HTTPStatusError):
        return False
    return error.status == 429 or (error.status == 503 and error.code in THROTTLING_CODES) or (
        error.status == 503 and error.retry_after is not None
    )


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the endpoint is not answering properly (down,
    restarting, overloaded), as opposed to answering about this request."""
    if isinstance(error, HTTPStatusError):
        return error.status >= 500 or error.status == 429
    return isinstance(error, (TransportError, TransferTimeoutError))


class _Detector:
    """The throttling detector the SDK's limiter asks (its own reads botocore events)."""

    @staticmethod
    def is_throttling_error(error: BaseException | None = None, **_: object) -> bool:
        return is_throttling(error)


def endpoint_of(url: str) -> str:
    """``scheme://host:port`` of a URL, cheaply (it runs once per request)."""
    slash = url.find("/", url.find("//") + 2)
    return url if slash < 0 else url[:slash]


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """How one endpoint is being treated, as :meth:`TransferEngine.statistics` shows it."""

    endpoint: str
    throttled: bool  # the adaptive limiter is holding requests back
    rate_limit: float | None  # requests per second allowed, while throttled
    measured_rate: float  # requests per second answered lately
    throttle_responses: int  # 429s and 503 SlowDowns seen


def lowest_rate_limit(states: Iterable[ThrottleState]) -> float | None:
    """The lowest request rate any throttled endpoint allows, or None if none is."""
    limits = [state.rate_limit for state in states if state.rate_limit is not None]
    return min(limits) if limits else None


class _Endpoint:
    __slots__ = (
        "bucket", "clock", "created", "failing_since", "floor", "last_cut", "limiter",
        "peak_rate", "rate_clock", "throttles",
    )

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.rate_clock = RateClocker(self.clock)
        self.failing_since: float | None = None
        self.limiter: AsyncClientRateLimiter | None = None
        self.bucket: AsyncTokenBucket | None = None
        self.throttles = 0
        self.last_cut = float("-inf")  # when the rate was last cut (time.monotonic())
        self.floor = MIN_RATE
        self.peak_rate = 0.0  # the highest answer rate measured before limiting
        self.created = time.monotonic()

    async def hear(self, error: BaseException | None) -> None:
        """Tell the limiter an attempt's outcome, keeping its rate above the floor."""
        assert self.limiter is not None
        assert self.bucket is not None
        await self.limiter.on_receiving_response(error=error)
        if self.bucket.max_rate < self.floor:
            await self.bucket.set_max_rate(self.floor)

    def start_limiting(self) -> AsyncClientRateLimiter:
        # A floor under the SDKs' rule: a quarter of the highest rate measured
        # before the first throttle. Throttles that do not depend on the load (S3 sends a
        # few SlowDowns even to a modest client; a proxy may inject them at
        # random) would otherwise cut the rate to 0.5 requests a second for
        # good: measured, a soak with 10% injected faults went from 20 s to 108 s.
        self.floor = max(MIN_RATE, self.peak_rate * FLOOR_SHARE)
        self.bucket = AsyncTokenBucket(max_rate=1, clock=self.clock)
        start = self.clock.current_time()
        self.limiter = AsyncClientRateLimiter(
            rate_adjustor=CubicCalculator(starting_max_rate=0, start_time=start),
            rate_clocker=self.rate_clock,
            token_bucket=self.bucket,
            throttling_detector=_Detector(),
            clock=self.clock,
        )
        return self.limiter

    def state(self, name: str) -> ThrottleState:
        rate = self.bucket.max_rate if self.bucket is not None else None
        measured = self.rate_clock.measured_rate
        # The limiter never switches off (as in the SDKs); once its rate has
        # climbed well above what is being sent, it no longer holds anything.
        throttled = rate is not None and rate < 2 * max(measured, 1.0)
        return ThrottleState(
            endpoint=name,
            throttled=throttled,
            rate_limit=rate if throttled else None,
            measured_rate=measured,
            throttle_responses=self.throttles,
        )


class Endpoints:
    """Per-endpoint health, shared by every transfer of one engine."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self._clock = clock or Clock()  # a test's own, to play time forward

    def _get(self, url: str) -> _Endpoint:
        name = endpoint_of(url)
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            if len(self._endpoints) > 1024:  # URLs of many hosts: forget the healthy ones
                for key in [k for k, e in self._endpoints.items() if e.limiter is None]:
                    del self._endpoints[key]
            endpoint = self._endpoints[name] = _Endpoint(self._clock)
        return endpoint

    def limiter(self, url: str) -> AsyncClientRateLimiter | None:
        """The endpoint's rate limiter, once it has been throttled (else None,
        and sending costs nothing more)."""
        return self._get(url).limiter

    def record(
        self, url: str, error: BaseException | None, sent_at: float | None = None
    ) -> _Endpoint | None:
        """Note an attempt's outcome (``error`` None for a success); ``sent_at``
        is its ``time.monotonic()`` when sent. Returns the endpoint whose limiter
        must :meth:`~_Endpoint.hear` of it too, if it is being throttled.

        As TCP's congestion control does, the rate is cut once per round trip:
        a throttle answering a request sent before the last cut says nothing
        new (with 64 requests in flight, the SDKs' rule of a cut per throttle
        took the rate from 188 to 2 requests a second within a second, and it
        stayed there)."""
        endpoint = self._get(url)
        if error is None or not is_outage(error):
            # An answer, even a 404, says the endpoint is up.
            endpoint.failing_since = None
        elif endpoint.failing_since is None:
            endpoint.failing_since = time.monotonic()
        throttling = is_throttling(error)
        if throttling:
            endpoint.throttles += 1
            if sent_at is not None and sent_at < endpoint.last_cut:
                return None
            now = time.monotonic()
            endpoint.last_cut = now
            # The rate is measured over half-second buckets: in a run's first
            # second it reads near zero, and a limiter started from it would
            # start near zero. Early throttles are left to the retries' backoff.
            if endpoint.limiter is None and now - endpoint.created >= WARM_UP:
                endpoint.start_limiting()
        if endpoint.limiter is None:
            endpoint.peak_rate = max(endpoint.peak_rate, endpoint.rate_clock.record())
            return None
        return endpoint

    def failing_for(self, url: str) -> float:
        """Seconds the endpoint has been failing without a success in between."""
        since = self._get(url).failing_since
        return 0.0 if since is None else time.monotonic() - since

    def rate_limit(self) -> float | None:
        return lowest_rate_limit(
            endpoint.state(name)
            for name, endpoint in self._endpoints.items()
            if endpoint.limiter is not None
        )

    def states(self) -> tuple[ThrottleState, ...]:
        return tuple(e.state(name) for name, e in sorted(self._endpoints.items()))
