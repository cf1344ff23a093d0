"""The bandwidth limit (``TransferEngine(max_rate=...)``): one token bucket for
every byte an engine moves.

Pure logic: no I/O, no event loop, the clock injected. The transport does the
waiting (it sleeps, and tells its watchdog that a transfer held here is held,
not stalled).

Tokens are bytes of bodies. The bucket fills at ``rate`` bytes a second up to
``burst``, a quarter of a second's worth (so the rate holds over any few
seconds, not just on average), and starts full. A taker takes what it moves
at once, into debt when the bucket holds too little, and gets a *ticket*: it
waits until the bucket has been refilled past its ticket. Debts are paid in the
order they were made, so takers are served first come, first served: many
transfers taking a chunk at a time take turns and share the rate evenly, and a
large buffered body taken in one go (a debt of its whole length) delays only
those behind it, by its own length at the rate. From any moment the bucket is
full (the start, or after a quiet spell), no more than ``burst + rate * t``
bytes are let through in the next ``t`` seconds.

A rate change applies at once to the debt still unpaid (tickets are counted in
bytes refilled, not in seconds), and a lifted limit forgives it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

from ._exceptions import InvalidArgumentError

__all__ = ["BURST_SECONDS", "TokenBucket", "check_max_rate", "rate_text"]

#: The bucket holds this many seconds' worth of bytes when full.
BURST_SECONDS = 0.25


def check_max_rate(value: object) -> float:
    """``max_rate`` as a float: a positive, finite number of bytes per second."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int too large for a float
            rate = float(value)
            if math.isfinite(rate) and rate > 0:
                return rate
    shown = repr(value)
    raise InvalidArgumentError(
        f"max_rate must be a positive number of bytes per second (or None for no "
        f"limit), got {shown if len(shown) <= 40 else shown[:40] + '...'}"
    )


def rate_text(rate: float) -> str:
    """A rate as a repr shows it: ``8388608``, ``1500.5``, exact."""
    return str(int(rate)) if rate.is_integer() else repr(rate)


class TokenBucket:
    """Bytes per second, shared by every transfer of one engine.

    ``take(n)`` takes ``n`` bytes' worth now and returns None when the bucket
    held them, else a ticket; ``delay(ticket)`` is how long until that ticket
    is paid (0.0 once it is). ``clock`` is seconds on a monotonic clock.
    """

    __slots__ = ("_burst", "_clock", "_credited", "_lifted", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rate = check_max_rate(rate)
        self._burst = self._rate * BURST_SECONDS
        self._tokens = self._burst  # negative while in debt
        self._credited = 0.0  # every token ever added: what tickets are counted in
        self._stamp = clock()
        self._lifted = False

    def __repr__(self) -> str:
        return f"TokenBucket(rate={rate_text(self._rate)})"

    @property
    def rate(self) -> float:
        """Bytes per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """The most bytes let through at once after a pause."""
        return self._burst

    @property
    def tokens(self) -> float:
        """Bytes that may go now without waiting; negative: the debt still unpaid."""
        self._refill()
        return self._tokens

    def take(self, n: int) -> float | None:
        """Take ``n`` bytes' worth now: None when the bucket held them, else the
        ticket to wait for (see :meth:`delay`)."""
        self._refill()
        self._tokens -= n
        if self._tokens >= 0 or self._lifted:
            return None
        return self._credited - self._tokens

    def delay(self, ticket: float) -> float:
        """Seconds until ``ticket`` is paid at the rate now; 0.0 once it is."""
        self._refill()
        owed = ticket - self._credited
        return owed / self._rate if owed > 0 and not self._lifted else 0.0

    def set_rate(self, rate: float) -> None:
        """A new rate, from now on: what has filled so far was filled at the old one."""
        rate = check_max_rate(rate)
        self._refill()
        self._rate = rate
        self._burst = rate * BURST_SECONDS
        self._tokens = min(self._tokens, self._burst)

    def lift(self) -> None:
        """No limit any more: every debt is forgiven, and every take let through."""
        self._lifted = True

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed <= 0:
            return
        self._stamp = now
        room = self._burst - self._tokens
        if room > 0:
            added = min(elapsed * self._rate, room)
            self._tokens += added
            self._credited += added
