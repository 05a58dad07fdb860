"""The settings file's read markers (one per joined room: what counts as unread after a
restart): an old file without them loads, a hand-edited or hostile one keeps only the
well-formed markers of rooms still joined, and they survive a save and a load."""

from __future__ import annotations

import json
from pathlib import Path

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.protocol.unread import UNREAD_CAP
from bucket_chat_desktop.settings import Settings, StorageSettings


def _file(**extra: object) -> dict[str, object]:
    return {
        "format": settings_store.FORMAT,
        "user_id": "alice@example.com",
        "storages": [{"spec": "/srv/share", "name": "Share", "rooms": ["falcon", "general"]}],
        "last_room": "x/falcon",
        **extra,
    }


def test_an_old_settings_file_without_markers_loads() -> None:
    settings = Settings.from_json(_file())
    assert settings.configured and settings.read_markers == {}
    assert settings.read_marker(f"{settings.storages[0].id}/falcon") is None


def test_only_well_formed_markers_of_joined_rooms_are_kept() -> None:
    sid = StorageSettings("/srv/share", "Share").id
    markers = {
        f"{sid}/falcon": ["ev-1", 1_700_000_000_000],
        f"{sid}/general": ["ev-2", True],  # a bool is no timestamp
        f"{sid}/left-long-ago": ["ev-3", 5],  # not joined any more
        "other/falcon": ["ev-4", 5],  # another storage
        f"{sid}/x": "ev-5",
    }
    bad = [["", 1], ["e" * 600, 1], [5, 1], ["ev", -1], ["ev", 2**60], ["ev", 1, 2], None]
    for i, value in enumerate(bad):
        markers[f"{sid}/bad{i}"] = value  # type: ignore[assignment]
    data = _file(read_markers=markers)
    data["storages"][0]["rooms"] += [f"bad{i}" for i in range(len(bad))] + ["x"]  # type: ignore[index]
    settings = Settings.from_json(data)
    assert settings.read_markers == {f"{sid}/falcon": ("ev-1", 1_700_000_000_000)}
    assert Settings.from_json(_file(read_markers=["a"])).read_markers == {}


def test_markers_survive_a_save_and_a_load(tmp_path: Path) -> None:
    settings = Settings.from_json(_file())
    key = f"{settings.storages[0].id}/general"
    assert settings.set_read_marker(key, "ev-9", 42)
    assert not settings.set_read_marker(key, "ev-9", 42)  # unchanged: nothing to save
    path = tmp_path / "settings.json"
    settings_store.save(settings, path)
    assert json.loads(path.read_text())["read_markers"] == {key: ["ev-9", 42]}
    assert settings_store.load(path).read_marker(key) == ("ev-9", 42)


def test_unseen_messages_before_a_marker_are_kept_until_the_room_is_seen(
    tmp_path: Path,
) -> None:
    """A message placed before a room's read marker while it was not shown stays
    unread across a restart: kept with the marker, dropped when the room is shown (the
    marker set again, moved or not) or left; a hostile file keeps only well-formed ids
    of rooms with a marker, at most the count's cap."""
    settings = Settings.from_json(_file())
    key = f"{settings.storages[0].id}/general"
    assert settings.set_read_marker(key, "ev-9", 42)
    assert settings.note_unseen_before_marker(key, ["ev-5", "ev-5", "ev-6"])
    assert not settings.note_unseen_before_marker(key, ["ev-6"])  # nothing new
    path = tmp_path / "settings.json"
    settings_store.save(settings, path)
    loaded = settings_store.load(path)
    assert loaded.unseen_before_marker(key) == ("ev-5", "ev-6")
    assert loaded.set_read_marker(key, "ev-9", 42)  # the same marker: the room was seen
    assert loaded.unseen_before_marker(key) == () and not loaded.set_read_marker(key, "ev-9", 42)
    loaded.note_unseen_before_marker(key, [f"ev-{n}" for n in range(500)])
    assert len(loaded.unseen_before_marker(key)) == UNREAD_CAP
    loaded.forget_read_marker(key)
    assert loaded.read_marker(key) is None and loaded.unseen_before_marker(key) == ()

    sid = settings.storages[0].id
    hostile = Settings.from_json(
        _file(
            read_markers={f"{sid}/falcon": ["ev-1", 1]},
            unseen_before_markers={
                f"{sid}/falcon": ["ev-2", 5, "", "e" * 600, "ev-2", *(f"x{n}" for n in range(300))],
                f"{sid}/general": ["ev-3"],  # no marker there: taken as seen
                "other/falcon": ["ev-4"],
            },
        )
    )
    kept = hostile.unseen_before_markers
    assert list(kept) == [f"{sid}/falcon"] and kept[f"{sid}/falcon"][:2] == ["ev-2", "x0"]
    assert len(kept[f"{sid}/falcon"]) == UNREAD_CAP
    assert Settings.from_json(_file(unseen_before_markers=["a"])).unseen_before_markers == {}
