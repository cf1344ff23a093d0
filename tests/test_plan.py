"""A dry run's plan: streamed lines or one JSON document, and honest totals."""

from __future__ import annotations

import io
import json

import pytest

from asyncpresign._plan import Plan, printable


def test_plan_lines_and_totals_count_objects_and_bytes() -> None:
    out = io.StringIO()
    plan = Plan(out)
    plan.add("upload", "a.txt", "s3://b/a.txt", 1024)
    plan.add("upload", "b.txt", "s3://b/b.txt", 2 * 1024 * 1024)
    assert out.getvalue().splitlines() == [
        "would upload a.txt to s3://b/a.txt", "would upload b.txt to s3://b/b.txt",
    ]
    assert plan.totals() == "would upload 2 objects, 2.0 MiB"


def test_plan_totals_say_when_sizes_are_unknown_and_when_verbs_differ() -> None:
    plan = Plan(io.StringIO())
    plan.add("upload", "a", "s3://b/a", 10)
    plan.add("download", "s3://b/c", "c", None)
    assert plan.totals() == "would transfer 2 objects, 10 B (and 1 of unknown size)"


def test_plan_as_json_is_one_document_with_the_plan_and_the_totals() -> None:
    out = io.StringIO()
    plan = Plan(out, as_json=True)
    plan.open_json({"command": "upload"})
    for i in range(3):
        plan.add("upload", f"f{i}", f"s3://b/f{i}", i)
    plan.close_json({"skipped": 4})
    document = json.loads(out.getvalue())
    assert document["command"] == "upload"
    assert document["dry_run"] is True
    assert [p["source"] for p in document["plan"]] == ["f0", "f1", "f2"]
    assert (document["objects"], document["bytes"], document["skipped"]) == (3, 3, 4)


def test_an_empty_plan_as_json_is_still_one_document() -> None:
    out = io.StringIO()
    plan = Plan(out, as_json=True)
    plan.open_json({"command": "download"})
    plan.close_json({})
    assert json.loads(out.getvalue())["plan"] == []


def test_a_plan_line_shows_control_characters_of_names_escaped() -> None:
    # A key with a newline forged a line of its own in a dry run's output
    # ("would download s3://b/forged to /etc/passwd"); an escape sequence
    # reached the terminal as is.
    out = io.StringIO()
    plan = Plan(out)
    plan.add("download", "s3://b/a\nwould download s3://b/forged", "dst/a\x1b[2J", 5)
    plan.delete("dst/old\r", 3)
    lines = out.getvalue().splitlines()
    assert lines == [
        "would download s3://b/a\\nwould download s3://b/forged to dst/a\\x1b[2J",
        "would delete dst/old\\r",
    ]


@pytest.mark.parametrize(("text", "shown"), [
    ("report\u202egpj.exe", "report\\u202egpj.exe"),  # RIGHT-TO-LEFT OVERRIDE
    ("a\u202ab\u202bc\u202cd\u202de", "a\\u202ab\\u202bc\\u202cd\\u202de"),
    ("\u2066x\u2067y\u2068z\u2069", "\\u2066x\\u2067y\\u2068z\\u2069"),  # isolates
    ("l\u200er\u200fa\u061c", "l\\u200er\\u200fa\\u061c"),  # marks
    ("in\u200bvisible\ufeff", "in\\u200bvisible\\ufeff"),  # zero width, BOM
    ("line\u2028para\u2029", "line\\u2028para\\u2029"),  # separators
])
def test_printable_escapes_bidi_controls_and_invisible_format_characters(
    text: str, shown: str
) -> None:
    # Each reorders, hides or breaks the text around it on a terminal: a name
    # "report<U+202E>gpj.exe" reads "reportexe.jpg".
    assert printable(text) == shown


def test_printable_keeps_ordinary_non_ascii_text_around_what_it_escapes() -> None:
    text = "café/日本語/naïve résumé/Ελληνικά/עברית/العربية\u00a0x\u3000y 🙂"
    assert printable(text + "\u2067" + text) == text + "\\u2067" + text
