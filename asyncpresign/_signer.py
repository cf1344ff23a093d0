"""The Signer: presigned GET, PUT and POST requests from an aiobotocore client.

Everything botocore raises is translated here, at the edge, into asyncpresign's
own exceptions.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import inspect
import os
import re
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import exceptions as boto_exc
from botocore import utils as botocore_utils

from ._checks import PageChecks, parse_range_spec
from ._checksums import ALGORITHMS, botocore_param, check_algorithm
from ._exceptions import (
    AsyncPresignError,
    CredentialLifetimeError,
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    NoCredentialsError,
    SigningError,
    TransferError,
    TransportError,
)
from ._models import OpenUpload, PresignedPost, PresignedRequest, SignFunction
from ._redact import install_log_redaction, redact_text
from ._sigv4 import BucketEndpoint, QuerySigner, SigningCredentials, s3_request_parts
from ._validation import (
    MAX_EXPIRES,
    MAX_KEY_BYTES,
    MIN_EXPIRES,
    check_bucket,
    check_key,
    check_new_bucket,
    expires_seconds,
    is_bucket_arn,
)

__all__ = ["AddressingStyle", "CredentialLifetimeWarning", "Signer"]

AddressingStyle = Literal["auto", "virtual", "path"]

# The headers botocore put on the request it signed, captured per call (a
# context variable, so concurrent signings in one loop do not mix them up).
_captured_headers: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "asyncpresign_captured_headers", default=None
)


def _capture_headers(request: Any, **_: Any) -> None:
    captured = _captured_headers.get()
    if captured is not None:
        captured.update(request.headers.items())


class CredentialLifetimeWarning(UserWarning):
    """The credentials used to sign expire before the URL does, which cuts its life short."""


_S3_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6})?Z"
)


def parse_timestamp(value: Any) -> dt.datetime:
    """botocore's ``parse_timestamp``, with S3's own form (``2026-11-30T18:50:00.000Z``,
    every ``LastModified`` of a listing) read by ``datetime.fromisoformat``.

    botocore parses each timestamp with dateutil: 0.13-0.2 ms of CPU per object
    listed here, a tenth of what a small download costs, paid by every
    ``download``, ``sync`` and ``copy`` of a prefix. ``fromisoformat`` takes ~1 µs.
    The result is the same instant, in ``datetime.timezone.utc`` (botocore's
    ``tzinfo`` for it depends on the machine's zone: ``tzlocal()`` where that is
    UTC, ``tzutc()`` elsewhere); any other form (an HTTP date, epoch seconds,
    one with an offset) goes to botocore."""
    if isinstance(value, str) and _S3_TIMESTAMP.fullmatch(value):
        with contextlib.suppress(ValueError):  # 2026-02-30, 24:00:00: botocore's to judge
            return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.timezone.utc)
    parsed: dt.datetime = botocore_utils.parse_timestamp(value)
    return parsed


class Signer:
    """Signs presigned S3 requests with SigV4, owning one aiobotocore client.

    Use it as an async context manager (or call :meth:`aclose`). With no keys
    it takes credentials from the standard AWS chain: environment variables,
    shared config and credential files (``profile``), container and instance
    roles. ``endpoint_url`` points it at any S3-compatible server.

    ``addressing_style="auto"`` means virtual-hosted URLs on the bucket's
    regional AWS endpoint (path style for bucket names with dots, which TLS
    cannot virtual-host) and botocore's choice on custom endpoints (path style
    for IP addresses and localhost).

    Signing is fast by default: GETs, PUTs and part uploads that use only
    common parameters are signed by asyncpresign's own SigV4 code (a few
    microseconds each, byte-identical to botocore), with the endpoint, region
    and credentials still taken from aiobotocore, credentials read afresh each
    time so rotation keeps working. Anything else (SSE-C, ACLs, other
    parameters) goes through botocore. ``fast_signing=False`` sends everything
    through botocore, e.g. when you register your own botocore event hooks.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        addressing_style: AddressingStyle = "auto",
        require_full_duration: bool = False,
        fast_signing: bool = True,
        checksum: str | None = "crc64nvme",
    ) -> None:
        if (access_key is None) != (secret_key is None):
            raise InvalidArgumentError("give both access_key and secret_key, or neither")
        if session_token is not None and access_key is None:
            raise InvalidArgumentError("session_token needs access_key and secret_key")
        if addressing_style not in ("auto", "virtual", "path"):
            raise InvalidArgumentError(
                f"addressing_style must be 'auto', 'virtual' or 'path', not {addressing_style!r}"
            )
        for name, value in (("access_key", access_key), ("secret_key", secret_key)):
            # An empty or non-str key fails deep in botocore or awscrt at the first
            # signature (AssertionError, RuntimeError); never show the value.
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidArgumentError(f"{name} must be a non-empty str")
        if session_token is not None and not isinstance(session_token, str):
            # (An empty one is no token, as botocore reads it.)
            raise InvalidArgumentError("session_token must be a str")
        if region is not None:
            _check_region(region)
        if endpoint_url is not None:
            _check_endpoint_url(endpoint_url)
        self.endpoint_url = endpoint_url
        #: The flexible checksum asked for: GETs are signed with ChecksumMode
        #: ENABLED (the object's checksum comes back with it), and multipart
        #: uploads are created for a whole-object checksum of this algorithm.
        #: "md5" or None: neither.
        self.checksum = check_algorithm(checksum)
        self.addressing_style: AddressingStyle = addressing_style
        self.require_full_duration = require_full_duration
        self.fast_signing = fast_signing
        self._targets: dict[str, tuple[BucketEndpoint, QuerySigner] | None] = {}
        self._query_signers: dict[str, QuerySigner] = {}
        self._frozen: tuple[tuple[str, str, str | None], SigningCredentials] | None = None
        self._clock: tuple[int, dt.datetime] = (0, _now())
        self._prepared: (
            tuple[tuple[object, ...], Callable[[str], str], dt.datetime, Mapping[str, str]] | None
        ) = None
        # AWS_REGION as the AWS CLI v2 and the other SDKs read it (botocore
        # reads only AWS_DEFAULT_REGION, which still applies when neither is set).
        self._region = region or os.environ.get("AWS_REGION") or None
        self._access_key = access_key
        self._secret_key = secret_key
        self._session_token = session_token
        self._profile = profile
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        # Never the keys: a repr ends up in logs and tracebacks.
        return (
            f"Signer(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"addressing_style={self.addressing_style!r})"
        )

    @property
    def region(self) -> str | None:
        if self._client is not None:
            return str(self._client.meta.region_name)
        return self._region

    @property
    def client(self) -> Any:
        """The underlying aiobotocore S3 client, for calls asyncpresign does not wrap."""
        if self._client is None:
            raise AsyncPresignError("the Signer is not open: use 'async with Signer(...)'")
        return self._client

    async def __aenter__(self) -> Signer:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        if self._client is not None:
            return
        install_log_redaction()
        style = self.addressing_style
        if style == "auto" and self.endpoint_url is None:
            # botocore's "auto" picks the legacy global endpoint, which redirects
            # (breaking signatures and CORS) and fails in newer regions; its
            # "virtual" picks the regional one and still falls back to path
            # style for names with dots.
            style = "virtual"
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": style},
            # botocore >= 1.36 adds CRC32 checksums that many S3-compatible
            # servers reject; ask for them only when an operation requires one.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 3, "mode": "standard"},
        )
        try:
            session = AioSession(profile=self._profile)
            session.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=parse_timestamp
            )
            stack = contextlib.AsyncExitStack()
            client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    region_name=self._region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self._access_key,
                    aws_secret_access_key=self._secret_key,
                    aws_session_token=self._session_token,
                    config=config,
                )
            )
        except boto_exc.ProfileNotFound as exc:
            raise NoCredentialsError(f"AWS profile {self._profile!r} not found") from exc
        except boto_exc.BotoCoreError as exc:
            raise SigningError(f"could not create the S3 client: {exc}") from exc
        client.meta.events.register("before-sign.s3", _capture_headers)
        self._client = client
        self._stack = stack

    async def aclose(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    # -- signing ---------------------------------------------------------------------------

    async def presign_get(
        self,
        bucket: str,
        key: str,
        *,
        expires_in: float | dt.timedelta = 3600,
        **options: Any,
    ) -> PresignedRequest:
        """Sign a GET of ``bucket/key``. ``options`` are ``get_object`` parameters
        such as ``ResponseContentDisposition``, ``Range`` or ``VersionId``.

        With a flexible ``checksum`` set on the Signer (the default), the GET is
        signed with ``ChecksumMode=ENABLED``, so the answer carries the object's
        checksum and the engine can check what it received. That is a header
        the client must send (it is in ``headers``): for a link a browser
        follows, which can send none, pass ``ChecksumMode=None``."""
        _check_options(options)
        if "ChecksumMode" in options:
            if options["ChecksumMode"] is None:
                options = {k: v for k, v in options.items() if k != "ChecksumMode"}
        elif self.checksum in ALGORITHMS:
            options["ChecksumMode"] = "ENABLED"
        return self._sign_now("get_object", "GET", bucket, key, expires_in, params=options) or (
            await self._presign(
                "get_object", "GET", bucket, key, expires_in=expires_in, params=options
            )
        )

    async def presign_put(
        self,
        bucket: str,
        key: str,
        *,
        expires_in: float | dt.timedelta = 3600,
        content_type: str | None = None,
        content_md5: str | None = None,
        checksum: tuple[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        **options: Any,
    ) -> PresignedRequest:
        """Sign a PUT of ``bucket/key``. The returned ``headers`` (Content-Type,
        Content-MD5, ``x-amz-checksum-*``, ``x-amz-meta-*`` …) must be sent
        exactly as given. ``checksum=("crc64nvme", <base64>)`` signs the body's
        checksum in: the server then refuses a body that does not match it.
        ``options`` are ``put_object`` parameters such as ``ServerSideEncryption``."""
        params = dict(options)
        for name, value in (
            ("ContentType", content_type),
            ("ContentMD5", content_md5),
            ("Metadata", metadata),
        ):
            if value is not None and name in params:
                raise InvalidArgumentError(
                    f"{name} is given twice, as a keyword argument and in the options; "
                    "give it once"
                )
        if content_type is not None:
            params["ContentType"] = content_type
        if content_md5 is not None:
            params["ContentMD5"] = content_md5
        if checksum is not None:
            # Checked first: in ``params[f(c)] = c[1]`` the value is read before
            # f runs, so a malformed tuple raised a bare IndexError.
            param = _checksum_param(checksum)
            params[param] = checksum[1]
        if metadata:
            _check_metadata(metadata)
            params["Metadata"] = dict(metadata)
        _check_options(params)
        return self._sign_now("put_object", "PUT", bucket, key, expires_in, params=params) or (
            await self._presign(
                "put_object", "PUT", bucket, key, expires_in=expires_in, params=params
            )
        )

    async def presign_post(
        self,
        bucket: str,
        key: str,
        *,
        expires_in: float | dt.timedelta = 3600,
        fields: Mapping[str, str] | None = None,
        conditions: Sequence[Any] | None = None,
        content_length_range: tuple[int, int] | None = None,
    ) -> PresignedPost:
        """Sign a browser-style POST upload.

        Every pre-filled field in ``fields`` is also added to the policy's
        conditions (boto3 leaves that to the caller, and a field without a
        condition makes S3 reject the upload). ``content_length_range=(min,
        max)`` bounds the size of the upload in bytes; the server enforces it.
        """
        check_bucket(bucket)
        check_key(key)  # its type first: a number has no endswith
        check_key(key.replace("${filename}", "f") if key.endswith("${filename}") else key)
        seconds = expires_seconds(expires_in)
        prefilled = dict(fields or {})
        for name, value in prefilled.items():
            # Form fields are text: a number signed into the policy made a
            # PresignedPost whose form (post_form) raised a bare AttributeError.
            if not isinstance(name, str) or not isinstance(value, str):
                raise InvalidArgumentError(
                    f"POST fields must be str names with str values: {name!r:.40} "
                    f"({type(name).__name__}) is given a {type(value).__name__}"
                )
            if name.lower() in _SIGNER_POST_FIELDS:
                # botocore sets these itself; given too, each became a second,
                # contradicting condition ({"key": "other"} beside {"key": key}),
                # and S3 refused every upload of the form.
                raise InvalidArgumentError(
                    f"{name!r} cannot be given in the fields: the signer sets it (the key "
                    "and bucket are arguments)"
                )
        if isinstance(conditions, (str, bytes, Mapping)) or not all(
            isinstance(condition, (Mapping, list, tuple)) for condition in conditions or []
        ):
            raise InvalidArgumentError(
                "conditions must be a list of conditions, each a {field: value} dict or an "
                '[operator, "$field", value] list'
            )
        all_conditions: list[Any] = list(conditions or [])
        for name, value in prefilled.items():
            if not _has_condition(all_conditions, name):
                all_conditions.append({name: value})
        if content_length_range is not None:
            low, high = _check_length_range(content_length_range)
            all_conditions.append(["content-length-range", low, high])
        self._check_credential_lifetime(seconds)
        signed_at = _now()
        with self._translate("sign a POST"):
            post = await self.client.generate_presigned_post(
                bucket, key, Fields=prefilled, Conditions=all_conditions, ExpiresIn=seconds
            )
        return PresignedPost(
            url=post["url"],
            fields=post["fields"],
            expires_at=_expiry(signed_at, seconds),
        )

    def sign_later(
        self,
        method: Literal["GET", "PUT"],
        bucket: str,
        key: str,
        *,
        expires_in: float | dt.timedelta = 3600,
        **options: Any,
    ) -> SignFunction:
        """A function that signs ``method bucket/key`` afresh each time it is awaited.

        Give it to a job (``Upload(None, path, sign=...)``) and the engine signs
        just before the transfer starts, and again when the URL expires, so
        long-running jobs never send a dead URL. For PUTs the engine may pass
        ``content_md5=`` (when the job asks for ``content_md5=True``),
        ``checksum=`` (a body's checksum) and, for a copy, ``metadata=``: the
        source's metadata as ``put_object`` parameters (``ContentType``,
        ``CacheControl`` … ``Metadata``), signed in beside ``options``, which
        win where both set one.
        The bucket, key and expiry are checked now, not at the first call.
        """
        check_bucket(bucket)
        check_key(key)
        expires_seconds(expires_in)
        if method not in ("GET", "PUT"):
            raise InvalidArgumentError(f"sign_later signs GET or PUT, not {method!r}")
        _check_options(options)
        _check_metadata(options.get("metadata"))

        async def sign(
            *,
            content_md5: str | None = None,
            checksum: tuple[str, str] | None = None,
            metadata: Mapping[str, Any] | None = None,
        ) -> PresignedRequest:
            if method == "GET":
                return await self.presign_get(bucket, key, expires_in=expires_in, **options)
            return await self.presign_put(
                bucket, key, expires_in=expires_in, content_md5=content_md5, checksum=checksum,
                **(_beside(metadata, options) if metadata else options),
            )

        sign.signs_checksums = True  # type: ignore[attr-defined]
        sign.signs_metadata = True  # type: ignore[attr-defined]
        sign.target = (bucket, key)  # type: ignore[attr-defined] # what a failure names
        return sign

    async def _presign(
        self,
        operation: str,
        method: Literal["GET", "PUT", "HEAD", "DELETE"],
        bucket: str,
        key: str,
        *,
        expires_in: float | dt.timedelta,
        params: Mapping[str, Any],
    ) -> PresignedRequest:
        check_bucket(bucket)
        check_key(key)
        seconds = expires_seconds(expires_in)
        self._check_credential_lifetime(seconds)
        if self.fast_signing:
            # Inlined rather than shared with presign_many: each coroutine layer
            # costs about half a microsecond, a tenth of a fast URL.
            target = self._targets.get(bucket, _UNKNOWN)
            if target is _UNKNOWN:
                target = await self._fast_target(bucket)
            credentials = self._static_credentials() or await self._signing_credentials()
            if target is not None and credentials is not None:
                fast = self._sign_fast(
                    operation, method, target, credentials, (key,), seconds=seconds,
                    params=params,
                )
                if fast is not None:
                    return fast[0]
        return await self._botocore_presign(
            operation, method, bucket, key, seconds=seconds, params=params
        )

    def _sign_now(
        self,
        operation: str,
        method: Literal["GET", "PUT"],
        bucket: str,
        key: str,
        expires_in: float | dt.timedelta,
        *,
        params: Mapping[str, Any],
    ) -> PresignedRequest | None:
        """The fast path with nothing to await: the bucket's endpoint already known
        and credentials that cannot change. None sends the caller the long way
        (:meth:`_presign`), which learns both. Bulk signing lives here, where a
        coroutine layer would cost a tenth of the URL."""
        if not self.fast_signing or self._client is None:
            return None
        target = self._targets.get(bucket)
        # Plain keys only: they never expire, so there is no lifetime to check.
        credentials = self._static_credentials()
        if target is None or credentials is None:
            return None
        check_bucket(bucket)
        # The checks inlined for the common case (a short ASCII key, whole
        # seconds); anything else takes the full checks and their messages.
        if not (type(key) is str and 0 < len(key) <= MAX_KEY_BYTES and key.isascii()):
            check_key(key)
        if type(expires_in) is int and MIN_EXPIRES <= expires_in <= MAX_EXPIRES:
            seconds = expires_in
        else:
            seconds = expires_seconds(expires_in)
        # The common bulk case: everything but the key is the same as the previous
        # call in this second (a plain GET or PUT, or one with the same few string
        # options, such as ChecksumMode), so reuse its prepared shape.
        options_key = _options_key(params)
        if options_key is None:
            signed = self._sign_fast(
                operation, method, target, credentials, (key,), seconds=seconds, params=params
            )
            return signed[0] if signed else None
        second = _current_second()
        shape = (operation, bucket, seconds, second, credentials, options_key)
        prepared = self._prepared
        if prepared is None or prepared[0] != shape:
            parts = _request_parts(operation, params)
            if parts is None:
                return None
            endpoint, query_signer = target
            sign_key = query_signer.prepare(
                method=method, endpoint=endpoint, credentials=credentials, expires=seconds,
                now=self._now_at(second), query=parts[1], headers=parts[2],
            )
            headers = (
                MappingProxyType(_display_headers(params, parts[2])) if params else _NO_HEADERS
            )
            prepared = self._prepared = (shape, sign_key, _expiry_at(second, seconds), headers)
        return PresignedRequest(
            method=method, url=prepared[1](key), headers=prepared[3], expires_at=prepared[2]
        )

    def _now_at(self, second: int) -> dt.datetime:
        """The signing time for ``second``, one datetime object per second."""
        if second != self._clock[0]:
            self._clock = (second, dt.datetime.fromtimestamp(second, dt.timezone.utc))
        return self._clock[1]

    async def _botocore_presign(
        self,
        operation: str,
        method: Literal["GET", "PUT", "HEAD", "DELETE"],
        bucket: str,
        key: str,
        *,
        seconds: int,
        params: Mapping[str, Any],
    ) -> PresignedRequest:
        captured: dict[str, str] = {}
        token = _captured_headers.set(captured)
        signed_at = _now()
        try:
            with self._translate(f"sign {method} {bucket}/{key}"):
                url = await self.client.generate_presigned_url(
                    operation,
                    # The arguments last: they are what was checked, whatever
                    # params say (the public methods refuse Bucket and Key there).
                    Params={**params, "Bucket": bucket, "Key": key},
                    ExpiresIn=seconds,
                    HttpMethod=method,
                )
        finally:
            _captured_headers.reset(token)
        return PresignedRequest(
            method=method,
            url=url,
            # Chosen as on the fast path, by one rule: see _display_headers.
            headers=_display_headers(params, _signed_headers(url, captured)),
            expires_at=_expiry(signed_at, seconds),
        )

    async def presign_many(
        self,
        method: Literal["GET", "PUT"],
        bucket: str,
        keys: Iterable[str],
        *,
        expires_in: float | dt.timedelta = 3600,
        **options: Any,
    ) -> list[PresignedRequest]:
        """Sign ``method`` for many keys of one bucket at once, in order.

        The keys share one timestamp, one signing-key derivation and one
        request shape, so on the fast path each URL costs about 2 µs.
        ``options`` apply to every key (e.g. ``ContentType`` for PUTs).
        """
        if method not in ("GET", "PUT"):
            raise InvalidArgumentError(f"presign_many signs GET or PUT, not {method!r}")
        _check_options(options)
        check_bucket(bucket)
        if isinstance(keys, (str, bytes)):
            # A str is an iterable of one-character keys: one URL per character.
            raise InvalidArgumentError(
                "keys must be an iterable of keys, not a single key: use presign_get or "
                "presign_put for one, or presign_many(..., [key])"
            )
        all_keys = list(keys)
        for key in all_keys:
            check_key(key)
        seconds = expires_seconds(expires_in)
        self._check_credential_lifetime(seconds)
        operation = "get_object" if method == "GET" else "put_object"
        if self.fast_signing and all_keys:
            fast = await self._fast_presign(
                operation, method, bucket, all_keys, seconds=seconds, params=options
            )
            if fast is not None:
                return fast
        return [
            await self._presign(
                operation, method, bucket, key, expires_in=seconds, params=options
            )
            for key in all_keys
        ]

    async def _fast_presign(
        self,
        operation: str,
        method: Literal["GET", "PUT", "HEAD", "DELETE"],
        bucket: str,
        keys: Sequence[str],
        *,
        seconds: int,
        params: Mapping[str, Any],
    ) -> list[PresignedRequest] | None:
        """Sign on asyncpresign's own SigV4 path, or None if this request needs botocore."""
        target = self._targets.get(bucket, _UNKNOWN)
        if target is _UNKNOWN:
            target = await self._fast_target(bucket)
        credentials = self._static_credentials() or await self._signing_credentials()
        if target is None or credentials is None:
            return None
        return self._sign_fast(
            operation, method, target, credentials, keys, seconds=seconds, params=params
        )

    def _sign_fast(
        self,
        operation: str,
        method: Literal["GET", "PUT", "HEAD", "DELETE"],
        target: tuple[BucketEndpoint, QuerySigner],
        credentials: SigningCredentials,
        keys: Sequence[str],
        *,
        seconds: int,
        params: Mapping[str, Any],
    ) -> list[PresignedRequest] | None:
        parts = _request_parts(operation, params)
        if parts is None:
            return None
        _, query, signed = parts
        endpoint, query_signer = target
        # Whole seconds, as in X-Amz-Date; one datetime per second lets the
        # signer reuse its per-second work (date strings, scope, key lookup).
        second = _current_second()
        now = self._now_at(second)
        headers = MappingProxyType(_display_headers(params, signed)) if params else _NO_HEADERS
        expires_at = _expiry_at(second, seconds)
        if len(keys) == 1:
            urls = [
                query_signer.presign(
                    method=method, endpoint=endpoint, key=keys[0], credentials=credentials,
                    expires=seconds, now=now, query=query, headers=signed,
                )
            ]
        else:
            urls = query_signer.presign_many(
                method=method, endpoint=endpoint, keys=keys, credentials=credentials,
                expires=seconds, now=now, query=query, headers=signed,
            )
        return [
            PresignedRequest(method=method, url=url, headers=headers, expires_at=expires_at)
            for url in urls
        ]

    async def _fast_target(self, bucket: str) -> tuple[BucketEndpoint, QuerySigner] | None:
        """Where ``bucket`` lives and who signs for its region, learnt once from botocore.

        botocore's endpoint rules (virtual host or path, dotted names over TLS,
        custom endpoints, FIPS, dual-stack) are not re-implemented: one URL it
        presigns for a probe key shows their answer, and its credential scope
        shows the signing region.
        """
        if bucket in self._targets:
            return self._targets[bucket]
        target: tuple[BucketEndpoint, QuerySigner] | None = None
        # botocore signs access point ARNs itself: it turns one into the access
        # point's host, region and signing service (Object Lambda, Outposts) by
        # rules the byte-for-byte comparison with botocore does not cover.
        if not is_bucket_arn(bucket):
            target = await self._probe_target(bucket)
        if len(self._targets) >= 4096:
            self._targets.clear()
        self._targets[bucket] = target
        return target

    async def _probe_target(self, bucket: str) -> tuple[BucketEndpoint, QuerySigner] | None:
        try:
            with self._translate(f"resolve the endpoint of {bucket}"):
                probe = await self.client.generate_presigned_url(
                    "get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY}, ExpiresIn=60
                )
            endpoint = BucketEndpoint.from_presigned_url(probe, _PROBE_KEY)
            scope = parse_qs(urlsplit(probe).query)["X-Amz-Credential"][0].split("/")
            region, service = scope[2], scope[3]
        except (AsyncPresignError, KeyError, IndexError):
            return None  # botocore signs this bucket itself
        query_signer = self._query_signers.get(region)
        if query_signer is None or query_signer.service != service:
            query_signer = self._query_signers[region] = QuerySigner(region, service)
        return (endpoint, query_signer)

    async def check_credentials(self) -> None:
        """Raise :class:`NoCredentialsError` now if the credential chain (keys,
        environment, profile, role, SSO) yields no credentials, instead of at
        the first signature: a bulk job then stops before its first transfer."""
        with self._translate("find AWS credentials"):
            credentials = self.client._request_signer._credentials
            frozen = None if credentials is None else credentials.get_frozen_credentials()
            if inspect.isawaitable(frozen):
                frozen = await frozen
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise NoCredentialsError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "choose a profile (AWS_PROFILE or --profile), or configure a role or SSO "
                "session in ~/.aws/config"
            )

    def _static_credentials(self) -> SigningCredentials | None:
        """The cached snapshot, when the credentials cannot change (plain keys,
        not a refreshable role or SSO session); None means ask afresh."""
        credentials = self.client._request_signer._credentials
        if self._frozen is None or hasattr(credentials, "_refresh"):
            return None
        snapshot = (credentials.access_key, credentials.secret_key, credentials.token)
        return self._frozen[1] if self._frozen[0] == snapshot else None

    async def _signing_credentials(self) -> SigningCredentials | None:
        """The credentials to sign with now: a fresh frozen snapshot, so refreshable
        credentials (roles, SSO) rotate as they would under botocore."""
        credentials = self.client._request_signer._credentials
        if credentials is None:
            return None
        frozen = credentials.get_frozen_credentials()
        if inspect.isawaitable(frozen):
            frozen = await frozen
        snapshot = (frozen.access_key, frozen.secret_key, frozen.token)
        if self._frozen is None or self._frozen[0] != snapshot:
            if not snapshot[0] or not snapshot[1]:
                return None
            self._frozen = (
                snapshot,
                SigningCredentials(
                    access_key=snapshot[0], secret_key=snapshot[1], token=snapshot[2]
                ),
            )
        return self._frozen[1]

    def _check_credential_lifetime(self, seconds: int) -> None:
        """Warn (or raise) when temporary credentials die before the URL would."""
        credentials = self.client._request_signer._credentials
        expiry = getattr(credentials, "_expiry_time", None)
        if credentials is None or expiry is None:
            return
        url_expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
        if expiry >= url_expiry:
            return
        message = (
            f"the signing credentials expire at {expiry.isoformat()}, before the URL's "
            f"{seconds} s would run out; the URL stops working when they do"
        )
        if self.require_full_duration:
            raise CredentialLifetimeError(message)
        warnings.warn(message, CredentialLifetimeWarning, stacklevel=4)

    # -- multipart uploads ----------------------------------------------------------------

    async def create_multipart_upload(self, bucket: str, key: str, **options: Any) -> str:
        """Start a multipart upload and return its UploadId. ``options`` are
        ``create_multipart_upload`` parameters (ContentType, Metadata, SSE …).
        With a flexible ``checksum`` on the Signer (the default), the upload is
        created for a whole-object (FULL_OBJECT) checksum of that algorithm,
        unless ``options`` say otherwise."""
        _check_options(options)
        check_bucket(bucket)
        check_key(key)
        if self.checksum in ALGORITHMS and "ChecksumAlgorithm" not in options:
            options = {
                **options,
                "ChecksumAlgorithm": str(self.checksum).upper(),
                "ChecksumType": "FULL_OBJECT",
            }
        with self._translate(f"start a multipart upload of {bucket}/{key}"):
            answer = await self.client.create_multipart_upload(Bucket=bucket, Key=key, **options)
        return str(answer["UploadId"])

    async def presign_upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires_in: float | dt.timedelta = 3600,
        content_md5: str | None = None,
        checksum: tuple[str, str] | None = None,
    ) -> PresignedRequest:
        """Sign a PUT of one part. Whoever holds it uploads the part, no credentials
        needed. ``checksum=(algorithm, base64)`` signs the part's checksum in."""
        if not isinstance(upload_id, str) or not upload_id:
            raise InvalidArgumentError("upload_id must be a non-empty str")
        if isinstance(part_number, bool) or not isinstance(part_number, int) or not (
            1 <= part_number <= 10_000
        ):
            raise InvalidArgumentError(f"part_number must be 1 to 10000, got {part_number!r}")
        params: dict[str, Any] = {"UploadId": upload_id, "PartNumber": part_number}
        if content_md5 is not None:
            params["ContentMD5"] = content_md5
        if checksum is not None:
            param = _checksum_param(checksum)  # before checksum[1]: see presign_put
            params[param] = checksum[1]
        return await self._presign(
            "upload_part", "PUT", bucket, key, expires_in=expires_in, params=params
        )

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        checksum: tuple[str, str] | None = None,
        part_checksums: Mapping[int, str] | None = None,
    ) -> str:
        """Finish an upload from its ``(part_number, etag)`` pairs; returns the object's ETag.

        ``checksum=(algorithm, base64)`` is the whole object's (FULL_OBJECT)
        checksum, which the server checks against the parts it holds;
        ``part_checksums`` are the parts' own, by part number."""
        etag, _ = await self.complete_checked(
            bucket, key, upload_id, parts, checksum=checksum, part_checksums=part_checksums
        )
        return etag

    async def complete_checked(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        checksum: tuple[str, str] | None = None,
        part_checksums: Mapping[int, str] | None = None,
    ) -> tuple[str, str | None]:
        """:meth:`complete_multipart_upload`, also returning the checksum the server
        says the object has (None when it says none): a server that ignores
        checksums accepts any, so only an echo shows one was checked."""
        ordered = sorted(parts)
        numbers = [n for n, _ in ordered]
        if not ordered or numbers != list(range(1, len(ordered) + 1)):
            raise InvalidArgumentError(
                f"parts must be numbered 1..N without gaps, got {numbers[:5]}"
                f"{'...' if len(numbers) > 5 else ''}"
            )
        extra: dict[str, Any] = {}
        listed: list[dict[str, Any]] = [{"PartNumber": n, "ETag": e} for n, e in ordered]
        if checksum is not None:
            param = _checksum_param(checksum)
            extra = {param: checksum[1], "ChecksumType": "FULL_OBJECT"}
            for part in listed:
                if part_checksums and part["PartNumber"] in part_checksums:
                    part[param] = part_checksums[part["PartNumber"]]
        with self._translate(f"complete the multipart upload of {bucket}/{key}"):
            answer = await self.client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": listed},
                **extra,
            )
        stored = answer.get(_checksum_param(checksum)) if checksum is not None else None
        if checksum is not None and stored is not None and stored != checksum[1]:
            raise IntegrityError(
                f"the server completed s3://{bucket}/{key} with {checksum[0].upper()} "
                f"{stored}, not the {checksum[1]} of the parts sent"
            )
        return str(answer.get("ETag", "")), stored

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abandon an upload so its parts stop being stored (and billed)."""
        with self._translate(f"abort the multipart upload of {bucket}/{key}"):
            await self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    async def count_parts(self, bucket: str, key: str, upload_id: str) -> int | None:
        """How many parts the upload ``upload_id`` of ``bucket/key`` holds, or None
        when it is not open: completed, aborted, or never started for that key."""
        check_bucket(bucket)
        check_key(key)
        count = 0
        try:
            with self._translate(f"list the parts of the multipart upload of {bucket}/{key}"):
                pages = self.client.get_paginator("list_parts").paginate(
                    Bucket=bucket, Key=key, UploadId=upload_id
                )
                async for page in pages:
                    count += len(page.get("Parts", []))
        except HTTPStatusError as exc:
            if exc.code == "NoSuchUpload":
                return None
            raise
        return count

    async def list_multipart_uploads(
        self,
        bucket: str,
        prefix: str = "",
        *,
        older_than: float | dt.timedelta | None = None,
        with_parts: bool = False,
    ) -> AsyncIterator[OpenUpload]:
        """The open multipart uploads of the keys under ``prefix``, page by page;
        with ``older_than`` (seconds or a timedelta), only those started longer
        ago than that. ``with_parts=True`` counts each one's parts (a request
        per upload) and leaves out any completed or aborted since it was listed.
        A listing that holds a key not under ``prefix`` (a server that ignores
        it), or one cut short or going round (truncated with no marker for the
        next page, or a marker given twice), is a :class:`TransferError` before
        any of that page is yielded: a run would say "all aborted" of part."""
        check_bucket(bucket)
        started_before = _started_before(older_than)
        where = f"s3://{bucket}/{prefix}"
        # The object listing's checks: --abort would abort an upload outside
        # the prefix, or say "all aborted" of part of them.
        checks = PageChecks(f"the listing of the multipart uploads of {where}", where,
                            prefix, "marker for the next page")
        with self._translate(f"list the multipart uploads of {where}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=bucket, Prefix=prefix
            )
            async for page in pages:
                items = page.get("Uploads", [])
                marker = (page.get("NextKeyMarker"), page.get("NextUploadIdMarker"))
                checks.check(bool(page.get("IsTruncated")), marker if any(marker) else None,
                             [item["Key"] for item in items])
                for item in items:
                    key, upload_id = item["Key"], item["UploadId"]
                    initiated = item["Initiated"].astimezone(dt.timezone.utc)
                    if started_before is not None and initiated >= started_before:
                        continue
                    parts = None
                    if with_parts:
                        parts = await self.count_parts(bucket, key, upload_id)
                        if parts is None:
                            continue
                    yield OpenUpload(
                        bucket=bucket, key=key, upload_id=upload_id, initiated=initiated,
                        parts=parts,
                    )

    async def abort_multipart_uploads(
        self, bucket: str, prefix: str = "", *, older_than: float | dt.timedelta | None = None
    ) -> list[tuple[OpenUpload, AsyncPresignError | None]]:
        """Abort the open multipart uploads of the keys under ``prefix`` (with
        ``older_than``, only those started longer ago than that). All are listed
        first, then aborted, ``_ABORTS_IN_FLIGHT`` at a time (a bucket left with
        thousands by a crashed job is cleaned in seconds, not minutes); each
        comes back, in listing order, with None when it was aborted, or with the
        error that kept it open (the others are still tried)."""
        uploads = [
            u async for u in self.list_multipart_uploads(bucket, prefix, older_than=older_than)
        ]
        errors: list[AsyncPresignError | None] = [None] * len(uploads)
        limit = anyio.CapacityLimiter(_ABORTS_IN_FLIGHT)

        async def abort(index: int, upload: OpenUpload) -> None:
            async with limit:
                try:
                    await self.abort_multipart_upload(bucket, upload.key, upload.upload_id)
                except AsyncPresignError as exc:
                    errors[index] = exc

        async with anyio.create_task_group() as group:
            for index, upload in enumerate(uploads):
                group.start_soon(abort, index, upload)
        return list(zip(uploads, errors, strict=True))

    # -- bucket management -----------------------------------------------------------------

    async def ensure_bucket(
        self, bucket: str, *, cors_origins: Sequence[str] | None = None
    ) -> bool:
        """Create ``bucket`` if it does not exist. Returns True if it was created.

        ``cors_origins`` (e.g. ``["https://app.example.com"]``) also sets the
        bucket's CORS rules so pages from those origins can upload with
        ``fetch``/XHR: GET, PUT, POST and HEAD, any request header (signed
        Content-Type, ``x-amz-meta-*``), ETag exposed. A plain HTML form POST
        needs no CORS.
        """
        created = await self._ensure_bucket(bucket)
        if cors_origins:
            origins = list(cors_origins)
            for origin in origins:
                if not isinstance(origin, str) or not origin.startswith(("http://", "https://")):
                    raise InvalidArgumentError(
                        f"CORS origin must be http(s)://host, not {origin!r}"
                    )
            rules = {
                "CORSRules": [
                    {
                        "AllowedOrigins": origins,
                        "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 3000,
                    }
                ]
            }
            with self._translate(f"set CORS rules on {bucket}"):
                await self.client.put_bucket_cors(Bucket=bucket, CORSConfiguration=rules)
        return created

    async def _ensure_bucket(self, bucket: str) -> bool:
        check_bucket(bucket)
        client = self.client
        try:
            await client.head_bucket(Bucket=bucket)
        except boto_exc.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404:
                raise _client_error(exc, f"check bucket {bucket}") from exc
        except boto_exc.BotoCoreError as exc:
            raise _botocore_error(exc, f"check bucket {bucket}") from exc
        else:
            return False
        # Signing accepts names S3 serves objects on but no longer lets anyone
        # create (legacy names, aliases, ARNs); creating one takes the strict rules.
        check_new_bucket(bucket)
        kwargs: dict[str, Any] = {"Bucket": bucket}
        region = self.region
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await client.create_bucket(**kwargs)
        except boto_exc.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                return False
            raise _client_error(exc, f"create bucket {bucket}") from exc
        except boto_exc.BotoCoreError as exc:
            raise _botocore_error(exc, f"create bucket {bucket}") from exc
        return True

    @contextlib.contextmanager
    def _translate(self, action: str) -> Any:
        try:
            yield
        except AsyncPresignError:
            raise
        except boto_exc.ClientError as exc:
            raise _client_error(exc, action) from exc
        except boto_exc.BotoCoreError as exc:
            raise _botocore_error(exc, action) from exc
        except (ValueError, KeyError, TypeError, OSError) as exc:
            # botocore's credential providers and endpoint rules raise plain
            # builtins for bad configuration; name the action, keep the cause.
            raise SigningError(f"could not {action}: {type(exc).__name__}: {exc}") from exc


def _check_region(region: object) -> None:
    """Refuse at construction a region botocore would refuse only when the
    client is made (a bare TypeError for a non-str)."""
    if not isinstance(region, str):
        raise InvalidArgumentError(f"region must be a str, not {type(region).__name__}")
    try:
        botocore_utils.validate_region_name(region)
    except boto_exc.InvalidRegionError:
        raise InvalidArgumentError(
            f"region {region!r} is not a region name (letters, digits and hyphens)"
        ) from None


def _check_endpoint_url(url: object) -> None:
    """Refuse at construction an endpoint no URL can be signed for.

    botocore takes some only to fail at the first signature (a query string, a
    port that is no number) or when the client is made (a space, a CR/LF: a
    bare ValueError). A user name or password would be copied into every URL
    signed, where nothing redacts it: refused, without echoing it."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"endpoint_url must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or too big
    except ValueError as exc:
        raise InvalidArgumentError(f"endpoint_url is not a valid URL: {exc}") from None
    if "@" in parts.netloc:
        raise InvalidArgumentError(
            "endpoint_url must not hold a user name or password: it would be copied into "
            "every URL signed; give the credentials as access_key and secret_key"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"endpoint_url is not an http(s) URL: {url!r}")
    if parts.query:
        raise InvalidArgumentError(
            f"endpoint_url must not have a query string (botocore cannot sign for it): {url!r}"
        )
    if not (
        botocore_utils.is_valid_endpoint_url(url)
        or botocore_utils.is_valid_ipv6_endpoint_url(url)
    ):
        raise InvalidArgumentError(f"endpoint_url is not a valid http(s) URL: {url!r}")


#: Aborts sent at once by abort_multipart_uploads (botocore's pool holds 10
#: connections by default; more in flight would only queue for one).
_ABORTS_IN_FLIGHT = 10

#: presign_put's keyword arguments for what are also put_object parameters.
_KEYWORDS = {"ContentType": "content_type", "Metadata": "metadata"}


def _beside(metadata: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with a copy's ``metadata`` parameters added, each one the
    options set already (by its parameter name or presign_put's keyword) left out."""
    merged = {
        name: value for name, value in metadata.items()
        if name not in options and _KEYWORDS.get(name) not in options
    }
    merged.update(options)
    return merged


#: The POST form fields the signer sets: given in ``fields`` they contradict it.
_SIGNER_POST_FIELDS = frozenset({
    "key", "bucket", "policy", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
    "x-amz-signature", "x-amz-security-token",
})


def _has_condition(conditions: Sequence[Any], name: str) -> bool:
    wanted = name.lower()
    for condition in conditions:
        if isinstance(condition, Mapping) and any(k.lower() == wanted for k in condition):
            return True
        if (
            isinstance(condition, (list, tuple))
            and len(condition) == 3
            and str(condition[1]).lower() == f"${wanted}"
        ):
            return True
    return False


def _check_length_range(value: tuple[int, int]) -> tuple[int, int]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise InvalidArgumentError("content_length_range must be a (min, max) pair") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        raise InvalidArgumentError("content_length_range bounds must be ints")
    if low < 0 or high < low:
        raise InvalidArgumentError(f"content_length_range {value!r} needs 0 <= min <= max")
    return low, high


#: botocore parameters whose presence in ``options`` needs a look before signing.
_GUARDED_OPTIONS = frozenset({"Bucket", "Key", "Metadata", "Range"})


def _check_options(options: Mapping[str, Any]) -> None:
    """Refuse options that would have something signed other than what was checked.

    The bucket and key are arguments, checked, and signed by the fast path;
    botocore signs ``Params``, where an option named Bucket or Key would
    replace them. Metadata names that differ only in case become one header
    that S3 receives with both values joined, which the client cannot send.
    """
    if _GUARDED_OPTIONS.isdisjoint(options):
        return
    for name in ("Bucket", "Key"):
        if name in options:
            what = name.lower()
            raise InvalidArgumentError(
                f"{name} cannot be given in the options: the {what} signed is the {what} "
                f"argument, the one that is checked; pass the {what} there instead"
            )
    _check_metadata(options.get("Metadata"))
    if "Range" in options:
        # One byte range, or a URL the engine could not download exactly.
        parse_range_spec(options["Range"])


def _check_metadata(metadata: object) -> None:
    """Refuse metadata that is not a mapping of str to str (botocore's handlers
    raise a bare AttributeError on a number), and names that differ only in
    case (see :func:`_check_options`)."""
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(
            f"metadata must be a mapping of str names to str values, not "
            f"{type(metadata).__name__}"
        )
    seen: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"metadata names must be str, not {type(name).__name__} ({name!r:.40})"
            )
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"metadata values must be str: {name!r:.40} is a {type(value).__name__}"
            )
        first = seen.setdefault(name.lower(), name)
        if first != name:
            raise InvalidArgumentError(
                f"metadata names {first!r} and {name!r} differ only in case: both are the "
                f"header x-amz-meta-{name.lower()}, which cannot carry two values a client "
                "can send as signed; keep one of them"
            )


def _options_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """``params`` as a hashable key when they are a few plain strings, else None."""
    if not params:
        return ()
    if len(params) > 4 or not all(type(v) is str for v in params.values()):
        return None
    return tuple(params.items())


def _checksum_param(checksum: object) -> str:
    """The botocore parameter that signs ``(algorithm, base64)``."""
    if (
        not isinstance(checksum, tuple)
        or len(checksum) != 2
        or not all(isinstance(part, str) for part in checksum)
        or checksum[0].lower() not in ALGORITHMS
    ):
        raise InvalidArgumentError(
            f"checksum must be (algorithm, base64) with an algorithm of {', '.join(ALGORITHMS)}"
        )
    return botocore_param(checksum[0].lower())


_PROBE_KEY = "asyncpresign-probe"
_UNKNOWN: Any = object()
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

#: botocore's header names for the parameters the fast path signs.
_HEADER_NAMES = {
    "ContentType": "Content-Type",
    "ContentMD5": "Content-MD5",
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _current_second() -> int:
    return int(time.time())


def _started_before(older_than: float | dt.timedelta | None) -> dt.datetime | None:
    """The moment an upload must have been started before to be ``older_than``."""
    if older_than is None:
        return None
    seconds = older_than.total_seconds() if isinstance(older_than, dt.timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise InvalidArgumentError(
            f"older_than must be a timedelta or a number of seconds >= 0, not {older_than!r}"
        )
    try:
        return _now() - dt.timedelta(seconds=seconds)
    except OverflowError:  # older than anything a server can have started
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _display_headers(params: Mapping[str, Any], signed: Mapping[str, str]) -> dict[str, str]:
    """The headers to hand the client: one rule for both signing paths.

    Those of the parameters the caller set, named as botocore names them, then
    every other signed header but ``host``. A parameter's header is handed out
    even when unsigned: botocore leaves a Content-Type of exactly its own form
    default out of the signature, yet S3 stores only the Content-Type it is sent.
    """
    headers = {
        name: str(params[param]) for param, name in _HEADER_NAMES.items() if param in params
    }
    for meta_key, value in (params.get("Metadata") or {}).items():
        headers[f"x-amz-meta-{meta_key}"] = str(value)
    # Anything signed that the table does not name keeps the signer's spelling.
    named = {k.lower() for k in headers}
    headers.update({k: v for k, v in signed.items() if k.lower() not in named})
    _check_sendable(headers)
    return headers


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Control characters but tab: no HTTP client sends them in a header value.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_sendable(headers: Mapping[str, str]) -> None:
    """Refuse to hand out headers no client can send as signed: a Content-Type
    or metadata value with CR/LF (a header injection in a client that does not
    refuse it), a metadata name with a colon or space. Both signing paths
    signed them, and the URL failed only when it was used."""
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidArgumentError(
                f"{name!r:.80} is not an HTTP header name (a metadata name must be letters, "
                "digits and !#$%&'*+-.^_`|~)"
            )
        if _UNSENDABLE.search(value):
            raise InvalidArgumentError(
                f"the value of header {name!r:.80} holds a control character (CR, LF, NUL ...), "
                "which no client can send as signed"
            )


@functools.lru_cache(maxsize=64)
def _expiry_at(second: int, seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(second + seconds, dt.timezone.utc)


def _expiry(signed_at: dt.datetime, seconds: int) -> dt.datetime:
    """When a URL signed at ``signed_at`` expires (cached: bulk signing asks for
    the same second over and over)."""
    return _expiry_at(int(signed_at.timestamp()), seconds)


@functools.lru_cache(maxsize=16)
def _plain_parts(operation: str) -> tuple[str, list[tuple[str, str]], dict[str, str]] | None:
    return s3_request_parts(operation, {})


def _request_parts(
    operation: str, params: Mapping[str, Any]
) -> tuple[str, list[tuple[str, str]], dict[str, str]] | None:
    return s3_request_parts(operation, params) if params else _plain_parts(operation)


def _signed_headers(url: str, captured: Mapping[str, str]) -> dict[str, str]:
    """The headers the client must send: those named in X-Amz-SignedHeaders, but Host."""
    query = parse_qs(urlsplit(url).query)
    names = query.get("X-Amz-SignedHeaders", [""])[0].split(";")
    by_lower = {k.lower(): (k, v) for k, v in captured.items()}
    headers: dict[str, str] = {}
    for name in names:
        if name and name != "host" and name in by_lower:
            original, value = by_lower[name]
            headers[original] = value
    return headers


def _client_error(exc: Any, action: str) -> AsyncPresignError:
    error = exc.response.get("Error", {})
    code = error.get("Code")
    message = error.get("Message")
    # What the server says may quote the request (its Authorization header's
    # signature, a SignatureProvided): its secrets go no further.
    code = redact_text(code) if code else code
    message = redact_text(message) if message else message
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == str(status):
        # An answer without a body (HEAD) has no S3 code: botocore puts the
        # status there, which would read "HTTP 403 403: Forbidden".
        code = None
    return HTTPStatusError(
        f"could not {action}: HTTP {status} {code or ''}{': ' + message if message else ''}",
        status=status,
        code=code,
        s3_message=message,
    )


def _botocore_error(exc: Exception, action: str) -> AsyncPresignError:
    if isinstance(exc, (boto_exc.NoCredentialsError, boto_exc.PartialCredentialsError)):
        return NoCredentialsError(
            f"could not {action}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, choose a profile, or pass access_key and secret_key)"
        )
    if isinstance(exc, boto_exc.ParamValidationError):
        return InvalidArgumentError(f"could not {action}: {exc}")
    if isinstance(exc, boto_exc.UnknownClientMethodError):
        return InvalidArgumentError(f"could not {action}: {exc}")
    if isinstance(exc, (boto_exc.EndpointConnectionError, boto_exc.ConnectionError)):
        return TransportError(f"could not {action}: {exc}")
    if isinstance(exc, boto_exc.PaginationError):
        # The server's listing repeats its continuation token: its answer is
        # at fault, not the signing.
        return TransferError(f"could not {action}: the server's listing is malformed: {exc}")
    return SigningError(f"could not {action}: {exc}")
