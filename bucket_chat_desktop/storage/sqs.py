"""S3 event notifications read from an SQS queue: the change feed of an S3 storage.

Set up as docs/STORAGE.md says: the bucket sends ``s3:ObjectCreated:*`` notifications for
the storage's ``rooms/`` prefix to a queue that only this device reads (or, for several
devices, through an SNS topic to one queue per device). The queue URL is the ``queue_url``
option of the storage; requests go to that URL's host with the storage's own credentials.
This device needs ``sqs:ReceiveMessage``, ``sqs:DeleteMessage`` and
``sqs:GetQueueAttributes`` on the queue.

Requests are SQS's JSON protocol over aiohttp, signed with botocore's SigV4 signer and
credential chain (the same ones s3fs uses), not a botocore client: that way each request
has one deadline and each reply a size limit (``MAX_REPLY_BYTES``), whatever the service
sends.

``parse_message`` is pure: it turns one queue message body, whoever sent it, into the
object paths it names inside this storage or a one-line reason it was ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from .base import (
    StorageAuthError,
    StorageError,
    StorageOfflineError,
    StoragePermissionError,
    check_object_path,
)
from .cloud import (
    busy,
    exception_chain,
    hide_secrets,
    one_line,
    redirect_refused,
    service_code,
)
from .feed import MAX_IGNORED_KEPT, ChangeBatch, ChangeFeed, FeedGoneError
from .s3 import AUTH_CODES, CREDENTIAL_ERRORS, CREDENTIAL_HINT, THROTTLE_CODES
from .url import StorageLocation, StorageUrlError, split_url

log = logging.getLogger("bucket_chat.storage")

MAX_WAIT = 20
"""SQS's longest long poll (``WaitTimeSeconds``), in seconds."""
MAX_MESSAGES = 10  # SQS's largest batch
GRACE = 5.0
"""Seconds a queue request may take beyond its long poll: SQS answers small requests
fast, and while the engine waits on a silent queue it does not poll the bucket."""
MAX_BODY_CHARS = 64 * 1024
"""A notification of one object is about 1 KB; anything this long is not one."""
MAX_RECORDS = 10  # S3 sends one record per message
MAX_KEY_CHARS = 3 * 1024  # a 1,024-byte key, every byte percent-encoded
MAX_RECEIPT_CHARS = 8 * 1024
MAX_REPLY_BYTES = 12 * 1024 * 1024
"""The most a reply is read: ten messages of SQS's largest size (1 MiB) and their
attributes, as long as their bodies need little escaping. A larger reply is refused
unread; a receive's is asked again one message at a time (``ONE_AT_A_TIME``)."""
ONE_AT_A_TIME = 600.0
"""Seconds after a reply to a receive was refused as too large during which the queue is
read one message at a time. Ten messages of 1 MiB of ``"`` or control characters are
escaped by SQS's JSON to 12-60 MiB: refused unread, none was deleted, and every retry got
the same ten back for the queue's retention (days): the feed never worked again. One
message of 1 MiB escapes to at most about 6 MiB: read, ignored as junk and deleted. The
messages a refused reply held are hidden for the queue's visibility timeout (30 s by
default), so the queue is read so for a while, not for one request."""
GONE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
PERMISSION_CODES = {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException"}
_AWS_SQS_HOST = re.compile(r"sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?")
_LEGACY_HOST = re.compile(r"([a-z0-9-]+)\.queue\.amazonaws\.com(\.cn)?")


def check_queue_url(value: str) -> str:
    """A queue URL as SQS shows it (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``),
    or an S3-compatible service's; raises ``ValueError`` with what is wrong."""
    from .url import address_shown

    # First, before urlsplit (whose errors quote it), and the value is never quoted
    # whole: it may hold a password.
    if "@" in value:
        raise ValueError("queue_url must not carry credentials, a query or a '#' part")
    try:
        parts = split_url(value, "queue_url")
    except StorageUrlError as exc:  # in words that quote no part of the value
        raise ValueError(str(exc)) from None
    if parts.query or parts.fragment:
        raise ValueError("queue_url must not carry credentials, a query or a '#' part")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"queue_url must look like https://host/account/queue, not {address_shown(value)}"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"queue_url has a bad port (after {address_shown(value)})") from None
    if not parts.path.strip("/"):
        raise ValueError(f"queue_url names no queue (no path): {address_shown(value)}")
    return value.rstrip("/")


def queue_region(queue_url: str) -> str | None:
    """The AWS region in an AWS queue URL's host, else None."""
    try:
        host = urlsplit(queue_url).hostname or ""
    except ValueError:  # not a checked queue URL
        return None
    found = _AWS_SQS_HOST.fullmatch(host) or _LEGACY_HOST.fullmatch(host)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class Parsed:
    """One message: the object paths it names (relative to the storage root), why parts
    of it were ignored, and whether it was the provider's test event."""

    paths: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    test_event: bool = False


def parse_message(body: object, bucket: str, prefix: str) -> Parsed:
    """Read one queue message body as S3 event notifications for ``bucket``/``prefix``.

    Accepted: ``{"Records": [...]}`` as S3 sends it, the same wrapped once in an SNS
    envelope (``{"Type": "Notification", "Message": "<json>"}``), and S3's
    ``s3:TestEvent``. A record counts only when it is an ``ObjectCreated`` event in this
    bucket whose key (URL-encoded, ``+`` for a space) lies under the storage's prefix and
    is a safe object path; everything else is ignored with a reason."""
    if not isinstance(body, str):
        return Parsed(ignored=("a message without a text body",))
    if len(body) > MAX_BODY_CHARS:
        return Parsed(ignored=(f"a message of {len(body):,} characters (not a notification)",))
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return Parsed(ignored=("a message that is not JSON",))
    if (
        isinstance(doc, dict)
        and doc.get("Type") == "Notification"
        and isinstance(doc.get("Message"), str)
    ):
        try:  # an SNS envelope (a topic fanned out to one queue per device)
            doc = json.loads(doc["Message"])
        except (ValueError, RecursionError):
            return Parsed(ignored=("an SNS notification whose message is not JSON",))
    if not isinstance(doc, dict):
        return Parsed(ignored=("a message that is not a JSON object",))
    if doc.get("Event") == "s3:TestEvent" and "Records" not in doc:
        if doc.get("Bucket") != bucket:
            return Parsed(ignored=("a test event of another bucket",))
        return Parsed(test_event=True)
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        return Parsed(ignored=("a JSON message that holds no S3 event records",))
    if len(records) > MAX_RECORDS:
        return Parsed(ignored=(f"a message of {len(records):,} records (S3 sends one)",))
    paths: list[str] = []
    ignored: list[str] = []
    for record in records:
        path, why = _record_path(record, bucket, prefix)
        if path is not None:
            paths.append(path)
        elif why:
            ignored.append(why)
    return Parsed(tuple(paths), tuple(ignored))


def _record_path(record: object, bucket: str, prefix: str) -> tuple[str | None, str]:
    """The storage path one record names, or ``(None, why)`` (``why`` empty: a real event
    that is simply of no interest, such as a deletion)."""
    if not isinstance(record, dict):
        return None, "an event record that is not an object"
    name = record.get("eventName")
    s3 = record.get("s3")
    if not isinstance(name, str) or not isinstance(s3, dict):
        return None, "an event record without eventName or s3"
    if not name.startswith("ObjectCreated:"):
        return None, ""  # another kind of event (a deletion, a restore): nothing to read
    named = s3.get("bucket")
    found_bucket = named.get("name") if isinstance(named, dict) else None
    if found_bucket != bucket:
        return None, f"an event of another bucket ({_short(found_bucket)})"
    obj = s3.get("object")
    key = obj.get("key") if isinstance(obj, dict) else None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        return None, "an event record without a usable object key"
    try:
        key = unquote_plus(key, errors="strict")
    except UnicodeDecodeError:
        return None, f"an object key that is not UTF-8 ({_short(key)})"
    if prefix:
        if not key.startswith(prefix + "/"):
            return None, f"an object outside this storage's prefix ({_short(key)})"
        key = key[len(prefix) + 1 :]
    try:
        return check_object_path(key), ""
    except StorageError:
        return None, f"an unsafe object key ({_short(key)})"


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Oversized(StorageError):
    """A reply over ``MAX_REPLY_BYTES``, refused unread."""


class SqsChangeFeed(ChangeFeed):
    """The queue named by an S3 location's ``queue_url`` option, read with long polls."""

    def __init__(self, location: StorageLocation, secrets: Mapping[str, str] | None = None):
        self.location = location
        self.queue_url = check_queue_url(location.options["queue_url"])
        self.timeout = location.timeout
        self.grace = min(self.timeout, GRACE)  # the deadline of a request beyond its wait
        self.requests = 0
        self._secrets = dict(secrets or {})
        parts = urlsplit(self.queue_url)
        # Requests go to the queue URL's host, signed for the region in it (AWS) or the
        # storage's region.
        self._endpoint = f"{parts.scheme}://{parts.netloc}/"
        self.region = queue_region(self.queue_url) or location.options.get("region") or "us-east-1"
        self._http: Any = None  # an aiohttp session, opened on first use in the loop
        self._chain: Any = None  # botocore's credentials (they refresh themselves)
        self._one_until = 0.0  # read one message at a time until then (``ONE_AT_A_TIME``)

    def describe(self) -> str:
        return f"queue {self.queue_url}"

    async def _credentials(self) -> Any:
        """Frozen credentials to sign with (None: anonymous), as the bucket gets them:
        the profile's keys, else botocore's own chain (environment, files, SSO, roles)."""
        if self.location.anonymous:
            return None
        from botocore.credentials import ReadOnlyCredentials  # type: ignore[import-untyped]

        if "access_key_id" in self._secrets:
            return ReadOnlyCredentials(
                self._secrets["access_key_id"],
                self._secrets["secret_access_key"],
                self._secrets.get("session_token"),
            )
        if self._chain is None:
            from aiobotocore.session import AioSession  # type: ignore[import-untyped]

            session = AioSession(profile=self.location.options.get("profile"))
            self._chain = await session.get_credentials()
            if self._chain is None:
                raise StorageAuthError(f"no AWS credentials found: {CREDENTIAL_HINT}")
        return await self._chain.get_frozen_credentials()

    async def _call(self, operation: str, deadline: float, **params: Any) -> dict[str, Any]:
        """One request of SQS's JSON protocol, signed, within ``deadline`` seconds, its
        reply read to at most ``MAX_REPLY_BYTES`` (a hostile service cannot make this
        device hold more). Raises ``StorageError`` saying what failed."""
        what = f"cannot {_VERBS.get(operation, operation)} {self.describe()}"
        try:
            return await asyncio.wait_for(self._request(operation, what, params), deadline)
        except TimeoutError as exc:
            raise StorageOfflineError(
                f"{what}: no answer within {deadline:g} s (the queue's service is not answering)"
            ) from exc
        except Exception as exc:
            raise self._error(exc, what) from exc

    async def _request(self, operation: str, what: str, params: dict[str, Any]) -> dict[str, Any]:
        import aiohttp
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

        creds = await self._credentials()
        body = json.dumps({"QueueUrl": self.queue_url, **params}).encode()
        request = AWSRequest(
            method="POST",
            url=self._endpoint,
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"AmazonSQS.{_TARGETS[operation]}",
                "Accept-Encoding": "identity",
            },
        )
        if creds is not None:
            SigV4Auth(creds, "sqs", self.region).add_auth(request)
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.grace),
                auto_decompress=False,
            )
        self.requests += 1
        headers = dict(request.headers.items())
        # No redirect is followed (``cloud.redirect_reason``): aiohttp's default sent the
        # signed request, its session token too, wherever a hostile endpoint named.
        async with self._http.post(
            self._endpoint, data=body, headers=headers, allow_redirects=False
        ) as reply:
            if 300 <= reply.status < 400:
                raise redirect_refused(what, reply.status, reply.headers.get("Location"))
            declared = reply.content_length
            if declared is not None and declared > MAX_REPLY_BYTES:
                raise _Oversized(f"{what}: a reply of {declared:,} bytes (not read)")
            data = bytearray()
            while chunk := await reply.content.read(64 * 1024):
                data += chunk
                if len(data) > MAX_REPLY_BYTES:
                    raise _Oversized(
                        f"{what}: a reply of more than {MAX_REPLY_BYTES:,} bytes (not read)"
                    )
            status, query = reply.status, reply.headers.get("x-amzn-query-error", "")
        try:
            doc = json.loads(data) if data else {}
        except (ValueError, RecursionError):
            doc = None
        if status >= 300:
            raise _Refused(status, doc if isinstance(doc, dict) else {}, query)
        if not isinstance(doc, dict):
            raise StorageError(f"{what}: the reply is not a JSON object")
        return doc

    async def check(self) -> str:
        reply = await self._call(
            "get_queue_attributes",
            self.grace,
            AttributeNames=["ApproximateNumberOfMessages"],
        )
        attrs = reply.get("Attributes") if isinstance(reply, dict) else None
        waiting = attrs.get("ApproximateNumberOfMessages") if isinstance(attrs, dict) else None
        text = waiting if isinstance(waiting, str) else ""
        # SQS counts far below 10**12: another "count" is the service's text, not repeated
        count = text if text.isascii() and text.isdigit() and len(text) <= 12 else "?"
        return f"{self.describe()} ({count} message(s) waiting)"

    async def wait(self, seconds: float) -> ChangeBatch:
        """One long poll. A reply refused as too large (``MAX_REPLY_BYTES``) is asked
        again at once for one message, and so is every receive for ``ONE_AT_A_TIME`` s:
        what it held is read, ignored as junk and deleted, not refused for ever. Only a
        reply of one message that is too large fails the feed."""
        wait = max(0, min(MAX_WAIT, round(seconds)))
        one = asyncio.get_running_loop().time() < self._one_until
        try:
            reply = await self._receive(wait, 1 if one else MAX_MESSAGES)
        except _Oversized as exc:
            if one:
                raise
            self._one_until = asyncio.get_running_loop().time() + ONE_AT_A_TIME
            log.warning("%s; reading the queue one message at a time", exc)
            reply = await self._receive(0, 1)
            return self._batch(reply, oversized=str(exc))
        return self._batch(reply)

    async def _receive(self, wait: int, count: int) -> dict[str, Any]:
        return await self._call(
            "receive_message",
            wait + self.grace,
            WaitTimeSeconds=wait,
            MaxNumberOfMessages=count,
        )

    def _batch(self, reply: object, oversized: str = "") -> ChangeBatch:
        messages = reply.get("Messages") if isinstance(reply, dict) else None
        if not isinstance(messages, list):
            messages = []
        paths: dict[str, None] = {}
        # A reply refused as too large (``wait``): its messages come back one at a time.
        ignored: list[str] = [f"{oversized} (read one message at a time)"] if oversized else []
        count = len(ignored)
        receipts: list[str] = []
        connected = False
        for message in messages[:MAX_MESSAGES]:
            if not isinstance(message, dict):
                count += 1
                ignored.append("a reply entry that is not a message")
                continue
            receipt = message.get("ReceiptHandle")
            if isinstance(receipt, str) and 0 < len(receipt) <= MAX_RECEIPT_CHARS:
                receipts.append(receipt)
            parsed = parse_message(message.get("Body"), self.location.bucket, self.location.prefix)
            paths.update(dict.fromkeys(parsed.paths))
            connected = connected or parsed.test_event
            count += len(parsed.ignored)
            ignored.extend(parsed.ignored)
        if len(messages) > MAX_MESSAGES:
            count += len(messages) - MAX_MESSAGES
            extra = len(messages) - MAX_MESSAGES
            ignored.append(f"{extra:,} messages beyond the {MAX_MESSAGES} asked for")
        return ChangeBatch(
            paths=tuple(paths),
            ignored=tuple(ignored[:MAX_IGNORED_KEPT]),
            ignored_count=count,
            connected=connected,
            receipts=tuple(receipts),
        )

    async def ack(self, batch: ChangeBatch) -> None:
        for chunk in _chunks(batch.receipts, MAX_MESSAGES):
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
            reply = await self._call("delete_message_batch", self.grace, Entries=entries)
            failed = reply.get("Failed") if isinstance(reply, dict) else None
            if failed:  # they come back after the visibility timeout: read twice, no harm
                log.info("%s: %d message(s) not deleted", self.describe(), len(failed))

    async def close(self) -> None:
        http, self._http = self._http, None
        self._chain = None
        if http is not None:
            try:
                await http.close()
            except Exception as exc:  # closing must never hide the caller's own error
                log.debug("closing %s: %s", self.describe(), exc)

    def _error(self, exc: BaseException, what: str) -> StorageError:
        """``exc`` as one ``StorageError`` that quotes no secret (``hide_secrets``)."""
        return hide_secrets(self._mapped_error(exc, what), self._secrets)

    def _mapped_error(self, exc: BaseException, what: str) -> StorageError:
        if isinstance(exc, StorageError):
            return exc
        endpoint = urlsplit(self.queue_url).netloc
        for item in exception_chain(exc):
            name = type(item).__name__
            if name in CREDENTIAL_ERRORS:
                return StorageAuthError(f"{what}: {CREDENTIAL_ERRORS[name]}: {CREDENTIAL_HINT}")
            response = getattr(item, "response", None)
            if isinstance(response, dict):
                error = response.get("Error") or {}
                code = str(error.get("Code") or "")
                query = str(error.get("QueryErrorCode") or "")
                status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
                message = one_line(error.get("Message") or code)
                if code in GONE_CODES or query in GONE_CODES:
                    return FeedGoneError(
                        f"{what}: the queue does not exist (deleted, or a wrong URL)"
                    )
                if code in AUTH_CODES or code == "InvalidClientTokenId":
                    return StorageAuthError(
                        f"{what}: the service rejected the credentials ({code}): {CREDENTIAL_HINT}"
                    )
                if code in PERMISSION_CODES or status == 403:
                    return StoragePermissionError(
                        f"{what}: access denied ({code or status}): allow sqs:ReceiveMessage, "
                        "sqs:DeleteMessage and sqs:GetQueueAttributes on the queue"
                    )
                if code in THROTTLE_CODES or status in (429, 503):
                    return busy(what, code or status)
                if isinstance(status, int) and status >= 500:
                    return StorageOfflineError(
                        f"{what}: service error {status} ({code}): {message}"
                    )
                return StorageError(f"{what}: {code or status}: {message}")
            if isinstance(item, TimeoutError | ConnectionError) or name in _NETWORK_ERRORS:
                return StorageOfflineError(f"{what}: cannot reach {endpoint}: {one_line(item)}")
        return StorageError(f"{what}: {type(exc).__name__}: {one_line(exc)}")


class _Refused(Exception):
    """The service's error reply, in the shape ``_error`` reads (botocore's)."""

    def __init__(self, status: int, doc: dict[str, Any], query: str) -> None:
        kind = str(doc.get("__type") or "")
        code = service_code(kind.rsplit("#", 1)[-1])  # any text a service sent
        message = one_line(doc.get("message") or doc.get("Message") or code or status)
        super().__init__(f"{status} {code}: {message}")
        self.response = {
            "Error": {
                "Code": code,
                "QueryErrorCode": service_code(query.split(";", 1)[0]),
                "Message": message,
            },
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


_TARGETS = {
    "receive_message": "ReceiveMessage",
    "delete_message_batch": "DeleteMessageBatch",
    "get_queue_attributes": "GetQueueAttributes",
}
_VERBS = {
    "receive_message": "read",
    "delete_message_batch": "delete messages from",
    "get_queue_attributes": "check",
}
_NETWORK_ERRORS = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
    "ConnectionClosedError",
    "ClientPayloadError",
    "ServerTimeoutError",
}


def _chunks(items: tuple[str, ...], size: int) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
