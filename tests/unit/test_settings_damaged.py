"""A settings file damaged by a sync tool or a hand edit (real files, the real module):
it never stops the app, and nothing in it is lost without the user being told.

- an entry of the wrong type (``"rooms": null``, a number, true) stopped the app at start
  (a TypeError out of ``settings.load``); ``"rooms": "general"`` joined the rooms g, e,
  n, e, r, a, l. Now the entry is dropped, the rest kept, and the report says what;
- a file that is not JSON gave the defaults with a log line only, and the next save
  replaced it: every storage, room and preference lost. Now it is set aside as
  ``settings.json.broken-<date>-<time>`` (never over an earlier one) and the report
  names it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from bucket_chat_desktop import settings as settings_store

GOOD = {
    "format": "bucket-chat-settings-v1",
    "user_id": "alice@example.com",
    "displayname": "Alice",
    "theme": "dark",
    "storages": [
        {"spec": "/srv/share", "name": "Share", "rooms": ["general"]},
        {"spec": "/srv/other", "name": "Other", "rooms": ["falcon"]},
    ],
}


def _write(path: Path, document: object) -> str:
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    path.write_text(text, "utf-8")
    return text


def _aside(folder: Path) -> list[Path]:
    return sorted(folder.glob("settings.json.broken-*"))


@pytest.mark.parametrize(
    "rooms", [None, 5, True, {"general": 1}], ids=["null", "number", "bool", "object"]
)
def test_a_storage_whose_rooms_is_not_a_list_keeps_the_rest(tmp_path: Path, rooms: object) -> None:
    document = json.loads(json.dumps(GOOD))
    document["storages"][1]["rooms"] = rooms
    path = tmp_path / "settings.json"
    original = _write(path, document)
    loaded, report = settings_store.load_reporting(path)
    assert loaded.user_id == "alice@example.com" and loaded.theme == "dark"
    assert [(s.spec, s.rooms) for s in loaded.storages] == [
        ("/srv/share", ["general"]),
        ("/srv/other", []),  # the storage stays, without the rooms it could not read
    ]
    assert not report.unreadable
    assert len(report.dropped) == 1 and 'storage "Other": rooms is' in report.dropped[0]
    # what was dropped is not lost: the file as it was is kept beside it
    assert report.kept_aside is not None and report.kept_aside.read_text("utf-8") == original
    assert path.read_text("utf-8") == original  # the file itself is not rewritten by a load


def test_a_rooms_string_does_not_join_one_room_per_letter(tmp_path: Path) -> None:
    document = json.loads(json.dumps(GOOD))
    document["storages"][0]["rooms"] = "general"
    path = tmp_path / "settings.json"
    _write(path, document)
    loaded, report = settings_store.load_reporting(path)
    assert loaded.storages[0].rooms == []
    assert report.dropped == [
        'storage "Share": rooms is the text "general", not a list (no room kept)'
    ]


def test_rooms_that_are_no_valid_room_id_are_dropped_one_by_one(tmp_path: Path) -> None:
    document = json.loads(json.dumps(GOOD))
    document["storages"][0]["rooms"] = ["general", "../../etc", "", 7, "a/b", "general", "ok.1"]
    path = tmp_path / "settings.json"
    _write(path, document)
    loaded, report = settings_store.load_reporting(path)
    assert loaded.storages[0].rooms == ["general", "ok.1"]
    assert len(report.dropped) == 4, report.dropped
    assert any('"../../etc"' in line for line in report.dropped)


def test_wrong_preferences_fall_back_and_are_named(tmp_path: Path) -> None:
    document = dict(GOOD, theme="purple", notifications="yes", attachment_limit_mb=True)
    path = tmp_path / "settings.json"
    _write(path, document)
    loaded, report = settings_store.load_reporting(path)
    assert (loaded.theme, loaded.notifications, loaded.attachment_limit_mb) == ("system", True, 25)
    assert len(loaded.storages) == 2
    assert sorted(line.split(":")[0] for line in report.dropped) == [
        "attachment_limit_mb",
        "notifications",
        "theme",
    ]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD, indent=2) + "\n}",
        '{"user_id": "alice',
        "\udcff",
        "[]",
        "null",
        "[" * 100_000,
    ],
    ids=["trailing-brace", "cut-short", "not-utf8", "a-list", "null", "nested-deep"],
)
def test_an_unreadable_file_is_set_aside_not_overwritten(tmp_path: Path, text: str) -> None:
    path = tmp_path / "settings.json"
    data = text.encode("utf-8", "surrogateescape")
    path.write_bytes(data)
    loaded, report = settings_store.load_reporting(path)
    assert loaded == settings_store.Settings()  # the app starts from defaults...
    assert report.unreadable and report.needs_telling
    assert report.kept_aside is not None and report.kept_aside.read_bytes() == data
    assert not path.exists()
    settings_store.save(loaded, path)  # ...and saves: the damaged file is still there
    assert _aside(tmp_path) == [report.kept_aside]
    assert report.kept_aside.read_bytes() == data


def test_a_file_set_aside_never_replaces_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    kept: list[bytes] = []
    for n in range(3):  # within the same second: the names must still differ
        data = f"not json {n}".encode()
        path.write_bytes(data)
        kept.append(data)
        report = settings_store.load_reporting(path).report
        assert report.kept_aside is not None
    assert sorted(p.read_bytes() for p in _aside(tmp_path)) == sorted(kept)


def test_a_good_file_is_neither_reported_nor_copied(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    _write(path, GOOD)
    loaded, report = settings_store.load_reporting(path)
    assert loaded.configured and not report.needs_telling and report.kept_aside is None
    assert _aside(tmp_path) == []
    assert settings_store.load_reporting(tmp_path / "missing.json").report.needs_telling is False


def _load_within(path: Path, seconds: float = 5.0) -> settings_store.Loaded | None:
    """``load_reporting`` on a thread: None if it is still reading after ``seconds`` (a
    FIFO's reader is then let go by opening the FIFO for writing)."""
    import os
    import threading

    result: list[settings_store.Loaded] = []
    thread = threading.Thread(
        target=lambda: result.append(settings_store.load_reporting(path)), daemon=True
    )
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(path.resolve(), os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        return None
    return result[0]


@pytest.mark.parametrize("linked", [False, True], ids=["fifo", "link-to-fifo"])
def test_a_fifo_at_the_settings_file_never_holds_the_start(tmp_path: Path, linked: bool) -> None:
    """Red team rt66: ``load_reporting`` (on the window's thread, before any window) read
    ``settings.json`` with a plain open: a FIFO there, or a link to one, held the start
    for ever with nothing shown (and a link to /dev/zero filled the memory). It reads a
    regular file of at most ``SETTINGS_CAP`` or nothing; the FIFO is set aside and said."""
    import os

    fifo = tmp_path / ("elsewhere" if linked else "settings.json")
    os.mkfifo(fifo)
    path = tmp_path / "settings.json"
    if linked:
        path.symlink_to(fifo)
    loaded = _load_within(path)
    assert loaded is not None, "the start waited on a FIFO"
    assert loaded.report.unreadable == "it is not a file but a FIFO"
    assert loaded.report.kept_aside is not None and not path.exists()
    assert loaded.settings == settings_store.Settings()


def test_a_settings_file_larger_than_settings_ever_are_is_not_read_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "settings.json"
    (tmp_path / "zero").symlink_to("/dev/zero")
    path.symlink_to(tmp_path / "zero")
    loaded = _load_within(path)
    assert loaded is not None and "not a file but a character device" in loaded.report.unreadable
    big = tmp_path / "big" / "settings.json"
    big.parent.mkdir()
    big.write_bytes(b" " * (settings_store.SETTINGS_CAP + 1))
    loaded = _load_within(big)
    assert loaded is not None and "larger than settings ever are" in loaded.report.unreadable


def test_a_fractional_number_is_said_as_such(tmp_path: Path) -> None:
    """Red team rt66: ``"attachment_limit_mb": 25.5`` was dropped "a number instead of a
    number", which told the user nothing."""
    path = tmp_path / "settings.json"
    _write(path, {**GOOD, "attachment_limit_mb": 25.5})
    report = settings_store.load_reporting(path).report
    assert report.dropped == ["attachment_limit_mb: the number 25.5 instead of a whole number"]
    kept = _aside(tmp_path)
    assert len(kept) == 1 and json.loads(kept[0].read_text())["attachment_limit_mb"] == 25.5
