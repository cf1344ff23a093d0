"""The bulk helpers as a library: folders, prefixes, journals, multipart above the threshold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asyncpresign import (
    Filters,
    Journal,
    Signer,
    TransferEngine,
    copy_objects,
    download_prefix,
    upload_tree,
)

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


async def test_a_tree_with_a_large_file_goes_up_multipart_and_comes_back(
    signer: Signer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(3000), "big.bin": os.urandom(6 * MiB)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    journal = Journal(str(tmp_path / "journal"))
    async with TransferEngine(multipart_threshold=5 * MiB, part_size=5 * MiB) as engine:
        up = await upload_tree(signer, engine, src, bucket, "tree", journal=journal)
        journal.close()
        assert up.ok
        assert up.succeeded == 3
        head = await signer.client.head_object(Bucket=bucket, Key="tree/big.bin")
        assert head["ETag"].strip('"').endswith("-2")  # two parts
        again = await upload_tree(
            signer, engine, src, bucket, "tree", journal=Journal(str(tmp_path / "journal"))
        )
        assert again.skipped == 3
        down = await download_prefix(
            signer, engine, bucket, "tree", tmp_path / "out", filters=Filters(exclude=["*.txt"])
        )
    assert down.succeeded == 2
    assert (tmp_path / "out" / "big.bin").read_bytes() == files["big.bin"]
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == files["sub/b.bin"]
    assert not (tmp_path / "out" / "a.txt").exists()


async def test_copy_objects_copies_pairs_without_local_files(
    signer: Signer, engine: TransferEngine, bucket: str, tmp_path: Path
) -> None:
    await engine.upload(await signer.presign_put(bucket, "one"), b"first")
    await engine.upload(await signer.presign_put(bucket, "two"), b"second")
    result = await copy_objects(
        signer, signer, engine,
        [((bucket, "one"), (bucket, "copy/one")), ((bucket, "two"), (bucket, "copy/two"))],
    )
    assert result.succeeded == 2
    await engine.download(await signer.presign_get(bucket, "copy/two"), tmp_path / "two")
    assert (tmp_path / "two").read_bytes() == b"second"
