import datetime as dt
import re

import pytest

from asyncpresign import InvalidArgumentError, PresignedPost
from asyncpresign.html import post_form

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def make_post(**extra: str) -> PresignedPost:
    fields = {"key": 'in/"quoted" <b>&amp;', "policy": "eyJ9", "x-amz-signature": "abc", **extra}
    return PresignedPost(url="https://b.s3.amazonaws.com/", fields=fields, expires_at=NOW)


def test_every_field_is_a_hidden_input_with_escaped_values() -> None:
    html = post_form(make_post())
    assert 'value="in/&quot;quoted&quot; &lt;b&gt;&amp;amp;"' in html
    assert "<b>" not in html
    assert html.count('type="hidden"') == 3
    assert 'enctype="multipart/form-data"' in html
    assert 'method="post"' in html


def test_the_file_input_comes_after_every_field() -> None:
    html = post_form(make_post(), file_field="upload", accept="image/*")
    inputs = re.findall(r"<input [^>]*>", html)
    assert 'name="upload"' in inputs[-1]
    assert 'accept="image/*"' in inputs[-1]


def test_redirect_must_be_signed_into_the_policy() -> None:
    with pytest.raises(InvalidArgumentError, match="signed into the policy"):
        post_form(make_post(), redirect="https://app/done")
    html = post_form(
        make_post(success_action_redirect="https://app/done"), redirect="https://app/done"
    )
    assert 'name="success_action_redirect" value="https://app/done"' in html


def test_a_file_field_clashing_with_a_policy_field_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="clashes"):
        post_form(make_post(), file_field="key")
