import base64
import datetime as dt
import json
import re
from html import unescape

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


def post_with_policy(conditions: list[object], **extra: str) -> PresignedPost:
    """A post whose ``policy`` field holds ``conditions``, as the signer writes it."""
    document = {"expiration": "2026-01-01T00:00:00Z", "conditions": conditions}
    policy = base64.b64encode(json.dumps(document).encode()).decode()
    fields = {"key": "in/${filename}", "policy": policy, "x-amz-signature": "abc", **extra}
    return PresignedPost(url="https://b.s3.amazonaws.com/", fields=fields, expires_at=NOW)


def inputs(html: str) -> list[dict[str, str]]:
    """Each input's attributes, unescaped as a browser reads them."""
    return [
        {name: unescape(value) for name, value in re.findall(r'([\w-]+)="([^"]*)"', tag)}
        for tag in re.findall(r"<input [^>]*>", html)
    ]


def test_a_content_type_condition_gets_a_field_set_from_the_chosen_file() -> None:
    # The README's example once signed this and rendered no Content-Type field: S3 said 403.
    post = post_with_policy([["starts-with", "$Content-Type", "image/"]])
    found = inputs(post_form(post, accept="image/*"))
    assert {"type": "hidden", "name": "Content-Type", "value": ""} in found
    file_input = found[-1]
    assert file_input["type"] == "file"
    assert file_input["onchange"] == (
        'if (this.files.length) this.form.elements["Content-Type"].value = '
        'this.files[0].type || "application/octet-stream"'
    )


def test_a_signed_content_type_is_the_default_the_chosen_file_replaces() -> None:
    post = post_with_policy(
        [["starts-with", "$content-type", ""]], **{"content-type": "application/octet-stream"}
    )
    found = inputs(post_form(post))
    assert [i["value"] for i in found if i["name"].lower() == "content-type"] == [
        "application/octet-stream"
    ]
    assert 'elements["content-type"]' in found[-1]["onchange"]


def test_a_fixed_content_type_is_left_alone() -> None:
    # presign_post(fields={"Content-Type": "image/png"}) signs {"Content-Type": "image/png"}.
    post = post_with_policy([{"Content-Type": "image/png"}], **{"Content-Type": "image/png"})
    html = post_form(post)
    assert "onchange" not in html
    assert html.count('name="Content-Type"') == 1


def test_a_value_the_policy_fixes_but_the_fields_lack_becomes_a_hidden_input() -> None:
    post = post_with_policy(
        [{"bucket": "b"}, {"acl": 'pri"vate<'}, ["eq", "$x-amz-meta-tag", "t"],
         ["content-length-range", 1, 10]]
    )
    html = post_form(post)
    assert '<input type="hidden" name="acl" value="pri&quot;vate&lt;">' in html
    assert '<input type="hidden" name="x-amz-meta-tag" value="t">' in html
    assert 'name="bucket"' not in html  # S3 takes the bucket from the URL
    assert "onchange" not in html


def test_a_prefix_the_form_cannot_know_is_refused_before_the_browser_sees_it() -> None:
    post = post_with_policy([["starts-with", "$x-amz-meta-owner", "team-"]])
    with pytest.raises(InvalidArgumentError, match="'x-amz-meta-owner' field starting with"):
        post_form(post)
    anything = post_with_policy([["starts-with", "$x-amz-meta-owner", ""]])
    assert '<input type="hidden" name="x-amz-meta-owner" value="">' in post_form(anything)


def test_hostile_names_in_the_policy_stay_escaped() -> None:
    post = post_with_policy([{'"><script>x</script>': "<b>"}, ["starts-with", "$Content-Type", ""]])
    html = post_form(post)
    assert "<script>" not in html
    assert "<b>" not in html
    assert 'name="&quot;&gt;&lt;script&gt;x&lt;/script&gt;" value="&lt;b&gt;"' in html
    # The script sits in an attribute: its quotes are escaped, not raw.
    onchange = re.search(r'onchange="([^"]*)"', html)
    assert onchange is not None
    assert "&quot;Content-Type&quot;" in onchange.group(1)
