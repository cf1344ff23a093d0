"""A presigned GET streamed straight into a presigned PUT, with no local file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from ._attempts import Runtime, Tracker, expiring, initial_request
from ._checks import check_etag, check_stored_md5, is_plain_md5, parse_content_length
from ._exceptions import IntegrityError, RequestExpiredError
from ._models import PresignedRequest, RequestLike, SignFunction, TransferResult
from ._redact import redact_url
from ._retry import RetryPolicy

__all__ = ["copy"]


async def copy(
    rt: Runtime,
    source: RequestLike | None,
    dest: RequestLike | None,
    *,
    source_sign: SignFunction | None,
    dest_sign: SignFunction | None,
    chunk: int,
    policy: RetryPolicy,
    tracker: Tracker,
) -> TransferResult:
    """Memory stays at a chunk plus aiohttp's read buffer whatever the object size.
    The source and destination may be different servers with different
    credentials. When both ETags are plain MD5s they must match."""
    get = initial_request(source, source_sign, "GET")
    put = initial_request(dest, dest_sign, "PUT")

    async def attempt(put_request: PresignedRequest, attempt_tracker: Tracker) -> TransferResult:
        nonlocal get
        if source_sign is not None and (get is None or expiring(get)):
            get = await rt.resign(source_sign, "GET")
        assert get is not None
        try:
            return await _copy_once(rt, get, put_request, chunk, attempt_tracker)
        except RequestExpiredError as exc:
            # The GET expired before a byte moved (the PUT's own expiry is
            # handled by the retry loop): sign it afresh and go again.
            if source_sign is None or exc.url != redact_url(get.url):
                raise
            get = await rt.resign(source_sign, "GET")
            return await _copy_once(rt, get, put_request, chunk, attempt_tracker)

    return await rt.with_retries(
        put, dest_sign, policy, attempt, method="PUT", replayable=True, tracker=tracker
    )


async def _copy_once(
    rt: Runtime, get: PresignedRequest, put: PresignedRequest, chunk: int, tracker: Tracker
) -> TransferResult:
    async with rt.transport.request("GET", get.url, get.headers) as source:
        source_shown = source.shown
        if source.status != 200:
            raise await source.status_error()
        size = parse_content_length(source.headers.get("Content-Length"))
        if size is None:
            raise IntegrityError(
                "the source answered without a Content-Length; a presigned PUT needs one",
                url=source_shown,
            )
        tracker.total = size
        source_etag = check_etag(source.headers.get("ETag"), source_shown)
        check_md5 = is_plain_md5(source_etag, source.headers)

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            while data := await source.read(chunk):
                sent += len(data)
                yield data
                await tracker.add(len(data))
            if sent != size:
                raise IntegrityError(
                    f"source body ended after {sent} of {size} bytes", url=source_shown
                )

        async with rt.transport.request(
            "PUT", put.url, put.headers, body=body(), length=size
        ) as dest:
            if not 200 <= dest.status < 300:
                raise await dest.status_error()
            await dest.read_all()
            result = TransferResult(
                url=dest.shown,
                status=dest.status,
                etag=check_etag(dest.headers.get("ETag"), dest.shown),
                nbytes=size,
            )
    if check_md5 and source_etag is not None:
        check_stored_md5(result, source_etag.strip('"').lower(), "the source's ETag")
    return replace(result, nbytes=size)
