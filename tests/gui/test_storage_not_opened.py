"""A storage that cannot be opened at start is said where the storages' state is shown.

Its keys named in a ``storages.json`` that is no file (a FIFO), an index another program
keeps busy, a keyring that does not answer: ``ChatClient.start`` logged it, and nothing
else — the storage's rooms were listed as if merely quiet, and what the user wrote there
went nowhere. The status line now says "Offline — <storage>: not opened: <why>"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import shot
from desk import ALICE

from bucket_chat_desktop import paths
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.profiles import ProfileStore
from bucket_chat_desktop.storage.url import parse_storage_url
from bucket_chat_desktop.sync import client as client_module


def test_a_storage_that_cannot_be_opened_at_start_is_said_in_the_status_line(
    launch: Any, qtbot: Any, home: Path, tmp_path: Path
) -> None:
    profiles = paths.config_dir() / "storages.json"
    profiles.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(profiles)  # what names the storage "work" cannot be read (never waited on)
    entry = StorageSettings("work", "Work bucket", ["general"])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/general"
    desk = launch(settings)
    window = desk.window
    qtbot.waitUntil(lambda: "Work bucket" in window.status.text(), timeout=15_000)
    said = window.status.text()
    shot(window, "storage-not-opened", tmp_path)
    assert "Offline — Work bucket: not opened:" in said, said
    assert "not a file but a FIFO" in said, said
    assert desk.item("general") is not None and not desk.item("general").online
    banner = window.offline.text()
    assert banner.startswith("Work bucket could not be opened:"), banner
    assert "keep writing" not in banner  # nothing waits in an outbox it does not have


def test_try_now_opens_a_storage_not_opened_without_waiting_for_the_next_try(
    launch: Any, qtbot: Any, home: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """The next try by itself is minutes away (here: an hour): the user who has fixed
    what stopped it (the file naming the storage) opens it with "Try now"."""
    monkeypatch.setattr(client_module, "REOPEN_WAITS", (3600.0,))
    profiles = paths.config_dir() / "storages.json"
    profiles.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(profiles)
    entry = StorageSettings("work", "Work bucket", ["general"])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/general"
    desk = launch(settings)
    window = desk.window
    qtbot.waitUntil(window.try_now.isVisible, timeout=15_000)
    shot(window, "storage-not-opened-try-now", tmp_path)
    assert window.offline.text().startswith("Work bucket could not be opened:")
    window.try_now.click()  # nothing changed yet: said again, the button back
    qtbot.waitUntil(lambda: window.try_now.isEnabled(), timeout=15_000)
    assert "FIFO" in window.status.text()
    profiles.unlink()
    folder = tmp_path / "store"
    folder.mkdir()
    ProfileStore().add("work", parse_storage_url(str(folder)))
    window.try_now.click()
    qtbot.waitUntil(lambda: desk.item("general").online, timeout=15_000)
    qtbot.waitUntil(lambda: not window.offline_bar.isVisible(), timeout=15_000)
    assert "All storages reachable" in window.status.text()
    assert not window.try_now.isVisible()


def test_no_try_now_for_a_fault_of_the_program_that_nothing_tries_again(
    launch: Any, qtbot: Any, home: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """A storage not opened because of a fault of this program (not the storage's) is
    said, but no try of it waits: a "Try now" there did nothing when clicked."""

    async def faulty(self: Any, entry: Any, **_kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(client_module.ChatClient, "attach", faulty)
    folder = tmp_path / "store"
    folder.mkdir()
    entry = StorageSettings(str(folder), "Team share", ["general"])
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    settings.last_room = f"{entry.id}/general"
    desk = launch(settings)
    window = desk.window
    qtbot.waitUntil(lambda: "a fault of this program" in window.status.text(), timeout=15_000)
    assert window.offline_bar.isVisible()
    assert not window.try_now.isVisible()
