"""Where one object goes: the key a file or stream is uploaded to, the file an
object is downloaded to. Pure: the caller says whether a path is a folder."""

from __future__ import annotations

import os
import posixpath

from ._exceptions import InvalidArgumentError

__all__ = ["download_dest", "object_target", "parse_s3_uri"]


def parse_s3_uri(text: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``."""
    if not text.startswith("s3://") or len(text) <= 5:
        raise InvalidArgumentError(f"expected s3://bucket/key, got {text!r}")
    bucket, _, key = text[5:].partition("/")
    if not bucket:  # s3:///key: else the signer's own words, or a failed job, later
        raise InvalidArgumentError(f"{text!r} names no bucket: expected s3://bucket/key")
    return bucket, key


def object_target(target: str, source: str) -> tuple[str, str]:
    """The (bucket, key) one file or stream is uploaded to: ``s3://b/key`` as
    given; ``s3://b/folder/`` or ``s3://b`` add the file's name, as cp does.
    A stream (``-``) has no name, so it needs a key."""
    bucket, key = parse_s3_uri(target)
    if key and not key.endswith("/"):
        return bucket, key
    if source == "-":
        raise InvalidArgumentError(
            f"{target!r} names no object: stdin has no file name, so give the key "
            "(s3://bucket/name)"
        )
    name = os.path.basename(os.path.normpath(source))
    if not name or name in {".", ".."}:
        raise InvalidArgumentError(f"{source!r} has no file name to use as the key")
    return bucket, key + name


def download_dest(dest: str, key: str, *, is_folder: bool) -> str:
    """The file one object is downloaded to: ``dest`` itself, or, when ``dest``
    is a folder (existing, or written with a trailing slash), the object's
    name inside it, as cp does."""
    if not dest:
        raise InvalidArgumentError("the destination is empty")
    if is_folder or dest.endswith(("/", os.sep)):
        name = posixpath.basename(key)
        if name in {"", ".", ".."}:
            raise InvalidArgumentError(f"the key {key!r} has no name to give a file")
        return os.path.join(dest, name)
    return dest
