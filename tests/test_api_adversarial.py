"""The public library API as a newcomer or an attacker calls it: every bad
setting or argument is a typed InvalidArgumentError when it is given, never a
bare builtin from deep inside later; no result says ok for what was not done;
and nothing secret ends up where it shows.

Signing needs no server (keys and a region are enough); the transfers run
against the local fault server or SeaweedFS.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest

from asyncpresign import (
    Download,
    FilePart,
    Filters,
    InvalidArgumentError,
    PresignedPost,
    PresignedRequest,
    RetryPolicy,
    Signer,
    TransferEngine,
    Upload,
    copy_objects,
    download_prefix,
    sync,
    upload_tree,
)
from asyncpresign.html import post_form
from asyncpresign.testing import LocalS3
from tests.fault_server import Fault, FaultServer
from tests.test_html import NOW
from tests.test_signer_guard_rails import KEYS, offline  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio


# -- RetryPolicy ---------------------------------------------------------------------------


@pytest.mark.parametrize("multiplier", [math.nan, math.inf, True], ids=["nan", "inf", "bool"])
def test_retry_policy_refuses_a_nan_infinite_or_bool_multiplier(multiplier: float) -> None:
    with pytest.raises(InvalidArgumentError, match="multiplier"):
        RetryPolicy(multiplier=multiplier)


@pytest.mark.parametrize(
    "statuses",
    [503, None, "503", {"503"}, {True}, {99}, {600}],
    ids=["int", "none", "str", "str-items", "bool-item", "below-100", "above-599"],
)
def test_retry_policy_refuses_retry_statuses_that_are_not_http_statuses(statuses: Any) -> None:
    # "503" was a set of the characters 5, 0 and 3: retries silently off.
    with pytest.raises(InvalidArgumentError, match="retry_statuses"):
        RetryPolicy(retry_statuses=statuses)


def test_retry_policy_takes_any_collection_of_statuses() -> None:
    assert RetryPolicy(retry_statuses=[500, 503]).retry_statuses == frozenset({500, 503})


def test_retry_policy_refuses_a_jitter_that_is_not_a_bool() -> None:
    with pytest.raises(InvalidArgumentError, match="jitter"):
        RetryPolicy(jitter="no")  # type: ignore[arg-type]


async def test_a_steep_multiplier_keeps_retrying_instead_of_overflowing() -> None:
    # 1e10 ** 39 is past a float: the 40th retry raised a bare OverflowError.
    policy = RetryPolicy(
        attempts=50, initial_backoff=0.0, max_backoff=0.0, multiplier=1e10, max_elapsed=None,
        jitter=False,
    )
    async with FaultServer() as server, TransferEngine(retry=policy) as engine:
        server.script("k", [Fault("status", status=500, code="InternalError")] * 45)
        result = await engine.upload(server.request("PUT", "k"), b"data")
    assert result.ok
    assert result.attempts == 46
    assert server.objects["k"] == b"data"


# -- TransferEngine and FilePart ----------------------------------------------------------


@pytest.mark.parametrize("verify", [None, "no", 0], ids=["none", "str", "int"])
def test_the_engine_refuses_a_verify_that_is_not_a_bool(verify: Any) -> None:
    # verify=None read as false: downloads went unchecked and came back ok.
    with pytest.raises(InvalidArgumentError, match="verify"):
        TransferEngine(verify=verify)


async def test_a_download_refuses_a_verify_that_is_not_a_bool_before_sending(
    tmp_path: Path,
) -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        server.objects["k"] = b"data"
        with pytest.raises(InvalidArgumentError, match="verify"):
            await engine.download(
                server.request("GET", "k"), tmp_path / "f", verify="no"  # type: ignore[arg-type]
            )
    assert server.requests.total() == 0
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("offset", "length"), [("0", 4), (0, "4"), (True, 4), (0.0, 4)],
    ids=["str-offset", "str-length", "bool-offset", "float-offset"],
)
def test_file_part_refuses_an_offset_or_length_that_is_not_an_int(
    offset: Any, length: Any
) -> None:
    with pytest.raises(InvalidArgumentError, match="FilePart"):
        FilePart("f", offset, length)


@pytest.mark.parametrize("jobs", [5, None, "jobs.txt"], ids=["int", "none", "str"])
async def test_run_refuses_jobs_that_are_not_an_iterable_of_jobs(jobs: Any) -> None:
    # A bare TypeError from inside a worker; a str ran one failing "job" per character.
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="jobs must be an iterable"):
            await engine.run(jobs)


async def test_a_signing_function_that_is_not_async_is_an_invalid_argument() -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        def sign(**_: Any) -> PresignedRequest:
            return server.request("PUT", "k")

        # Awaiting what it returned was a bare TypeError.
        with pytest.raises(InvalidArgumentError, match="must be async"):
            await engine.upload(None, b"data", sign=sign)
        batch = await engine.run([Upload(None, b"data", sign=sign)])
    assert isinstance(batch.failed[0].error, InvalidArgumentError)
    assert server.requests.total() == 0


@pytest.mark.s3
async def test_the_smallest_chunk_size_of_4_kib_still_moves_bytes_both_ways(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    body = os.urandom(100_000)  # not a multiple of 4 KiB
    async with TransferEngine(chunk_size=4096) as engine:
        await engine.upload(None, body, sign=signer.sign_later("PUT", bucket, "k"))
        await engine.download(
            None, tmp_path / "a", sign=signer.sign_later("GET", bucket, "k")
        )
    async with TransferEngine() as engine:
        await engine.download(
            None, tmp_path / "b", sign=signer.sign_later("GET", bucket, "k"), chunk_size=4096
        )
    assert (tmp_path / "a").read_bytes() == body
    assert (tmp_path / "b").read_bytes() == body


async def test_a_download_streams_repr_tells_what_it_did_without_the_signature() -> None:
    async with FaultServer() as server, TransferEngine() as engine:
        server.objects["k"] = b"data"
        stream = engine.download_stream(server.request("GET", "k"))
        assert repr(stream) == "<DownloadStream (not started)>"
        async with stream:
            assert b"".join([data async for data in stream]) == b"data"
    # It read "(not started)" once done.
    assert "(done, 4 bytes)" in repr(stream)
    assert "s3cr3t" not in repr(stream)


async def test_a_call_with_a_retry_that_is_not_a_retry_policy_fails_before_sending(
    tmp_path: Path,
) -> None:
    # It was taken, and failed only when a retry was due: a bare AttributeError
    # after the first attempt had gone out.
    async with FaultServer() as server, TransferEngine() as engine:
        server.objects["k"] = b"data"
        with pytest.raises(InvalidArgumentError, match="retry must be a RetryPolicy"):
            await engine.upload(server.request("PUT", "k"), b"x", retry="fast")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="retry must be a RetryPolicy"):
            await engine.download(
                server.request("GET", "k"), tmp_path / "f", retry={"attempts": 1}  # type: ignore[arg-type]
            )
        batch = await engine.run([Upload(server.request("PUT", "k"), b"x", retry=3)])  # type: ignore[arg-type]
        assert isinstance(batch.failed[0].error, InvalidArgumentError)
    assert server.requests.total() == 0


#: Not a function: a log file's name, where a function to write to it was meant.
LOG_NAME = "progress.log"


async def test_callbacks_that_are_not_functions_fail_before_sending() -> None:
    # A bare TypeError once bytes had moved (progress) or a job had ended (on_result).
    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="progress must be a function"):
            await engine.upload(server.request("PUT", "k"), b"x", progress=LOG_NAME)  # type: ignore[arg-type]
        for callbacks in ({"progress": LOG_NAME}, {"on_result": LOG_NAME}):
            with pytest.raises(InvalidArgumentError, match="must be a function"):
                await engine.run([Upload(server.request("PUT", "k"), b"x")], **callbacks)  # type: ignore[arg-type]
    assert server.requests.total() == 0


class _CallbackBug(Exception):
    """An exception of the caller's own, raised by their progress function."""


@pytest.mark.parametrize("raised", [_CallbackBug("display broke"), TimeoutError("t")])
async def test_a_progress_functions_own_exception_comes_out_as_itself_untried_again(
    tmp_path: Path, raised: Exception
) -> None:
    # A bug in the caller's callback is theirs: not a transport error to retry
    # (a TimeoutError would read as the server's), and nothing is left behind.
    def progress(event: object) -> None:
        raise raised

    body = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "source"
    source.write_bytes(body)
    dest = tmp_path / "dest"
    async with FaultServer() as server, TransferEngine(multipart_threshold=2**40) as engine:
        server.objects["k"] = body
        for upload in (body, source):
            with pytest.raises(type(raised)) as caught:
                await engine.upload(server.request("PUT", "up"), upload, progress=progress)
            assert caught.value is raised
        with pytest.raises(type(raised)) as caught:
            await engine.download(server.request("GET", "k"), dest, progress=progress)
        assert caught.value is raised
        batch = await engine.run(
            [Upload(server.request("PUT", "up"), body), Download(server.request("GET", "k"), dest)],
            progress=progress,
        )
        assert [result.error for result in batch.results] == [raised, raised]
    assert server.requests[("PUT", "up")] == 3  # one each: no retry
    assert server.requests[("GET", "k")] == 2
    assert os.listdir(tmp_path) == ["source"]


# -- Upload sources: a result is ok only for what was asked --------------------------------


async def test_an_upload_of_a_path_with_a_smaller_size_sends_nothing_rather_than_cut_it(
    tmp_path: Path,
) -> None:
    # The first 3 bytes of the 10-byte file were stored, and the result said ok.
    source = tmp_path / "f"
    source.write_bytes(b"0123456789")
    async with FaultServer() as server, TransferEngine() as engine:
        for size in (3, 30):
            with pytest.raises(InvalidArgumentError, match=f"size={size}"):
                await engine.upload(server.request("PUT", "k"), source, size=size)
        batch = await engine.run([Upload(server.request("PUT", "k"), source, size=3)])
        assert server.requests.total() == 0
        assert "k" not in server.objects
        assert not batch.ok
        assert isinstance(batch.failed[0].error, InvalidArgumentError)
        # The right size is taken, and the whole file sent.
        result = await engine.upload(server.request("PUT", "k"), source, size=10)
    assert result.ok
    assert server.objects["k"] == b"0123456789"


@pytest.mark.parametrize(
    "size", [3, 30, -1, True, "10"], ids=["small", "big", "negative", "bool", "str"]
)
async def test_an_upload_of_bytes_refuses_a_size_that_is_not_theirs(size: Any) -> None:
    # It was ignored: whatever size was claimed, the result said ok.
    async with FaultServer() as server, TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="size"):
            await engine.upload(server.request("PUT", "k"), b"0123456789", size=size)
    assert server.requests.total() == 0


@pytest.mark.parametrize("text", ["stream", "file"])
async def test_a_text_stream_as_upload_source_is_an_invalid_argument_not_a_network_error(
    tmp_path: Path, text: str
) -> None:
    # Its str chunks broke aiohttp's write: "connection failed", a TransportError,
    # retried as if the network had failed.
    source = tmp_path / "f"
    source.write_text("abc")
    async with FaultServer() as server, TransferEngine() as engine:
        with contextlib.ExitStack() as stack:
            stream = (
                io.StringIO("abc") if text == "stream" else stack.enter_context(source.open())
            )
            with pytest.raises(InvalidArgumentError, match="binary"):
                await engine.upload(server.request("PUT", "k"), stream)
    assert server.requests.total() == 0


# -- Signer construction ------------------------------------------------------------------


def test_signer_refuses_an_endpoint_with_a_user_name_or_password_without_echoing_it() -> None:
    # It was copied into every presigned URL, where no redaction removes it.
    with pytest.raises(InvalidArgumentError, match="user name or password") as caught:
        Signer(endpoint_url="http://admin:hunter2@127.0.0.1:9000", **KEYS)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        5,
        "http://127.0.0.1:9000/?versioning=1",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:port",
        "http://exa mple.com",
        "http://example.com\r\n",
    ],
    ids=["not-a-str", "query", "port-too-big", "port-not-a-number", "space", "crlf"],
)
def test_signer_refuses_at_construction_an_endpoint_botocore_cannot_sign_for(
    endpoint: Any,
) -> None:
    # Each was taken, then failed at the first signature or when the client was
    # made (a bare ValueError, or an AttributeError for the number).
    with pytest.raises(InvalidArgumentError, match="endpoint_url"):
        Signer(endpoint_url=endpoint, region="us-east-1", **KEYS)


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9000/tenant", "http://[::1]:9000", "https://s3.example.com#ignored"],
)
async def test_signer_still_signs_for_endpoints_with_a_path_or_ipv6_host(endpoint: str) -> None:
    async with Signer(endpoint_url=endpoint, region="us-east-1", **KEYS) as signer:
        request = await signer.presign_get("bkt", "k")
    assert request.url.startswith(endpoint.split("#", maxsplit=1)[0] + "/bkt/k?")


@pytest.mark.parametrize("region", [5, "eu west 1", "-bad-"], ids=["int", "space", "hyphens"])
def test_signer_refuses_a_region_that_is_not_a_region_name_at_construction(
    region: Any,
) -> None:
    with pytest.raises(InvalidArgumentError, match="region"):
        Signer(region=region, **KEYS)


@pytest.mark.parametrize(
    "keys",
    [
        {"access_key": "", "secret_key": "s"},
        {"access_key": 5, "secret_key": "s"},
        {"access_key": "a", "secret_key": ""},
        {"access_key": "a", "secret_key": "s", "session_token": 5},
    ],
    ids=["empty-access-key", "int-access-key", "empty-secret", "int-token"],
)
def test_signer_refuses_empty_or_non_str_keys_at_construction(keys: dict[str, Any]) -> None:
    # An empty key was an awscrt RuntimeError, a number an AssertionError, at signing.
    with pytest.raises(InvalidArgumentError, match="must be a"):
        Signer(region="us-east-1", **keys)


async def test_an_empty_session_token_still_means_none() -> None:
    # As botocore reads it (AWS_SESSION_TOKEN= in an environment): not refused.
    async with Signer(region="us-east-1", session_token="", **KEYS) as signer:
        request = await signer.presign_get("bkt", "k")
    assert "X-Amz-Security-Token" not in request.url


# -- Signer arguments ---------------------------------------------------------------------


async def test_a_malformed_checksum_is_an_invalid_argument_not_an_index_error(
    offline: Signer,  # noqa: F811 - the fixture
) -> None:
    # params[check(c)] = c[1] reads c[1] first: a one-item tuple was an IndexError.
    with pytest.raises(InvalidArgumentError, match="checksum"):
        await offline.presign_put("bkt", "k", checksum=("crc32",))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="checksum"):
        await offline.presign_upload_part("bkt", "k", "id", 1, checksum=("crc32",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata",
    [{"a": 5}, {5: "a"}, {"a": None}, "owner=me", [("a", "b")]],
    ids=["int-value", "int-name", "none-value", "str", "pairs"],
)
async def test_metadata_that_is_not_a_mapping_of_str_to_str_is_an_invalid_argument(
    offline: Signer,  # noqa: F811 - the fixture
    metadata: Any,
) -> None:
    # botocore's handlers raised a bare AttributeError, dict() a bare ValueError.
    with pytest.raises(InvalidArgumentError, match="metadata"):
        await offline.presign_put("bkt", "k", metadata=metadata)
    with pytest.raises(InvalidArgumentError, match="metadata"):
        await offline.presign_put("bkt", "k", Metadata=metadata)
    with pytest.raises(InvalidArgumentError, match="metadata"):
        offline.sign_later("PUT", "bkt", "k", Metadata=metadata)


async def test_presign_many_refuses_a_single_key_given_as_a_str(
    offline: Signer,  # noqa: F811 - the fixture
) -> None:
    # A str is an iterable of keys: "report.csv" signed ten one-letter keys.
    with pytest.raises(InvalidArgumentError, match="single key"):
        await offline.presign_many("GET", "bkt", "report.csv")


async def test_presign_post_refuses_a_key_or_fields_that_are_not_str(
    offline: Signer,  # noqa: F811 - the fixture
) -> None:
    with pytest.raises(InvalidArgumentError, match="key must be a str"):
        await offline.presign_post("bkt", 5)  # type: ignore[arg-type]
    # A number was signed into the policy, and post_form then failed on it.
    with pytest.raises(InvalidArgumentError, match="POST fields"):
        await offline.presign_post("bkt", "k", fields={"acl": 5})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "fields",
    [{"key": "someone/else"}, {"Key": "x"}, {"bucket": "other-bucket"}, {"policy": "e30="},
     {"x-amz-signature": "forged"}, {"X-Amz-Credential": "x"}],
    ids=["key", "Key", "bucket", "policy", "signature", "credential"],
)
async def test_presign_post_refuses_fields_the_signer_sets_itself(
    offline: Signer,  # noqa: F811 - the fixture
    fields: dict[str, str],
) -> None:
    # Each became a condition beside the signer's own ({"key": "someone/else"}
    # and {"key": "k"}): a policy no upload can meet, or a forged field kept.
    with pytest.raises(InvalidArgumentError, match="cannot be given in the fields"):
        await offline.presign_post("bkt", "k", fields=fields)


@pytest.mark.parametrize("conditions", ["x", ["x"], {"acl": "private"}, [5]])
async def test_presign_post_refuses_conditions_that_are_not_a_list_of_conditions(
    offline: Signer,  # noqa: F811 - the fixture
    conditions: Any,
) -> None:
    # A str was signed as the condition "x", a dict as its names.
    with pytest.raises(InvalidArgumentError, match="conditions"):
        await offline.presign_post("bkt", "k", conditions=conditions)


@pytest.mark.parametrize(
    "options",
    [
        {"content_type": "text/plain\r\nX-Injected: 1"},
        {"CacheControl": "no-cache\nX-Injected: 1"},
        {"metadata": {"owner": "me\r\nX-Injected: 1"}},
        {"metadata": {"a:b": "1"}},
        {"metadata": {"two words": "1"}},
    ],
    ids=["content-type-crlf", "cache-control-lf", "metadata-value-crlf", "metadata-name-colon",
         "metadata-name-space"],
)
async def test_headers_no_client_can_send_are_refused_when_signed(
    offline: Signer,  # noqa: F811 - the fixture
    options: dict[str, Any],
) -> None:
    # Both paths signed them and handed them out; the URL failed only when used
    # (or, in a client that does not check, injected a header).
    with pytest.raises(InvalidArgumentError, match="header"):
        await offline.presign_put("bkt", "k", **options)


async def test_a_tab_in_a_header_value_is_still_signed(
    offline: Signer,  # noqa: F811 - the fixture
) -> None:
    request = await offline.presign_put("bkt", "k", content_type="text/plain;\tcharset=utf-8")
    assert request.headers["Content-Type"] == "text/plain;\tcharset=utf-8"


# -- Bulk helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patterns",
    [{"exclude": ".env"}, {"include": "*.csv"}, {"exclude": b"*.key"}, {"exclude": 5},
     {"include": ["*.csv", None]}],
    ids=["exclude-str", "include-str", "exclude-bytes", "exclude-int", "include-none-item"],
)
def test_filters_refuse_patterns_that_are_not_a_list_of_globs(patterns: dict[str, Any]) -> None:
    # A str is a sequence of one-character patterns: exclude=".env" left .env
    # in (it excluded files named ".", "e", "n", "v"), include="*.csv" took
    # every file ("*" among them).
    with pytest.raises(InvalidArgumentError, match="Filters"):
        Filters(**patterns)


def test_filters_take_any_sequence_of_globs() -> None:
    filters = Filters(include=["*.csv"], exclude=("tmp/*",))
    assert filters("a.csv")
    assert not filters("tmp/a.csv")
    assert not filters(".env")


@pytest.mark.s3
@pytest.mark.parametrize(
    ("target", "expires_in"),
    [("Not A Bucket", 3600), ("{bucket}", 0), ("{bucket}", math.nan), ("{bucket}", 8 * 86400)],
    ids=["bad-bucket", "zero-expiry", "nan-expiry", "expiry-past-7-days"],
)
async def test_bulk_runs_refuse_a_bad_bucket_or_expiry_even_with_nothing_to_move(
    signer: Signer, bucket: str, tmp_path: Path, target: str, expires_in: float
) -> None:
    # Checked only when a job was signed: over an empty folder or prefix the
    # run came back ok, having checked nothing.
    target = target.format(bucket=bucket)
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError):
            await upload_tree(signer, engine, tmp_path, target, expires_in=expires_in)
        with pytest.raises(InvalidArgumentError):
            await download_prefix(
                signer, engine, target, "nothing-here/", tmp_path, expires_in=expires_in
            )
        if expires_in != 3600:  # a copy's buckets come with each pair
            with pytest.raises(InvalidArgumentError):
                await copy_objects(signer, signer, engine, [], expires_in=expires_in)


async def test_bulk_runs_refuse_a_prefix_or_folder_of_the_wrong_type(
    offline: Signer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="prefix"):
            await upload_tree(offline, engine, tmp_path, "bkt", 5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="folder"):
            await upload_tree(offline, engine, 5, "bkt")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="prefix"):
            await download_prefix(offline, engine, "bkt", 5, tmp_path)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="folder"):
            await download_prefix(offline, engine, "bkt", "", 5)  # type: ignore[arg-type]


@pytest.mark.s3
async def test_sync_refuses_a_bad_expiry_even_with_nothing_to_move(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    # An empty folder synced up took expires_in=0 and came back ok.
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="expires_in"):
            await sync(signer, engine, tmp_path, f"s3://{bucket}/up", expires_in=0)


async def test_sync_refuses_a_side_that_is_neither_a_folder_nor_a_bucket(
    offline: Signer,  # noqa: F811 - the fixture
) -> None:
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="a side to sync"):
            await sync(offline, engine, 5, "s3://bkt/p")  # type: ignore[arg-type]


async def test_copy_objects_refuses_a_pair_given_where_a_list_of_pairs_was_meant(
    offline: Signer,  # noqa: F811 - the fixture
) -> None:
    # Its first item, ("src-bucket", "a.txt"), was unpacked as a pair: a bare ValueError.
    one_pair = (("src-bucket", "a.txt"), ("dst-bucket", "a.txt"))
    async with TransferEngine() as engine:
        with pytest.raises(InvalidArgumentError, match="a copy pair is"):
            await copy_objects(offline, offline, engine, one_pair)  # type: ignore[arg-type]


# -- asyncpresign.html --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["javascript:alert(document.cookie)", " JavaScript:alert(1)", "data:text/html,<b>x</b>"]
)
def test_post_form_refuses_an_action_that_is_not_an_http_url(url: str) -> None:
    # Escaping keeps it in its attribute, but a javascript: action runs on submit.
    post = PresignedPost(url=url, fields={"key": "k"}, expires_at=NOW)
    with pytest.raises(InvalidArgumentError, match="not an http"):
        post_form(post)


def test_post_form_keeps_hostile_values_in_their_attributes() -> None:
    hostile = '"><script>alert(1)</script></textarea><img src=x onerror=alert(2)>\'`'
    post = PresignedPost(
        url="https://b.s3.amazonaws.com/?" + hostile,
        fields={"key": hostile, hostile: hostile, "success_action_redirect": hostile},
        expires_at=NOW,
    )
    html = post_form(post, file_field="f" + hostile, accept=hostile, redirect=hostile,
                     submit_label=hostile, form_id=hostile)
    assert "<script" not in html
    assert "<img" not in html
    assert "</textarea" not in html
    # Every quote inside a value is escaped: each attribute ends where it should.
    for attribute in re.findall(r'\w+="([^"]*)"', html):
        assert "<" not in attribute
        assert "'" not in attribute


# -- Secrets: an SSE-C key decrypts the object ---------------------------------------------

SSE_C_KEY = "0123456789abcdef0123456789abcdef"  # 32 bytes: an AES-256 key
SSE_C_FORMS = (SSE_C_KEY, base64.b64encode(SSE_C_KEY.encode()).decode())


async def test_a_presigned_requests_repr_does_not_show_its_sse_c_key(
    offline: Signer,  # noqa: F811 - the fixture
) -> None:
    sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSE_C_KEY}
    put = await offline.presign_put("bkt", "k", **sse)
    get = await offline.presign_get("bkt", "k", **sse)
    for request in (put, get):
        # Sent as signed: the key is among the headers, base64.
        assert request.headers["x-amz-server-side-encryption-customer-key"] == SSE_C_FORMS[1]
        shown = repr(request) + str(request)
        assert not any(form in shown for form in SSE_C_FORMS)
        assert "x-amz-server-side-encryption-customer-key-MD5" in shown


@pytest.mark.s3
async def test_debug_logs_do_not_show_an_sse_c_key(
    s3: LocalS3, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # botocore logs a request's headers and parameters at DEBUG, the key among them.
    caplog.set_level(logging.DEBUG)
    sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSE_C_KEY}
    async with s3.signer(fast_signing=False) as signer:
        await signer.presign_put(bucket, "k", **sse)
        upload_id = await signer.create_multipart_upload(bucket, "k", **sse)
        await signer.abort_multipart_upload(bucket, "k", upload_id)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "CreateMultipartUpload" in logged  # botocore did log the request
    assert not any(form in logged for form in SSE_C_FORMS)
