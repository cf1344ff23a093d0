"""A browser-style form upload (POST), sent the way a browser would."""

from __future__ import annotations

import os
from dataclasses import replace

from ._attempts import Runtime, Tracker
from ._exceptions import InvalidArgumentError
from ._models import PresignedPost, PresignedRequest, Source, TransferResult
from ._retry import RetryPolicy
from ._transport import check_url
from ._upload import UploadSource

__all__ = ["upload_post"]


async def upload_post(
    rt: Runtime,
    post: PresignedPost,
    source: Source,
    *,
    filename: str | None,
    content_type: str | None,
    policy: RetryPolicy,
) -> TransferResult:
    """The policy's fields, then the file last. A POST is not idempotent: it is
    sent again only when it is known not to have taken effect (see decide_retry)."""
    if not isinstance(post, PresignedPost):
        raise InvalidArgumentError("upload_post needs a PresignedPost from Signer.presign_post")
    check_url(post.url)
    body = UploadSource.of(source, None)
    if filename is None and body.path is not None:
        filename = os.path.basename(body.path)
    fields = dict(post.fields)
    if content_type is None:
        content_type = fields.get("Content-Type") or fields.get("content-type")

    async def attempt(_: PresignedRequest, tracker: Tracker) -> TransferResult:
        data = await body.read_all()
        payload, form_type = rt.transport.form_body(
            fields, data, filename or "upload", content_type or "application/octet-stream"
        )
        # S3 answers 204 (or 201, or a 303 to success_action_redirect).
        async with rt.transport.request(
            "POST", post.url, {}, extra={"Content-Type": form_type}, body=payload,
            ok_statuses=(303,),
        ) as resp:
            if not (200 <= resp.status < 300 or resp.status == 303):
                raise await resp.status_error()
            await resp.read_all()
            result = TransferResult(
                url=resp.shown, status=resp.status, etag=resp.headers.get("ETag")
            )
        await tracker.add(len(data))
        return replace(result, nbytes=len(data))

    placeholder = PresignedRequest(method="PUT", url=post.url, expires_at=post.expires_at)
    return await rt.with_retries(
        placeholder, None, policy, attempt, method="POST", replayable=body.replayable,
        tracker=Tracker(None),
    )
