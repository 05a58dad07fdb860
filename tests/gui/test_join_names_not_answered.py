"""The join dialog when the storage does not answer for some rooms' names (red team rt95).

One room's metadata stalled: ``ChatClient.summarise_rooms`` gave every room of the
batch (up to 40) "(no name)", blaming each room's metadata ("Its metadata could not be
used: Could not be read: no answer …"), and the dialog kept those as read: scrolling,
filtering or waiting never asked for them again while it was open.

Now each room's reads are held to the deadline on their own (the others keep their
names), the room without an answer says so ("(name not read)"), and its name is asked
for again a few times (``NAME_RETRIES``) while the dialog is open. Counted: names asked
for, never seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from conftest import shot, wait_for
from desk import settings_for
from join_rows import text, tip
from nacl.signing import SigningKey

from bucket_chat_desktop.gui.widgets import room_dialogs
from bucket_chat_desktop.gui.widgets.room_dialogs import RoomDialog
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, StorageError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.room_objects import RoomSummary, StorageRooms
from bucket_chat_desktop.sync.watched import DEADLINE_ENV
from bucket_chat_desktop.sync.writer import RoomWriter

ROOMS = {"alpha": "Alpha team", "bravo": "Bravo team", "charlie": "Charlie"}
IDS = tuple(ROOMS)
BRAVO = "rooms/bravo/metadata.json"
NO_ANSWER = "no answer from Team share within 1.2 s (waiting since 22:24:35)"


class FirstReadHangs(LocalStorage):
    """A folder whose first read of bravo's metadata gets no answer (until cancelled);
    every other read is answered. Reads of each metadata object counted."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: dict[str, int] = {}

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        self.reads[path] = self.reads.get(path, 0) + 1
        if path == BRAVO and self.reads[path] == 1:
            await asyncio.Event().wait()  # no answer: the client's deadline ends it
        return await super().get(path, max_bytes=max_bytes)


def _settled(dialog: RoomDialog) -> bool:
    """No names being read, none about to be, and none due again."""
    return (
        not dialog._reading
        and not dialog._read_timer.isActive()
        and not dialog._retry_timer.isActive()
    )


def test_a_name_without_an_answer_is_asked_again_and_the_others_are_shown_at_once(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real client: alpha and charlie are named by the first read; bravo,
    whose first read gets no answer, is named by the next one, asked for by itself."""
    monkeypatch.setenv(DEADLINE_ENV, "0.5")
    root = tmp_path / "store"
    for room, name in ROOMS.items():
        writer = RoomWriter(LocalStorage(root), room, "a@example.com", SigningKey(b"\x07" * 32))
        wait_for(qtbot, writer.write_metadata(name, "2026-01-05T09:00:00.000Z"))
    storage = FirstReadHangs(root)
    stack = AsyncExitStack()
    client = wait_for(
        qtbot,
        stack.enter_async_context(
            ChatClient.session(storage, outbox=False, data_dir=tmp_path / "data")
        ),
    )
    answers: list[dict[str, RoomSummary]] = []

    async def lister(_sid: str) -> StorageRooms:
        return await client.storage_rooms(client.session_storage)

    async def summariser(_sid: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        read = await client.summarise_rooms(client.session_storage, room_ids)
        answers.append({r.room_id: r for r in read})
        return list(read)

    try:
        dialog = RoomDialog(
            settings_for(root, []), create=False, lister=lister, summariser=summariser
        )
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: text(dialog, "bravo") == "Bravo team", timeout=20_000)
        qtbot.waitUntil(lambda: _settled(dialog), timeout=10_000)
    finally:
        wait_for(qtbot, stack.aclose())
    first, *later = answers
    assert sorted(first) == sorted(IDS)
    assert first["alpha"].name == "Alpha team" and first["charlie"].name == "Charlie"
    assert first["bravo"].passing and first["bravo"].name is None
    assert [sorted(a) for a in later] == [["bravo"]]  # only the one without an answer
    assert storage.reads[BRAVO] == 2 and storage.reads["rooms/alpha/metadata.json"] == 1
    assert text(dialog, "alpha") == "Alpha team" and not dialog.rooms.passing


class NeverAnswers:
    """The lister answers; every read of names comes back without an answer (as
    ``ChatClient.summarise_rooms`` gives it for rooms whose reads got none)."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def lister(self, _storage_id: str) -> StorageRooms:
        return StorageRooms((), more=len(IDS), unread=IDS)

    async def summariser(self, _sid: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        self.asked.append(list(room_ids))
        return [
            RoomSummary(r, None, None, NO_ANSWER, passing=True, name_read=False) for r in room_ids
        ]


def test_a_name_without_an_answer_is_asked_again_a_bounded_number_of_times(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(room_dialogs, "NAME_RETRIES", (0.01, 0.02, 0.03))
    storage = NeverAnswers()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: len(storage.asked) == 4 and _settled(dialog), timeout=10_000)
    assert storage.asked == [list(IDS)] * 4  # the first read, then once per retry
    assert not dialog._due  # none due again: nothing will ask
    said = dialog.list_status.text()
    assert "3 names were not read this time: open this window again to ask for them" in said
    dialog.filter.setText("a")  # a person looks again: what is shown is not asked again
    dialog.filter.clear()
    dialog._read_shown()
    assert len(storage.asked) == 4 and not dialog._reading


def test_a_name_without_an_answer_says_so_and_blames_nothing(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(room_dialogs, "NAME_RETRIES", (3600.0,))  # not while the test runs
    storage = NeverAnswers()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.resize(700, 360)
    dialog.show()
    qtbot.waitUntil(lambda: len(storage.asked) == 1 and not dialog._reading, timeout=10_000)
    assert dialog._retry_timer.isActive()  # asked again in an hour
    assert text(dialog, "bravo") == "(name not read)"
    said = tip(dialog, "bravo")
    assert f"Its name was not read this time: {NO_ANSWER}." in said
    assert "metadata could not be used" not in said
    assert "3 names were not read this time: asked again shortly." in dialog.list_status.text()
    shot(dialog, "join-dialog-names-not-answered", tmp_path)


ACTIVITY_UNANSWERED = f"its last activity was not read: {NO_ANSWER}"


class ActivityNotAnswered(NeverAnswers):
    """Review rev2: every room's metadata answers (alpha's and charlie's name their
    rooms, bravo has none), but the listings of their activity get no answer."""

    async def summariser(self, _sid: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        self.asked.append(list(room_ids))
        names = {"alpha": "Alpha team", "charlie": "Charlie"}
        return [
            RoomSummary(r, names.get(r), None, ACTIVITY_UNANSWERED, passing=True) for r in room_ids
        ]


def test_a_room_whose_name_was_read_but_not_its_activity_is_not_counted_as_a_name_not_read(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary is ``passing`` (read again shortly) yet its name was read: a room
    without metadata shows "(no name)", not "(name not read)"; the status counts the
    rooms whose last activity was not read, not names."""
    monkeypatch.setattr(room_dialogs, "NAME_RETRIES", (3600.0,))  # not while the test runs
    storage = ActivityNotAnswered()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: len(storage.asked) == 1 and not dialog._reading, timeout=10_000)
    assert text(dialog, "alpha") == "Alpha team"
    assert text(dialog, "bravo") == "(no name)"
    assert "Part of it was not read this time" in tip(dialog, "bravo")
    said = dialog.list_status.text()
    assert "The last activity of 3 rooms was not read this time: asked again shortly." in said
    assert "name" not in said.split("found.")[-1], said


class SomeNamesNotAnswered(NeverAnswers):
    """Alpha's name got no answer; bravo's and charlie's activity listings got none."""

    async def summariser(self, _sid: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        self.asked.append(list(room_ids))
        return [
            RoomSummary(r, None, None, NO_ANSWER, passing=True, name_read=False)
            if r == "alpha"
            else RoomSummary(r, ROOMS[r], None, ACTIVITY_UNANSWERED, passing=True)
            for r in room_ids
        ]


def test_names_and_activity_not_read_are_counted_apart(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(room_dialogs, "NAME_RETRIES", (3600.0,))
    storage = SomeNamesNotAnswered()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: len(storage.asked) == 1 and not dialog._reading, timeout=10_000)
    assert text(dialog, "alpha") == "(name not read)"
    assert text(dialog, "bravo") == "Bravo team"
    said = dialog.list_status.text()
    assert (
        "1 name was not read and the last activity of 2 rooms was not read this time: "
        "asked again shortly." in said
    ), said


class RetryFails(NeverAnswers):
    """The first read gets no answer for the names; the read asked again fails whole
    (the storage refused it): nothing arms another."""

    async def summariser(self, sid: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        if self.asked:
            self.asked.append(list(room_ids))
            raise StorageError("the storage refused the read")
        return await super().summariser(sid, room_ids)


def test_a_retried_read_that_fails_no_longer_says_the_names_are_asked_again_shortly(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review rev2: the failed retry left a past-due entry in ``_due``, no timer armed,
    and the status still said "asked again shortly": nothing would ask."""
    monkeypatch.setattr(room_dialogs, "NAME_RETRIES", (0.01, 0.02))
    storage = RetryFails()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: len(storage.asked) >= 2 and _settled(dialog), timeout=10_000)
    assert len(storage.asked) == 2  # nothing asks again by itself
    said = dialog.list_status.text()
    assert "3 names were not read this time: open this window again" in said, said
    assert "shortly" not in said
