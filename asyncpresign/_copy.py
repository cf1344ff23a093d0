"""A presigned GET streamed straight into a presigned PUT, with no local file."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import anyio.to_thread

from ._attempts import (
    Runtime,
    Tracker,
    expiring,
    initial_request,
    signs_checksums,
    signs_metadata,
)
from ._checks import (
    check_etag,
    check_stored_md5,
    is_plain_md5,
    parse_content_length,
    refuse_signed_range,
)
from ._checksums import Crc, encode, full_object_checksum, header_name
from ._exceptions import IntegrityError, RequestExpiredError
from ._metadata import metadata_params
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
    keep_metadata: bool = True,
) -> TransferResult:
    """Memory stays at a chunk plus aiohttp's read buffer whatever the object size.
    The source and destination may be different servers with different
    credentials. When both ETags are plain MD5s they must match.

    With ``keep_metadata`` and a ``dest_sign`` that signs metadata, the
    source's metadata (Content-Type … ``x-amz-meta-*``) is signed into the
    PUT. It is known once the GET's answer arrives, so each attempt signs its
    PUT then, from that answer: a retry, or a PUT re-signed on expiry, carries
    the metadata of the answer it copies, and no HEAD is spent on it."""
    get = initial_request(source, source_sign, "GET")
    put = initial_request(dest, dest_sign, "PUT")
    carries = keep_metadata and dest_sign is not None and signs_metadata(dest_sign)

    async def attempt(put_request: PresignedRequest, attempt_tracker: Tracker) -> TransferResult:
        nonlocal get
        if source_sign is not None and (get is None or expiring(get)):
            get = await rt.resign(source_sign, "GET")
        assert get is not None
        try:
            return await _copy_once(
                rt, get, put_request, chunk, tracker=attempt_tracker, dest_sign=dest_sign,
                carries=carries,
            )
        except RequestExpiredError as exc:
            # The GET expired before a byte moved (the PUT's own expiry is
            # handled by the retry loop): sign it afresh and go again.
            if source_sign is None or exc.url != redact_url(get.url):
                raise
            get = await rt.resign(source_sign, "GET")
            return await _copy_once(
                rt, get, put_request, chunk, tracker=attempt_tracker, dest_sign=dest_sign,
                carries=carries,
            )

    return await rt.with_retries(
        put, dest_sign, policy, attempt, method="PUT", replayable=True, tracker=tracker
    )


async def _copy_once(
    rt: Runtime,
    get: PresignedRequest,
    put: PresignedRequest,
    chunk: int,
    *,
    tracker: Tracker,
    dest_sign: SignFunction | None,
    carries: bool,
) -> TransferResult:
    """One copy. The source's whole-object checksum, when it sends one, is signed
    into the destination's PUT (so the destination server refuses bytes that
    are not the source's), and the bytes passing through are checked against it
    too; else the source's ETag, when it is an MD5, is checked against those
    bytes (before the last of them is sent) and compared with the copy's.
    When it ``carries`` metadata, the source's is checked (a bad value fails
    the copy before the PUT) and signed in, with the checksum in one signing."""
    refuse_signed_range(get.headers, "copied")
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
        source_sum = full_object_checksum(source.headers)
        crc = Crc(source_sum[0]) if source_sum else None
        # Without a checksum the source's MD5 ETag is checked against the bytes
        # passing through as well as against the copy's ETag: a destination
        # whose ETag is no MD5 (SSE-KMS, other servers) cannot tell, and stored
        # a corrupt body as a success.
        source_md5 = (
            str(source_etag).strip('"').lower()
            if is_plain_md5(source_etag, source.headers) else None
        )
        expected_md5 = source_md5 if source_sum is None else None
        md5 = hashlib.md5(usedforsecurity=False) if expected_md5 else None
        metadata = metadata_params(source.headers.items(), source_shown) if carries else {}
        put = await _signed_put(rt, put, dest_sign, metadata, source_sum)

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            while data := await source.read(chunk):
                sent += len(data)
                if crc is not None and source_sum is not None:
                    crc.update(data)
                    if sent >= size and crc.value != source_sum[1]:
                        # Checked before the last piece is handed on: with it
                        # held back, the destination never has the whole body,
                        # so even one not signed with the checksum keeps nothing.
                        raise IntegrityError(
                            f"{crc.algorithm.upper()} of the bytes read {crc.b64} does not "
                            f"match the source's {encode(crc.algorithm, source_sum[1])}",
                            url=source_shown,
                        )
                if md5 is not None:
                    await _hash(md5, data)
                    if sent >= size and md5.hexdigest() != expected_md5:
                        raise IntegrityError(  # before the last piece, as for the CRC
                            f"MD5 of the bytes read {md5.hexdigest()} does not match the "
                            f"source's ETag {expected_md5}",
                            url=source_shown,
                        )
                yield data
                await tracker.add(len(data))
            if sent != size:
                raise IntegrityError(
                    f"source body ended after {sent} of {size} bytes", url=source_shown
                )

        # Paid for once: the bandwidth limit took these bytes as the GET read them.
        async with rt.transport.request(
            "PUT", put.url, put.headers, body=body(), length=size, metered=False
        ) as dest:
            if not 200 <= dest.status < 300:
                raise await dest.status_error()
            stored = (
                dest.headers.get(header_name(source_sum[0])) if source_sum is not None else None
            )
            await dest.read_all()
            answer = dest.headers
            result = TransferResult(
                url=dest.shown,
                status=dest.status,
                etag=check_etag(dest.headers.get("ETag"), dest.shown),
                nbytes=size,
            )
    verified = _verdict(
        result, answer, source_sum=source_sum, stored=stored, source_md5=source_md5
    )
    return replace(result, nbytes=size, verified=verified)


def _verdict(
    result: TransferResult,
    answer: Mapping[str, str],
    *,
    source_sum: tuple[str, int] | None,
    stored: str | None,
    source_md5: str | None,
) -> str | None:
    """Which check shows the destination holds the source's bytes (raises
    IntegrityError when one shows it does not): the source's checksum, as the
    destination says it stored it; else the destination's ETag against the
    source's MD5, where both are MD5s; else None. A checksum signed into the
    PUT but not said back proves nothing of itself: a server that takes the
    header without checking it stored a corrupted copy, called checked."""
    if source_sum is not None and stored is not None:
        expected = encode(source_sum[0], source_sum[1])
        if stored.strip() != expected:
            raise IntegrityError(
                f"destination stored {source_sum[0].upper()} {stored.strip()[:40]} but the "
                f"source's is {expected}",
                url=result.url,
            )
        return source_sum[0]
    # No checksum said back: what the destination stored is checked by its
    # ETag against the source's MD5, where both are MD5s.
    if source_md5 is None:
        return None
    check_stored_md5(result, source_md5, "the source's ETag", answer)
    return "md5" if is_plain_md5(result.etag, answer) else None


async def _signed_put(
    rt: Runtime,
    put: PresignedRequest,
    dest_sign: SignFunction | None,
    metadata: dict[str, Any],
    source_sum: tuple[str, int] | None,
) -> PresignedRequest:
    """The PUT to send, signed afresh (once) with what the source's answer told:
    its ``metadata`` and its whole-object checksum, if ``dest_sign`` signs it
    (then the destination refuses a body that does not match it)."""
    extra: dict[str, Any] = {}
    if metadata:
        extra["metadata"] = metadata
    if source_sum is not None and dest_sign is not None and signs_checksums(dest_sign):
        extra["checksum"] = (source_sum[0], encode(source_sum[0], source_sum[1]))
    if not extra or dest_sign is None:
        return put
    return await rt.resign(functools.partial(dest_sign, **extra), "PUT")


async def _hash(md5: Any, data: bytes) -> None:
    """MD5 is no CRC (~0.7 GB/s, not ~10): a large piece is hashed off the event loop."""
    if len(data) < 65536:
        md5.update(data)
    else:
        await anyio.to_thread.run_sync(md5.update, data)
