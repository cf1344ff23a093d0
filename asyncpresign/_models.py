"""The values that cross the public API: presigned requests, jobs and results."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Literal, TypeAlias

from ._exceptions import InvalidArgumentError
from ._redact import REDACTED, redact_fields, redact_headers, redact_url

if TYPE_CHECKING:
    from ._retry import RetryPolicy

__all__ = [
    "BatchResult",
    "Copy",
    "Download",
    "FilePart",
    "OpenUpload",
    "PresignedPost",
    "PresignedRequest",
    "ProgressEvent",
    "TransferResult",
    "Upload",
]

@dataclass(frozen=True, slots=True, kw_only=True)
class PresignedRequest:
    """A request anyone can send without credentials until ``expires_at``.

    ``headers`` must be sent exactly as given, or the signature does not hold.
    """

    method: Literal["GET", "PUT", "HEAD", "DELETE"]
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    expires_at: dt.datetime

    def __post_init__(self) -> None:
        # A read-only copy: a request is shared between tasks and must not drift.
        # (A read-only mapping already is one; batches share a single one.)
        if not isinstance(self.headers, MappingProxyType):
            object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def __repr__(self) -> str:
        return (
            f"PresignedRequest(method={self.method!r}, url={redact_url(self.url)!r}, "
            f"headers={redact_headers(self.headers)!r}, "
            f"expires_at={self.expires_at.isoformat()!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_request, (self.method, self.url, dict(self.headers), self.expires_at))


def _rebuild_request(
    method: Literal["GET", "PUT", "HEAD", "DELETE"],
    url: str,
    headers: dict[str, str],
    expires_at: dt.datetime,
) -> PresignedRequest:
    return PresignedRequest(method=method, url=url, headers=headers, expires_at=expires_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class PresignedPost:
    """A browser-style form upload: POST ``fields`` (in order) then the file to ``url``."""

    url: str
    fields: Mapping[str, str]
    expires_at: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def __repr__(self) -> str:
        return (
            f"PresignedPost(url={redact_url(self.url)!r}, fields={_shown_fields(self.fields)!r}, "
            f"expires_at={self.expires_at.isoformat()!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_post, (self.url, dict(self.fields), self.expires_at))


def _rebuild_post(url: str, fields: dict[str, str], expires_at: dt.datetime) -> PresignedPost:
    return PresignedPost(url=url, fields=fields, expires_at=expires_at)


#: Condition names whose values grant access, in a POST policy as in its fields.
_POLICY_SECRETS = frozenset({"x-amz-security-token", "x-amz-signature", "signature"})


def _shown_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The fields as a repr may show them: the signature and token redacted, and
    the policy decoded with its token redacted (in base64 it carries the session
    token to any log that shows the repr, past any redaction of plain text)."""
    shown = redact_fields(dict(fields))
    for name, value in shown.items():
        if name.lower() == "policy":
            shown[name] = _shown_policy(value)
    return shown


def _shown_policy(policy: str) -> str:
    """A POST policy decoded, its secrets redacted; REDACTED if it cannot be read,
    since what it holds then is unknown."""
    try:
        document = json.loads(base64.b64decode(policy, validate=True))
        return json.dumps(_redact_policy(document), separators=(",", ":"))
    except (binascii.Error, ValueError, TypeError, RecursionError):
        return REDACTED


def _redact_policy(node: object) -> object:
    """``node`` with the value of every secret condition replaced, in each form a
    condition takes: ``{"name": value}`` and ``[op, "$name", value]``."""
    if isinstance(node, dict):
        return {
            name: REDACTED if str(name).lower() in _POLICY_SECRETS else _redact_policy(value)
            for name, value in node.items()
        }
    if isinstance(node, list):
        if (
            len(node) == 3
            and isinstance(node[1], str)
            and node[1].lower().lstrip("$") in _POLICY_SECRETS
        ):
            return [node[0], node[1], REDACTED]
        return [_redact_policy(item) for item in node]
    return node


@dataclass(frozen=True, slots=True)
class FilePart:
    """``length`` bytes of the file at ``path`` from ``offset``, as an upload source:
    one part of a multipart upload, read from its place in the file.

    ``version``, the file's ``(size, st_mtime_ns, st_ctime_ns, st_ino)`` when its
    upload was planned, makes a read of any other version fail
    (:class:`SourceChangedError`): the parts of one object must all come from
    one version of the file."""

    path: str | os.PathLike[str]
    offset: int
    length: int
    version: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("offset", "length"):
            value = getattr(self, name)
            # A str was a bare TypeError from "<"; a bool passed as 0 or 1.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"FilePart {name} must be an int >= 0, got {value!r}")


Source: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | FilePart"
)
Destination: TypeAlias = "str | os.PathLike[str]"
RequestLike: TypeAlias = "PresignedRequest | str"
#: An async function that returns a freshly signed request each time it is
#: called with no arguments. For uploads that ask for ``content_md5=True`` it is
#: called with ``content_md5=<base64 MD5>`` and must sign that as the request's
#: Content-MD5 header. One with a true ``signs_checksums`` attribute is called
#: with ``checksum=(algorithm, base64)``, and one with ``signs_metadata`` with
#: ``metadata=`` (a copy's source metadata as ``put_object`` parameters), to
#: sign in. :meth:`Signer.sign_later` makes one.
SignFunction: TypeAlias = Callable[..., Awaitable[PresignedRequest]]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Bytes moved by one transfer since the last event.

    ``delta`` is negative when a failed attempt's bytes are taken back before a retry.
    """

    url: str
    delta: int
    transferred: int
    total: int | None


ProgressCallback = Callable[[ProgressEvent], "Awaitable[None] | None"]


@dataclass(frozen=True, slots=True)
class Upload:
    """A PUT job for :meth:`TransferEngine.run`: send ``source`` to ``request``.

    Give ``sign`` (an async function returning a fresh :class:`PresignedRequest`)
    instead of, or as well as, ``request`` to let the engine re-sign on expiry.
    """

    request: RequestLike | None
    source: Source
    _: KW_ONLY
    sign: SignFunction | None = None
    size: int | None = None
    content_md5: bool = False
    retry: RetryPolicy | None = None


@dataclass(frozen=True, slots=True)
class Download:
    """A GET job for :meth:`TransferEngine.run`: write ``request``'s body to ``dest``."""

    request: RequestLike | None
    dest: Destination
    _: KW_ONLY
    sign: SignFunction | None = None
    resume: bool = False
    verify: bool | None = None
    retry: RetryPolicy | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """A copy job for :meth:`TransferEngine.run`: stream ``source`` (a GET) into
    ``dest`` (a PUT) with no local file. The two may be different servers.
    With ``dest_sign``, the source's metadata is signed into the PUT unless
    ``keep_metadata=False`` (see :meth:`TransferEngine.copy`)."""

    source: RequestLike | None
    dest: RequestLike | None
    _: KW_ONLY
    source_sign: SignFunction | None = None
    dest_sign: SignFunction | None = None
    retry: RetryPolicy | None = None
    keep_metadata: bool = True


Job: TypeAlias = "Upload | Download | Copy"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenUpload:
    """A multipart upload started and neither completed nor aborted: the parts
    it holds are stored, and billed, until one of the two happens."""

    bucket: str
    key: str
    upload_id: str
    #: When it was started, in UTC.
    initiated: dt.datetime
    #: How many parts it holds; None when not counted (one more request per upload).
    parts: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferResult:
    """What one transfer did. In a batch, a failed job has ``error`` set and ``ok`` false."""

    url: str  # redacted
    nbytes: int = 0
    seconds: float = 0.0
    status: int | None = None
    etag: str | None = None
    attempts: int = 1
    error: BaseException | None = field(default=None, compare=False)
    index: int | None = None
    #: Which check the bytes passed: the object's checksum ("crc64nvme",
    #: "crc32c", "crc32"), its MD5 ("md5"), or None when none could run (the
    #: server gave no checksum and the ETag is not an MD5, or checks are off).
    verified: str | None = None
    #: A failed job's operation ("upload", "download", "copy") and local file
    #: (its upload source or download destination), to report or retry it by.
    op: str | None = None
    path: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """The outcome of :meth:`TransferEngine.run`.

    ``results`` holds every job's result in the order the jobs were given
    (empty when the run was asked not to keep them); ``failed`` always holds
    the failures, in order.
    """

    results: tuple[TransferResult, ...]
    failed: tuple[TransferResult, ...]
    total: int
    succeeded: int
    nbytes: int
    seconds: float
    #: Jobs a journal said were already done (counted in ``succeeded`` too).
    skipped: int = 0
    #: Symbolic links a folder walk found and left alone (``follow_symlinks=False``):
    #: not sent, and counted neither as done nor as failed.
    not_followed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed
