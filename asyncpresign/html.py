"""HTML for browser uploads straight to the bucket. Pure: strings in, a string out."""

from __future__ import annotations

from html import escape

from ._exceptions import InvalidArgumentError
from ._models import PresignedPost

__all__ = ["post_form"]


def post_form(
    post: PresignedPost,
    *,
    file_field: str = "file",
    accept: str | None = None,
    redirect: str | None = None,
    submit_label: str = "Upload",
    form_id: str = "asyncpresign-upload",
) -> str:
    """An HTML form that uploads one file straight to the bucket with ``post``.

    Every policy field becomes a hidden input (values escaped); the file input
    comes last, since S3 ignores every field after the file. ``redirect``
    sends the browser back to your app after the upload; it must have been
    signed into the policy, so sign with
    ``signer.presign_post(..., fields={"success_action_redirect": url})``
    (the signer adds prefilled fields to the conditions itself).
    """
    if not isinstance(post, PresignedPost):
        raise InvalidArgumentError("post_form needs a PresignedPost from Signer.presign_post")
    fields = dict(post.fields)
    if redirect is not None and fields.get("success_action_redirect") != redirect:
        raise InvalidArgumentError(
            "redirect must be signed into the policy: presign_post(..., "
            'fields={"success_action_redirect": ...}) with the same URL'
        )
    if not file_field or file_field in fields:
        raise InvalidArgumentError(f"file_field {file_field!r} is empty or clashes with a field")
    lines = [
        f'<form id="{escape(form_id)}" action="{escape(post.url)}" method="post" '
        'enctype="multipart/form-data">'
    ]
    lines += [
        f'  <input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    ]
    accept_attr = f' accept="{escape(accept)}"' if accept else ""
    lines.append(f'  <input type="file" name="{escape(file_field)}"{accept_attr} required>')
    lines.append(f'  <button type="submit">{escape(submit_label)}</button>')
    lines.append("</form>")
    return "\n".join(lines)
