"""A listing is read one page ahead (``_bulk.ahead``), so a run's transfer slots
do not all wait for each LIST: the pages, their order and their errors are the
listing's own, and stopping early stops the read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from asyncpresign._bulk import ahead

pytestmark = pytest.mark.anyio


class Listing:
    """Pages 1..count, each taking a moment to come, noting what happened when."""

    def __init__(self, count: int, *, fail_after: int | None = None) -> None:
        self.count = count
        self.fail_after = fail_after
        self.events: list[str] = []
        self.stopped = False

    async def pages(self) -> AsyncIterator[int]:
        try:
            for page in range(1, self.count + 1):
                if self.fail_after is not None and page > self.fail_after:
                    raise ValueError(f"page {page} could not be read")
                await asyncio.sleep(0.01)
                self.events.append(f"fetched {page}")
                yield page
        finally:
            self.stopped = True


async def test_the_next_page_is_fetched_while_this_one_is_used() -> None:
    listing = Listing(3)
    async for page in ahead(listing.pages()):
        listing.events.append(f"using {page}")
        await asyncio.sleep(0.05)  # the run's transfers of this page
        listing.events.append(f"done with {page}")
    assert listing.events.index("fetched 2") < listing.events.index("done with 1")
    assert listing.events.index("fetched 3") < listing.events.index("done with 2")


async def test_pages_come_in_order_then_the_error_where_it_happened() -> None:
    listing = Listing(5, fail_after=2)
    seen: list[int] = []

    async def use_all() -> None:
        async for page in ahead(listing.pages()):
            seen.append(page)

    with pytest.raises(ValueError, match="page 3 could not be read"):
        await use_all()
    assert seen == [1, 2]


async def test_a_listing_used_to_its_end_gives_every_page_once() -> None:
    assert [page async for page in ahead(Listing(4).pages())] == [1, 2, 3, 4]


async def test_stopping_early_stops_the_read_ahead() -> None:
    listing = Listing(100)
    pages = ahead(listing.pages())
    assert await pages.__anext__() == 1
    await asyncio.sleep(0.05)  # the reader has fetched page 2 and waits to hand it over
    await pages.aclose()
    assert listing.stopped  # the listing itself was closed, not left to the collector
    assert "fetched 4" not in listing.events  # one page ahead, no more


async def test_a_cancelled_run_leaves_no_reader_behind() -> None:
    listing = Listing(100)

    async def consume() -> None:
        async for _ in ahead(listing.pages()):
            await asyncio.sleep(10)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The abandoned generator is closed by the loop's finaliser, as any is.
    for _ in range(20):
        if listing.stopped:
            break
        await asyncio.sleep(0.01)
    assert listing.stopped
