"""A small S3 client for trio: httpcore for HTTP, botocore's signer for SigV4.

Only the calls the S3 store needs: PUT (optionally create-only with
``If-None-Match: *``), GET, HEAD, DELETE, ListObjectsV2 and HEAD bucket. Every call has a
deadline; idempotent calls are retried with backoff on 5xx, 429 and network
errors. Anything that still fails becomes ``StorageUnavailable`` here, the one
edge where HTTP and network errors turn into our errors.

Why httpcore (httpx's transport layer) plus botocore's signer and not
boto3: boto3 is synchronous, so every call would hold a worker thread that
a trio timeout cannot cancel; httpcore runs natively on trio with a
connection pool, and it skips what an S3 client never needs from httpx
(cookies, redirects, auth flows: about a third of httpx's CPU per call).
The signature, the part that is easy to get subtly wrong, still comes from
botocore, not from code of our own. bench/s3_client_choice.py measures
the options side by side.
"""

from __future__ import annotations

import logging
import random
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

import httpcore
import trio
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ncpaste.core.errors import StorageFull, StorageUnavailable

log = logging.getLogger(__name__)

# One call (all its retries included) gives up after this long: a paste
# waiting on a sick engine gets `storage unavailable` instead of hanging.
CALL_DEADLINE_S = 30.0
# Connecting to an engine on the same network takes milliseconds; 5 s
# rides out a SYN retransmit without waiting long on a dead host.
CONNECT_TIMEOUT_S = 5.0
# One network read or write within a call.
IO_TIMEOUT_S = 15.0
# Attempts for idempotent calls: enough to ride out a restarting engine node
# or a replica failing over (Ceph stalls about 2 s when an OSD dies).
MAX_ATTEMPTS = 5
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 2.0
# Open connections to the engine: bounds sockets and the engine's load from
# one node; keep-alive ones avoid a TCP handshake per call.
MAX_CONNECTIONS = 64
MAX_KEEPALIVE = 32
# The largest object we read: a paste frame is at most the compress bound
# of the biggest paste; anything larger is not ours (or is damaged).
MAX_OBJECT_BYTES = 256 * 1024 * 1024
# Keys per ListObjectsV2 page: S3's own maximum.
LIST_PAGE_KEYS = 1000
# Signing hashes the body (SHA-256); beyond this it runs in a worker thread.
INLINE_SIGN_BYTES = 64 * 1024
_RETRY_STATUSES = {429, 500, 502, 503, 504}
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class PreconditionFailed(Exception):
    """412: a create-only PUT lost (the name exists), or a condition did not hold."""


@dataclass(frozen=True)
class S3Location:
    """Where pastes live: ``s3://BUCKET/PREFIX?endpoint=URL&region=R``."""

    bucket: str
    prefix: str
    endpoint: str
    region: str = "us-east-1"
    #: "path" (endpoint/bucket/key: Ceph, SeaweedFS, MinIO, Garage) or
    #: "virtual" (bucket.endpoint/key: AWS for new buckets).
    addressing: str = "path"

    @classmethod
    def parse(cls, text: str) -> S3Location:
        parts = urlsplit(text.strip())
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"bad store {text!r}: use s3://BUCKET/PREFIX?endpoint=URL&region=R")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(query) - {"endpoint", "region", "addressing"}
        if unknown:
            raise ValueError(f"bad store {text!r}: unknown option {sorted(unknown)[0]!r} "
                             "(use endpoint, region, addressing)")
        region = query.get("region") or "us-east-1"
        endpoint = (query.get("endpoint") or f"https://s3.{region}.amazonaws.com").rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"bad store endpoint {endpoint!r}: use http:// or https://")
        addressing = query.get("addressing") or "path"
        if addressing not in ("path", "virtual"):
            raise ValueError(f"bad store addressing {addressing!r}: use path or virtual")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, prefix + "/" if prefix else "", endpoint, region, addressing)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} at {self.endpoint}"


@dataclass(frozen=True)
class S3Object:
    status: int
    #: Lower-cased names.
    headers: Mapping[str, str]
    body: bytes

    def meta(self, name: str) -> str | None:
        return self.headers.get("x-amz-meta-" + name)


@dataclass(frozen=True)
class Listed:
    key: str
    size: int


class CredentialSource:
    """Credentials the usual way (botocore's chain: AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY, the shared credentials file, a profile, instance
    roles), read again when a refreshable source says they expire."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        if credentials is None:
            import botocore.session

            credentials = botocore.session.Session().get_credentials()
        if credentials is None:
            raise ValueError(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE)"
            )
        self._credentials = credentials
        self._lock = threading.Lock()

    def frozen(self) -> Credentials:
        with self._lock:
            return self._credentials.get_frozen_credentials()


class S3Client:
    """Async S3 calls on one bucket. Use as an async context manager."""

    def __init__(self, location: S3Location, credentials: CredentialSource) -> None:
        self.location = location
        self._credentials = credentials
        # Redirects are not followed: S3 answers one only for a wrong
        # region, a config error to report, not to follow silently.
        self._http = httpcore.AsyncConnectionPool(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE,
        )
        endpoint = urlsplit(location.endpoint)
        if location.addressing == "virtual":
            self._base = f"{endpoint.scheme}://{location.bucket}.{endpoint.netloc}"
            self._bucket_path = ""
        else:
            self._base = f"{endpoint.scheme}://{endpoint.netloc}"
            self._bucket_path = "/" + quote(location.bucket, safe="")

    async def __aenter__(self) -> S3Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- calls -----------------------------------------------------------------

    async def put(
        self,
        name: str,
        body: bytes,
        *,
        meta: Mapping[str, str] | None = None,
        create_only: bool = False,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Store an object; returns its ETag. ``create_only`` sends
        ``If-None-Match: *`` and raises PreconditionFailed if the name exists.

        A create-only PUT is retried too: if an earlier attempt did land, the
        retry's 412 is indistinguishable from losing, so callers that care
        check whose object is there (see S3Store)."""
        headers = {"content-type": content_type}
        for key, value in (meta or {}).items():
            headers["x-amz-meta-" + key] = value
        if create_only:
            headers["if-none-match"] = "*"
        response = await self._call("PUT", name, body=body, headers=headers, expect=(200,))
        return response.headers.get("etag", "")

    async def get(self, name: str) -> S3Object | None:
        """The object, None if absent."""
        response = await self._call("GET", name, expect=(200, 404))
        return None if response.status == 404 else response

    async def head(self, name: str) -> S3Object | None:
        response = await self._call("HEAD", name, expect=(200, 404))
        return None if response.status == 404 else response

    async def delete(self, name: str) -> None:
        """Remove an object; removing an absent one is not an error (S3 semantics)."""
        await self._call("DELETE", name, expect=(200, 204, 404))

    async def list(self, prefix: str, *, start_after: str = "", limit: int = LIST_PAGE_KEYS) -> list[Listed]:
        """Up to ``limit`` (<= 1000) names under ``prefix`` (relative to the
        store's prefix), in lexical order, after ``start_after``."""
        params = {"list-type": "2", "prefix": self.location.prefix + prefix, "max-keys": str(min(limit, LIST_PAGE_KEYS))}
        if start_after:
            params["start-after"] = self.location.prefix + start_after
        response = await self._call("GET", None, params=params, expect=(200,))
        return _parse_listing(response.body, len(self.location.prefix))

    async def check_bucket(self) -> None:
        """Raise StorageUnavailable unless the bucket answers (HEAD bucket)."""
        problem = await self.bucket_problem()
        if problem is not None:
            log.error("S3 bucket %r at %s: %s", self.location.bucket, self.location.endpoint, problem)
            raise StorageUnavailable("storage unavailable")

    async def bucket_problem(self) -> str | None:
        """Why the bucket cannot be used, in words for an operator; None if it can."""
        try:
            response = await self._call("HEAD", None, expect=(200, 403, 404))
        except StorageUnavailable:
            return "the engine does not answer"
        if response.status == 404:
            return "no such bucket"
        if response.status == 403:
            return "the engine refused the credentials (403)"
        return None

    # -- the one edge ------------------------------------------------------------

    async def _call(
        self,
        method: str,
        name: str | None,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        expect: tuple[int, ...],
    ) -> S3Object:
        path = self._bucket_path + ("/" + quote(self.location.prefix + name, safe="/-._~") if name is not None else "/")
        query = "&".join(f"{quote(k, safe='-._~')}={quote(v, safe='-._~')}" for k, v in sorted((params or {}).items()))
        url = self._base + path + ("?" + query if query else "")
        delay = BACKOFF_FIRST_S
        last_problem = ""
        with trio.move_on_after(CALL_DEADLINE_S):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    if len(body) > INLINE_SIGN_BYTES:
                        signed = await trio.to_thread.run_sync(self._sign, method, url, body, headers)
                    else:
                        signed = self._sign(method, url, body, headers)
                    response = await self._send(method, url, body, signed)
                except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
                    last_problem = type(exc).__name__
                else:
                    status = response.status
                    if status in expect:
                        return response
                    if status == 412:
                        raise PreconditionFailed(name)
                    if status == 507 or _error_code(response) in ("QuotaExceeded", "InsufficientStorage"):
                        log.error("S3 engine is out of space (%s on %s)", status, method)
                        raise StorageFull("storage full: the storage engine is full, try later")
                    last_problem = f"HTTP {status} {_error_code(response)}".strip()
                    if status not in _RETRY_STATUSES:
                        break  # a 4xx is not going to change on retry: a config problem
                if attempt < MAX_ATTEMPTS:
                    log.info("S3 %s: %s; retrying (attempt %d of %d)", method, last_problem, attempt + 1, MAX_ATTEMPTS)
                    await trio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 4, BACKOFF_MAX_S)
        log.error("S3 %s failed: %s", method, last_problem or "deadline passed")
        raise StorageUnavailable("storage unavailable")

    async def _send(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> S3Object:
        headers = {**headers, "host": urlsplit(url).netloc}
        if body or method in ("PUT", "POST"):
            headers["content-length"] = str(len(body))  # httpcore adds no framing of its own
        async with self._http.stream(
            method, url, headers=list(headers.items()), content=body or None, extensions=_TIMEOUTS
        ) as response:
            names = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in response.headers}
            declared = names.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_OBJECT_BYTES:
                raise StorageUnavailable("storage unavailable: object too large")
            chunks = []
            total = 0
            async for chunk in response.aiter_stream():
                total += len(chunk)
                if total > MAX_OBJECT_BYTES:
                    raise StorageUnavailable("storage unavailable: object too large")
                chunks.append(chunk)
        return S3Object(response.status, names, b"".join(chunks))

    def _sign(self, method: str, url: str, body: bytes, headers: Mapping[str, str] | None) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        S3SigV4Auth(self._credentials.frozen(), "s3", self.location.region).add_auth(request)
        return dict(request.headers.items())


_TIMEOUTS = {"timeout": {"connect": CONNECT_TIMEOUT_S, "read": IO_TIMEOUT_S, "write": IO_TIMEOUT_S, "pool": IO_TIMEOUT_S}}


def _error_code(response: S3Object) -> str:
    """The <Code> of an S3 error body, if any (for logs and classification)."""
    if not response.body or b"<Code>" not in response.body[:4096]:
        return ""
    try:
        return ElementTree.fromstring(response.body).findtext("Code") or ""
    except ElementTree.ParseError:
        return ""


def _parse_listing(xml: bytes, prefix_length: int) -> list[Listed]:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        log.error("S3 listing is not XML")
        raise StorageUnavailable("storage unavailable") from None
    found = []
    for item in root.iter(_S3_NS + "Contents"):
        key = item.findtext(_S3_NS + "Key") or ""
        size = item.findtext(_S3_NS + "Size") or "0"
        found.append(Listed(key[prefix_length:], int(size) if size.isdigit() else 0))
    return found
