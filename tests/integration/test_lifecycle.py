"""Sessions belong to the event loop that opened them and are closed in it — also when the
caller forgets ``close()``, as a short script or CLI command does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

from bucket_chat_desktop.storage.cloud import FsspecStorage
from bucket_chat_desktop.storage.open import open_location

from . import _emulators as emu
from .conftest import Stores


def _env_for(stores: Stores) -> dict[str, str]:
    env = dict(os.environ)
    if stores.kind == "s3":
        keys = stores.emulators.s3_admin  # type: ignore[union-attr]
        assert keys is not None
        env.update(
            AWS_ACCESS_KEY_ID=keys.access_key_id, AWS_SECRET_ACCESS_KEY=keys.secret_access_key
        )
    elif stores.kind == "az":
        endpoint = stores.location.options["endpoint_url"].rsplit("/", 1)[0]
        env["AZURE_STORAGE_CONNECTION_STRING"] = emu.az_connection_string(endpoint)
    return env


def test_a_forgotten_close_leaks_no_session(cloud_stores: Stores) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, gc, logging
        logging.basicConfig(level=logging.WARNING)
        from bucket_chat_desktop.storage import open_storage

        async def main():
            store = open_storage({cloud_stores.url()!r})
            await store.put_if_absent("rooms/r/metadata.json", b"{{}}")
            assert await store.get("rooms/r/metadata.json") == b"{{}}"
            try:
                await store.get("rooms/r/missing")
            except Exception as exc:
                print(type(exc).__name__)

        asyncio.run(main())
        gc.collect()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", script],
        env=_env_for(cloud_stores),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "StorageNotFoundError"
    assert proc.stderr == "", proc.stderr


async def test_concurrent_first_use_opens_one_client(cloud_stores: Stores) -> None:
    store = cloud_stores.new()
    assert isinstance(store, FsspecStorage)
    results = await asyncio.gather(*(store.exists(f"x/{i}") for i in range(10)))
    assert results == [False] * 10
    first = store._fs
    assert first is not None
    await store.close()
    await store.close()  # twice is fine
    assert store._fs is None
    assert await store.exists("x/1") is False  # reopens on use
    assert store._fs is not None and store._fs is not first


def test_one_storage_across_event_loops(cloud_stores: Stores) -> None:
    """A storage used by consecutive ``asyncio.run`` calls reopens in each loop."""
    store = open_location(cloud_stores.location, cloud_stores.secrets)
    asyncio.run(store.put_if_absent("a/b", b"1"))
    assert asyncio.run(store.get("a/b")) == b"1"
    assert asyncio.run(store.list_dirs("")) == ["a"]
