"""Alice's ChatClient on a fresh local folder (a real engine, index and outbox)."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.events import EngineEvent

ALICE = "alice@example.com"


def local_client(tmp_path: Path) -> tuple[ChatClient, StorageSettings, list[EngineEvent]]:
    """The client, its storage entry (a folder ``store`` under ``tmp_path``, not attached
    yet) and the list the engine's events are appended to."""
    store = tmp_path / "store"
    store.mkdir()
    entry = StorageSettings(str(store), "Team share", [])
    events: list[EngineEvent] = []
    client = ChatClient(
        Settings(ALICE, "Alice", [entry]),
        ALICE,
        SigningKey(bytes(range(32))),
        lambda _sid, event: events.append(event),
        data_dir=tmp_path / "data",
    )
    return client, entry, events
