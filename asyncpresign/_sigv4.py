"""Sans-I/O SigV4 query-string signing ("presigned URLs") for S3.

The URLs are byte-identical to what botocore's ``generate_presigned_url``
returns for an S3 client with ``signature_version='s3v4'`` (``S3SigV4QueryAuth``),
given the same endpoint, key, parameters, credentials and clock. Endpoint
resolution stays botocore's job: :meth:`BucketEndpoint.from_presigned_url`
lifts scheme, host and path prefix out of one URL botocore presigned for a
probe key, and everything after that is string work here.

What botocore does, and so what this module reproduces:

* The key goes into the path UTF-8 percent-encoded with only ``/`` and ``~``
  (plus RFC 3986 unreserved characters) left alone. S3's canonical URI is the
  path exactly as sent: no dot-segment removal, no ``//`` collapsing and no
  second round of encoding.
* Operation parameters come first in the URL, in the caller's order, then the
  auth parameters in the fixed order Algorithm, Credential, Date, Expires,
  SignedHeaders, Security-Token, and finally Signature. The canonical query
  string sorts the already-encoded ``(name, value)`` pairs, so uppercase
  ``X-Amz-*`` sorts before lowercase S3 parameters.
* Query names and values, the credential and the session token are encoded
  with ``-_.~`` safe, so ``/ + = ;`` and space become ``%2F %2B %3D %3B %20``.
  An empty session token is left out, as botocore's CRT signer leaves it out.
* Signed headers are ``host`` plus every request header outside botocore's
  blacklist (``user-agent``, ``expect``, ``transfer-encoding`` ...), lowercased.
  Values are trimmed and their runs of ASCII whitespace (space, tab, CR, LF,
  VT, FF) collapsed to one space, as botocore's CRT signer does (its
  pure-Python signer also ate Unicode whitespace such as ``\\x1c`` or
  ``\\x85``). Repeated header names are joined with ``,``.
* ``host`` is the URL's hostname lowercased, with the port only if it is not
  the scheme's default; the URL itself keeps the host as botocore wrote it.
* Quirk: a ``Content-Type`` of exactly
  ``application/x-www-form-urlencoded; charset=utf-8`` is not signed, because
  botocore assumes it added that value itself.
* The payload hash is always ``UNSIGNED-PAYLOAD``.
* A timestamp header (``Expires``) given as a datetime is sent in whole
  seconds as an RFC 822 date in GMT, a naive datetime read as UTC.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

from ._exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = [
    "BucketEndpoint",
    "QuerySigner",
    "SigningCredentials",
    "s3_request_parts",
]

_ALGORITHM: Final = "AWS4-HMAC-SHA256"
_UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
_MAX_EXPIRES: Final = 604800  # SigV4 presigned URLs cannot outlive seven days
# botocore.auth.SIGNED_HEADERS_BLACKLIST: hop-by-hop and tracing headers that
# proxies may rewrite, so signing them would break the signature in transit.
_UNSIGNED_HEADERS: Final = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
# SigV4QueryAuth drops this exact value (case-sensitive, untrimmed) because it
# is what botocore sets on form-encoded bodies by itself.
_FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=utf-8"
_AUTH_PARAM_NAMES: Final = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    }
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_EPOCH: Final = datetime.datetime(1970, 1, 1)
_EPOCH_UTC: Final = _EPOCH.replace(tzinfo=datetime.timezone.utc)
_SECOND: Final = datetime.timedelta(seconds=1)
# Bytes urllib.parse.quote(..., safe="/~") leaves alone. A key made only of
# these is its own encoding, which lets the common case skip quote() entirely.
_PATH_SAFE_BYTES: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/"
# What quote(raw, safe="/~") does, as a str.translate table over the bytes
# decoded as Latin-1 (one code point per byte): about 2.5x faster than quote()
# for keys that need escaping.
_PATH_QUOTE_TABLE: Final = [chr(b) if b in _PATH_SAFE_BYTES else f"%{b:02X}" for b in range(256)]
_QUERY_SAFE: Final = "-_.~"  # botocore.utils.SAFE_CHARS
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name
_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))
_SHA256_BLOCK: Final = 64
# Caches are cleared rather than trimmed when full: clear() is atomic under the
# GIL, so concurrent signers never see a half-evicted dict.
_MAX_KEYS: Final = 16
_MAX_PLANS: Final = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningCredentials:
    """The access key, secret and optional session token a URL is signed with."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.access_key, str) or not self.access_key:
            raise InvalidArgumentError("access_key must be a non-empty string")
        if not isinstance(self.secret_key, str) or not self.secret_key:
            raise InvalidArgumentError("secret_key must be a non-empty string")
        if self.token is not None and not isinstance(self.token, str):
            raise InvalidArgumentError("token must be a string or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketEndpoint:
    """Where a bucket's objects live, as botocore resolved it.

    ``scheme`` and ``host`` (with a port if any, spelled as in botocore's URL)
    plus the path before the key: ``''`` for virtual-hosted buckets and
    ``'/bucket'`` (after any endpoint path) for path style.
    """

    scheme: str
    host: str
    path_prefix: str

    def __post_init__(self) -> None:
        if self.scheme not in _DEFAULT_PORTS:
            raise InvalidArgumentError(f"unsupported URL scheme {self.scheme!r}")
        if not self.host or any(c in self.host for c in "/?# \t\r\n"):
            raise InvalidArgumentError(f"invalid endpoint host {self.host!r}")
        prefix = self.path_prefix
        if (prefix and not prefix.startswith("/")) or any(c in prefix for c in "?# \t\r\n"):
            raise InvalidArgumentError(f"invalid endpoint path prefix {prefix!r}")

    @classmethod
    def from_presigned_url(cls, url: str, probe_key: str) -> BucketEndpoint:
        """Derive the endpoint from a URL botocore presigned for ``probe_key``.

        botocore's endpoint rules (virtual host vs path style, dotted buckets
        over https, custom endpoints, FIPS/dual-stack ...) are far too involved
        to re-implement; one presigned probe captures their answer exactly.
        """
        if not probe_key:
            raise InvalidArgumentError("probe_key must be non-empty")
        parts = urlsplit(url)
        encoded_key = "/" + quote(probe_key, safe="/~")
        if not parts.netloc or not parts.path.endswith(encoded_key):
            raise InvalidArgumentError(f"URL path does not end with the probe key {probe_key!r}")
        return cls(
            scheme=parts.scheme,
            host=parts.netloc,
            path_prefix=parts.path[: -len(encoded_key)],
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about one request shape except the key."""

    url_head: str  # scheme://host/prefix/
    url_tail: str  # ?query...&X-Amz-Signature=
    canonical_head: HASH  # SHA-256 state fed "METHOD\n/prefix/"
    canonical_tail: bytes  # "\ncanonical query\nheaders\n\nsigned\nUNSIGNED-PAYLOAD"
    sts_inner: HASH  # HMAC inner state fed the string-to-sign up to the hash
    outer: HASH  # HMAC outer state


@dataclass(frozen=True, slots=True)
class _KeyState:
    signing_key: bytes
    inner: HASH
    outer: HASH


class QuerySigner:
    """SigV4 query-string presigning for one region and service.

    The signing key is derived once per (secret, day) and kept as
    pre-keyed HMAC states; everything that does not depend on the object key
    (URL halves, canonical query, canonical headers, string-to-sign prefix) is
    built once per request shape. A URL then costs two SHA-256 passes, a few
    hash-state copies and one string concatenation.

    Safe to share between threads: the caches only ever hold immutable values
    and are replaced or cleared atomically.
    """

    __slots__ = ("_keys", "_last_now", "_last_plan", "_plans", "_region", "_scope_tail", "_service")

    def __init__(self, region: str, service: str = "s3") -> None:
        for name, value in (("region", region), ("service", service)):
            if not isinstance(value, str) or not value or any(c in value for c in "/ \t\r\n"):
                raise InvalidArgumentError(f"invalid {name} {value!r}")
        self._region = region
        self._service = service
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._keys: dict[tuple[str, str], _KeyState] = {}
        self._plans: dict[tuple[object, ...], _Plan] = {}
        self._last_plan: tuple[tuple[object, ...], _Plan] | None = None
        self._last_now: tuple[datetime.datetime, int, str] | None = None

    def __repr__(self) -> str:
        return f"QuerySigner(region={self._region!r}, service={self._service!r})"

    @property
    def region(self) -> str:
        return self._region

    @property
    def service(self) -> str:
        return self._service

    def signing_key(self, secret_key: str, date_stamp: str) -> bytes:
        """The SigV4 signing key for ``date_stamp`` (``YYYYMMDD``), cached per (secret, day)."""
        return self._key_state(secret_key, date_stamp).signing_key

    def presign(
        self,
        *,
        method: str,
        endpoint: BucketEndpoint,
        key: str,
        credentials: SigningCredentials,
        expires: int,
        now: datetime.datetime,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """The presigned URL for ``key``, exactly as botocore would build it.

        ``query`` holds extra S3 parameters by wire name; they appear in the URL
        in the given order (botocore keeps its ``Params`` order) while the
        signature does not depend on the order. ``headers`` are the headers the
        client will send besides ``host``: they are signed, not put in the URL.
        ``now`` is the signing time; a naive value is read as UTC, as botocore
        does. ``expires`` is in seconds, 1 to 604800 (S3's seven-day limit).
        """
        plan = self._plan(
            method=method,
            endpoint=endpoint,
            credentials=credentials,
            expires=expires,
            now=now,
            query=query,
            headers=headers,
        )
        return _sign_key(plan, key)

    def presign_many(
        self,
        *,
        method: str,
        endpoint: BucketEndpoint,
        keys: Iterable[str],
        credentials: SigningCredentials,
        expires: int,
        now: datetime.datetime,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Presign many keys sharing one timestamp and request shape, in order."""
        plan = self._plan(
            method=method,
            endpoint=endpoint,
            credentials=credentials,
            expires=expires,
            now=now,
            query=query,
            headers=headers,
        )
        # Hoisted into locals: attribute lookups are a measurable share of a
        # ~2 µs iteration.
        url_head = plan.url_head
        url_tail = plan.url_tail
        canonical_head = plan.canonical_head
        canonical_tail = plan.canonical_tail
        sts_inner = plan.sts_inner
        outer_base = plan.outer
        safe = _PATH_SAFE_BYTES
        table = _PATH_QUOTE_TABLE
        urls: list[str] = []
        append = urls.append
        for key in keys:
            if type(key) is not str or not key:
                raise InvalidArgumentError(f"key must be a non-empty string, got {key!r}")
            try:
                raw = key.encode()
            except UnicodeEncodeError:
                raise InvalidArgumentError(f"key is not encodable as UTF-8: {key!r}") from None
            if raw.rstrip(safe):
                quoted = raw.decode("latin-1").translate(table)
                raw = quoted.encode()
            else:
                quoted = key
            canonical = canonical_head.copy()
            canonical.update(raw)
            canonical.update(canonical_tail)
            inner = sts_inner.copy()
            inner.update(canonical.hexdigest().encode())
            outer = outer_base.copy()
            outer.update(inner.digest())
            append(url_head + quoted + url_tail + outer.hexdigest())
        return urls

    def prepare(
        self,
        *,
        method: str,
        endpoint: BucketEndpoint,
        credentials: SigningCredentials,
        expires: int,
        now: datetime.datetime,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Callable[[str], str]:
        """A function that presigns one key with everything else fixed.

        What :meth:`presign` does per call, minus finding the request shape:
        for callers that sign many keys one at a time (within the same second,
        since ``now`` is fixed in the result).
        """
        plan = self._plan(
            method=method,
            endpoint=endpoint,
            credentials=credentials,
            expires=expires,
            now=now,
            query=query,
            headers=headers,
        )
        return functools.partial(_sign_key, plan)

    # -- internals ---------------------------------------------------------

    def _amz_date(self, now: datetime.datetime) -> str:
        """``YYYYMMDDTHHMMSSZ`` for ``now``; naive values are taken as UTC like botocore's clock."""
        last = self._last_now
        if last is not None and last[0] == now:
            return last[2]
        if not isinstance(now, datetime.datetime):
            raise InvalidArgumentError(f"now must be a datetime, got {type(now).__name__}")
        # Whole seconds since the epoch are a cheap cache key for callers that
        # pass a fresh clock reading per URL; formatting costs ~1 µs. Flooring
        # matches strftime, which drops the microseconds.
        try:
            seconds = (now - (_EPOCH if now.tzinfo is None else _EPOCH_UTC)) // _SECOND
        except TypeError:  # a tzinfo whose utcoffset() is None still means naive
            seconds = (now.replace(tzinfo=None) - _EPOCH) // _SECOND
        if last is not None and last[1] == seconds:
            stamp = last[2]
        else:
            utc = _EPOCH + datetime.timedelta(seconds=seconds)
            stamp = (
                f"{utc.year:04d}{utc.month:02d}{utc.day:02d}"
                f"T{utc.hour:02d}{utc.minute:02d}{utc.second:02d}Z"
            )
        # One tuple, swapped in whole, so a concurrent reader never pairs one
        # call's datetime with another call's stamp.
        self._last_now = (now, seconds, stamp)
        return stamp

    def _key_state(self, secret_key: str, date_stamp: str) -> _KeyState:
        cache_key = (secret_key, date_stamp)
        state = self._keys.get(cache_key)
        if state is None:
            k_date = hmac.digest(f"AWS4{secret_key}".encode(), date_stamp.encode(), "sha256")
            k_region = hmac.digest(k_date, self._region.encode(), "sha256")
            k_service = hmac.digest(k_region, self._service.encode(), "sha256")
            signing_key = hmac.digest(k_service, b"aws4_request", "sha256")
            # HMAC by hand from two pre-keyed SHA-256 states: copying a state
            # is far cheaper than hmac.new() or hmac.HMAC.copy() per URL.
            block = signing_key.ljust(_SHA256_BLOCK, b"\0")
            state = _KeyState(
                signing_key,
                hashlib.sha256(block.translate(_IPAD)),
                hashlib.sha256(block.translate(_OPAD)),
            )
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            self._keys[cache_key] = state
        return state

    def _plan(
        self,
        *,
        method: str,
        endpoint: BucketEndpoint,
        credentials: SigningCredentials,
        expires: int,
        now: datetime.datetime,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str] | None,
    ) -> _Plan:
        if type(expires) is not int or not 1 <= expires <= _MAX_EXPIRES:
            raise InvalidArgumentError(
                f"expires must be an int between 1 and {_MAX_EXPIRES} seconds, got {expires!r}"
            )
        amz_date = self._amz_date(now)
        query_key = query if type(query) is tuple else tuple(query)
        headers_key = tuple(headers.items()) if headers else ()
        cache_key = (method, endpoint, credentials, expires, amz_date, query_key, headers_key)
        # Comparing against the previous call first mostly hits on identity
        # and so skips hashing the two dataclasses.
        last = self._last_plan
        if last is not None and last[0] == cache_key:
            return last[1]
        try:
            plan = self._plans.get(cache_key)
        except TypeError:  # unhashable, so not the (str, str) pairs promised
            raise InvalidArgumentError("query and headers must hold strings") from None
        if plan is None:
            plan = self._build_plan(
                method=method,
                endpoint=endpoint,
                credentials=credentials,
                expires=expires,
                amz_date=amz_date,
                query=query_key,
                headers=headers,
            )
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[cache_key] = plan
        self._last_plan = (cache_key, plan)
        return plan

    def _build_plan(
        self,
        *,
        method: str,
        endpoint: BucketEndpoint,
        credentials: SigningCredentials,
        expires: int,
        amz_date: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str] | None,
    ) -> _Plan:
        if not isinstance(method, str) or not _TOKEN_RE.fullmatch(method):
            raise InvalidArgumentError(f"invalid HTTP method {method!r}")
        if not isinstance(endpoint, BucketEndpoint):
            raise InvalidArgumentError("endpoint must be a BucketEndpoint")
        if not isinstance(credentials, SigningCredentials):
            raise InvalidArgumentError("credentials must be SigningCredentials")
        date_stamp = amz_date[:8]
        scope = date_stamp + self._scope_tail
        canonical_headers, signed_headers = _canonical_headers(
            _signing_host(endpoint.scheme, endpoint.host), headers
        )

        operation_pairs = _encode_query(query)
        auth = [
            ("X-Amz-Algorithm", _ALGORITHM),
            ("X-Amz-Credential", f"{credentials.access_key}/{scope}"),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", signed_headers),
        ]
        # botocore signs s3v4 through awscrt (a dependency), which leaves an
        # empty token out; botocore's pure-Python signer would send it empty.
        if credentials.token:
            auth.append(("X-Amz-Security-Token", credentials.token))
        pairs = operation_pairs + [(name, _quote_query(value)) for name, value in auth]
        url_query = "&".join(f"{name}={value}" for name, value in pairs)
        canonical_query = "&".join(f"{name}={value}" for name, value in sorted(pairs))

        prefix = endpoint.path_prefix
        key_state = self._key_state(credentials.secret_key, date_stamp)
        sts_inner = key_state.inner.copy()
        sts_inner.update(f"{_ALGORITHM}\n{amz_date}\n{scope}\n".encode())
        return _Plan(
            url_head=f"{endpoint.scheme}://{endpoint.host}{prefix}/",
            url_tail=f"?{url_query}&X-Amz-Signature=",
            canonical_head=hashlib.sha256(f"{method.upper()}\n{prefix}/".encode()),
            canonical_tail=(
                f"\n{canonical_query}\n{canonical_headers}\n\n{signed_headers}\n{_UNSIGNED_PAYLOAD}"
            ).encode(),
            sts_inner=sts_inner,
            outer=key_state.outer,
        )


def _sign_key(plan: _Plan, key: str) -> str:
    quoted, raw = _quote_key(key)
    canonical = plan.canonical_head.copy()
    canonical.update(raw)
    canonical.update(plan.canonical_tail)
    inner = plan.sts_inner.copy()
    inner.update(canonical.hexdigest().encode())
    outer = plan.outer.copy()
    outer.update(inner.digest())
    return plan.url_head + quoted + plan.url_tail + outer.hexdigest()


def _quote_key(key: str) -> tuple[str, bytes]:
    """The key as it appears in the path, as text and as UTF-8 bytes."""
    if type(key) is not str or not key:
        raise InvalidArgumentError(f"key must be a non-empty string, got {key!r}")
    try:
        raw = key.encode()
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"key is not encodable as UTF-8: {key!r}") from None
    # Same test urllib.parse.quote_from_bytes uses for its own fast path.
    if not raw.rstrip(_PATH_SAFE_BYTES):
        return key, raw
    # botocore: percent_encode(key, safe="/~"), i.e. quote() of the UTF-8 bytes.
    quoted = raw.decode("latin-1").translate(_PATH_QUOTE_TABLE)
    return quoted, quoted.encode()


@functools.lru_cache(maxsize=1024)
def _quote_query(text: str) -> str:
    # Cached: a request shape signed once (a copy's metadata makes one per
    # object) quotes the same auth values as the last (scope, date, names).
    try:
        return quote(text, safe=_QUERY_SAFE)
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"not encodable as UTF-8: {text!r}") from None


def _encode_query(query: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in query:
        name, value = item
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise InvalidArgumentError(f"query items must be (name, value) strings, got {item!r}")
        # botocore folds parameters into a dict, so a repeated name would
        # silently lose a value; an auth name would be signed twice.
        if name in seen or name in _AUTH_PARAM_NAMES:
            raise InvalidArgumentError(f"query parameter {name!r} is repeated or reserved")
        seen.add(name)
        pairs.append((_quote_query(name), _quote_query(value)))
    return pairs


def _signing_host(scheme: str, host: str) -> str:
    """The ``host`` header botocore signs (``botocore.auth._host_from_url``)."""
    parts = urlsplit(f"{scheme}://{host}/")
    hostname = parts.hostname  # lowercased, userinfo and IPv6 brackets removed
    try:
        port = parts.port
    except ValueError:
        raise InvalidArgumentError(f"invalid port in endpoint host {host!r}") from None
    if not hostname:
        raise InvalidArgumentError(f"invalid endpoint host {host!r}")
    if ":" in hostname:
        hostname = f"[{hostname}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{hostname}:{port}"
    return hostname


_ASCII_WHITESPACE: Final = re.compile(r"[ \t\n\r\x0b\x0c]+")


def _trimall(value: str) -> str:
    return _ASCII_WHITESPACE.sub(" ", value).strip(" ")


def _canonical_headers(host: str, headers: Mapping[str, str] | None) -> tuple[str, str]:
    """Canonical header block and SignedHeaders value, as botocore builds them."""
    grouped: dict[str, list[str]] = {"host": [host]}
    if headers:
        items = list(headers.items())
        first_content_type = next(
            (value for name, value in items if str(name).lower() == "content-type"), None
        )
        # botocore deletes every content-type header when the first one is its
        # own form default (HTTPHeaders.get returns the first, del removes all).
        drop_content_type = first_content_type == _FORM_CONTENT_TYPE
        for name, value in items:
            if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
                raise InvalidArgumentError(f"invalid header name {name!r}")
            if not isinstance(value, str):
                raise InvalidArgumentError(f"header {name!r} must have a string value")
            lname = name.lower()
            if lname == "host":
                raise InvalidArgumentError("the host header comes from the endpoint")
            if lname in _UNSIGNED_HEADERS or (drop_content_type and lname == "content-type"):
                continue
            grouped.setdefault(lname, []).append(value)
    names = sorted(grouped)
    # The CRT signer's "trimall": ASCII whitespace only (str.split() would
    # also eat Unicode whitespace, as botocore's pure-Python signer did).
    block = "\n".join(
        f"{name}:{','.join(_trimall(value) for value in grouped[name])}" for name in names
    )
    return block, ";".join(names)


# -- botocore operation parameters -> wire request parts ----------------------

_QUERY: Final = "query"
_HEADER: Final = "header"
_STRING: Final = "string"
_PART_NUMBER: Final = "part-number"
_METADATA: Final = "metadata"
_TIMESTAMP: Final = "timestamp"
_MAX_PART_NUMBER: Final = 10000
_METADATA_PREFIX: Final = "x-amz-meta-"

# (location, wire name, kind) per botocore parameter, from the S3 service
# model. Anything absent here makes s3_request_parts give up so the caller
# falls back to botocore, which then also reports invalid input its own way.
#: A body's flexible checksum, signed as a header (botocore adds nothing else
#: to a presigned URL for it: no x-amz-sdk-checksum-algorithm).
_CHECKSUM_HEADERS: Final[Mapping[str, tuple[str, str, str]]] = {
    "ChecksumCRC64NVME": (_HEADER, "x-amz-checksum-crc64nvme", _STRING),
    "ChecksumCRC32C": (_HEADER, "x-amz-checksum-crc32c", _STRING),
    "ChecksumCRC32": (_HEADER, "x-amz-checksum-crc32", _STRING),
}

_OPERATIONS: Final[Mapping[str, tuple[str, Mapping[str, tuple[str, str, str]]]]] = {
    "get_object": (
        "GET",
        {
            "ResponseCacheControl": (_QUERY, "response-cache-control", _STRING),
            "ResponseContentDisposition": (_QUERY, "response-content-disposition", _STRING),
            "ResponseContentEncoding": (_QUERY, "response-content-encoding", _STRING),
            "ResponseContentLanguage": (_QUERY, "response-content-language", _STRING),
            "ResponseContentType": (_QUERY, "response-content-type", _STRING),
            "VersionId": (_QUERY, "versionId", _STRING),
            "PartNumber": (_QUERY, "partNumber", _PART_NUMBER),
            "ChecksumMode": (_HEADER, "x-amz-checksum-mode", _STRING),
        },
    ),
    "put_object": (
        "PUT",
        {
            "CacheControl": (_HEADER, "cache-control", _STRING),
            "ContentDisposition": (_HEADER, "content-disposition", _STRING),
            "ContentEncoding": (_HEADER, "content-encoding", _STRING),
            "ContentLanguage": (_HEADER, "content-language", _STRING),
            "ContentMD5": (_HEADER, "content-md5", _STRING),
            "ContentType": (_HEADER, "content-type", _STRING),
            "Metadata": (_HEADER, _METADATA_PREFIX, _METADATA),
            # Spelt as botocore's serializer spells it, which the handed-out
            # headers keep (see the Signer's _display_headers).
            "Expires": (_HEADER, "Expires", _TIMESTAMP),
            **_CHECKSUM_HEADERS,
        },
    ),
    "upload_part": (
        "PUT",
        {
            "ContentMD5": (_HEADER, "content-md5", _STRING),
            "PartNumber": (_QUERY, "partNumber", _PART_NUMBER),
            "UploadId": (_QUERY, "uploadId", _STRING),
            **_CHECKSUM_HEADERS,
        },
    ),
}


def s3_request_parts(
    operation: str, params: Mapping[str, object]
) -> tuple[str, list[tuple[str, str]], dict[str, str]] | None:
    """Map botocore-style ``Params`` to ``(method, query, headers)`` for :class:`QuerySigner`.

    ``operation`` is the client method name (``"get_object"``, ``"put_object"``,
    ``"upload_part"``). ``Bucket`` and ``Key`` are accepted and skipped (they
    select the endpoint and key). Query parameters keep the order of
    ``params``, as botocore's URL does. Returns ``None`` for any operation,
    parameter or value this does not cover, so the caller can fall back to
    botocore itself.
    """
    spec = _OPERATIONS.get(operation)
    if spec is None:
        return None
    method, table = spec
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for name, value in params.items():
        rule = table.get(name)
        if rule is None:
            # Bucket and Key pick the endpoint and the key, not request parts.
            if name in ("Bucket", "Key") and isinstance(value, str):
                continue
            return None
        location, wire_name, kind = rule
        if kind == _METADATA:
            metadata = _metadata_headers(value)
            if metadata is None:
                return None
            headers.update(metadata)
            continue
        text = _scalar_text(kind, value)
        if text is None:
            return None
        if location == _QUERY:
            query.append((wire_name, text))
        else:
            headers[wire_name] = text
    return method, query, headers


def _scalar_text(kind: str, value: object) -> str | None:
    if kind == _PART_NUMBER:
        # bool is an int to Python but not to botocore's validator; S3 only
        # accepts parts 1..10000, so leave anything else to botocore.
        if type(value) is not int or not 1 <= value <= _MAX_PART_NUMBER:
            return None
        return str(value)
    if kind == _TIMESTAMP:
        # botocore takes a string too, parsed by dateutil's rules: those are
        # left to it. A datetime is formatted as its header serializer does
        # (naive means UTC; whole seconds; RFC 822 in GMT).
        if not isinstance(value, datetime.datetime) or not 1970 < value.year < 9999:
            return None
        return formatdate(calendar.timegm(value.utctimetuple()), usegmt=True)
    return value if isinstance(value, str) else None


def _metadata_headers(metadata: object) -> dict[str, str] | None:
    # botocore rejects non-dict metadata and non-ASCII names or values
    # (validate_ascii_metadata); names that are not header tokens, or that only
    # differ in case, would be signed in ways S3 cannot match.
    if not isinstance(metadata, dict):
        return None
    headers: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return None
        if not _TOKEN_RE.fullmatch(name) or not value.isascii():
            return None
        header = _METADATA_PREFIX + name.lower()
        if header in headers:
            return None
        headers[header] = value
    return headers
