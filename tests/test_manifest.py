"""Reading manifests: a malformed line is one failed job, the rest are read;
a file that is not a manifest at all is refused whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from asyncpresign import InvalidArgumentError
from asyncpresign._manifest import read_manifest, read_manifest_lines

GOOD = {"op": "put", "url": "https://s3.example.com/b/k?X-Amz-Signature=x", "path": "a.txt",
        "bucket": "b", "key": "k", "expires_at": "2030-01-01T00:00:00+00:00"}


def line(**changes: object) -> str:
    return json.dumps({k: v for k, v in {**GOOD, **changes}.items() if v is not None})


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'["a list"]', "expected an object"),
        (line(path=None).encode(), "needs 'url' and 'path' strings"),
        (line(op="delete").encode(), "op must be 'put' or 'get'"),
        (line(size=True).encode(), "size must be an int >= 0"),
        (line(part="3").encode(), "part must be an int >= 0"),
        (line(bucket=5).encode(), "bucket must be a string"),
        (line(etag=["x"]).encode(), "etag must be a string"),
        (line(expires_at="soon").encode(), "expires_at must be an ISO 8601 time"),
        (line(expires_at="2030-01-01T00:00:00").encode(), "with its time zone"),
        (line(url="ftp://x/y").encode(), "manifest line 2:"),
        (line().encode().replace(b"a.txt", b"caf\xe9.txt"), "not UTF-8 text"),
    ],
)
def test_a_malformed_line_is_reported_as_that_line_and_the_others_are_read(
    tmp_path: Path, bad: bytes, reason: str
) -> None:
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_bytes(b"\n".join([line().encode(), bad, b"", line(key="k2").encode()]) + b"\n")
    items = list(read_manifest_lines(str(manifest)))
    assert len(items) == 3
    error = items[1]
    assert isinstance(error, InvalidArgumentError)
    assert str(error).startswith("manifest line 2: ")
    assert reason in str(error)
    assert [getattr(item, "key", None) for item in (items[0], items[2])] == ["k", "k2"]
    assert getattr(items[0], "path", None) == str(tmp_path / "a.txt")
    with pytest.raises(InvalidArgumentError, match="manifest line 2"):
        list(read_manifest(str(manifest)))  # for complete: every part or nothing


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"op,url,path\nput,https://x/y,a.txt\n",
     b"\n\n[1, 2]\n" + line().encode()],
)
def test_a_file_that_is_not_a_manifest_is_refused_whole(tmp_path: Path, content: bytes) -> None:
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_bytes(content)
    with pytest.raises(InvalidArgumentError, match="is not a manifest"):
        list(read_manifest_lines(str(manifest)))


def test_a_manifest_is_written_0600_through_a_fresh_temporary_file(tmp_path: Path) -> None:
    import os

    from asyncpresign._manifest import ManifestEntry, write_manifest

    target = tmp_path / "jobs.jsonl"
    target.write_text("old\n")
    target.chmod(0o644)
    # A link at the name an older version used for its temporary file: never followed.
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (tmp_path / f".jobs.jsonl.{os.getpid()}.tmp").symlink_to(victim)
    entry = ManifestEntry(op="put", url="https://b.s3.amazonaws.com/k", path=str(tmp_path / "f"))
    assert write_manifest(str(target), [entry]) == 1
    assert target.stat().st_mode & 0o777 == 0o600
    assert victim.read_text() == "untouched"
    leftovers = [p for p in tmp_path.iterdir() if p.suffix == ".tmp" and not p.is_symlink()]
    assert leftovers == []


def test_a_path_with_a_nul_is_a_malformed_line(tmp_path: Path) -> None:
    from asyncpresign._manifest import parse_entry

    line = json.dumps({"op": "put", "url": "https://b.s3.amazonaws.com/k", "path": "a\u0000b"})
    with pytest.raises(InvalidArgumentError, match="manifest line 7"):
        parse_entry(line, 7)


def test_entries_without_bucket_and_key_are_told_apart_by_their_urls() -> None:
    from asyncpresign._manifest import ManifestEntry

    one = ManifestEntry(op="put", url="https://h/b/one?X-Amz-Signature=1", path="a.csv")
    two = ManifestEntry(op="put", url="https://h/b/two?X-Amz-Signature=2", path="a.csv")
    again = ManifestEntry(op="put", url="https://h/b/one?X-Amz-Signature=3", path="a.csv")
    assert one.id != two.id
    assert one.id == again.id  # re-signed: the same job


def _lines_in_temporary_files(folder: Path) -> int:
    return sum(
        len(p.read_bytes().splitlines()) for p in folder.iterdir() if p.name.endswith(".tmp")
    )


class _CountingSigner:
    """Signs PUTs without a server; at call ``stop_at`` looks at what the manifest's
    temporary file holds so far, then fails (a run broken off half-way)."""

    checksum = "crc64nvme"

    def __init__(self, folder: Path, stop_at: int) -> None:
        self.folder, self.stop_at, self.calls = folder, stop_at, 0
        self.lines_on_disk_at_stop = -1

    async def presign_put(self, bucket: str, key: str, **_: object) -> object:
        import datetime as dt

        from asyncpresign import PresignedRequest

        self.calls += 1
        if self.calls == self.stop_at:
            self.lines_on_disk_at_stop = _lines_in_temporary_files(self.folder)
            raise RuntimeError("broken off")
        return PresignedRequest(
            method="PUT", url=f"https://s3.example.com/{bucket}/{key}?X-Amz-Signature=x",
            expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
        )


@pytest.mark.anyio
async def test_sign_manifest_writes_entries_as_it_signs_and_leaves_nothing_when_broken_off(
    tmp_path: Path,
) -> None:
    """A folder of millions must not sit in memory as manifest entries: they reach
    the manifest's temporary file a batch at a time while signing goes on. A run
    broken off leaves neither the manifest nor its temporary file."""
    from asyncpresign._cli_args import _parser
    from asyncpresign._cli_sign import _sign_manifest

    source = tmp_path / "outbox"
    source.mkdir()
    for i in range(1200):
        (source / f"f{i:04d}").write_bytes(b"%d" % i)
    manifest = tmp_path / "jobs.jsonl"
    args = _parser().parse_args(
        ["sign", "put", "s3://bucket/in", "--manifest", str(manifest), "--from", str(source)]
    )
    signer = _CountingSigner(tmp_path, stop_at=1100)
    with pytest.raises(RuntimeError, match="broken off"):
        await _sign_manifest(args, signer, "bucket", "in/")  # type: ignore[arg-type]
    assert signer.lines_on_disk_at_stop >= 500
    assert sorted(os.listdir(tmp_path)) == ["outbox"]
