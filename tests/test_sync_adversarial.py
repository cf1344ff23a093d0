"""``sync`` against hostile input: object keys that are unsafe as paths, a
server whose listing is truncated, repeats itself or strays outside the
prefix, and destinations that are not what they seem. Each test pins one
rule: nothing is written outside the destination, a bad key fails alone with
a typed error, and ``delete`` never removes what it should not."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

import anyio
import pytest

from asyncpresign import (
    AsyncPresignError,
    InvalidArgumentError,
    LocalFileError,
    Signer,
    TransferEngine,
    sync,
)
from asyncpresign._plan import Plan

from .rawserver import Reply, Request, Serve, head_bytes

#: Every object the fake server holds has this body.
BODY = b"data"
ETAG = f'"{hashlib.md5(BODY, usedforsecurity=False).hexdigest()}"'
#: 2001-09-09: older than any file a test writes, so a file already there is kept.
LAST_MODIFIED = "2001-09-09T01:46:40.000Z"


def listing_xml(keys: list[str], *, prefix: str, truncated: bool = False,
                token: str | None = None) -> bytes:
    """A ListObjectsV2 answer with ``EncodingType=url`` (as botocore asks), so
    a key may hold any character."""
    contents = "".join(
        f"<Contents><Key>{quote(k, safe='/')}</Key><LastModified>{LAST_MODIFIED}</LastModified>"
        f"<ETag>{escape(ETAG)}</ETag><Size>{len(BODY)}</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for k in keys
    )
    more = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>bkt</Name><Prefix>{quote(prefix, safe='/')}</Prefix>"
        f"<KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<EncodingType>url</EncodingType><IsTruncated>{str(truncated).lower()}</IsTruncated>"
        f"{more}{contents}</ListBucketResult>"
    ).encode()


def reply(status: int, body: bytes, *lines: str) -> Reply:
    return Reply([head_bytes(f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *lines)
                  + body])


#: (query of a listing request) -> its answer body
Lister = Callable[[dict[str, list[str]]], bytes]


def fake_s3(lister: Lister) -> Callable[[Request], Reply]:
    """A path-style S3 of one bucket: listings from ``lister``, every object
    ``BODY``, every DeleteObjects answered as if all were deleted (and recorded)."""

    def answer(request: Request) -> Reply:
        parts = urlsplit(request.target)
        query = parse_qs(parts.query, keep_blank_values=True)
        if request.method == "GET" and "list-type" in query:
            return reply(200, lister(query), "Content-Type: application/xml")
        if request.method == "POST" and "delete" in query:
            return reply(200, b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult '
                         b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>')
        if request.method in ("GET", "HEAD"):
            return reply(200, BODY if request.method == "GET" else b"", f"ETag: {ETAG}",
                         "Last-Modified: Sun, 09 Sep 2001 01:46:40 GMT")
        if request.method == "PUT":
            return reply(200, b"", f"ETag: {ETAG}")
        return reply(405, b"")

    return answer


def fixed_listing(keys: list[str], prefix: str = "d/") -> Lister:
    return lambda query: listing_xml(sorted(keys), prefix=prefix)


def deleted_keys(requests: list[Request]) -> list[str]:
    """The keys the client asked the fake server to delete."""
    found = []
    for request in requests:
        if request.method == "POST" and request.body:
            text = request.body.decode()
            found += [unquote(k.split("</Key>")[0]) for k in text.split("<Key>")[1:]]
    return found


@pytest.fixture
async def fake(serve: Serve) -> AsyncIterator[Callable[[Lister], Any]]:
    """Start a fake S3 answering listings with the given lister; yields a
    function returning ``(server, signer)``."""
    signers: list[Signer] = []

    async def start(lister: Lister) -> tuple[Any, Signer]:
        server = await serve(fake_s3(lister))
        signer = Signer(endpoint_url=server.url, region="us-east-1", access_key="AKFAKE",
                        secret_key="fake-secret-key-never-shown", addressing_style="path")
        await signer.__aenter__()
        signers.append(signer)
        return server, signer

    yield start
    for signer in signers:
        await signer.__aexit__(None, None, None)


def entries(root: Path) -> list[str]:
    return os.listdir(root)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def write(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_bytes(BODY)


# -- listings that cannot be trusted: nothing is deleted ------------------------------


@pytest.mark.anyio
async def test_a_listing_truncated_without_a_token_stops_before_any_local_deletion(
    fake: Any, engine: TransferEngine, tmp_path: Path
) -> None:
    # IsTruncated says more keys follow, but no token says where: botocore's
    # paginator just stops, and b.txt and z.txt, still in the bucket, looked
    # gone from it.
    out = tmp_path / "out"
    write(out, ["a.txt", "b.txt", "z.txt"])
    _, signer = await fake(lambda query: listing_xml(["d/a.txt"], prefix="d/", truncated=True))
    with pytest.raises(AsyncPresignError, match="truncated"):
        await sync(signer, engine, "s3://bkt/d", out, delete=True)
    assert files_under(out) == {"a.txt", "b.txt", "z.txt"}


@pytest.mark.anyio
async def test_a_listing_with_a_key_outside_the_prefix_deletes_nothing_outside_it(
    fake: Any, engine: TransferEngine, tmp_path: Path
) -> None:
    # A server that ignores Prefix lists "xxzz.txt" for "d/": cut at len("d/"),
    # it became "zz.txt" of the folder d/, which the source does not have.
    write(tmp_path / "src", ["keep.txt"])
    server, signer = await fake(fixed_listing(["d/keep.txt", "xxzz.txt"]))
    with pytest.raises(AsyncPresignError, match=r"xxzz\.txt"):
        await sync(signer, engine, tmp_path / "src", "s3://bkt/d", delete=True)
    assert deleted_keys(server.requests) == []


@pytest.mark.anyio
async def test_a_listing_whose_continuation_tokens_go_round_in_a_circle_stops(
    fake: Any, engine: TransferEngine, tmp_path: Path
) -> None:
    # Empty pages, tokens A, B, A, B ...: botocore only sees a token repeated
    # twice in a row, and the sync listed forever.
    def circle(query: dict[str, list[str]]) -> bytes:
        token = query.get("continuation-token", [""])[0]
        keys = [] if token else ["d/a.txt"]
        return listing_xml(keys, prefix="d/", truncated=True, token="B" if token == "A" else "A")

    server, signer = await fake(circle)
    write(tmp_path / "out", ["a.txt", "b.txt"])
    with anyio.fail_after(10), pytest.raises(AsyncPresignError, match="continuation token"):
        await sync(signer, engine, "s3://bkt/d", tmp_path / "out", delete=True)
    assert files_under(tmp_path / "out") == {"a.txt", "b.txt"}
    assert len(server.requests) < 10


# -- keys that are not file names: each fails alone -----------------------------------


@pytest.mark.anyio
async def test_a_key_with_a_nul_fails_alone_and_the_rest_is_downloaded(
    fake: Any, engine: TransferEngine, tmp_path: Path
) -> None:
    # A NUL in a folder's name made os.makedirs raise ValueError: the whole
    # sync died with it (a traceback on the command line).
    _, signer = await fake(fixed_listing(["d/a\x00b/c", "d/n\x00ul", "d/ok.txt"]))
    result = await sync(signer, engine, "s3://bkt/d", tmp_path / "out")
    assert sorted(r.url for r in result.failed) == ["s3://bkt/d/a\x00b/c", "s3://bkt/d/n\x00ul"]
    assert all(isinstance(r.error, AsyncPresignError) for r in result.failed)
    assert files_under(tmp_path / "out") == {"ok.txt"}


@pytest.mark.anyio
async def test_a_long_name_that_the_file_system_holds_is_downloaded(
    fake: Any, engine: TransferEngine, tmp_path: Path
) -> None:
    # 240 bytes fit in a name (255), but the partial download beside it added
    # ~40 and failed; a name that can never fit fails with a LocalFileError,
    # not a bare OSError from cleaning up.
    fits, never = "y" * 240, "n" * 300
    _, signer = await fake(fixed_listing([f"d/{fits}", f"d/{never}"]))
    result = await sync(signer, engine, "s3://bkt/d", tmp_path / "out")
    assert files_under(tmp_path / "out") == {fits}
    assert [r.url for r in result.failed] == [f"s3://bkt/d/{never}"]
    assert isinstance(result.failed[0].error, LocalFileError)


# -- arguments and dry runs -----------------------------------------------------------


@pytest.mark.anyio
async def test_an_empty_destination_folder_name_is_refused_before_anything_is_written(
    fake: Any, engine: TransferEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "" joined to "a/b" is "a/b": files landed in the working directory (and
    # the top-level ones failed, as the folder "" cannot be made).
    monkeypatch.chdir(tmp_path)
    _, signer = await fake(fixed_listing(["d/a/b", "d/top"]))
    with pytest.raises(InvalidArgumentError, match="empty"):
        await sync(signer, engine, "s3://bkt/d", "")
    assert entries(tmp_path) == []


@pytest.mark.anyio
async def test_a_dry_run_lists_no_deletion_that_a_failure_would_hold_back(
    fake: Any, engine: TransferEngine, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, ["ok.txt"])
    os.mkfifo(src / "pipe")
    _, signer = await fake(fixed_listing(["d/extra.txt"]))
    lines = io.StringIO()
    result = await sync(signer, engine, src, "s3://bkt/d", delete=True, dry_run=True,
                        plan=Plan(lines))
    assert len(result.failed) == 1
    assert (result.deleted, result.deleted_bytes, result.not_deleted) == (0, 0, 1)
    assert "would delete" not in lines.getvalue()
    assert "would upload" in lines.getvalue()


# -- every command reads listings through the same checks -----------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "listing", ["truncated", "circle", "repeat", "outside", "twice", "endless"]
)
async def test_a_download_of_a_listing_that_cannot_be_trusted_fails_instead_of_reporting_done(
    fake: Any, engine: TransferEngine, tmp_path: Path, listing: str
) -> None:
    """A download of a prefix read through such a listing used to move the
    objects it reached and report success for them: a false "done" for the
    prefix. Now it is a typed error. "twice": a key on two pages was fetched
    twice into one file and counted twice (3 done, 30 bytes, for 2 files of 10).
    "endless": empty pages, each with a new token, were read for ever."""
    from asyncpresign import TransferError, download_prefix

    def lister(query: dict[str, list[str]]) -> bytes:
        token = query.get("continuation-token", [""])[0]
        if listing == "twice":
            if token:
                return listing_xml(["d/a.txt"], prefix="d/")
            return listing_xml(["d/a.txt", "d/b.txt"], prefix="d/", truncated=True, token="T")
        if listing == "endless":
            return listing_xml([], prefix="d/", truncated=True, token=str(int(token or 0) + 1))
        if listing == "truncated":
            return listing_xml(["d/a.txt"], prefix="d/", truncated=True)
        if listing == "outside":
            return listing_xml(["d/a.txt", "e.txt"], prefix="d/")
        if listing == "repeat":  # the same token every time (botocore notices this one)
            return listing_xml(["d/a.txt"], prefix="d/", truncated=True, token="A")
        token = query.get("continuation-token", ["A"])[0]
        return listing_xml([], prefix="d/", truncated=True, token="B" if token == "A" else "A")

    _, signer = await fake(lister)
    with anyio.fail_after(60), pytest.raises(TransferError, match="listing"):
        await download_prefix(signer, engine, "bkt", "d/", tmp_path / "out")
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") <= {"a.txt"}


@pytest.mark.anyio
async def test_the_cli_download_of_a_truncated_listing_fails_with_the_reason(
    serve: Serve, tmp_path: Path
) -> None:
    import subprocess
    import sys

    server = await serve(fake_s3(lambda query: listing_xml(["d/a.txt"], prefix="d/",
                                                            truncated=True)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "AKFAKE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    done = await anyio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "asyncpresign", "download", "s3://bkt/d/", str(tmp_path / "o"),
         "--endpoint-url", server.url, "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    ))
    assert done.returncode == 1, done.stderr
    assert "truncated" in done.stderr
    assert "Traceback" not in done.stderr
    assert '"succeeded": 1' not in done.stdout


@pytest.mark.anyio
async def test_keys_no_s3_holds_fail_alone_in_a_download_and_the_rest_arrive(
    fake: Any, engine: TransferEngine, tmp_path: Path
) -> None:
    """A NUL (no file name holds one) and a key of 2,000 nested folders (over
    S3's 1,024 bytes; deeper than os.makedirs recurses) in a listing: each is
    one failed job with the reason, never a ValueError or RecursionError that
    stops the run."""
    from asyncpresign import download_prefix

    deep = "d/" + "x/" * 2000 + "f"
    keys = ["d/a.txt", "d/n\x00ul", deep, "d/z.txt"]
    _, signer = await fake(fixed_listing(keys))
    result = await download_prefix(signer, engine, "bkt", "d/", tmp_path / "out")
    assert files_under(tmp_path / "out") == {"a.txt", "z.txt"}
    assert len(result.failed) == 2
    assert all(isinstance(r.error, InvalidArgumentError) for r in result.failed)
    assert any("1024 bytes" in str(r.error) for r in result.failed)


def test_key_order_holds_a_listing_to_one_order_all_along() -> None:
    """Forward in S3's order or in SeaweedFS's folder order, each all along: a
    key given twice breaks both, even when each step alone keeps to one."""
    from asyncpresign._bulk import KeyOrder

    def accepted(keys: list[str]) -> bool:
        order = KeyOrder()
        return all(order.follows(key) for key in keys)

    assert accepted(["a-b", "a/x", "b"])  # S3's order
    assert accepted(["a/x", "a-b", "b"])  # folder by folder
    assert not accepted(["a", "b", "a"])
    assert not accepted(["a", "a"])
    # Each step keeps to one order, but not the same one: "a-b" comes twice.
    assert not accepted(["a-b", "a/x", "a-b"])
