"""A room read through before, with only a segment or a day folder noted as not read, is
read again by listing the days a warm pass lists and those days: not every day of its
history. A member's junk notice (or a service failing one read) owed a year-old room a
listing of each of its days, up to four times an hour (``poller._owe_listing``). The
verdict after such a pass is as final as after a whole read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_engine import ROOM, Recorder, create_room, write_history

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.base import (
    DEFAULT_MAX_READ,
    ObjectInfo,
    StorageOfflineError,
    StoragePermissionError,
)
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.room_state import RoomState

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
DAYS = 8
LOGS = logs_prefix(ROOM)


class Counted(LocalStorage):
    """The room's folder; reads of ``fail_get`` get no answer, listings of ``fail_list``
    are refused (a folder nobody may read: the other days are listed), and the day
    folders listed are counted."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fail_get: set[str] = set()
        self.fail_list: set[str] = set()
        self.days_listed: list[str] = []

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path in self.fail_get:
            raise StorageOfflineError(f"no answer for {path}")
        return await super().get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        if prefix.startswith(LOGS) and prefix != LOGS:
            self.days_listed.append(prefix.removeprefix(LOGS).rstrip("/"))
        if prefix in self.fail_list:
            raise StoragePermissionError(f"may not list {prefix}")
        return await super().list_objects(prefix)


def history(tmp_path: Path) -> tuple[Counted, list[str]]:
    store = Counted(tmp_path / "store")
    create_room(store)
    write_history(store, days=DAYS, per_day=2)
    days = sorted(p.name for p in (tmp_path / "store" / LOGS).iterdir())
    assert len(days) == DAYS
    return store, days


def read_again(store: Counted, tmp_path: Path, fail: str, *, day_folder: bool) -> None:
    """Open the room while ``fail`` (a segment, or with ``day_folder`` a day folder) gets
    no answer; then the storage answers, and a round reads the room again."""

    async def go() -> None:
        engine = SyncEngine(
            store,
            index=Index.open(tmp_path / "db" / "i.sqlite3"),
            listener=Recorder(),
            config=QUIET,
        )
        try:
            (store.fail_list if day_folder else store.fail_get).add(fail)
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and room.partial
            assert (room.unlisted if day_folder else room.unread).keys() == {fail}
            kinds = [f.kind for f in room.result.errors]
            assert (Kind.UNREAD if day_folder else Kind.SEGMENT_UNREADABLE) in kinds
            shown = len(room.result.timeline)
            store.fail_get.clear()
            store.fail_list.clear()
            store.days_listed.clear()
            room.last_safety = 0.0
            await engine.poll_once()
            # settled: read whole, the final verdict, nothing noted
            assert not room.unread and not room.unlisted and not room.partial
            assert room.result.clean and len(room.result.timeline) > shown
            messages = [a.event.body for a in room.result.timeline if a.event.body]
            assert len(messages) == DAYS * 2
        finally:
            await engine.close()

    asyncio.run(go())


def test_a_segment_that_could_not_be_read_is_read_again_with_its_day_only(
    tmp_path: Path,
) -> None:
    store, days = history(tmp_path)
    day = days[1]  # an old day: not one a warm pass lists anyway
    segment = sorted((tmp_path / "store" / LOGS / day).iterdir())[0].name
    read_again(store, tmp_path, f"{LOGS}{day}/{segment}", day_folder=False)
    listed = set(store.days_listed)
    # the newest two (late deliveries), the day of what was not read, and at most the
    # one older day each pass looks at again (``Backfill._read_history``)
    assert day in listed and set(days[-2:]) <= listed
    assert len(listed) <= 4 < DAYS


def test_a_day_that_could_not_be_listed_is_listed_again_with_the_newest_days_only(
    tmp_path: Path,
) -> None:
    store, days = history(tmp_path)
    day = days[2]
    read_again(store, tmp_path, f"{LOGS}{day}/", day_folder=True)
    listed = set(store.days_listed)
    assert day in listed and set(days[-2:]) <= listed
    assert len(listed) <= 4 < DAYS


def state(**notes: dict[str, str]) -> RoomState:
    room = RoomState(ROOM, RoomLedger(ROOM))
    room.unread.update(notes.get("unread", {}))
    room.unlisted.update(notes.get("unlisted", {}))
    room.vanished.update(notes.get("vanished", {}))
    return room


def test_only_notes_that_name_day_folders_narrow_a_read() -> None:
    day = f"{LOGS}2025-09-15/"
    assert state(unread={f"{day}a.jsonl": "x"}, unlisted={day: "y"}).problem_days() == {
        "2025-09-15"
    }
    # the room's list of days could not be read: every day, as before
    assert state(unlisted={LOGS: "no answer"}).problem_days() is None
    assert state(unread={f"{day}a.jsonl": "x"}, unlisted={LOGS: "z"}).problem_days() is None
    # another room's path, or one outside a day folder: read all over again
    assert state(unread={"rooms/other/logs/2025-09-15/a.jsonl": "x"}).problem_days() is None
    assert state(unread={f"{LOGS}a.jsonl": "x"}).problem_days() is None
    # only segments gone from storage: no pass is made for them (``worth_reading_again``)
    assert state(vanished={f"{day}a.jsonl": "gone"}).problem_days() is None
    assert state().problem_days() is None
