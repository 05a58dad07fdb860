"""What a user meets when the storage is misconfigured or unreachable: the right error class
and one line that says what to do, quickly — never a traceback or a minute of retries.

"Quickly" is counted, not timed: the requests the SDKs make (every one goes through
``aiohttp.ClientSession._request``, a connection refused or a name not found included),
which a minute of retries would multiply."""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bucket_chat_desktop.storage import (
    Storage,
    StorageAuthError,
    StorageError,
    StorageNotFoundError,
    StorageOfflineError,
    StoragePermissionError,
)
from bucket_chat_desktop.storage.open import open_storage

from . import _emulators as emu
from .conftest import Stores, StoresMaker

Op = Callable[[Storage], Awaitable[object]]
OPS: dict[str, Op] = {
    "get": lambda s: s.get("rooms/r/metadata.json"),
    "put": lambda s: s.put_if_absent("rooms/r/logs/2025-01-01/messages_1_1_a.jsonl", b"x"),
    "list": lambda s: s.list_objects("rooms/r/logs/"),
    "list_after": lambda s: s.list_after("rooms/r/logs/", "rooms/r/logs/2025-01-01/a"),
    "list_dirs": lambda s: s.list_dirs("rooms/"),
    "exists": lambda s: s.exists("rooms/r/metadata.json"),
    "probe": lambda s: s.probe_create_only(),
}


@contextlib.contextmanager
def counted_requests() -> Iterator[list[str]]:
    """The HTTP requests the SDKs start meanwhile (on any thread), as ``METHOD url``."""
    import aiohttp

    made: list[str] = []
    real = aiohttp.ClientSession._request

    def counting(self: aiohttp.ClientSession, method: str, url: object, **kw: object) -> object:
        made.append(f"{method} {url}")
        return real(self, method, url, **kw)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiohttp.ClientSession, "_request", counting)
        yield made


async def fails(store: Storage, op: str, kind: type[StorageError], *, requests: int = 2) -> str:
    """Run ``op`` and return its one-line message, checking the class and that it came
    after at most ``requests`` requests: the operation's own, and one that names what is
    missing (GCS) or takes back a probe's object; a mistake no try mends is not tried
    again."""
    with counted_requests() as made, pytest.raises(StorageError) as caught:
        await OPS[op](store)
    assert type(caught.value) is kind, f"{op}: {type(caught.value).__name__}: {caught.value}"
    message = str(caught.value)
    assert message and "\n" not in message and "Traceback" not in message
    assert len(made) <= requests, f"{op}: {len(made)} requests: {made}"
    return message


@pytest.mark.parametrize("op", list(OPS))
async def test_a_missing_bucket_is_named(cloud_stores: Stores, op: str) -> None:
    store = cloud_stores.new(bucket="bc-no-such-bucket")
    message = await fails(store, op, StorageNotFoundError)
    what = "container" if cloud_stores.kind == "az" else "bucket"
    assert f"{what} bc-no-such-bucket does not exist" in message


@pytest.mark.parametrize("op", ["get", "list", "put"])
async def test_wrong_s3_keys(stores_for: StoresMaker, op: str) -> None:
    stores = stores_for("s3")
    admin = stores.emulators.s3_admin  # type: ignore[union-attr]
    assert admin is not None
    unknown = {"access_key_id": "AKIAUNKNOWN000000000", "secret_access_key": "nope"}
    wrong_secret = {"access_key_id": admin.access_key_id, "secret_access_key": "nope"}
    for secrets, code in ((unknown, "InvalidAccessKeyId"), (wrong_secret, "Signature")):
        message = await fails(stores.new(secrets=secrets), op, StorageAuthError)
        assert code in message and "AWS_ACCESS_KEY_ID" in message


@pytest.mark.parametrize("op", ["get", "list", "put"])
async def test_wrong_azure_key(stores_for: StoresMaker, op: str) -> None:
    stores = stores_for("az")
    bad_key = emu.AZ_KEY[:-6] + "AAAAA="
    message = await fails(stores.new(secrets={"account_key": bad_key}), op, StorageAuthError)
    assert "rejected the credentials" in message


async def test_s3_read_only_keys_may_not_write(stores_for: StoresMaker) -> None:
    stores = stores_for("s3")
    await stores.new().put_if_absent("rooms/r/metadata.json", b"{}")
    keys = stores.emulators.s3_reader  # type: ignore[union-attr]
    assert keys is not None
    reader = stores.new(
        secrets={"access_key_id": keys.access_key_id, "secret_access_key": keys.secret_access_key}
    )
    await can_read_but_not_write(reader)


async def test_azure_read_only_sas_may_not_write(stores_for: StoresMaker) -> None:
    stores = stores_for("az")
    await stores.new().put_if_absent("rooms/r/metadata.json", b"{}")
    reader = stores.new(secrets={"sas_token": emu.az_read_only_sas(stores.bucket)})
    await can_read_but_not_write(reader)


async def can_read_but_not_write(reader: Storage) -> None:
    assert await reader.get("rooms/r/metadata.json") == b"{}"
    assert [o.path for o in await reader.list_objects("rooms/")] == ["rooms/r/metadata.json"]
    message = await fails(reader, "put", StoragePermissionError)
    assert "access denied" in message


async def test_connection_refused(cloud_stores: Stores) -> None:
    endpoint = f"http://127.0.0.1:{emu.closed_port()}"
    if cloud_stores.kind == "az":
        endpoint += f"/{emu.AZ_ACCOUNT}"
    store = cloud_stores.new(options={"endpoint_url": endpoint})
    for op in ("get", "put", "list"):
        message = await fails(store, op, StorageOfflineError)
        assert "refused the connection" in message and endpoint in message


async def test_unknown_host(cloud_stores: Stores) -> None:
    endpoint = "http://nonexistent.invalid:9000"
    store = cloud_stores.new(options={"endpoint_url": endpoint})
    message = await fails(store, "get", StorageOfflineError)
    assert "cannot resolve the host" in message


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel does) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_a_silent_service_times_out(cloud_stores: Stores, silent_server: str) -> None:
    endpoint = silent_server + (f"/{emu.AZ_ACCOUNT}" if cloud_stores.kind == "az" else "")
    store = cloud_stores.new(options={"endpoint_url": endpoint, "timeout": "1"})
    for op in ("put", "get", "list"):  # an upload must not wait for ever either
        # given up on its one request's deadline, which the message names
        message = await fails(store, op, StorageOfflineError, requests=1)
        assert "no answer" in message and "within 1 s" in message


async def test_s3_without_any_credentials(
    stores_for: StoresMaker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stores = stores_for("s3")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    message = await fails(stores.new(secrets={}), "get", StorageAuthError)
    assert "no AWS credentials found" in message
    store = stores.new(secrets={}, options={"profile": "no-such-profile"})
    message = await fails(store, "list", StorageAuthError)
    assert "profile" in message


async def test_gcs_credentials_file_problems(stores_for: StoresMaker, tmp_path: Path) -> None:
    stores = stores_for("gs")
    missing = tmp_path / "missing.json"
    store = stores.new(options={"credentials_file": str(missing)})
    message = await fails(store, "get", StorageAuthError)
    assert str(missing) in message
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    store = stores.new(options={"credentials_file": str(broken)})
    message = await fails(store, "get", StorageAuthError)
    assert str(broken) in message


async def test_azure_without_an_account(stores_for: StoresMaker) -> None:
    stores = stores_for("az")
    store = open_storage(f"az://{stores.bucket}/team")
    stores.opened.append(store)
    message = await fails(store, "get", StorageAuthError)
    assert "account_name" in message
    endpoint = stores.location.options["endpoint_url"]
    store = open_storage(f"az://{stores.bucket}/team?endpoint_url={endpoint}")
    stores.opened.append(store)
    message = await fails(store, "list", StorageAuthError)
    assert "needs an account key, SAS token or connection string" in message


XML_CODE = "Evil\n" + "A" * 200_000 + "\nsecond line"  # XML holds no ESC


@contextlib.asynccontextmanager
async def refusing_service() -> AsyncIterator[str]:
    """A hostile S3-compatible service: every request is refused with an error code of
    200,000 characters over several lines, in turn with each status a message is built
    for in its own way (400, 403, 503)."""
    from aiohttp import web

    statuses = itertools.cycle([400, 403, 503])

    async def refuse(request: web.Request) -> web.Response:
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{XML_CODE}</Code>"
            f"<Message>refused</Message><Region>{XML_CODE}</Region></Error>"
        )
        return web.Response(status=next(statuses), body=body, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def test_a_service_error_code_of_any_length_is_quoted_in_one_short_line(
    stores_for: StoresMaker,
) -> None:
    """What the command line prints (``bucket-chat: ...``), the log and the status bar
    quote: one line of bounded length, whatever code the service sent."""
    async with refusing_service() as endpoint:
        store = stores_for("s3").new(options={"endpoint_url": endpoint, "retries": "1"})
        for op in ("get", "get", "get", "list", "list", "list"):
            with pytest.raises(StorageError) as caught:
                await OPS[op](store)
            message = str(caught.value)
            assert message.startswith(("cannot read", "cannot list")), message[:300]
            assert "Evil" in message and "\n" not in message, message[:300]
            assert len(message) < 1_000, len(message)


# -- secrets an SDK's words would quote (red team rt66) --------------------------------------

SIG = "SeCrEtSiGnAtUrE0123456789abcdef%3D"
KEY = "SeCrEtAcCoUnTkEy0123456789abcdefABCDEF=="
SAS = f"sv=2022-11-02&ss=b&srt=co&sp=rwl&se=2030-01-01T00:00:00Z&sig={SIG}"


@pytest.mark.parametrize(
    "connection_string",
    [
        # one '/' short: the SDK's ValueError "Invalid URL: …" quoted the SAS in it
        f"BlobEndpoint=https:/acct.blob.core.windows.net/?{SAS}",
        # a ' ' for a ';': the account key became part of the endpoint, quoted so
        f"DefaultEndpointsProtocol=https AccountKey={KEY};AccountName=acct",
        f"AccountName=acct;EndpointSuffix=core.windows.net AccountKey={KEY}",
        # a '[' … ']' in the endpoint's password: urlsplit's words quote the piece
        f"BlobEndpoint=https://acct:{KEY[:6]}[{KEY[6:]}]@acct.blob.core.windows.net/",
        # an emulator's endpoint without a key was quoted whole, SAS and all
        f"BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1?{SAS}",
    ],
    ids=["endpoint-typo", "protocol-swallows-key", "suffix-swallows-key", "brackets", "http"],
)
async def test_an_azure_connection_string_is_never_quoted(connection_string: str) -> None:
    from bucket_chat_desktop.storage.azure import AzureStorage
    from bucket_chat_desktop.storage.url import parse_storage_url

    location = parse_storage_url("az://chat/team?retries=1&timeout=3")
    store = AzureStorage(location, {"connection_string": connection_string})
    try:
        message = await fails(store, "exists", StorageAuthError)
    finally:
        await store.close()
    for piece in (SIG, KEY, KEY[:6], KEY[6:], "sig="):
        assert piece not in message, message
    assert message.startswith("cannot open az://chat/team: ")


def test_an_sdk_error_quoting_a_secret_or_a_signed_url_is_said_without_it() -> None:
    """Whatever an SDK's exception says is quoted in the error (``one_line``): a request's
    URL holds an Azure SAS token, and a key the SDK could not use may be in its words."""
    from bucket_chat_desktop.storage.azure import AzureStorage
    from bucket_chat_desktop.storage.url import parse_storage_url

    location = parse_storage_url("az://chat/team?account_name=acct")
    sas = AzureStorage(location, {"sas_token": SAS})
    keyed = AzureStorage(location, {"connection_string": f"AccountName=acct;AccountKey={KEY}"})
    signed = f"https://acct.blob.core.windows.net/chat?restype=container&{SAS}"
    cases = [
        (sas, RuntimeError(f"request to {signed} failed")),
        (sas, ValueError(f"400, message='Bad status line', url={signed!r}")),
        (sas, KeyError(f"unexpected {SIG}")),
        (keyed, ValueError(f"the key {KEY} is not valid")),
        (keyed, OSError(f"https://user:{KEY}@acct.blob.core.windows.net refused")),
    ]
    for store, exc in cases:
        message = str(store._error(exc, "cannot check az://chat/team"))
        assert message.startswith("cannot check az://chat/team: "), message
        for piece in (SIG, KEY, "sig="):
            assert piece not in message, message
