"""HTML for browser uploads straight to the bucket. Pure: strings in, a string out."""

from __future__ import annotations

import base64
import binascii
import json
from html import escape
from typing import Any

from ._exceptions import InvalidArgumentError
from ._models import PresignedPost
from ._validation import check_http_url

__all__ = ["post_form"]

#: What a type-restricted form sends for a file whose type the browser cannot tell.
_UNKNOWN_TYPE = "application/octet-stream"


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

    The form also sends what the policy's conditions ask for and the fields
    lack, since S3 refuses a POST that misses any condition: a field the
    policy fixes (``{"acl": "private"}``) as a hidden input with that value,
    and for ``["starts-with", "$Content-Type", prefix]`` a ``Content-Type``
    input that a one-line ``onchange`` script on the file input sets to the
    type the browser gives the chosen file (``application/octet-stream``
    when it gives none). S3 checks that field, not the file's bytes; without
    JavaScript it stays empty (or the value signed in ``fields``). Any other
    ``starts-with`` on a field the form would not send raises
    :class:`InvalidArgumentError` here rather than a 403 in the browser.
    """
    if not isinstance(post, PresignedPost):
        raise InvalidArgumentError("post_form needs a PresignedPost from Signer.presign_post")
    # The form's action: a javascript: (or data:) URL there runs in the page
    # when the form is submitted, which no escaping prevents.
    check_http_url(post.url)
    fields = dict(post.fields)
    type_field = _complete_fields(fields, _policy_conditions(fields))
    if redirect is not None and fields.get("success_action_redirect") != redirect:
        raise InvalidArgumentError(
            "redirect must be signed into the policy: presign_post(..., "
            'fields={"success_action_redirect": ...}) with the same URL'
        )
    if not file_field or file_field.lower() in {name.lower() for name in fields}:
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
    onchange_attr = ""
    if type_field is not None:
        script = (
            f"if (this.files.length) this.form.elements[{json.dumps(type_field)}].value = "
            f"this.files[0].type || {json.dumps(_UNKNOWN_TYPE)}"
        )
        onchange_attr = f' onchange="{escape(script)}"'
    lines.append(
        f'  <input type="file" name="{escape(file_field)}"{accept_attr}{onchange_attr} required>'
    )
    lines.append(f'  <button type="submit">{escape(submit_label)}</button>')
    lines.append("</form>")
    return "\n".join(lines)


def _policy_conditions(fields: dict[str, str]) -> list[Any]:
    """The conditions of the base64 ``policy`` field; none if it cannot be read
    (S3 then refuses the upload whatever the form holds)."""
    policy = next((value for name, value in fields.items() if name.lower() == "policy"), None)
    if policy is None:
        return []
    try:
        document = json.loads(base64.b64decode(policy, validate=True))
    except (binascii.Error, ValueError, TypeError, RecursionError):
        return []
    conditions = document.get("conditions") if isinstance(document, dict) else None
    return conditions if isinstance(conditions, list) else []


def _field_condition(condition: Any) -> tuple[str, str, str] | None:
    """``(operator, field name, value)`` of a condition on a form field, or None
    (``content-length-range``, or a shape S3 would not accept either)."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((name, value),) = condition.items()
        return "eq", str(name), str(value)
    if (
        isinstance(condition, list)
        and len(condition) == 3
        and str(condition[0]).lower() in ("eq", "starts-with")
        and isinstance(condition[1], str)
        and condition[1].startswith("$")
    ):
        return str(condition[0]).lower(), condition[1][1:], str(condition[2])
    return None


def _complete_fields(fields: dict[str, str], conditions: list[Any]) -> str | None:
    """Add to ``fields`` what the conditions need and the form would not send;
    return the name of the Content-Type field to set from the chosen file, if any."""
    parsed = [c for c in map(_field_condition, conditions) if c is not None]
    # The bucket comes from the URL, not from a field.
    parsed = [(op, name, value) for op, name, value in parsed if name.lower() != "bucket"]
    parsed.sort(key=lambda condition: condition[0] != "eq")  # fixed values first
    type_fixed = any(op == "eq" and name.lower() == "content-type" for op, name, _ in parsed)
    type_field: str | None = None
    for op, name, value in parsed:
        present = next((field for field in fields if field.lower() == name.lower()), None)
        if op == "eq":
            if present is None:
                fields[name] = value
        elif name.lower() == "content-type" and not type_fixed:
            type_field = name if present is None else present
            fields.setdefault(type_field, "")
        elif present is None:
            if value:
                raise InvalidArgumentError(
                    f"the policy needs a {name!r} field starting with {value!r}, which the "
                    f"form would not send: sign it in with presign_post(..., "
                    f"fields={{{name!r}: ...}})"
                )
            fields[name] = ""
    return type_field
