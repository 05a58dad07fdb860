"""Google Cloud Storage (and fake-gcs-server) over gcsfs.

Credentials follow Google's Application Default Credentials unless the location says
otherwise: ``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``,
the metadata server on Google Cloud. ``STORAGE_EMULATOR_HOST`` is honoured as the
endpoint. As with Google's own client, a plain-``http`` endpoint (an emulator) is used
without credentials.

gcsfs's request retry (up to six attempts, 1 to 32 s apart) is replaced by this
storage's ``retries`` so an unreachable service is reported in seconds, and credentials
are refreshed in a worker thread (gcsfs refreshes them synchronously).
"""

from __future__ import annotations

import asyncio
import functools
import json as json_module
import os
import random
from collections.abc import Callable
from http.client import responses as status_phrases
from typing import Any, NoReturn

from .base import (
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
    busy,
    exception_chain,
    gave_up_waiting,
    listed_size,
    one_line,
    read_bounded,
    redirect_reason,
)
from .url import split_url

CREDENTIAL_HINT = (
    "set GOOGLE_APPLICATION_CREDENTIALS, run 'gcloud auth application-default login', "
    "or add ?credentials_file=… to the URL"
)


def _content_tag(item: dict[str, Any]) -> str | None:
    """An object's content tag (``ObjectInfo.content_tag``) from its listing entry: its
    MD5, or its CRC32C where it has none (a composed object). Not its ``etag``, which
    changes when only the object's metadata does."""
    return content_tag("md5", item.get("md5Hash")) or content_tag("crc32c", item.get("crc32c"))


def _refuse_error_answer(status: int, body: bytes, path: str, args: Any = None) -> NoReturn:
    """Raise gcsfs's exception for an error answer (HTTP 400 or more), judged by its
    ``status`` first: gcsfs's ``validate_response`` reads the body, so any message with
    the word "invalid" was its ``ValueError("Bad Request")`` (a refusal) whatever the
    status, and a body nested deep or holding a number of thousands of digits raised
    Python's own error; a GCS 503 was never retried, and an outbox write was marked
    failed. A 5xx, 429 or 408 is passing whatever its body says (``HttpError``, or a 502's
    ``ProxyError``, both retried); a 4xx whose body cannot be parsed is judged by its
    status alone, as S3 and Azure drop such a body (``refuse_xml_declarations``)."""
    from gcsfs.retry import HttpError, validate_response  # type: ignore[import-untyped]

    phrase = status_phrases.get(status, "")
    if status >= 500 or status in (408, 429):
        if status != 502:  # gcsfs's ProxyError, below, is the word for a 502
            raise HttpError({"code": status, "message": phrase})
        body = b""
    try:
        validate_response(status, body, path, args)
    except (RecursionError, ValueError) as exc:
        if str(exc).startswith("Bad Request"):  # a 4xx whose message says "invalid"
            raise
        raise HttpError({"code": status, "message": phrase}) from None
    # gcsfs lets a 499 pass (a resumable upload cancelled; this app makes none)
    raise HttpError({"code": status, "message": phrase})


JSON_MARKS_MAX = 1_000_000
"""The most structural marks (``{``, ``[``, ``,`` and ``:``, counted in its bytes) a JSON
answer of GCS's may hold: a page of 1,000 objects holds about 53,000. Each value is an
object in memory once parsed: 16 MiB of ``{},{},…`` (16 KB gzip-compressed) were 5.6
million dicts, 421 MiB while parsed; a million marks take at most about 80 MB. Counted
before the answer is parsed, as ``XML_TAGS_MAX`` is for S3's and Azure's XML."""


def _json_answer(body: bytes) -> Any:
    """``body``, an answer of GCS's JSON API (a listing page, an upload's or a bucket's
    resource), parsed; one that is not JSON, or is JSON no GCS answer is (more than
    ``JSON_MARKS_MAX`` marks, nested deep, a number of thousands of digits), is a
    ``BadAnswerError`` that says so (gcsfs's ``json.loads`` raised Python's own error)."""
    marks = body.count(b"{") + body.count(b"[") + body.count(b",") + body.count(b":")
    if marks > JSON_MARKS_MAX:
        why = f"of more than {JSON_MARKS_MAX:,} JSON values (no GCS answer holds so many)"
        raise BadAnswerError(
            f"the service sent an answer {why}",
            listing_reason=f"the GCS listing answer is malformed: a page {why}",
        )
    try:
        return json_module.loads(body)
    except RecursionError as exc:  # 200,000 nested lists: no answer of GCS's
        raise BadAnswerError(
            "the service's answer is JSON nested too deeply",
            listing_reason="the GCS listing answer is malformed: JSON nested too deeply",
        ) from exc
    except ValueError as exc:  # not JSON, or not UTF-8 (JSONDecodeError...)
        if "integer string conversion" in str(exc):  # a number of 4,300+ digits
            raise BadAnswerError(
                "the service's answer holds a number of thousands of digits",
                listing_reason="the GCS listing answer is malformed: a number of "
                "thousands of digits",
            ) from exc
        if not isinstance(exc, json_module.JSONDecodeError | UnicodeDecodeError):
            raise
        raise BadAnswerError(
            "the service's answer is not JSON",
            listing_reason="the GCS listing answer is malformed: not JSON",
        ) from exc


@functools.cache
def _filesystem_class() -> Any:
    # The default gcsfs class probes buckets over gRPC (hangs ~60 s on an emulator).
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import aiohttp
    from gcsfs.core import GCSFileSystem  # type: ignore[import-untyped]
    from gcsfs.retry import is_retriable

    class BoundedRetryGCSFileSystem(GCSFileSystem):  # type: ignore[misc]
        attempts = 3
        # An upload's read timeout, by its size (``FsspecStorage.write_read_timeout``):
        # aiohttp's runs from the start of the request, so ``requests_timeout`` ended
        # any upload slower than it. None: ``requests_timeout`` for every request.
        write_read_timeout: Callable[[int], float] | None = None

        async def _request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            return await self._retrying(self._bounded_request, method, path, *args, **kwargs)

        async def _retrying(self, call: Any, *args: Any, **kwargs: Any) -> Any:
            if self.credentials.credentials is not None:
                await asyncio.to_thread(self.credentials.maybe_refresh)
            for attempt in range(self.attempts):
                try:
                    return await call(*args, **kwargs)
                except Exception as exc:
                    if attempt + 1 >= self.attempts or not is_retriable(exc):
                        raise
                await asyncio.sleep(min(0.25 * 2**attempt, 4.0) * (0.5 + random.random()))
            raise AssertionError("unreachable")

        async def _bounded_request(
            self,
            method: str,
            path: str,
            *args: Any,
            headers: dict[str, str] | None = None,
            json: Any = None,
            data: Any = None,
            cache_type: Any = None,
            cache_source: Any = None,
            **kwargs: Any,
        ) -> tuple[int, Any, Any, bytes]:
            """gcsfs's ``_request`` (one attempt), its answer read within
            ``read_bounded``'s cap and decoded there: gcsfs read every answer whole,
            and aiohttp inflated a gzip one whole (a 1 MB listing page became
            1,000 MiB). An object's bytes are not read here (``GCSStorage._cat``)."""
            await self._set_session()
            if hasattr(data, "seek"):
                data.seek(0)
            asked = {"Accept-Encoding": "identity", **(headers or {})}
            timeout = self.requests_timeout
            if isinstance(data, bytes | bytearray) and data and self.write_read_timeout:
                timeout = aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.connect,
                    sock_read=self.write_read_timeout(len(data)),
                )
            async with self.session.request(
                method=method,
                url=self._format_path(path, args),
                params=self._get_params(kwargs),
                json=json,
                headers=self._get_headers(asked, cache_type=cache_type, cache_source=cache_source),
                data=data,
                timeout=timeout,
                auto_decompress=False,  # decoded by ``read_bounded``, within its cap
                allow_redirects=False,  # followed by aiohttp by default (``redirect_reason``)
            ) as r:
                if 300 <= r.status < 400:
                    raise BadAnswerError(redirect_reason(r.status, r.headers.get("Location")))
                if r.status >= 400:  # an error's first 64 KiB say what it is (raises)
                    _refuse_error_answer(r.status, await r.content.read(64 * 1024), path, args)
                contents = await read_bounded(r.content.read, r.headers.get("Content-Encoding"))
                return r.status, r.headers, r.request_info, contents

        async def _call(
            self, method: str, path: str, *args: Any, json_out: bool = False, **kwargs: Any
        ) -> Any:
            """gcsfs's ``_call``, its JSON answers (listing pages, an upload's object
            resource, a bucket's) parsed by ``_json_answer`` instead of ``json.loads``."""
            if not json_out:
                return await super()._call(method, path, *args, **kwargs)
            return _json_answer((await self._request(method, path, *args, **kwargs))[3])

    return BoundedRetryGCSFileSystem


def _field(page: object, name: str, listing: Listing) -> list[Any]:
    """The list ``page[name]`` of a GCS listing page (none: an empty one)."""
    if not isinstance(page, dict):
        raise listing.malformed("the answer is not a JSON object")
    value = page.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise listing.malformed(f'"{name}" is not a list')
    return value


class GCSStorage(FsspecStorage):
    kind = "gs"

    def create_only_mechanism(self) -> str:
        return "GCS refuses the upload: ifGenerationMatch=0 (object must not exist)"

    def _endpoint(self) -> str | None:
        return self.location.options.get("endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST")

    async def _open_fs(self) -> Any:
        import aiohttp

        cls = _filesystem_class()
        opts = self.location.options
        endpoint = self._endpoint()
        kwargs: dict[str, Any] = {
            "asynchronous": True,
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "requests_timeout": aiohttp.ClientTimeout(
                total=None, connect=self.timeout, sock_read=self.timeout
            ),
        }
        if "endpoint_url" in opts:
            kwargs["endpoint_url"] = opts["endpoint_url"]
        if "project" in opts:
            kwargs["project"] = opts["project"]
        key_file = (
            os.path.expanduser(opts["credentials_file"]) if "credentials_file" in opts else None
        )
        if self.location.anonymous or (
            key_file is None
            and endpoint
            # The option is checked; the variable may hold a '[' … ']' urlsplit quotes.
            and split_url(endpoint, "the GCS endpoint (STORAGE_EMULATOR_HOST?)").scheme == "http"
        ):
            kwargs["token"] = "anon"
        elif key_file is not None:
            if not os.path.isfile(key_file):
                raise StorageAuthError(
                    f"cannot open {self.display()}: the credentials file {key_file} does not exist"
                )
            kwargs["token"] = key_file
        try:
            if kwargs.get("token") == "anon":
                fs = cls(**kwargs)
            else:  # finding credentials reads files and may ask the metadata server
                fs = await asyncio.to_thread(functools.partial(cls, **kwargs))
        except Exception as exc:
            if key_file is not None:
                raise StorageAuthError(
                    f"cannot open {self.display()}: the credentials file {key_file} is not a "
                    f"Google service-account or user key ({one_line(exc, 80)})"
                ) from exc
            raise self._error(exc, f"cannot open {self.display()}") from exc
        fs.attempts = self.retries
        fs.write_read_timeout = self.write_read_timeout
        return fs

    async def _create(self, fs: Any, target: str, data: bytes) -> bool:
        # One simple upload whatever the size (segments stay below 64 MiB): gcsfs would
        # switch to a resumable upload above 50 MiB, a path emulators handle differently.
        answer = await fs._pipe_file(
            target, data, mode="create", chunksize=max(len(data) + 1, 2**20)
        )
        # The object's resource: its md5Hash is of the bytes GCS stored (a service that
        # answered and stored nothing, or other bytes, lost the message: ``confirm_write``).
        named = answer.get("md5Hash") if isinstance(answer, dict) else None
        if not isinstance(named, str):
            return False  # nothing to compare: ``put_if_absent`` reads it back
        confirm_write(named, md5_tag(data).partition(":")[2])
        return True

    async def _cat(self, fs: Any, target: str, max_bytes: int, meter: Meter) -> bytes:
        """One GET of the object's media, streamed and cut after ``max_bytes + 1`` bytes
        whatever the service sends. No Range header: GCS answers a ranged read of an
        empty object (an activity marker) with 416, and fake-gcs-server then drops the
        kept-alive connection under the next upload."""
        await fs._set_session()
        async with fs.session.get(
            fs.url(target),
            headers=fs._get_headers(None),
            timeout=fs.requests_timeout,
            allow_redirects=False,
        ) as resp:
            if 300 <= resp.status < 400:
                raise BadAnswerError(redirect_reason(resp.status, resp.headers.get("Location")))
            if resp.status >= 400:
                _refuse_error_answer(resp.status, await resp.content.read(64 * 1024), target)
            chunks: list[bytes] = []
            left = max_bytes + 1
            while left > 0:
                chunk: bytes = await resp.content.read(min(left, 1024 * 1024))
                if not chunk:
                    break
                meter.got(len(chunk))
                chunks.append(chunk)
                left -= len(chunk)
        return b"".join(chunks)

    async def _close_fs(self, fs: Any) -> None:
        session = getattr(fs, "_session", None)
        if session is not None:
            await session.close()

    async def _bucket_exists(self, fs: Any) -> bool | None:
        try:
            await fs._call("GET", "b/{}", self.bucket, json_out=True)
        except FileNotFoundError:
            return False
        return True

    async def _list_keys(
        self,
        fs: Any,
        key_prefix: str,
        start_after: str | None,
        limit: int | None,
        listing: Listing,
    ) -> list[tuple[str, int, str | None]]:
        params: dict[str, Any] = {"prefix": key_prefix or None, "maxResults": limit or 1000}
        if start_after is not None:
            params["startOffset"] = start_after  # inclusive: the caller drops the equal key
        out: list[tuple[str, int, str | None]] = []
        while True:
            page = await listing.page(
                fs._call("GET", "b/{}/o", self.bucket, json_out=True, **params)
            )
            items = _field(page, "items", listing)
            for item in items:
                if not isinstance(item, dict):
                    raise listing.malformed('an entry of "items" that is not an object')
                name = item.get("name")
                if not isinstance(name, str):
                    why = "without a name" if name is None else "whose name is not text"
                    raise listing.malformed(f"an item {why}")
                size = listed_size(item.get("size"))
                if size is None:
                    raise listing.malformed(
                        f"the item {name[:200]!r} has no size, or one that is not a whole "
                        f"number ({one_line(repr(item.get('size')), 40)})"
                    )
                if listing.named(name) is not None:
                    out.append((name, size, _content_tag(item)))
            token = page.get("nextPageToken")
            last = out[-1][0] if items and out else None  # (a skipped name is no last)
            if not listing.more(len(items), token, last) or limit is not None:
                return out
            params["pageToken"] = token

    async def _list_level_keys(self, fs: Any, key_prefix: str, listing: Listing) -> list[str]:
        params: dict[str, Any] = {"prefix": key_prefix or None, "delimiter": "/"}
        out: list[str] = []
        while True:
            page = await listing.page(
                fs._call("GET", "b/{}/o", self.bucket, json_out=True, **params)
            )
            prefixes = _field(page, "prefixes", listing)
            if not all(isinstance(prefix, str) for prefix in prefixes):
                raise listing.malformed('an entry of "prefixes" that is not text')
            out.extend(prefix for prefix in prefixes if listing.named(prefix) is not None)
            items = _field(page, "items", listing)
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise listing.malformed('an entry of "items" without a name')
                if listing.named(item["name"]) is not None:
                    out.append(item["name"])
            token = page.get("nextPageToken")
            # folders count towards its bounds, objects not (S3's); both towards ``most``
            if not listing.more(len(prefixes), token, names=len(prefixes) + len(items)):
                return out
            params["pageToken"] = token

    def _service_error(self, exc: BaseException, what: str) -> StorageError | None:
        from gcsfs.retry import HttpError, NonRetryableError
        from google.auth import exceptions as auth_errors

        for item in exception_chain(exc):
            if isinstance(item, auth_errors.GoogleAuthError | NonRetryableError):
                offline = self._network_error(item, what)
                if offline is not None:
                    return offline
                return StorageAuthError(
                    f"{what}: Google credentials could not be used ({one_line(item, 120)}): "
                    + CREDENTIAL_HINT
                )
            if isinstance(item, HttpError):
                code = item.code if isinstance(item.code, int) else None
                if code == 401:
                    return StorageAuthError(
                        f"{what}: the service rejected the credentials (401): {CREDENTIAL_HINT}"
                    )
                if code == 403:
                    return self._forbidden(what, item)
                if code == 429:
                    return busy(what, code)
                if code == 408:
                    return gave_up_waiting(what, code)
                if code is not None and code >= 500:
                    return StorageOfflineError(f"{what}: service error {code}: {one_line(item)}")
                return StorageError(f"{what}: {one_line(item)}")
            if type(item).__name__ == "ProxyError":  # gcsfs's word for an HTTP 502
                return StorageOfflineError(
                    f"{what}: service error 502 (bad gateway): a proxy in front of the "
                    "service got no answer from it; retry later"
                )
            if type(item) is OSError and str(item).startswith("Forbidden"):
                return self._forbidden(what, item)
            if isinstance(item, ValueError) and str(item).startswith("Bad Request"):
                return StorageError(f"{what}: the service refused the request: {one_line(item)}")
        return None

    def _forbidden(self, what: str, exc: BaseException) -> StorageError:
        detail = str(exc).split("\n", 1)[-1] if "\n" in str(exc) else str(exc)
        return StoragePermissionError(
            f"{what}: access denied: the credentials work but may not do this on "
            f"{self.bucket} ({one_line(detail, 120)})"
        )
