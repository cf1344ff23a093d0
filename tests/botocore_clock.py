"""Freezing botocore's clock and comparing presigned URLs as requests, not strings.

With awscrt importable, botocore signs s3v4 through its CRT signer
(``botocore.crt.auth``), which reads the clock through its own
``get_current_datetime`` and orders the query differently
(``X-Amz-SignedHeaders`` before ``X-Amz-Expires``). The signature is the same;
so tests freeze both clocks and compare what matters: scheme, host, path, the
query parameters as a multiset (the signature among them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from unittest import mock
from urllib.parse import parse_qsl, urlsplit


class frozen_botocore_clock:
    """botocore's signers (classic and CRT) read ``now`` (naive means UTC).
    Reusable: each ``with`` patches afresh."""

    def __init__(self, now: dt.datetime) -> None:
        aware = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
        self.naive = aware.astimezone(dt.timezone.utc).replace(tzinfo=None)
        self._stack: contextlib.ExitStack | None = None

    def _crt_now(self, remove_tzinfo: bool = True) -> dt.datetime:
        return self.naive if remove_tzinfo else self.naive.replace(tzinfo=dt.timezone.utc)

    def __enter__(self) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(
            mock.patch("botocore.auth.get_current_datetime", return_value=self.naive)
        )
        with contextlib.suppress(ImportError):
            import botocore.crt.auth  # noqa: F401 - present only with awscrt

            stack.enter_context(
                mock.patch("botocore.crt.auth.get_current_datetime", side_effect=self._crt_now)
            )
        self._stack = stack

    def __exit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


def request_of(url: str) -> tuple[str, str, str, list[tuple[str, str]]]:
    """A presigned URL as the request it stands for: its order of parameters aside."""
    parts = urlsplit(url)
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    return parts.scheme, parts.netloc, parts.path, query
