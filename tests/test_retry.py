import errno
import random

import pytest

from asyncpresign import (
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    LocalFileError,
    RequestExpiredError,
    RetryPolicy,
    TransferTimeoutError,
    TransportError,
)
from asyncpresign._retry import NOT_REPLAYABLE, backoff_delay, decide_retry

NO_JITTER = RetryPolicy(attempts=6, initial_backoff=0.5, multiplier=2, max_backoff=3, jitter=False)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    assert [backoff_delay(NO_JITTER, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3, 3]


def test_full_jitter_stays_between_zero_and_the_bound() -> None:
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2, max_backoff=10)
    rng = random.Random(7)
    delays = [backoff_delay(policy, 3, rng) for _ in range(500)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert max(delays) > 3.0
    assert min(delays) < 1.0


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int) -> None:
    error = HTTPStatusError("x", status=status)
    assert decide_retry(NO_JITTER, error, 1).retry


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 411, 501])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not decide_retry(NO_JITTER, HTTPStatusError("x", status=status), 1).retry


@pytest.mark.parametrize(
    "error", [TransportError("reset"), TransferTimeoutError("slow"), IntegrityError("md5")]
)
def test_connection_timeout_and_integrity_failures_are_retried(error: Exception) -> None:
    decision = decide_retry(NO_JITTER, error, 2)
    assert decision.retry
    assert decision.delay == 1.0


def test_local_file_errors_are_not_retried() -> None:
    assert not decide_retry(NO_JITTER, LocalFileError("gone"), 1).retry


def test_last_attempt_is_not_retried() -> None:
    assert not decide_retry(NO_JITTER, TransportError("x"), 6).retry
    assert decide_retry(NO_JITTER, TransportError("x"), 5).retry


def test_retry_after_is_honoured_but_capped() -> None:
    error = HTTPStatusError("slow down", status=503, retry_after=2.5)
    assert decide_retry(NO_JITTER, error, 1).delay == 2.5
    late = HTTPStatusError("slow down", status=503, retry_after=3600)
    assert decide_retry(NO_JITTER, late, 1).delay == NO_JITTER.max_retry_after


def test_expired_url_is_retried_only_with_a_signing_function() -> None:
    error = RequestExpiredError("expired", status=403, code="AccessDenied")
    assert not decide_retry(NO_JITTER, error, 1).retry
    decision = decide_retry(NO_JITTER, error, 1, can_resign=True)
    assert decision.retry
    assert decision.resign
    assert decision.delay == 0.0


def test_non_replayable_source_is_not_retried_and_says_why() -> None:
    decision = decide_retry(NO_JITTER, TransportError("reset"), 1, replayable=False)
    assert not decision.retry
    assert decision.reason == NOT_REPLAYABLE


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"initial_backoff": -1}, {"multiplier": 0.5}, {"max_backoff": -0.1}],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_post_is_not_retried_when_whether_it_took_effect_is_unknown() -> None:
    sent = TransportError("server closed the connection")
    decision = decide_retry(RetryPolicy(), sent, 1, idempotent=False)
    assert not decision.retry
    assert "unknown" in decision.reason
    assert not decide_retry(RetryPolicy(), TransferTimeoutError("slow"), 1, idempotent=False).retry


def test_a_post_the_server_answered_as_failed_is_retried() -> None:
    status = HTTPStatusError("HTTP 503", status=503)
    assert decide_retry(RetryPolicy(), status, 1, idempotent=False).retry
    denied = HTTPStatusError("HTTP 403", status=403)
    assert not decide_retry(RetryPolicy(), denied, 1, idempotent=False).retry


def test_a_post_is_retried_when_nothing_was_sent() -> None:
    refused = TransportError("cannot connect")
    refused.request_sent = False
    assert decide_retry(RetryPolicy(), refused, 1, idempotent=False).retry
    # The same failure of an idempotent PUT is retried either way.
    assert decide_retry(RetryPolicy(), TransportError("reset"), 1).retry


def test_a_transport_error_that_retrying_cannot_help_is_not_retried() -> None:
    untrusted = TransportError("TLS certificate not trusted")
    untrusted.retryable = False
    decision = decide_retry(RetryPolicy(), untrusted, 1)
    assert not decision.retry
    assert decision.reason == "retrying cannot help"


# -- the time budget (issue 16) ------------------------------------------------------------

BUDGET = RetryPolicy(attempts=1000, max_elapsed=10.0, jitter=False, max_backoff=2.0)


def test_retries_go_on_past_a_handful_of_attempts_while_the_time_budget_lasts() -> None:
    decision = decide_retry(BUDGET, TransportError("refused"), 40, elapsed=9.0)
    assert decision.retry
    assert decision.delay == 1.0  # the bound is 2 s, but only 1 s of budget is left


def test_retries_stop_once_the_endpoint_has_failed_for_max_elapsed() -> None:
    decision = decide_retry(BUDGET, TransportError("refused"), 2, elapsed=10.0)
    assert not decision.retry
    assert "failing for 10.0 s" in decision.reason


def test_the_count_still_ends_retries_inside_the_time_budget() -> None:
    policy = RetryPolicy(attempts=3, max_elapsed=60.0)
    assert not decide_retry(policy, TransportError("x"), 3, elapsed=0.5).retry


def test_max_elapsed_none_leaves_only_the_count() -> None:
    policy = RetryPolicy(attempts=50, max_elapsed=None)
    assert decide_retry(policy, TransportError("x"), 49, elapsed=1e6).retry


def test_the_default_schedule_outlasts_a_ten_second_restart_whatever_the_jitter() -> None:
    """The defaults: the attempts cannot run out inside 10 s of refusals, even
    with the jitter drawing short delays (the 5-attempt default of before gave
    up within 1.5 s)."""
    policy = RetryPolicy()
    rng = random.Random(3)
    for _ in range(200):
        waited, attempt = 0.0, 1
        while True:
            decision = decide_retry(policy, TransportError("x"), attempt, elapsed=waited, rng=rng)
            if not decision.retry or waited >= 10.0:
                break
            waited += decision.delay
            attempt += 1
        assert waited >= 10.0, f"gave up after {waited:.1f} s and {attempt} attempts"


def test_retry_after_gets_jitter_above_it_never_below() -> None:
    policy = RetryPolicy(max_elapsed=None)
    rng = random.Random(5)
    error = HTTPStatusError("slow down", status=503, code="SlowDown", retry_after=1.0)
    delays = [decide_retry(policy, error, 1, rng=rng).delay for _ in range(400)]
    assert min(delays) >= 1.0
    assert max(delays) <= 2.0
    # Spread over the whole second above it: no lock-step return.
    assert sum(1 for d in delays if d < 1.25) > 50
    assert sum(1 for d in delays if d > 1.75) > 50


@pytest.mark.parametrize("number", [errno.EMFILE, errno.ENFILE])
def test_too_many_open_files_is_retried_as_a_passing_shortage(number: int) -> None:
    error = LocalFileError("cannot read upload source: Too many open files", errno=number)
    assert error.transient
    assert decide_retry(NO_JITTER, error, 1).retry


def test_other_local_file_errors_are_still_not_retried() -> None:
    error = LocalFileError("cannot read: Permission denied", errno=errno.EACCES)
    assert not error.transient
    assert not decide_retry(NO_JITTER, error, 1).retry


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "10", True])
def test_max_elapsed_must_be_a_finite_number_or_none(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_elapsed"):
        RetryPolicy(max_elapsed=value)  # type: ignore[arg-type]
