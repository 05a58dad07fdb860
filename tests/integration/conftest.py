"""Integration fixtures: real emulators for S3, GCS and Azure, and a local folder.

``storage_kind`` is parametrised over ``local``, ``s3``, ``gs`` and ``az``; ``stores`` is a
factory of fresh ``Storage`` objects on a bucket (container, folder) made for the test.
The emulators start once per session, in parallel, the first time a test needs one; they
are stopped by PID at the end.

``async def`` tests run in their own event loop (``asyncio.run``); every storage the
factories handed out is closed in that loop after the test.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bucket_chat_desktop.storage import Storage
from bucket_chat_desktop.storage.open import open_location
from bucket_chat_desktop.storage.url import StorageLocation, parse_storage_url

from . import _emulators as emu

KINDS = ("local", "s3", "gs", "az")
CLOUD_KINDS = ("s3", "gs", "az")
# Fail fast in tests: one attempt and a short timeout unless a test asks otherwise.
FAST = {"retries": "1", "timeout": "5"}


@pytest.fixture(scope="session", autouse=True)
def _no_cloud_metadata_servers() -> Iterator[None]:
    """Keep the SDKs' credential chains off the network: no instance-metadata lookups."""
    with pytest.MonkeyPatch.context() as mp:
        closed = f"127.0.0.1:{emu.closed_port()}"
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("GCE_METADATA_HOST", closed)
        mp.setenv("GCE_METADATA_IP", closed)
        mp.setenv("NO_GCE_CHECK", "true")
        mp.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://{closed}")
        for name in (
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "STORAGE_EMULATOR_HOST",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "AZURE_STORAGE_CONNECTION_STRING",
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "BUCKET_CHAT_STORAGE",
        ):
            mp.delenv(name, raising=False)
        yield


# -- emulators -------------------------------------------------------------------------------


@dataclass
class Emulators:
    """The three emulators, started together; ``get(kind)`` waits for one to answer."""

    log_dir: Path
    procs: dict[str, emu.Emulator] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    s3_admin: emu.S3Keys | None = None
    s3_reader: emu.S3Keys | None = None

    def start_all(self) -> None:
        makers = {"s3": emu.moto_emulator, "gs": emu.gcs_emulator, "az": emu.azurite_emulator}
        for kind, make in makers.items():
            try:
                proc = make(self.log_dir)
                proc.start()
                self.procs[kind] = proc
            except emu.EmulatorError as exc:
                self.errors[kind] = str(exc)

    def get(self, kind: str) -> emu.Emulator:
        if kind in self.errors:
            pytest.fail(f"emulator for {kind} unavailable: {self.errors[kind]}", pytrace=False)
        proc = self.procs[kind]
        if kind not in self.ready:
            try:
                proc.wait_ready()
                if kind == "s3":
                    self.s3_admin, self.s3_reader = emu.s3_setup(proc.endpoint)
            except emu.EmulatorError as exc:
                self.errors[kind] = str(exc)
            except Exception as exc:
                self.errors[kind] = f"{type(exc).__name__}: {exc}\n--- log ---\n{proc.log()}"
            if kind in self.errors:
                pytest.fail(f"emulator for {kind} failed: {self.errors[kind]}", pytrace=False)
            self.ready.add(kind)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    emus = Emulators(tmp_path_factory.mktemp("emulators"))
    emus.start_all()
    try:
        yield emus
    finally:
        emus.stop_all()


# -- storages --------------------------------------------------------------------------------


@dataclass
class Stores:
    """Fresh ``Storage`` objects on one bucket (container, folder) made for this test."""

    kind: str
    bucket: str
    location: StorageLocation
    secrets: dict[str, str]
    emulators: Emulators | None
    opened: list[Storage] = field(default_factory=list)

    def new(
        self,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        options: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Storage:
        """A new storage (own client) on this test's bucket, or on ``bucket``."""
        loc = self.location
        if bucket is not None or prefix is not None or options:
            if loc.kind == "file":
                loc = StorageLocation("file", str(Path(loc.bucket).parent / (bucket or "store")))
            else:
                merged = dict(loc.options)
                merged.update(options or {})
                loc = StorageLocation(
                    loc.kind,
                    bucket if bucket is not None else loc.bucket,
                    prefix if prefix is not None else loc.prefix,
                    merged,
                )
        store = open_location(loc, self.secrets if secrets is None else secrets)
        self.opened.append(store)
        return store

    def url(self, **options: str) -> str:
        """This test's location as a URL (no secrets), with ``options`` added."""
        return self.location.with_options(options).url() if options else self.location.url()

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()
        self.opened.clear()


def unique_bucket() -> str:
    return f"bc-{uuid.uuid4().hex[:16]}"


def make_stores(kind: str, emulators: Emulators | None, tmp_path: Path) -> Stores:
    bucket = unique_bucket()
    if kind == "local":
        folder = tmp_path / "store"
        return Stores(kind, str(folder), StorageLocation("file", str(folder)), {}, None)
    assert emulators is not None
    proc = emulators.get(kind)
    if kind == "s3":
        keys = emulators.s3_admin
        assert keys is not None
        emu.s3_create_bucket(proc.endpoint, keys, bucket)
        url = f"s3://{bucket}/team?endpoint_url={proc.endpoint}&region={emu.S3_REGION}"
        secrets = {"access_key_id": keys.access_key_id, "secret_access_key": keys.secret_access_key}
    elif kind == "gs":
        emu.gcs_create_bucket(proc.endpoint, bucket)
        url = f"gs://{bucket}/team?endpoint_url={proc.endpoint}"
        secrets = {}
    else:
        emu.az_create_container(proc.endpoint, bucket)
        url = (
            f"az://{bucket}/team?account_name={emu.AZ_ACCOUNT}"
            f"&endpoint_url={proc.endpoint}/{emu.AZ_ACCOUNT}"
        )
        secrets = {"account_key": emu.AZ_KEY}
    location = parse_storage_url(url).with_options(FAST)
    return Stores(kind, bucket, location, secrets, emulators)


@pytest.fixture(params=KINDS)
def storage_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=CLOUD_KINDS)
def cloud_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stores(storage_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    emus = request.getfixturevalue("emulators") if storage_kind != "local" else None
    return make_stores(storage_kind, emus, tmp_path)


@pytest.fixture
def cloud_stores(cloud_kind: str, emulators: Emulators, tmp_path: Path) -> Stores:
    return make_stores(cloud_kind, emulators, tmp_path)


@dataclass
class StoresMaker:
    """``maker("s3")``: a fresh bucket on that backend, for tests about one backend."""

    emulators: Emulators
    tmp_path: Path
    made: list[Stores] = field(default_factory=list)

    def __call__(self, kind: str) -> Stores:
        stores = make_stores(kind, self.emulators, self.tmp_path / f"{kind}-{len(self.made)}")
        self.made.append(stores)
        return stores


@pytest.fixture
def stores_for(emulators: Emulators, tmp_path: Path) -> StoresMaker:
    return StoresMaker(emulators, tmp_path)


# -- async tests -----------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh loop; close the storages they opened in it."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    factories = [v for v in pyfuncitem.funcargs.values() if isinstance(v, Stores)]
    makers = [v for v in pyfuncitem.funcargs.values() if isinstance(v, StoresMaker)]

    async def main() -> Any:
        try:
            return await pyfuncitem.obj(**kwargs)
        finally:
            for factory in factories + [s for m in makers for s in m.made]:
                await factory.close_all()

    asyncio.run(main())
    return True
