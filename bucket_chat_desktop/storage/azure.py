"""Azure Blob Storage (and Azurite) over adlfs.

The account and its credential come, in this order, from the profile's keyring entry
(account key, SAS token or connection string), then ``AZURE_STORAGE_CONNECTION_STRING``,
``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_SAS_TOKEN`` (with
``AZURE_STORAGE_ACCOUNT_NAME``), and otherwise ``DefaultAzureCredential`` (environment
service principal, workload or managed identity, Azure CLI login).

adlfs cannot take an endpoint URL nor bound its retries (the SDK default waits minutes
for a refused connection), so this module builds the ``BlobServiceClient`` itself and
hands it to adlfs.
"""

from __future__ import annotations

import base64
import functools
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

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
    ANSWER_MAX_BYTES,
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
    redirect_refused,
    refuse_xml_declarations,
    service_code,
)
from .url import address_shown

SINGLE_PUT = 64 * 1024 * 1024
"""The largest write sent as one Put Blob (the SDK's default); larger ones go as blocks."""
DOWNLOAD_PIECE = 1024 * 1024
"""Bytes per ranged request of a read (``AzureStorage._cat``). The SDK hands a piece
over whole, so this is also how often a download shows progress (``Meter``, and
``sync.watched``: 4 s a piece at the minimum read rate, under the 8 s after which a
storage is shown as not answering)."""
DEV_ACCOUNT = "devstoreaccount1"
# Azurite's and the Storage Emulator's published, well-known development key.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AUTH_CODES = {
    "AuthenticationFailed",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
    "AuthorizationSourceIPMismatch",
}
CREDENTIAL_HINT = (
    "set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_KEY, sign in with "
    "'az login', or save a key with 'bucket-chat storage add'"
)


def parse_connection_string(text: str) -> dict[str, str]:
    """``Key=Value;…`` into a dict with lower-case keys (values may contain ``=``)."""
    out: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise StorageAuthError(
                "the Azure connection string is malformed (expected Key=Value;…)"
            )
        out[key.strip().lower()] = value.strip()
    if out.get("usedevelopmentstorage", "").lower() == "true":
        out.setdefault("accountname", DEV_ACCOUNT)
        out.setdefault("accountkey", DEV_KEY)
        out.setdefault("blobendpoint", f"http://127.0.0.1:10000/{DEV_ACCOUNT}")
    return out


_HOST = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")


def _checked_account_url(endpoint: str, what: str) -> str:
    """The blob endpoint a connection string names (its ``BlobEndpoint``, or the one made
    of its protocol, account name and suffix) as the SDK may be given it, or a
    ``StorageAuthError`` that quotes none of it: the SDK's own errors quote it whole
    (``Invalid URL: …``), and a connection string written without a ``;`` puts its
    account key in it. Its query may be a SAS token, as the SDK reads it."""
    wrong = StorageAuthError(
        f"{what}: the Azure blob endpoint is no http(s) address: check the account name and the "
        "connection string's BlobEndpoint, DefaultEndpointsProtocol and EndpointSuffix"
    )
    if "@" in endpoint or any(c.isspace() or ord(c) < 32 for c in endpoint):
        raise wrong
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:  # its text quotes a piece of the endpoint
        raise wrong from None
    if parts.scheme not in ("http", "https") or not _HOST.fullmatch(host):
        raise wrong
    return endpoint


def _content_tag(blob: Any) -> str | None:
    """A listed blob's content tag (``ObjectInfo.content_tag``): its Content-MD5, which
    the service computes for a blob uploaded in one request; None for one uploaded in
    blocks without it. Not its ETag, which changes when only its properties do."""
    settings = getattr(blob, "content_settings", None)
    md5 = getattr(settings, "content_md5", None)
    if isinstance(md5, bytes | bytearray) and 0 < len(md5) <= 64:
        return content_tag("md5", base64.b64encode(bytes(md5)).decode("ascii"))
    return None


def _range_length(header: str | None) -> int | None:
    """The bytes an ``x-ms-range`` of ``bytes=A-B`` asks for (None: no such range)."""
    if not header or not header.startswith("bytes="):
        return None
    first, _, last = header.removeprefix("bytes=").partition("-")
    if not (first.isdigit() and last.isdigit()) or int(last) < int(first):
        return None
    return int(last) - int(first) + 1


@functools.cache
def _bounded_transport_class() -> Any:
    import aiohttp
    from azure.core.exceptions import (
        IncompleteReadError,
        ServiceRequestError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )
    from azure.core.pipeline.transport import AioHttpTransport

    class BoundedAioHttpTransport(AioHttpTransport):  # type: ignore[misc]
        """The SDK's aiohttp transport, with each answer read whole within
        ``read_bounded``'s cap, and decoded there: the SDK read a listing page whole
        and then inflated it whole (0.3 MB of gzip made 1.5 GB of memory). Every answer
        of this app's is small or a ranged piece of at most ``DOWNLOAD_PIECE`` bytes
        (``_cat``), so streamed ones (downloads) are read so too: the SDK joined each
        piece whole anyway."""

        async def send(self, request: Any, *, stream: bool = False, **config: Any) -> Any:
            response = await super().send(request, stream=True, **config)
            limit = ANSWER_MAX_BYTES
            ranged = _range_length(request.headers.get("x-ms-range"))
            answered = 200 <= response.status_code < 300 and response.headers.get("Content-Range")
            if ranged is not None and answered:
                # A piece of a download (``_cat`` asks ranges): the SDK joins each piece
                # whole and inflated it whole, so a service answering a 1,001-byte range
                # with 300 MB (or a gzip bomb) was held whole. The range is the most a
                # piece may be. (Answered without Content-Range, the SDK refuses it.)
                limit = ranged
            internal = response.internal_response
            try:
                encoding = response.headers.get("Content-Encoding")
                body = await read_bounded(internal.content.read, encoding, limit)
            except aiohttp.ClientPayloadError as err:
                internal.close()
                raise IncompleteReadError(err, error=err) from err
            except aiohttp.ClientResponseError as err:
                internal.close()
                raise ServiceResponseError(err, error=err) from err
            except TimeoutError as err:
                internal.close()
                raise ServiceResponseTimeoutError(err, error=err) from err
            except aiohttp.ClientError as err:
                internal.close()
                raise ServiceRequestError(err, error=err) from err
            except BaseException:
                internal.close()
                raise
            if limit == ANSWER_MAX_BYTES:  # not an object's bytes: XML the SDK parses
                try:
                    body = refuse_xml_declarations(body, response.status_code)
                except BaseException:
                    internal.close()
                    raise
            response._content = body
            response._decompressed_content = True  # decoded above
            if hasattr(response, "_set_read_checks"):  # azure.core.rest's response
                await response._set_read_checks()
            else:
                internal.release()
            return response

    return BoundedAioHttpTransport


@functools.cache
def _filesystem_class() -> Any:
    from adlfs import AzureBlobFileSystem  # type: ignore[import-untyped]
    from fsspec.asyn import get_loop  # type: ignore[import-untyped]

    class ClientAzureBlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
        """adlfs on a ``BlobServiceClient`` built by the caller (``service_client=``)."""

        def do_connect(self) -> None:
            self.service_client = self.kwargs["service_client"]

        @property
        def loop(self) -> Any:
            # adlfs registers exit-time finalizers that close the client on ``self.loop``,
            # which is None for an asynchronous instance: each would print a traceback at
            # exit. On fsspec's own loop they run, and find the client already closed.
            return self._loop or get_loop()

    return ClientAzureBlobFileSystem


class AzureStorage(FsspecStorage):
    kind = "az"
    what = "container"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owned_credential: Any = None

    def create_only_mechanism(self) -> str:
        return "Azure refuses the upload: Put Blob with If-None-Match: *"

    def _account(self) -> tuple[str, str, Any]:
        """``(account_url, account_name, credential)`` from the options, secrets and env."""
        from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

        opts = self.location.options
        named = opts.get("account_name")
        env_name = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
        conn_text = self._secrets.get("connection_string")
        key = self._secrets.get("account_key")
        sas = self._secrets.get("sas_token")
        if not (conn_text or key or sas) and not self.location.anonymous:
            env_conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            if env_conn:
                parsed = parse_connection_string(env_conn)
                if named is None or parsed.get("accountname") == named:
                    conn_text = env_conn
            if not conn_text and (named is None or env_name in (None, named)):
                key = os.environ.get("AZURE_STORAGE_ACCOUNT_KEY") or None
                sas = None if key else os.environ.get("AZURE_STORAGE_SAS_TOKEN") or None
        conn = parse_connection_string(conn_text) if conn_text else {}
        account = named or conn.get("accountname") or env_name
        endpoint = opts.get("endpoint_url") or conn.get("blobendpoint")
        if not account and not endpoint:
            raise StorageAuthError(
                f"cannot open {self.display()}: no Azure storage account: add "
                "?account_name=… to the URL or set AZURE_STORAGE_ACCOUNT_NAME"
            )
        if not endpoint:
            protocol = conn.get("defaultendpointsprotocol", "https")
            suffix = conn.get("endpointsuffix", "core.windows.net")
            endpoint = f"{protocol}://{account}.blob.{suffix}"
        if "endpoint_url" not in opts:  # the option is checked (url.py); this is not
            endpoint = _checked_account_url(endpoint, f"cannot open {self.display()}")
        key = key or conn.get("accountkey")
        sas = sas or conn.get("sharedaccesssignature")
        credential: Any = None
        if self.location.anonymous:
            credential = None
        elif key:
            if not account:
                raise StorageAuthError(
                    f"cannot open {self.display()}: an account key needs the account name "
                    "(?account_name=…)"
                )
            credential = AzureNamedKeyCredential(account, key)
        elif sas:
            credential = AzureSasCredential(sas.lstrip("?"))
        elif endpoint.startswith("http://"):
            raise StorageAuthError(
                f"cannot open {self.display()}: the http:// endpoint {address_shown(endpoint)} "
                "(an emulator?) "
                "needs an account key, SAS token or connection string; "
                "Azure sign-in tokens are only sent over https: " + CREDENTIAL_HINT
            )
        else:
            from azure.identity.aio import DefaultAzureCredential

            credential = self._owned_credential = DefaultAzureCredential(
                exclude_interactive_browser_credential=True
            )
        return endpoint, account or "", credential

    async def _open_fs(self) -> Any:
        from azure.storage.blob.aio import BlobServiceClient, LinearRetry

        try:
            endpoint, account, credential = self._account()
            client = BlobServiceClient(
                endpoint,
                credential=credential,
                # About a second between attempts (the SDK default starts at 15 s).
                retry_policy=LinearRetry(
                    backoff=1, retry_total=self.retries - 1, random_jitter_range=1
                ),
                connection_timeout=self.timeout,
                read_timeout=self.timeout,
                # A read comes in ranged requests of at most this size (``_cat``): each
                # moves the read's deadline as it arrives (``Meter``); the SDK's first
                # request of 32 MiB showed no progress before all of it was there.
                max_single_get_size=DOWNLOAD_PIECE,
                # Larger writes go as blocks, whose answer names no checksum of the
                # bytes (``_create``): the limit said here, not left to a default.
                max_single_put_size=SINGLE_PUT,
                max_chunk_get_size=DOWNLOAD_PIECE,
                # The SDK followed a redirect to any address, with the request's body
                # (``cloud.redirect_reason``): one is an answer like any other.
                permit_redirects=False,
                transport=_bounded_transport_class()(
                    connection_timeout=self.timeout, read_timeout=self.timeout
                ),
            )
            return _filesystem_class()(
                account_name=account or DEV_ACCOUNT,
                credential=credential,
                anon=credential is None,
                service_client=client,
                asynchronous=True,
                skip_instance_cache=True,
                use_listings_cache=False,
            )
        except Exception as exc:
            await self._close_credential()
            raise self._error(exc, f"cannot open {self.display()}") from exc

    async def _create(self, fs: Any, target: str, data: bytes) -> bool:
        # The upload's read timeout (``FsspecStorage.write_read_timeout``): the
        # transport's runs from the start of the request, so ``read_timeout`` ended any
        # upload slower than it.
        answer = await fs._pipe_file(
            target, data, mode="create", read_timeout=self.write_read_timeout(len(data))
        )
        # Put Blob answers with the Content-MD5 of what it stored: another one says the
        # bytes it took are not these (``confirm_write``). A larger write is blocks and a
        # Put Block List, whose Content-MD5 is the list's: compared with the bytes', every
        # attachment over 64 MiB was "not confirmed" and tried again for ever (found by
        # the helper that wrote rt57's fixes); it is read back instead.
        if len(data) > SINGLE_PUT:
            return False
        named = answer.get("content_md5") if isinstance(answer, dict) else None
        if not isinstance(named, (bytes, bytearray)) or len(named) != 16:
            return False  # nothing to compare: ``put_if_absent`` reads it back
        ours = md5_tag(data).partition(":")[2]
        confirm_write(base64.b64encode(bytes(named)).decode("ascii"), ours)
        return True

    async def _cat(self, fs: Any, target: str, max_bytes: int, meter: Meter) -> bytes:
        """The object's first ``max_bytes + 1`` bytes, in ranged requests of
        ``DOWNLOAD_PIECE`` bytes, each told to ``meter`` as it arrives."""
        container, blob, _ = fs.split_path(target)
        async with fs.service_client.get_blob_client(container=container, blob=blob) as client:
            stream = await client.download_blob(offset=0, length=max_bytes + 1, max_concurrency=1)
            chunks: list[bytes] = []
            left = max_bytes + 1
            async for chunk in stream.chunks():
                meter.got(len(chunk))
                chunks.append(chunk[:left])
                left -= len(chunk)
                if left <= 0:
                    break
        return b"".join(chunks)

    async def _close_credential(self) -> None:
        credential, self._owned_credential = self._owned_credential, None
        if credential is not None:
            await credential.close()

    async def _close_fs(self, fs: Any) -> None:
        try:
            await fs.service_client.close()
        finally:
            await self._close_credential()

    async def _list_keys(
        self,
        fs: Any,
        key_prefix: str,
        start_after: str | None,
        limit: int | None,
        listing: Listing,
    ) -> list[tuple[str, int, str | None]]:
        # Azurite ignores a start marker, so every listing is by prefix; the caller filters.
        container = fs.service_client.get_container_client(self.bucket)
        out: list[tuple[str, int, str | None]] = []
        pages = container.list_blobs(
            name_starts_with=key_prefix or None, results_per_page=limit
        ).by_page()
        async for page in _pages(pages, listing):
            for blob in page:
                name = getattr(blob, "name", None)
                if not isinstance(name, str):
                    raise listing.malformed("a blob without a name")
                size = listed_size(getattr(blob, "size", None))
                if size is None:
                    raise listing.malformed(f"the blob {name[:200]!r} has no size")
                if listing.named(name) is not None:
                    out.append((name, size, _content_tag(blob)))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    async def _list_level_keys(self, fs: Any, key_prefix: str, listing: Listing) -> list[str]:
        from azure.storage.blob.aio import BlobPrefix

        container = fs.service_client.get_container_client(self.bucket)
        pages = container.walk_blobs(name_starts_with=key_prefix or None).by_page()
        out: list[str] = []

        # Folders count towards the listing's bounds, blobs right in it not (S3's).
        def folders(items: list[Any]) -> int:
            return sum(isinstance(item, BlobPrefix) for item in items)

        async for page in _pages(pages, listing, counted=folders):
            for item in page:
                if not isinstance(item.name, str):
                    raise listing.malformed("a blob or blob prefix without a name")
                if listing.named(item.name) is None:
                    continue
                if isinstance(item, BlobPrefix):  # a folder: its key ends with "/"
                    out.append(item.name if item.name.endswith("/") else f"{item.name}/")
                elif not item.name.endswith("/"):  # a blob ending with "/": no object's name
                    out.append(item.name)
        return out

    def _service_error(self, exc: BaseException, what: str) -> StorageError | None:
        from azure.core import exceptions as az

        for item in exception_chain(exc):
            if isinstance(item, az.ServiceRequestError | az.ServiceResponseError):
                return self._network_error(item, what) or StorageOfflineError(
                    f"{what}: cannot reach {self._endpoint_name()}: {one_line(item)}"
                )
            if not isinstance(item, az.AzureError):
                continue
            raw_code = getattr(item, "error_code", None) or ""
            code = service_code(getattr(raw_code, "value", raw_code))
            status = getattr(item, "status_code", None)
            message = one_line(getattr(item, "reason", None) or item.message or code)
            if code == "ContainerNotFound":
                return self._missing_bucket(what)
            if isinstance(status, int) and 300 <= status < 400:
                response = getattr(item, "response", None)
                headers = getattr(response, "headers", None) or {}
                return redirect_refused(what, status, headers.get("Location"))
            if isinstance(status, int) and 200 <= status < 300:  # success, not the one asked
                return StorageError(
                    f"{what}: the service answered HTTP {status}, which Azure never answers "
                    "to this request (a broken or hostile service)"
                )
            if isinstance(item, az.ResourceNotFoundError) or status == 404:
                return MissingError(f"{what}: not found")
            auth_text = "failed to authenticate" in str(item.message)
            if isinstance(item, az.ClientAuthenticationError) and status is None:
                return StorageAuthError(
                    f"{what}: no usable Azure credential ({one_line(item.message, 120)}): "
                    + CREDENTIAL_HINT
                )
            if code in AUTH_CODES or auth_text or status == 401:
                return StorageAuthError(
                    f"{what}: the service rejected the credentials "
                    f"({code or status}): check the account key or SAS token; " + CREDENTIAL_HINT
                )
            if status == 403 or isinstance(item, az.ClientAuthenticationError):
                return StoragePermissionError(
                    f"{what}: access denied ({code or status}): the credentials work but may "
                    f"not do this on container {self.bucket}"
                )
            if status in (429, 503) or code == "ServerBusy":
                return busy(what, code or status)
            if status == 408:
                return gave_up_waiting(what, code or status)
            if status is not None and status >= 500:
                return StorageOfflineError(f"{what}: service error {status} ({code}): {message}")
            return StorageError(f"{what}: {code or status or type(item).__name__}: {message}")
        for item in exception_chain(exc):
            if isinstance(item, ValueError) and "base64" in str(item).lower():
                return StorageAuthError(f"{what}: the Azure account key is not valid base64")
        return None


async def _pages(
    pages: Any, listing: Listing, counted: Callable[[list[Any]], int] = len
) -> AsyncIterator[list[Any]]:
    """The items of each page of an Azure listing, a page at a time, within ``listing``'s
    bounds (its deadline per page, its caps on pages, items and repeated tokens);
    ``counted``: how many of a page's items count towards its cap on items."""
    from azure.core.exceptions import DecodeError, DeserializationError

    while True:
        try:
            page = await listing.page(anext(pages))
        except StopAsyncIteration:
            return
        except (DecodeError, DeserializationError) as exc:  # not XML, or a field not its type
            raise listing.malformed(f"it could not be parsed ({one_line(exc, 80)})") from exc
        except (AttributeError, TypeError, KeyError) as exc:
            # the SDK's own reading of the parsed page (a blob without a name: "'NoneType'
            # object has no attribute 'encoded'"); no request raises these
            raise listing.malformed(
                f"an entry the SDK could not read ({type(exc).__name__}: {one_line(exc, 80)})"
            ) from exc
        items = [item async for item in page]  # the page is in memory: no request here
        yield items
        last = getattr(items[-1], "name", None) if items else None
        if not listing.more(counted(items), pages.continuation_token, last, names=len(items)):
            return
