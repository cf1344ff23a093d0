"""When to try a transfer again, and how long to wait first. Pure: no I/O, no clock."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from ._exceptions import (
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    LocalFileError,
    RequestExpiredError,
    TransferError,
    TransferTimeoutError,
    TransportError,
)

__all__ = ["RetryDecision", "RetryPolicy", "backoff_delay", "decide_retry"]

NOT_REPLAYABLE = "the source is a stream that cannot be replayed"
NOT_IDEMPOTENT = "a POST is not sent again when whether it took effect is unknown"
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A 400 with one of these codes means the body arrived other than it was sent
#: (the server checked it against a signed Content-MD5 or checksum): a
#: corruption in transit, which sending again cures, not a bad request.
BODY_DIGEST_CODES = frozenset({"BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry a failed transfer.

    Delays grow as ``initial_backoff * multiplier ** (attempt - 1)`` up to
    ``max_backoff``; with ``jitter`` each delay is drawn uniformly from zero to
    that bound ("full jitter"), so many transfers failing together do not
    retry together. A ``Retry-After`` from the server is honoured up to
    ``max_retry_after`` seconds, with the jitter added above it (never below),
    so workers told "1 s" do not all come back in the same millisecond.

    Two budgets end the retries, whichever runs out first: ``attempts`` per
    transfer, and ``max_elapsed`` seconds of failure of the endpoint. That
    clock starts at the first failure and stops at the next success of *any*
    transfer to the same endpoint, so every transfer rides out a restart of
    up to ``max_elapsed`` seconds, while a dead endpoint fails the first
    transfers after ``max_elapsed`` and every later one at its first failure
    (not ``max_elapsed`` per wave of jobs). ``max_elapsed=None``: attempts
    only. ``RetryPolicy(attempts=1)`` disables retries.
    """

    attempts: int = 20
    initial_backoff: float = 0.1
    max_backoff: float = 20.0
    multiplier: float = 2.0
    jitter: bool = True
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    max_retry_after: float = 60.0
    max_elapsed: float | None = 60.0

    def __post_init__(self) -> None:
        attempts = self.attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidArgumentError(f"attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("initial_backoff", "max_backoff", "max_retry_after", "max_elapsed"):
            value = getattr(self, name)
            if value is None and name == "max_elapsed":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value >= 0
                or not math.isfinite(value)
            ):
                raise InvalidArgumentError(
                    f"{name} must be a finite number >= 0, got {value!r}"
                )
        multiplier = self.multiplier
        # NaN passed "< 1" and a bool passed as a number; inf times a zero
        # initial backoff is NaN, a wait of max_backoff where none was asked.
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, (int, float))
            or not multiplier >= 1
            or not math.isfinite(multiplier)
        ):
            raise InvalidArgumentError(
                f"multiplier must be a finite number >= 1, got {multiplier!r}"
            )
        if not isinstance(self.jitter, bool):
            raise InvalidArgumentError(f"jitter must be a bool, got {self.jitter!r}")
        object.__setattr__(self, "retry_statuses", _statuses(self.retry_statuses))


def _statuses(value: object) -> frozenset[int]:
    """``retry_statuses`` as a frozenset of HTTP statuses. An int or None was a
    bare TypeError, and a str such as "503" a set of its characters, which no
    status ever matches: retries silently off."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgumentError(
            f"retry_statuses must be a collection of HTTP statuses (ints), got {value!r}"
        )
    statuses = frozenset(value)
    for status in statuses:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise InvalidArgumentError(
                f"retry_statuses must hold HTTP statuses (ints 100-599), got {status!r}"
            )
    return statuses


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    resign: bool = False  # ask the signing function for a fresh request first
    reason: str = ""


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    bound = _bound(policy, attempt)
    if not policy.jitter:
        return bound
    return (rng or random).uniform(0.0, bound)


def _bound(policy: RetryPolicy, attempt: int) -> float:
    try:
        growth = policy.multiplier ** min(attempt - 1, 64)
    except OverflowError:
        # A float power past 1.8e308 raises instead of giving inf (a multiplier
        # of 1e6 by the 65th attempt): the bound is long reached by then.
        return float(policy.max_backoff if policy.initial_backoff else 0.0)
    return float(min(policy.max_backoff, policy.initial_backoff * growth))


def _not_retryable(policy: RetryPolicy, error: BaseException) -> str:
    """Why ``error`` is not worth another attempt, or "" if it is."""
    if isinstance(error, LocalFileError):
        return "" if error.transient else "a local file error"
    if isinstance(error, HTTPStatusError):
        if error.status not in policy.retry_statuses and error.code not in BODY_DIGEST_CODES:
            return f"HTTP {error.status} is not retryable"
        return ""
    if isinstance(error, TransportError):
        return "" if error.retryable else "retrying cannot help"
    if isinstance(error, (TransferTimeoutError, IntegrityError)):
        return ""
    if isinstance(error, TransferError):
        return f"{type(error).__name__} is not retryable"
    return "not a transfer error"


def decide_retry(
    policy: RetryPolicy,
    error: BaseException,
    attempt: int,
    *,
    replayable: bool = True,
    can_resign: bool = False,
    idempotent: bool = True,
    elapsed: float = 0.0,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Whether failed attempt number ``attempt`` should be followed by another, and when.

    A request that is not ``idempotent`` (a form POST) is sent again only when
    it is known not to have taken effect: the failure came before any byte of
    it left (a refused connection), or the server answered that it failed (a
    retryable status such as 503). After a connection broke with the body out,
    or a timeout, whether it took effect is unknown, so it is not sent again.

    ``elapsed`` is how long the endpoint has been failing; past
    ``policy.max_elapsed`` no retry follows, and a delay never reaches past it
    (the last attempt goes out at the end of the budget, not after it)."""
    if attempt >= policy.attempts:
        return RetryDecision(False, reason=f"gave up after {attempt} attempts")
    budget = policy.max_elapsed
    if budget is not None and elapsed >= budget:
        return RetryDecision(
            False, reason=f"gave up after {attempt} attempts: failing for {elapsed:.1f} s"
        )
    if isinstance(error, RequestExpiredError):
        if can_resign:
            return RetryDecision(True, 0.0, resign=True, reason="URL expired; re-signing")
        return RetryDecision(False, reason="URL expired and no signing function was given")
    refusal = _not_retryable(policy, error)
    if refusal:
        return RetryDecision(False, reason=refusal)
    if not idempotent and not isinstance(error, HTTPStatusError) and (
        not isinstance(error, TransportError) or error.request_sent
    ):
        return RetryDecision(False, reason=NOT_IDEMPOTENT)
    if not replayable:
        return RetryDecision(False, reason=NOT_REPLAYABLE)
    delay = backoff_delay(policy, attempt, rng)
    if isinstance(error, HTTPStatusError) and error.retry_after is not None:
        # Above the server's wait, spread over a window as wide as the wait
        # itself: many workers told "1 s" come back over a second, not at once.
        floor = min(error.retry_after, policy.max_retry_after)
        spread = max(floor, _bound(policy, attempt))
        delay = floor + ((rng or random).uniform(0.0, spread) if policy.jitter else 0.0)
    if budget is not None:
        delay = min(delay, budget - elapsed)
    return RetryDecision(True, delay, reason="retryable")
