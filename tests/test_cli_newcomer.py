"""The command line as a newcomer meets it (issue #18, first part): a version,
global options anywhere, no tracebacks, exit 2 for bad input, credentials
checked before the first transfer, failures a script can retry by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncpresign import HTTPStatusError, Signer, __version__
from asyncpresign.testing import LocalS3

from .test_cli import base_env, cli

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(s3: LocalS3, tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), **s3.env()}


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    done = cli("--version", env=base_env(tmp_path))
    assert done.stdout.strip() == f"asyncpresign {__version__}"


def test_no_arguments_print_the_overview_of_the_commands(tmp_path: Path) -> None:
    done = cli(env=base_env(tmp_path), check=2)
    for command in ("upload", "download", "copy", "sign", "transfer", "complete", "uploads"):
        assert command in done.stdout
    no_traceback(done)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_and_json_work_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    args = ["transfer", str(tmp_path / "missing.jsonl")]
    debug = ["--debug", *args] if where == "before" else [*args, "--debug"]
    shown = cli(*debug, env=base_env(tmp_path), check=None)
    assert shown.returncode != 0
    assert "Traceback" in shown.stderr  # --debug took effect
    plain = cli(*args, env=base_env(tmp_path), check=2)
    no_traceback(plain)


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--files", "0"],
        ["demo", "--concurrency", "-3"],
        ["upload", "/no/such/folder", "s3://some-bucket/p"],
        ["transfer", "/no/such/manifest.jsonl"],
    ],
    ids=["demo-no-files", "negative-concurrency", "missing-folder", "missing-manifest"],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, args: list[str]
) -> None:
    env = {**base_env(tmp_path), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "x" * 40, "AWS_DEFAULT_REGION": "us-east-1"}
    done = cli(*args, env=env, check=2)
    no_traceback(done)
    assert done.stderr.strip()


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00binary", b"not json\n"],
                         ids=["empty", "binary", "text"])
def test_a_file_that_is_not_a_manifest_is_refused_without_a_traceback(
    tmp_path: Path, content: bytes
) -> None:
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_bytes(content)
    done = cli("transfer", str(manifest), env=base_env(tmp_path), check=None)
    no_traceback(done)
    assert done.returncode in (0, 2)  # an empty manifest is nothing to do
    if content:
        assert done.returncode == 2


@pytest.mark.parametrize("journal", ["in-a-missing-folder", "a-folder", "not-utf8"])
def test_a_journal_that_cannot_be_used_is_refused_before_any_job(
    tmp_path: Path, journal: str
) -> None:
    manifest = tmp_path / "jobs.jsonl"
    # A job that would take a minute to fail: the refusal must come first.
    manifest.write_text(json.dumps(
        {"op": "put", "url": "http://127.0.0.1:1/b/k", "path": "f"}) + "\n")
    (tmp_path / "f").write_bytes(b"x")
    path = {"in-a-missing-folder": tmp_path / "missing" / "j", "a-folder": tmp_path,
            "not-utf8": tmp_path / "j"}[journal]
    if journal == "not-utf8":
        path.write_bytes(b"\xff\xfe\xfd")
    done = cli("transfer", str(manifest), "--journal", str(path), env=base_env(tmp_path),
               check=2)
    no_traceback(done)
    assert "journal" in done.stderr


def test_a_closed_stdout_stops_quietly(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "x" * 40}
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: the first write breaks the pipe
    try:
        done = subprocess.run(
            [sys.executable, "-m", "asyncpresign", "sign", "get", "s3://some-bucket/k",
             "--region", "us-east-1"],
            env=env, stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr


async def test_without_credentials_a_bulk_upload_stops_before_its_first_transfer(
    s3: LocalS3, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    for i in range(50):
        (tmp_path / "src" / f"f{i}").write_bytes(b"x")
    env = {**base_env(tmp_path), "AWS_DEFAULT_REGION": s3.region}
    done = cli("upload", str(tmp_path / "src"), "s3://some-bucket/p", "--endpoint-url",
               s3.endpoint_url, env=env, check=2)
    no_traceback(done)
    assert done.stdout == ""  # no summary: nothing ran
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no AWS credentials found" in lines[0]


async def test_a_wrong_secret_reads_as_http_403_once(s3: LocalS3) -> None:
    async with Signer(endpoint_url=s3.endpoint_url, region=s3.region,
                      access_key=s3.access_key, secret_key="wrong" * 8,
                      addressing_style="path") as signer:
        with pytest.raises(HTTPStatusError) as caught:
            await signer.ensure_bucket("some-bucket-403")
    assert caught.value.status == 403
    assert "403 403" not in str(caught.value)
    assert "HTTP 403" in str(caught.value)


async def test_json_failures_name_op_bucket_key_and_path_and_counts_are_disjoint(
    env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_bytes(b"x")
    os.mkfifo(src / "pipe")
    first = json.loads(cli("upload", str(src), f"s3://{bucket}/j", "--journal",
                           str(tmp_path / "j"), "--json", env=env, check=1).stdout)
    assert (first["succeeded"], first["skipped"], first["failed"]) == (1, 0, 1)
    again = json.loads(cli("upload", str(src), f"s3://{bucket}/j", "--journal",
                           str(tmp_path / "j"), "--json", env=env, check=1).stdout)
    assert (again["succeeded"], again["skipped"], again["failed"]) == (0, 1, 1)
    assert again["succeeded"] + again["skipped"] + again["failed"] == again["total"]
    failure = again["failures"][0]
    assert failure["op"] == "upload"
    assert (failure["bucket"], failure["key"]) == (bucket, "j/pipe")
    assert failure["path"] == str(src / "pipe")


async def test_a_failed_download_names_its_object_and_file(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="d/blocked/f", Body=b"x")
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_bytes(b"a file where a folder must go")
    done = json.loads(cli("download", f"s3://{bucket}/d", str(out), "--json",
                          env=env, check=1).stdout)
    failure = done["failures"][0]
    assert (failure["op"], failure["bucket"], failure["key"]) == ("download", bucket, "d/blocked/f")
    assert failure["path"] == str(out / "blocked" / "f")


def test_a_json_dry_run_that_cannot_start_leaves_stdout_empty(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "x" * 40, "AWS_DEFAULT_REGION": "us-east-1"}
    done = cli("upload", str(tmp_path / "nowhere"), "s3://some-bucket/p", "--dry-run",
               "--json", env=env, check=2)
    assert done.stdout == ""  # never half a JSON document


async def test_sign_get_leaves_folder_markers_out_without_failing(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="m/folder/", Body=b"")
    await signer.client.put_object(Bucket=bucket, Key="m/folder/f", Body=b"x")
    manifest = tmp_path / "get.jsonl"
    cli("sign", "get", f"s3://{bucket}/m", "--manifest", str(manifest), "--from",
        str(tmp_path / "out"), env=env)
    lines = manifest.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["m/folder/f"]


async def test_a_copy_dry_run_counts_what_the_journal_would_skip(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    for name in ("a", "b"):
        await signer.client.put_object(Bucket=bucket, Key=f"cp/{name}", Body=b"x")
    journal = str(tmp_path / "j")
    cli("copy", f"s3://{bucket}/cp", f"s3://{bucket}/out", "--journal", journal, "--quiet",
        env=env)
    await signer.client.put_object(Bucket=bucket, Key="cp/b", Body=b"changed")
    dry = cli("copy", f"s3://{bucket}/cp", f"s3://{bucket}/out", "--journal", journal,
              "--dry-run", env=env)
    assert "would copy 1 object" in dry.stdout
    assert "1 already done" in dry.stdout


def _subcommands() -> dict[str, object]:
    import argparse

    from asyncpresign._cli_args import _parser

    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_and_positional_has_a_help_line_and_every_command_examples() -> None:
    for name, command in _subcommands().items():
        for action in command._actions:  # type: ignore[attr-defined]
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
        assert "examples:" in command.format_help(), name  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("command", "absent"),
    [
        ("transfer", ["--endpoint-url", "--expires", "--profile"]),
        ("complete", ["--concurrency", "--include", "--json", "--expires", "--dask-scheduler"]),
        ("sign", ["--concurrency", "--journal", "--retries", "--dask-scheduler", "--quiet"]),
        ("uploads", ["--concurrency", "--include", "--journal"]),
    ],
)
def test_a_command_offers_only_the_options_it_honours(command: str, absent: list[str]) -> None:
    shown = _subcommands()[command].format_help()  # type: ignore[attr-defined]
    for option in absent:
        assert option not in shown, f"{command} offers {option}"


def test_signing_a_post_for_a_key_ending_in_a_slash_warns_of_the_shell(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "x" * 40}
    # What `sign post s3://my-bucket/in/${filename}` is after an unquoting shell.
    done = cli("sign", "post", "s3://my-bucket/in/", "--region", "us-east-1", env=env)
    assert "${filename}" in done.stderr
    assert json.loads(done.stdout)["fields"]["key"] == "in/"
    quoted = cli("sign", "post", "s3://my-bucket/in/${filename}", "--region", "us-east-1",
                 env=env)
    assert "warning" not in quoted.stderr


async def test_a_prefix_is_a_folder_unless_prefix_match_is_asked_for(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    for key in ("photos/a.jpg", "photos-old/b.jpg", "photos.txt"):
        await signer.client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    cli("download", f"s3://{bucket}/photos", str(tmp_path / "folder"), "--quiet", env=env)
    assert sorted(p.name for p in (tmp_path / "folder").rglob("*") if p.is_file()) == ["a.jpg"]
    copied = json.loads(cli("copy", f"s3://{bucket}/photos", f"s3://{bucket}/copy", "--json",
                            env=env).stdout)
    assert copied["total"] == 1
    cli("download", f"s3://{bucket}/photos", str(tmp_path / "all"), "--prefix-match",
        "--quiet", env=env)
    names = sorted(str(p.relative_to(tmp_path / "all")) for p in (tmp_path / "all").rglob("*")
                   if p.is_file())
    assert names == ["a.jpg", "photos-old/b.jpg", "photos.txt"]


async def test_a_uri_naming_one_object_downloads_just_that_object(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    for key in ("data/report.csv", "data/report.csv.bak", "data/report.csv/x"):
        await signer.client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    cli("download", f"s3://{bucket}/data/report.csv", str(tmp_path / "out") + "/", "--quiet",
        env=env)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.csv"]
    assert (tmp_path / "out" / "report.csv").read_bytes() == b"data/report.csv"


async def test_progress_off_a_terminal_shows_the_counted_total_a_percentage_and_an_eta(
    s3: LocalS3, bucket: str, tmp_path: Path, proxy: object
) -> None:
    import anyio

    from .proxy import Rule

    src = tmp_path / "src"
    src.mkdir()
    for i in range(120):
        (src / f"f{i:03d}").write_bytes(b"x" * 100)
    proxy.add(Rule("PUT", f"/{bucket}/", times=10_000, delay=0.05))  # type: ignore[attr-defined]
    env = {**base_env(tmp_path), **s3.env(),
           "AWS_ENDPOINT_URL": proxy.endpoint_url}  # type: ignore[attr-defined]
    done = await anyio.to_thread.run_sync(lambda: cli(
        "upload", str(src), f"s3://{bucket}/p", "--concurrency", "4", env=env))
    lines = [line for line in done.stderr.splitlines() if line.startswith("upload: ")]
    assert lines, done.stderr  # the first line comes after 0.5 s, the run takes ~1.5 s
    assert "/120 (" in lines[-1]
    assert "ETA " in lines[-1]


async def test_a_prefix_with_nothing_under_it_is_an_error_not_zero_of_zero(
    env: dict[str, str], bucket: str, tmp_path: Path, signer: Signer
) -> None:
    await signer.client.put_object(Bucket=bucket, Key="photos/a.jpg", Body=b"x")
    done = cli("download", f"s3://{bucket}/photso", str(tmp_path / "out"), env=env, check=2)
    assert f"nothing is stored under s3://{bucket}/photso/" in done.stderr
    assert not (tmp_path / "out").exists()
    cli("copy", f"s3://{bucket}/nothing/", f"s3://{bucket}/x", env=env, check=2)
