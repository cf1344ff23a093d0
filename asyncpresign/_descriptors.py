"""Fitting the engine's concurrency into the process's file-descriptor limit.

Each transfer slot can hold a connection and a file at once, and a copy two
connections (the pool keeps up to ``2 * concurrency``): past ``RLIMIT_NOFILE``
opens fail with EMFILE. At open the engine raises the soft limit towards what
it needs, as far as the hard limit allows, and otherwise runs fewer transfers
at a time, with a warning, rather than fail them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

__all__ = ["DescriptorPlan", "fit_concurrency", "plan_descriptors"]

logger = logging.getLogger("asyncpresign")

#: Descriptors per transfer slot: up to two connections (a copy's GET and
#: PUT, kept pooled) and one file.
PER_SLOT = 3
#: Left for everything else the process opens (the event loop, logging,
#: journals, a signer's own connections, libraries).
SPARE = 64


@dataclass(frozen=True, slots=True)
class DescriptorPlan:
    concurrency: int  # what to run with
    raise_soft_to: int | None  # the soft limit to ask for, if it must grow


def plan_descriptors(concurrency: int, soft: int, hard: int, in_use: int) -> DescriptorPlan:
    """What to do with limits ``soft``/``hard`` (negative: unlimited) when
    ``in_use`` descriptors are already open. Pure, for testing."""
    need = in_use + SPARE + PER_SLOT * concurrency
    if soft < 0 or soft >= need:
        return DescriptorPlan(concurrency, None)
    ceiling = need if hard < 0 else min(need, hard)
    available = max(ceiling, soft) - in_use - SPARE
    fitted = max(1, min(concurrency, available // PER_SLOT))
    return DescriptorPlan(fitted, ceiling if ceiling > soft else None)


def _in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: a guess that errs on the safe side
        return 32


def fit_concurrency(concurrency: int) -> int:
    """Raise the soft descriptor limit for ``concurrency`` transfers if needed and
    allowed; return the concurrency that fits (``concurrency`` itself unless the
    hard limit is too low)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows has no such limit
        return concurrency
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    plan = plan_descriptors(
        concurrency,
        -1 if soft == unlimited else soft,
        -1 if hard == unlimited else hard,
        _in_use(),
    )
    if plan.raise_soft_to is not None:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (plan.raise_soft_to, hard))
            logger.info("raised the open-file limit from %d to %d", soft, plan.raise_soft_to)
        except (ValueError, OSError):
            plan = plan_descriptors(concurrency, soft, soft, _in_use())
    if plan.concurrency < concurrency:
        logger.warning(
            "the open-file limit (ulimit -n %d) allows %d transfers at a time, not %d: "
            "running %d (raise the limit to run more)",
            resource.getrlimit(resource.RLIMIT_NOFILE)[0], plan.concurrency, concurrency,
            plan.concurrency,
        )
    return plan.concurrency
