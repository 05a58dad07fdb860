"""Amazon S3 and S3-compatible services (MinIO, Cloudflare R2, moto) over s3fs.

Credentials and endpoint follow botocore's own chain unless the location or a profile
says otherwise: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, ``~/.aws/config`` and ``credentials``, SSO, ``AWS_ENDPOINT_URL``
(``AWS_ENDPOINT_URL_S3``), ``AWS_DEFAULT_REGION``, container and instance roles.
"""

from __future__ import annotations

import datetime
import functools
import io
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

from .base import (
    S3_MD5,
    StorageAuthError,
    StorageError,
    StorageOfflineError,
    StoragePermissionError,
    confirm_write,
    content_tag,
    md5_tag,
)
from .cloud import (
    BadAnswerError,
    FsspecStorage,
    Listing,
    Meter,
    MissingError,
    busy,
    exception_chain,
    gave_up_waiting,
    listed_size,
    one_line,
    read_bounded,
    redirect_reason,
    redirect_refused,
    refuse_xml_declarations,
    service_code,
)
from .feed import ChangeFeed

_MD5_ETAG = re.compile(r'"?[0-9a-fA-F]{32}"?')
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}")  # us-east-1, eu-central-2, us-gov-west-1
# The two date forms S3 sends, exactly (``fast_timestamp``). A year below 1000 is left
# to botocore: ``dateutil`` and the standard library read "0075" as different centuries.
_HTTP_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3]\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [1-9]\d{3} "
    r"[0-2]\d:[0-5]\d:[0-5]\d GMT",
    re.ASCII,
)
_ISO_DATE = re.compile(
    r"[1-9]\d{3}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-][01]\d:[0-5]\d)",
    re.ASCII,
)

AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
    "RequestTimeTooSkewed",
    "UnrecognizedClientException",
}
PERMISSION_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidObjectState"}
THROTTLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "ServiceUnavailable",
    "503",
}
CREDENTIAL_ERRORS = {
    "NoCredentialsError": "no AWS credentials found",
    "PartialCredentialsError": "the AWS credentials are incomplete",
    "ProfileNotFound": "the AWS profile does not exist",
    "CredentialRetrievalError": "the AWS credentials could not be loaded",
    "TokenRetrievalError": "the AWS SSO token could not be loaded (run 'aws sso login')",
    "SSOTokenLoadError": "the AWS SSO token could not be loaded (run 'aws sso login')",
    "UnauthorizedSSOTokenError": "the AWS SSO token has expired (run 'aws sso login')",
    "InvalidConfigError": "the AWS configuration is invalid",
}
CREDENTIAL_HINT = (
    "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or save keys with "
    "'bucket-chat storage add'"
)


def _body_size(body: object) -> int:
    """The bytes a request sends (botocore hands an upload's as a ``BytesIO``)."""
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, io.BytesIO):
        return body.getbuffer().nbytes
    return 0


def user_agent() -> str:
    """The ``User-Agent`` of every S3 request: the app and its version, fixed. botocore
    rebuilt its own for every request, twice (the OS, Python, the machine's architecture
    and the features used, each component cleaned character by character): a tenth of
    the CPU an object's download cost the I/O thread, and more about this machine than
    a bucket's provider needs."""
    from .. import __version__

    return f"bucket-chat-desktop/{__version__}"


def fast_timestamp(value: object) -> datetime.datetime:
    """botocore's ``parse_timestamp`` for the two forms S3 sends (``Last-Modified`` as an
    HTTP date, a listing's ``LastModified`` in ISO 8601), through the standard library:
    botocore hands every one to ``dateutil``, a tenth of the CPU an object's download
    cost (its header is parsed although nothing here uses it). Only a value of exactly
    one of those forms takes the fast path (``_HTTP_DATE``, ``_ISO_DATE``): the standard
    library's parsers accept more (an ``EST`` or ``+0500`` zone before ``GMT``, ISO week
    dates, any hour's digits) than ``dateutil`` does. Anything else, or a value the fast
    path cannot read, goes to botocore's own parser, which decides (and raises) as
    before."""
    from botocore.utils import parse_timestamp  # type: ignore[import-untyped]

    if isinstance(value, str):
        found: datetime.datetime | None = None
        try:
            if _HTTP_DATE.fullmatch(value):  # "Tue, 08 Dec 2026 05:00:00 GMT"
                found = parsedate_to_datetime(value)
            elif _ISO_DATE.fullmatch(value):  # "2026-12-08T05:00:00.000Z"
                found = datetime.datetime.fromisoformat(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
        if found is not None and found.tzinfo is not None:
            return found
    parsed: datetime.datetime = parse_timestamp(value)
    return parsed


@functools.cache
def _session_class() -> type:
    """aiobotocore's HTTP session, sending every request with ``allow_redirects=False``:
    aiohttp followed a redirect by default, so a hostile or misconfigured endpoint had
    each list, read and write (with its body and the ``X-Amz-Security-Token``) sent to
    an address of its choosing, and its answers taken for the bucket's. A redirect is
    now an answer like any other (an error: ``S3Storage._service_error``)."""
    from aiobotocore.httpsession import AIOHTTPSession  # type: ignore[import-untyped]

    class NoRedirects:
        def __init__(self, session: Any) -> None:
            self._session = session

        def request(self, *args: Any, **kwargs: Any) -> Any:
            return self._session.request(*args, **kwargs, allow_redirects=False)

    class Session(AIOHTTPSession):  # type: ignore[misc]
        async def _get_session(self, proxy_url: Any) -> Any:
            return NoRedirects(await super()._get_session(proxy_url))

    return Session


def _bounded_sender(client: Any, write_read_timeout: Callable[[int], float]) -> Any:
    """A ``before-send`` hook that sends each request itself, and reads each answer that
    botocore holds whole (a listing page, an error; not an object's bytes) within
    ``read_bounded``'s cap, refusing XML that declares entities: aiobotocore read it
    whole whatever its size (300 MB pages were held, and parsed). An upload's read
    timeout is ``write_read_timeout`` of its size (``FsspecStorage.write_read_timeout``):
    aiobotocore's runs from the start of the request, so the client's ``read_timeout``
    ended any upload slower than it."""
    from aiohttp import ClientPayloadError, ServerDisconnectedError, ServerTimeoutError
    from botocore.exceptions import (  # type: ignore[import-untyped]
        ConnectionClosedError,
        ReadTimeoutError,
    )

    async def send(request: Any, **_: Any) -> Any:
        session = client._endpoint.http_session
        size = _body_size(request.body)
        context = getattr(request, "context", None)
        if size and context is not None:
            context["read_timeout"] = write_read_timeout(size)
        streamed = request.stream_output
        request.stream_output = True
        try:
            response = await session.send(request)
        finally:
            request.stream_output = streamed
        if streamed and response.status_code < 300:
            return response  # an object's bytes: ``_cat`` reads them within its own cap
        raw = response.raw
        status = response.status_code
        region = response.headers.get("x-amz-bucket-region") or ""
        if 300 <= status < 400 and not (status == 301 and _REGION.fullmatch(region)):
            # Not followed (``_session_class``), nor given to botocore, whose redirector
            # asked again and again (a 307, or a 301 naming no region, for ever: a
            # RecursionError). A 301 naming the bucket's region is S3's "bucket in another
            # region": botocore asks that region once, at an address of its own rules.
            raw.close()
            raise BadAnswerError(
                redirect_reason(response.status_code, response.headers.get("location"))
            )
        try:
            # botocore decodes no Content-Encoding: the bytes as sent are what it parses.
            # An error of an object's read too: botocore read it whole, whatever its size.
            body = await read_bounded(raw.content.read, None)
            response._content = refuse_xml_declarations(body, response.status_code)
        except (ClientPayloadError, ServerDisconnectedError) as exc:
            raw.close()
            raise ConnectionClosedError(
                error=exc, request=request, endpoint_url=request.url
            ) from exc
        except ServerTimeoutError as exc:
            raw.close()
            raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
        except BaseException:
            raw.close()
            raise
        raw.release()
        return response

    return send


class S3Storage(FsspecStorage):
    kind = "s3"
    # The ETag of an object put in one request, unencrypted or SSE-S3, is its MD5 in
    # hex: a bucket that encrypts with KMS lists another, read again once by the check.
    md5_scheme = S3_MD5

    def change_feed(self) -> ChangeFeed | None:
        if "queue_url" not in self.location.options:
            return None
        from .sqs import SqsChangeFeed

        return SqsChangeFeed(self.location, self._secrets)

    def create_only_mechanism(self) -> str:
        return "S3 refuses the write: PutObject with If-None-Match: * (conditional write)"

    async def _open_fs(self) -> Any:
        from s3fs import S3FileSystem  # type: ignore[import-untyped]

        opts = self.location.options
        client_kwargs: dict[str, Any] = {}
        config: dict[str, Any] = {
            "connect_timeout": self.timeout,
            "read_timeout": self.timeout,
            # botocore retries connection errors, 5xx and throttling with jittered backoff.
            "retries": {"total_max_attempts": self.retries, "mode": "standard"},
            "http_session_cls": _session_class(),  # follows no redirect
            "user_agent": user_agent(),  # (botocore's own is rebuilt per request)
        }
        if "region" in opts:
            client_kwargs["region_name"] = opts["region"]
        if "addressing_style" in opts:
            config["s3"] = {"addressing_style": opts["addressing_style"]}
        kwargs: dict[str, Any] = {
            "asynchronous": True,
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "client_kwargs": client_kwargs,
            "config_kwargs": config,
        }
        if "endpoint_url" in opts:
            kwargs["endpoint_url"] = opts["endpoint_url"]
        if "profile" in opts:
            kwargs["profile"] = opts["profile"]
        if self.location.anonymous:
            kwargs["anon"] = True
        elif "access_key_id" in self._secrets:
            kwargs["key"] = self._secrets["access_key_id"]
            kwargs["secret"] = self._secrets["secret_access_key"]
            if "session_token" in self._secrets:
                kwargs["token"] = self._secrets["session_token"]
        try:
            fs = S3FileSystem(**kwargs)
            fs.retries = 1  # botocore already retries; s3fs would multiply the attempts
            client = await fs.set_session()
        except Exception as exc:
            raise self._error(exc, f"cannot open {self.display()}") from exc
        # The client's parsers are made per answer with the session's defaults.
        fs.session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=fast_timestamp
        )
        # botocore sends "Expect: 100-continue" with every upload body, and aiohttp then
        # waits for the "100 Continue" with no timeout at all: a service that stops
        # answering would hang the write for ever. Our objects are small; send them whole.
        from botocore.handlers import add_expect_header  # type: ignore[import-untyped]

        client.meta.events.unregister("before-call.s3", add_expect_header)
        client.meta.events.register(
            "before-send.s3", _bounded_sender(client, self.write_read_timeout)
        )
        return fs

    async def _close_fs(self, fs: Any) -> None:
        client = getattr(fs, "_s3", None)
        if client is not None:
            await client.close()

    async def _create(self, fs: Any, target: str, data: bytes) -> bool:
        answer = await fs._pipe_file(target, data, mode="create")
        # Red team: a service answered the create-only PUT "200 OK" and stored nothing;
        # the sender was told "Sent", the outbox forgot the message, and it was lost.
        # S3 names the MD5 of what it stored as the ETag of a single PUT (not with
        # KMS or customer keys, which give other ETags): another one says the bytes it
        # took are not these. The write is then not taken as done: it stays queued, and
        # its next try finds the object (and compares its bytes) or writes it again.
        # Nothing to compare (a multipart ETag, encryption with KMS or customer keys,
        # a service that names none): ``put_if_absent`` reads the object back.
        if not isinstance(answer, dict) or answer.get("SSECustomerAlgorithm"):
            return False
        if str(answer.get("ServerSideEncryption", "")).startswith("aws:kms"):
            return False
        etag = answer.get("ETag")
        if not isinstance(etag, str) or not _MD5_ETAG.fullmatch(etag):
            return False
        confirm_write(etag.strip('"').lower(), md5_tag(data, S3_MD5).partition(":")[2])
        return True

    async def _cat(self, fs: Any, target: str, max_bytes: int, meter: Meter) -> bytes:
        # One ranged GET, its body read in pieces and dropped after max_bytes + 1 bytes:
        # a service that ignores the Range header still cannot make us hold more.
        bucket, key, _ = fs.split_path(target)
        resp = await fs._call_s3("get_object", Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}")
        body = resp["Body"]
        chunks: list[bytes] = []
        left = max_bytes + 1
        try:
            while left > 0:
                chunk: bytes = await body.read(min(left, 1024 * 1024))
                if not chunk:
                    break
                meter.got(len(chunk))
                chunks.append(chunk)
                left -= len(chunk)
        finally:
            body.close()
        return b"".join(chunks)

    async def _list_keys(
        self,
        fs: Any,
        key_prefix: str,
        start_after: str | None,
        limit: int | None,
        listing: Listing,
    ) -> list[tuple[str, int, str | None]]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": key_prefix}
        if start_after is not None:
            params["StartAfter"] = start_after
        if limit is not None:
            params["MaxKeys"] = limit
        out: list[tuple[str, int, str | None]] = []
        while True:
            page = await listing.page(_listed(fs, params))
            contents = page.get("Contents", [])
            for item in contents:
                key = item.get("Key")
                if not isinstance(key, str):
                    raise listing.malformed("an entry (Contents) without a key")
                etag = item.get("ETag")
                size = listed_size(item.get("Size"))
                if size is None:
                    raise listing.malformed(f"the entry {key[:200]!r} has no size")
                # S3's ETag changes with the bytes only (metadata is changed by a copy,
                # which keeps it): it is the content tag as it stands
                tag = content_tag("s3-etag", etag.strip('"') if isinstance(etag, str) else None)
                if listing.named(key) is not None:
                    out.append((key, size, tag))
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            last = out[-1][0] if contents and out else None  # (a skipped name is no last)
            if not listing.more(len(contents), token, last) or limit is not None:
                return out
            params["ContinuationToken"] = token

    async def _list_level_keys(self, fs: Any, key_prefix: str, listing: Listing) -> list[str]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": key_prefix, "Delimiter": "/"}
        out: list[str] = []
        while True:
            page = await listing.page(_listed(fs, params))
            prefixes = page.get("CommonPrefixes", [])
            for entry in prefixes:
                if not isinstance(entry.get("Prefix"), str):
                    raise listing.malformed("an entry (CommonPrefixes) without a prefix")
                if listing.named(entry["Prefix"]) is not None:
                    out.append(entry["Prefix"])
            objects = page.get("Contents", [])
            for entry in objects:
                if not isinstance(entry.get("Key"), str):
                    raise listing.malformed("an entry (Contents) without a key")
                if listing.named(entry["Key"]) is not None:
                    out.append(entry["Key"])
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            # Folders count towards the listing's bounds, objects right in it not: a
            # member's 200,000 objects in a room's logs/ made its days unreadable.
            if not listing.more(len(prefixes), token, names=len(prefixes) + len(objects)):
                return out
            params["ContinuationToken"] = token

    def _service_error(self, exc: BaseException, what: str) -> StorageError | None:
        for item in exception_chain(exc):
            name = type(item).__name__
            if name in CREDENTIAL_ERRORS:
                return StorageAuthError(f"{what}: {CREDENTIAL_ERRORS[name]}: {CREDENTIAL_HINT}")
            response = getattr(item, "response", None)
            if not isinstance(response, dict):
                continue
            error = response.get("Error") or {}
            code = service_code(error.get("Code"))
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            message = one_line(error.get("Message") or code)
            if code == "NoSuchBucket":
                return self._missing_bucket(what)
            if isinstance(status, int) and 300 <= status < 400 and status != 301:
                headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
                return redirect_refused(what, status, headers.get("location"))
            if code in ("PermanentRedirect", "AuthorizationHeaderMalformed") or status == 301:
                found = re.search(r"expecting '([a-z0-9-]+)'", str(error.get("Message", "")))
                region = found.group(1) if found else service_code(error.get("Region")) or "…"
                return StorageError(
                    f"{what}: bucket {self.bucket} is in another region: "
                    f"add ?region={region} to the URL"
                )
            if code in ("NoSuchKey", "404") or status == 404:
                return MissingError(f"{what}: not found")
            if code in AUTH_CODES:
                return StorageAuthError(
                    f"{what}: the service rejected the credentials ({code}): {CREDENTIAL_HINT}"
                )
            if code in PERMISSION_CODES or status == 403:
                return StoragePermissionError(
                    f"{what}: access denied ({code or status}): the credentials work but "
                    f"their policy does not allow this on {self.bucket}"
                )
            if code in THROTTLE_CODES or status in (429, 503):
                return busy(what, code or status)
            if code == "RequestTimeout" or status == 408:
                return gave_up_waiting(what, code or status)
            if status is not None and status >= 500:
                return StorageOfflineError(f"{what}: service error {status} ({code}): {message}")
            return StorageError(f"{what}: {code or status}: {message}")
        return None


async def _listed(fs: Any, params: dict[str, Any]) -> Any:
    """One page of ``ListObjectsV2``; an answer botocore cannot parse as one (not XML, a
    size that is not a number) is a ``BadAnswerError``."""
    try:
        return await fs._call_s3("list_objects_v2", **params)
    except Exception as exc:
        for item in exception_chain(exc):
            if type(item).__name__ == "ResponseParserError" or type(item) is ValueError:
                raise BadAnswerError(
                    "the service's answer could not be parsed",
                    listing_reason="the S3 listing answer is malformed: "
                    f"it could not be parsed ({one_line(item, 80)})",
                ) from exc
        raise
