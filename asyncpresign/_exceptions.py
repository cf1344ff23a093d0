"""The exceptions asyncpresign raises, and nothing else.

Every error derives from :class:`AsyncPresignError` and also from the builtin
it is closest to, so callers who only know Python's own exceptions still catch
them sensibly::

    AsyncPresignError
    ├── InvalidArgumentError (ValueError)     bad bucket, key, expiry or setting
    │   └── CredentialLifetimeError           credentials expire before the URL
    ├── SigningError                          the signer could not sign
    │   └── NoCredentialsError                no credentials in the chain
    ├── LocalFileError (OSError)              a source or destination on disk
    │   └── SourceChangedError                a file changed while being uploaded
    ├── ListingOrderError (ValueError)        a sync's listing is not in key order
    └── TransferError                         a request that did not succeed
        ├── HTTPStatusError                   non-2xx answer, S3 error code parsed
        │   └── RequestExpiredError           the URL's expiry has passed
        ├── TransportError (ConnectionError)  connection refused, reset, dropped
        ├── TransferTimeoutError (TimeoutError)
        ├── IntegrityError (ValueError)       size, ETag or MD5 do not match
        └── MetadataError (ValueError)        a copy's source metadata cannot be carried

A :class:`TransferError` carries the request's URL with its signature redacted
and the number of attempts made. Errors from aiohttp and botocore are turned
into these at the edges (``_transport.py``, ``_signer.py``) and nowhere else.
"""

from __future__ import annotations

import errno as _errno
import sys
from typing import Any

__all__ = [
    "AsyncPresignError",
    "CredentialLifetimeError",
    "HTTPStatusError",
    "IntegrityError",
    "InvalidArgumentError",
    "ListingOrderError",
    "LocalFileError",
    "MetadataError",
    "NoCredentialsError",
    "RequestExpiredError",
    "SigningError",
    "SourceChangedError",
    "TransferError",
    "TransferTimeoutError",
    "TransportError",
]


class AsyncPresignError(Exception):
    """Root of every error asyncpresign raises."""


class InvalidArgumentError(AsyncPresignError, ValueError):
    """An argument or setting is out of range or malformed; nothing was sent."""


class CredentialLifetimeError(InvalidArgumentError):
    """Temporary credentials expire before the URL would, and the full lifetime was required."""


class SigningError(AsyncPresignError):
    """The signer could not produce a request (credentials, endpoint or S3 API failure)."""


class NoCredentialsError(SigningError):
    """No credentials were found in the arguments, the environment or the profile."""


_TRANSIENT_ERRNOS = frozenset({_errno.EMFILE, _errno.ENFILE})


class LocalFileError(AsyncPresignError, OSError):
    """A local source cannot be read or a destination cannot be written.

    ``errno`` is the operating system's error number, when there was one.
    ``transient`` is True for a shortage that passes (too many open files,
    EMFILE/ENFILE): such a failure is retried like a network error."""

    def __init__(self, message: str, path: str | None = None, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno

    @property
    def transient(self) -> bool:
        return self.errno in _TRANSIENT_ERRNOS

    def __str__(self) -> str:
        return str(self.args[0])


class SourceChangedError(LocalFileError):
    """An upload's source file changed (its size or modification time) between
    the start and the end of its upload: what was sent may mix two versions of
    it. The engine starts such an upload over once, then gives up."""


class ListingOrderError(AsyncPresignError, ValueError):
    """A listing that :func:`sync` merges came out of key order: ``key`` came
    after ``previous`` on the ``side`` ("source" or "destination").

    The merge pairs the two sides by walking both in the same order; a key out
    of order could make an object that exists look missing, and be deleted. So
    the sync stops there, before any deletion."""

    def __init__(self, side: str, previous: str, key: str) -> None:
        super().__init__(
            f"the {side} listing is not in key order: {key!r} came after {previous!r}; "
            "the sync stopped and deleted nothing (S3 lists keys in UTF-8 byte order, "
            "SeaweedFS folder by folder; a server that lists in any other order, or two "
            "servers that list in different orders, cannot be synced)"
        )
        self.side = side
        self.previous = previous
        self.key = key


#: A batch keeps every failed job's error, and an instance dict per error was a
#: third of what a kept failure cost (bench_memory.py): each concrete transfer
#: error keeps its fields in slots. (Not TransferError itself: slots there
#: would clash with the C layout of ConnectionError and TimeoutError.)
_TRANSFER_SLOTS = ("attempts", "message", "url")


class TransferError(AsyncPresignError):
    """A transfer did not succeed.

    ``url`` is the request's URL with its signature redacted; ``attempts`` is
    how many times the request was sent before giving up.
    """

    def __init__(self, message: str, *, url: str | None = None, attempts: int = 1) -> None:
        if len(message) < 256:
            # A run of failures repeats a few messages ("cannot connect: ...",
            # "HTTP 403 AccessDenied: ..."): one copy each for all kept errors.
            message = sys.intern(message)
        super().__init__(message)
        self.message = message
        self.url = url
        self.attempts = attempts

    def __str__(self) -> str:
        text = self.message
        if self.url:
            text = f"{text} ({self.url})"
        if self.attempts > 1:
            text = f"{text} after {self.attempts} attempts"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive pickling by default; jobs
        # cross process boundaries (Dask, multiprocessing), so keep them whole.
        return (_rebuild, (type(self), _state(self)))


def _state(error: TransferError) -> dict[str, Any]:
    """An error's attributes: its slots, and whatever was set beyond them."""
    state = {
        name: getattr(error, name)
        for cls in type(error).__mro__
        for name in getattr(cls, "__slots__", ())
        if hasattr(error, name)
    }
    state.update(error.__dict__)
    return state


def _rebuild(cls: type[TransferError], state: dict[str, Any]) -> TransferError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    for name, value in state.items():
        setattr(error, name, value)
    return error


class HTTPStatusError(TransferError):
    """The server answered with a status outside 2xx.

    ``code`` and ``s3_message`` are parsed from S3's XML error body when there
    is one (``SignatureDoesNotMatch``, ``AccessDenied``, ``NoSuchKey`` …).
    """

    __slots__ = (*_TRANSFER_SLOTS, "code", "retry_after", "s3_message", "status")

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        s3_message: str | None = None,
        retry_after: float | None = None,
        url: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, url=url, attempts=attempts)
        self.status = status
        self.code = code
        self.s3_message = s3_message
        self.retry_after = retry_after


class RequestExpiredError(HTTPStatusError):
    """The server rejected the request because its presigned URL has expired."""


class TransportError(TransferError, ConnectionError):
    """The connection failed: refused, reset, or closed before the body was complete.

    ``request_sent`` is False when the failure came before any byte of the
    request left (refused connection, TLS or proxy failure), so even a
    request that must not be sent twice can be sent again.
    """

    __slots__ = (*_TRANSFER_SLOTS, "request_sent", "retryable")

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        attempts: int = 1,
        request_sent: bool = True,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, url=url, attempts=attempts)
        self.request_sent = request_sent
        #: False when trying again cannot help (an untrusted TLS certificate).
        self.retryable = retryable


class TransferTimeoutError(TransferError, TimeoutError):
    """No progress within the configured timeout."""

    __slots__ = _TRANSFER_SLOTS


class IntegrityError(TransferError, ValueError):
    """What arrived does not match what was promised (size, ETag or MD5)."""

    __slots__ = _TRANSFER_SLOTS


class MetadataError(TransferError, ValueError):
    """A copy's source answered with metadata that cannot be carried to the
    destination as it is: a header value with a control character (CR, LF …)
    or a non-ASCII byte, or too long; an ``x-amz-meta-*`` name that is not an
    HTTP token, or given twice; more user metadata than S3's 2 KB; an
    ``Expires`` that is not an HTTP date. Nothing was sent to the destination,
    and it is not retried (the source would answer the same)."""

    __slots__ = _TRANSFER_SLOTS
