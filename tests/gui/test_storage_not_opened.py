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
