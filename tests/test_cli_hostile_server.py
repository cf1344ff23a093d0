"""The command line against a server that says what it likes: its text reaches
the terminal escaped, and a listing's answer outside what was asked for is
never acted on (the real command, in a subprocess, against a raw server)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from .rawserver import Reply, Request, Serve, head_bytes
from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio


def env_for(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **base_env(tmp_path),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEX",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
    }


def xml(status: int, body: str) -> Reply:
    data = body.encode()
    return Reply([head_bytes(f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(data)}",
                             "Content-Type: application/xml") + data])


async def test_a_server_error_message_on_the_error_line_cannot_forge_lines_or_reorder_text(
    serve: Serve, tmp_path: Path
) -> None:
    """A listing's 403 whose message held a newline forged a line of output (a
    summary of its own), CSI (\\x9b) reached the terminal, U+202E reversed what
    followed it: the top-level error line printed the server's text raw."""
    forged = ("denied\ndownload: 2 done, 0 already done, 0 failed of 2; 20 B in 0.1 s"
              "\x9b2J\u202egpj.exe \u2066é 日本")

    def answer(request: Request) -> Reply:
        if request.method == "HEAD":
            return Reply([head_bytes("HTTP/1.1 404 Not Found", "Content-Length: 0")])
        return xml(403, f"<Error><Code>AccessDenied</Code><Message>{forged}</Message></Error>")

    server = await serve(answer)
    env = env_for(server.url, tmp_path)
    done = await anyio.to_thread.run_sync(
        lambda: cli("download", "s3://bkt/p/", str(tmp_path / "out"), env=env, check=1)
    )
    [line] = done.stderr.splitlines()
    assert line.startswith("asyncpresign: error: could not list s3://bkt/p/: HTTP 403 "
                           "AccessDenied: denied\\ndownload: 2 done")
    assert line.endswith("\\x9b2J\\u202egpj.exe \\u2066é 日本")
    assert "\x9b" not in done.stderr
    assert "\u202e" not in done.stderr
    assert "\u2066" not in done.stderr


def open_uploads(*uploads: tuple[str, str]) -> Reply:
    """A ListMultipartUploads answer holding ``uploads`` (key, upload id), whatever
    prefix was asked for."""
    items = "".join(
        f"<Upload><Key>{key}</Key><UploadId>{upload_id}</UploadId>"
        "<Initiated>2020-01-01T00:00:00.000Z</Initiated></Upload>"
        for key, upload_id in uploads
    )
    return xml(200, "<ListMultipartUploadsResult><Bucket>bkt</Bucket>"
                    f"<IsTruncated>false</IsTruncated>{items}</ListMultipartUploadsResult>")


def uploads_server(*uploads: tuple[str, str]) -> Callable[[Request], Reply]:
    """Lists ``uploads`` for any Prefix; aborts whatever it is asked to."""

    def answer(request: Request) -> Reply:
        if request.method == "GET" and "uploads" in request.target:
            return open_uploads(*uploads)
        if request.method == "DELETE":
            return Reply([head_bytes("HTTP/1.1 204 No Content")])
        return xml(404, "<Error><Code>NoSuchKey</Code><Message>no</Message></Error>")

    return answer


@pytest.mark.parametrize("abort", [True, False], ids=["abort", "list"])
async def test_uploads_of_keys_outside_the_prefix_are_never_aborted_nor_listed_under_it(
    serve: Serve, tmp_path: Path, abort: bool
) -> None:
    """A server that ignores Prefix in ListMultipartUploads answers with every
    open upload of the bucket: ``uploads s3://bkt/tmp/ --abort`` aborted
    prod/db.img's and reported success."""
    server = await serve(uploads_server(("tmp/x", "UPLOAD-TMP-1"), ("prod/db.img", "PROD-1")))
    env = env_for(server.url, tmp_path)
    done = await anyio.to_thread.run_sync(lambda: cli(
        "uploads", "s3://bkt/tmp/", *(["--abort"] if abort else []), env=env, check=1,
    ))
    assert "DELETE" not in server.methods()  # not even tmp/x: the listing is not trusted
    assert done.stdout == ""
    assert ("asyncpresign: error: the listing of the multipart uploads of s3://bkt/tmp/ holds "
            "'prod/db.img', which is not under it: stopped before acting on it") in done.stderr


@pytest.mark.parametrize("page", ["no marker", "same marker"])
async def test_an_uploads_listing_cut_short_or_going_round_aborts_nothing(
    serve: Serve, tmp_path: Path, page: str
) -> None:
    """Truncated with no marker for the next page, botocore's paginator just
    stopped: "1 open multipart upload: 1 aborted" while the next page's stayed
    open; one giving the same marker for ever was read for ever."""
    marker = "" if page == "no marker" else (
        "<NextKeyMarker>tmp/x</NextKeyMarker><NextUploadIdMarker>U1</NextUploadIdMarker>")

    def answer(request: Request) -> Reply:
        if request.method == "GET" and "uploads" in request.target:
            return xml(200, "<ListMultipartUploadsResult><Bucket>bkt</Bucket>"
                            f"<IsTruncated>true</IsTruncated>{marker}<Upload><Key>tmp/x</Key>"
                            "<UploadId>U1</UploadId><Initiated>2020-01-01T00:00:00.000Z"
                            "</Initiated></Upload></ListMultipartUploadsResult>")
        return Reply([head_bytes("HTTP/1.1 204 No Content")])

    server = await serve(answer)
    env = env_for(server.url, tmp_path)
    with anyio.fail_after(60):
        done = await anyio.to_thread.run_sync(
            lambda: cli("uploads", "s3://bkt/tmp/", "--abort", env=env, check=1)
        )
    assert "DELETE" not in server.methods()
    assert "stopped before acting on part of it" in done.stderr


async def test_an_aborted_upload_s_key_cannot_forge_a_line_of_the_summary(
    serve: Serve, tmp_path: Path
) -> None:
    forged = "tmp/evil\n0 open multipart uploads under s3://bkt/tmp/: 0 aborted, 0 failed"
    server = await serve(uploads_server((forged, "U3\u202e")))
    env = env_for(server.url, tmp_path)
    done = await anyio.to_thread.run_sync(
        lambda: cli("uploads", "s3://bkt/tmp/", "--abort", env=env)
    )
    assert done.stdout.splitlines() == [
        "aborted s3://bkt/tmp/evil\\n0 open multipart uploads under s3://bkt/tmp/: 0 aborted, "
        "0 failed  upload id U3\\u202e  started 2020-01-01T00:00:00+00:00",
        "1 open multipart upload under s3://bkt/tmp/: 1 aborted, 0 failed",
    ]


async def test_a_dry_run_plan_cut_short_by_an_error_is_still_one_json_document(
    serve: Serve, tmp_path: Path
) -> None:
    """The plan streams: a listing whose second page failed left the first
    page's plan on stdout, half a JSON document, with the error on stderr."""
    page = ("<ListBucketResult><Name>bkt</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>"
            "<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
            "<NextContinuationToken>page-2</NextContinuationToken>" + "".join(
                f"<Contents><Key>p/{name}</Key><LastModified>2024-01-01T00:00:00.000Z"
                f"</LastModified><ETag>&quot;{'0' * 32}&quot;</ETag><Size>3</Size></Contents>"
                for name in ("a", "b")
            ) + "</ListBucketResult>")

    def answer(request: Request) -> Reply:
        if request.method == "HEAD":
            return Reply([head_bytes("HTTP/1.1 404 Not Found", "Content-Length: 0")])
        if "continuation-token=page-2" in request.target:
            return xml(403, "<Error><Code>AccessDenied</Code><Message>no</Message></Error>")
        return xml(200, page)

    server = await serve(answer)
    env = env_for(server.url, tmp_path)
    done = await anyio.to_thread.run_sync(lambda: cli(
        "download", "s3://bkt/p/", str(tmp_path / "out"), "--dry-run", "--json",
        env=env, check=1,
    ))
    document = json.loads(done.stdout)
    assert [item["source"] for item in document["plan"]] == ["s3://bkt/p/a", "s3://bkt/p/b"]
    assert document["dry_run"] is True
    assert document["error"] == ("HTTPStatusError: could not list s3://bkt/p/: HTTP 403 "
                                 "AccessDenied: no")
    assert "interrupted" not in document
    assert done.stderr.startswith("asyncpresign: error: could not list s3://bkt/p/")
    assert not (tmp_path / "out").exists()
