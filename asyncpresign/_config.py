"""Settings of the transport that are public: timeouts and the low-speed limit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._exceptions import InvalidArgumentError

__all__ = ["Timeout"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """Seconds to wait, and the slowest a transfer may move.

    ``read`` bounds the silence between two pieces of data, not the whole
    transfer, so a large object on a slow link is not cut off while it moves.
    ``total`` bounds one whole transfer, every attempt and wait between them
    included, from its start to its last byte (``None``: no bound); past it the
    transfer fails with :class:`TransferTimeoutError`, not retried, and leaves
    nothing behind. With the low-speed limit below, no transfer can be held
    forever even without it.

    Silence is not the only way to stall: a server that trickles one byte
    every few seconds never trips ``read``. So, as curl's
    ``--speed-limit``/``--speed-time``, an attempt that moves fewer than
    ``min_rate`` bytes per second, averaged over each ``min_rate_window``
    seconds, fails with :class:`TransferTimeoutError` (and is retried). The
    defaults, 1 KiB/s over 60 s, fail only transfers no link still works at
    (a healthy one moves thousands of times more), and the window matches
    ``read``, so a quiet pause that ``read`` allows is allowed here too.
    ``min_rate=None`` turns the limit off.
    """

    connect: float | None = 30.0
    read: float | None = 60.0
    total: float | None = None
    min_rate: float | None = 1024.0
    min_rate_window: float = 60.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total", "min_rate", "min_rate_window"):
            value = getattr(self, name)
            if value is None and name != "min_rate_window":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidArgumentError(
                    f"timeout {name} must be a positive number"
                    + ("" if name == "min_rate_window" else " or None")
                    + f", got {value!r}"
                )
            if not math.isfinite(value):
                raise InvalidArgumentError(f"timeout {name} must be finite, got {value!r}")
