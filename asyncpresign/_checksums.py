"""S3's flexible checksums: the CRCs come from awscrt, never our own code.

Pure: no I/O. S3 sends and takes a checksum as the base64 of its big-endian
bytes, in ``x-amz-checksum-<algorithm>``; ``x-amz-checksum-type`` says whether
it covers the whole object (``FULL_OBJECT``) or is a checksum of the parts'
checksums (``COMPOSITE``, ``value-N``), which no whole-object hash matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from awscrt import checksums as crt

from ._exceptions import InvalidArgumentError

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Crc",
    "Verifier",
    "botocore_param",
    "check_algorithm",
    "combine",
    "combine_parts",
    "decode",
    "encode",
    "full_object_checksum",
    "header_name",
    "of",
    "verifier_from",
]

Algorithm = Literal["crc64nvme", "crc32c", "crc32"]


@dataclass(frozen=True, slots=True)
class _Spec:
    size: int  # bytes of the big-endian value
    update: Callable[[bytes | memoryview, int], int]
    combine: Callable[[int, int, int], int]
    botocore: str  # the botocore parameter that signs it


ALGORITHMS: Final[Mapping[str, _Spec]] = {
    "crc64nvme": _Spec(8, crt.crc64nvme, crt.combine_crc64nvme, "ChecksumCRC64NVME"),
    "crc32c": _Spec(4, crt.crc32c, crt.combine_crc32c, "ChecksumCRC32C"),
    "crc32": _Spec(4, crt.crc32, crt.combine_crc32, "ChecksumCRC32"),
}


def check_algorithm(name: object) -> str | None:
    """A checksum setting: one of ALGORITHMS, "md5", or None (no check)."""
    if name is None:
        return None
    if not isinstance(name, str) or (name.lower() not in ALGORITHMS and name.lower() != "md5"):
        raise InvalidArgumentError(
            f"checksum must be one of {', '.join(ALGORITHMS)}, 'md5' or None, not {name!r}"
        )
    return name.lower()


def header_name(algorithm: str) -> str:
    return f"x-amz-checksum-{algorithm}"


def botocore_param(algorithm: str) -> str:
    return ALGORITHMS[algorithm].botocore


def encode(algorithm: str, value: int) -> str:
    return base64.b64encode(value.to_bytes(ALGORITHMS[algorithm].size, "big")).decode("ascii")


def decode(algorithm: str, text: str) -> int | None:
    """The number in a checksum header, or None if it is not one (malformed, composite)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != ALGORITHMS[algorithm].size:
        return None
    return int.from_bytes(raw, "big")


def combine(algorithm: str, first: int, second: int, second_length: int) -> int:
    """The CRC of A||B from CRC(A), CRC(B) and len(B): no second pass over the bytes."""
    return ALGORITHMS[algorithm].combine(first, second, second_length)


class Crc:
    """A running CRC of the bytes given to :meth:`update`, in order."""

    __slots__ = ("_update", "algorithm", "length", "value")

    def __init__(self, algorithm: str, value: int = 0, length: int = 0) -> None:
        self.algorithm = algorithm
        self._update = ALGORITHMS[algorithm].update
        self.value = value
        self.length = length

    def update(self, data: bytes | memoryview) -> None:
        self.value = self._update(data, self.value)
        self.length += len(data)

    def extend(self, other: Crc) -> None:
        """Append the bytes ``other`` covered (which follow this one's)."""
        self.value = combine(self.algorithm, self.value, other.value, other.length)
        self.length += other.length

    @property
    def b64(self) -> str:
        return encode(self.algorithm, self.value)


def combine_parts(algorithm: str, parts: Sequence[tuple[str, int]]) -> str | None:
    """The base64 checksum of parts laid end to end, from each part's base64
    checksum and length, in order; None when one is not a checksum."""
    whole = Crc(algorithm)
    for text, length in parts:
        value = decode(algorithm, text)
        if value is None:
            return None
        whole.extend(Crc(algorithm, value, length))
    return whole.b64


def of(algorithm: str, data: bytes | memoryview) -> str:
    """The base64 checksum of ``data``."""
    return encode(algorithm, ALGORITHMS[algorithm].update(data, 0))


def full_object_checksum(headers: Mapping[str, str]) -> tuple[str, int] | None:
    """The whole-object checksum an answer carries, as (algorithm, value), or None.

    A COMPOSITE checksum (of the parts' checksums) is not one; neither is a
    malformed value."""
    kind = headers.get("x-amz-checksum-type")
    if kind is not None and kind.upper() != "FULL_OBJECT":
        return None
    for algorithm in ALGORITHMS:
        text = headers.get(header_name(algorithm))
        if text is not None:
            value = decode(algorithm, text)
            return None if value is None else (algorithm, value)
    return None


class Verifier:
    """Checks the bytes of one download as they are written: against the object's
    whole-object checksum when the answer carries one, else against an ETag that
    is the object's MD5. ``kind`` names the check (``TransferResult.verified``)."""

    __slots__ = ("_crc", "_expected", "_md5", "kind")

    def __init__(self, kind: str, expected: int | str) -> None:
        self.kind = kind
        self._expected = expected
        self._crc = Crc(kind) if kind in ALGORITHMS else None
        self._md5 = hashlib.md5(usedforsecurity=False) if kind == "md5" else None

    @classmethod
    def crc(cls, algorithm: str, expected: int) -> Verifier:
        return cls(algorithm, expected)

    @classmethod
    def md5(cls, expected_hex: str) -> Verifier:
        return cls("md5", expected_hex.lower())

    @property
    def inline(self) -> bool:
        """Cheap enough to run on the event loop (a CRC, ~10 GB/s), unlike MD5."""
        return self._crc is not None

    @property
    def expected(self) -> tuple[str, str]:
        """What is checked against, as (kind, text): base64 for a CRC, hex for MD5."""
        if isinstance(self._expected, int):
            return self.kind, encode(self.kind, self._expected)
        return self.kind, self._expected

    def update(self, data: bytes | memoryview) -> None:
        if self._crc is not None:
            self._crc.update(data)
        elif self._md5 is not None:
            self._md5.update(data)

    def mismatch(self) -> str | None:
        """None when the bytes seen match, else what does not."""
        if self._crc is not None:
            if self._crc.value == self._expected:
                return None
            return (
                f"{self.kind.upper()} of the downloaded bytes {self._crc.b64} does not match "
                f"the object's {self.expected[1]}"
            )
        assert self._md5 is not None
        actual = self._md5.hexdigest()
        if actual == self._expected:
            return None
        return f"MD5 of the downloaded bytes {actual} does not match the ETag {self._expected}"


def verifier_from(kind: str, text: str) -> Verifier | None:
    """A verifier from what a resumable download remembered (kind, base64 or hex)."""
    if kind in ALGORITHMS:
        value = decode(kind, text)
        return None if value is None else Verifier.crc(kind, value)
    if kind == "md5" and len(text) == 32:
        return Verifier.md5(text)
    return None
