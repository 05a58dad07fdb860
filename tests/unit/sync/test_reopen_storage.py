"""A storage that could not be opened at start is tried again by itself.

Its named storage's keys unreadable (here: ``storages.json`` a FIFO, never waited on), a
keyring locked at start and unlocked later, an index another program let go of: the app
said "not opened" and stayed so until it was started again. ``ChatClient`` now tries
again (``REOPEN_WAITS``), says each failure anew, and says when it opened."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from bucket_chat_desktop import paths
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.profiles import ProfileStore
from bucket_chat_desktop.storage.url import parse_storage_url
from bucket_chat_desktop.sync import client as client_module
from bucket_chat_desktop.sync.client import NOT_OPENED, ChatClient
from bucket_chat_desktop.sync.events import StorageStatus


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(client_module, "REOPEN_WAITS", (0.05,))
    return tmp_path / "home"


def test_a_storage_not_opened_at_start_opens_once_what_stopped_it_is_gone(
    tmp_path: Path,
) -> None:
    profiles_file = paths.config_dir() / "storages.json"
    profiles_file.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(profiles_file)
    entry = StorageSettings("work", "Work", [])
    settings = Settings(user_id="alice@example.com", storages=[entry])
    said: list[tuple[str, Any]] = []
    client = ChatClient(
        settings,
        "alice@example.com",
        None,
        lambda sid, event: said.append((sid, event)),
        data_dir=tmp_path / "data",
    )

    async def go() -> None:
        try:
            await client.start()
            assert not client.is_attached(entry.id)

            def failures() -> list[StorageStatus]:
                return [e for _, e in said if isinstance(e, StorageStatus) and not e.online]

            await _until(lambda: len(failures()) >= 3)  # the start's, then each try's
            failures = failures()
            assert len(failures) >= 2, said
            assert all(e.message.startswith(NOT_OPENED) for e in failures)
            assert "FIFO" in failures[-1].message
            # The user removes the FIFO and adds the storage again: the next try opens it.
            profiles_file.unlink()
            folder = tmp_path / "store"
            folder.mkdir()
            ProfileStore().add("work", parse_storage_url(str(folder)))
            await _until(lambda: client.is_attached(entry.id))
            await _until(lambda: not client._reopening)  # opened: no try is left
            assert not client.reopen_now(entry.id)  # "Try now": nothing waits to be tried
            assert any(isinstance(e, StorageStatus) and e.online for _, e in said), said
        finally:
            await client.close()

    asyncio.run(go())


async def _until(done: Any, seconds: float = 10.0) -> None:
    """Until ``done()`` (what is awaited happens; never a proof that nothing does)."""
    for _ in range(int(seconds / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the time allowed")


def test_a_storage_removed_meanwhile_is_not_tried_again(tmp_path: Path) -> None:
    profiles_file = paths.config_dir() / "storages.json"
    profiles_file.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(profiles_file)
    entry = StorageSettings("work", "Work", [])
    settings = Settings(user_id="alice@example.com", storages=[entry])
    said: list[Any] = []
    client = ChatClient(
        settings, "alice@example.com", None, lambda *e: said.append(e), data_dir=tmp_path / "d"
    )

    async def go() -> None:
        try:
            await client.start()
            assert entry.id in client._reopening
            settings.storages.clear()
            await client.detach(entry.id)  # the user removed it: no try is left
            assert not client._reopening
        finally:
            await client.close()

    asyncio.run(go())
