"""A hostile writer adds day folders whose names sort after every real day (``zzzz``,
``9999-12-31``): the safety listing (``Poller.refresh``) lists "the newest two days"
and a warm pass the same two, so those were the junk ones for good, and a segment
removed from the room's real newest day, or one delivered late into it without a
marker, went unnoticed while the app ran. The newest days are the newest that can be
today's or yesterday's anywhere: named as dates, not after tomorrow. Real folders, a
real SQLite index and the real engine."""

from __future__ import annotations

from pathlib import Path

from test_engine import ROOM, Recorder, create_room, run, write_history
from test_engine_pages import _close, _engine

from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage

JUNK_DAYS = ("zzzz", "9999-12-31", "9999-12-30")


def test_junk_day_folders_do_not_hide_the_newest_days_from_the_safety_listing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=3, per_day=4)
    logs = root / "rooms" / ROOM / "logs"
    real_days = sorted(p for p in logs.iterdir() if p.is_dir())
    newest = real_days[-1]
    late = sorted(newest.glob("*.jsonl"))[-1]  # delivered late: not there at the opening
    aside = tmp_path / "late"
    late.rename(aside)
    for name in JUNK_DAYS:
        (logs / name).mkdir()
        (logs / name / "junk.txt").write_bytes(b"nothing")

    async def go() -> None:
        engine = _engine(root, tmp_path / "index.sqlite3", Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and not room.partial
            messages = sum(1 for a in room.result.timeline if a.event.type == MESSAGE)
            assert messages == 11
            # Delivered late into the newest real day, with no marker: the safety
            # listing finds it.
            aside.rename(late)
            await engine.refresh(ROOM)
            assert late.relative_to(root).as_posix() in room.known
            # A segment removed from the newest real day: reported at the next listing.
            gone = sorted(newest.glob("*.jsonl"))[0]
            gone.unlink()
            await engine.refresh(ROOM)
            as_path = gone.relative_to(root).as_posix()
            assert set(room.vanished) == {as_path}, room.vanished
        finally:
            await _close(engine)

    run(go())


def test_junk_day_folders_do_not_hide_the_newest_days_from_a_warm_pass(
    tmp_path: Path,
) -> None:
    """A room read whole is read warm at its next opening: its newest two days, days
    never seen and one older day in turn. A segment delivered late into the real newest
    day (no marker) is found there, junk days or not."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=3, per_day=4)
    logs = root / "rooms" / ROOM / "logs"
    newest = sorted(p for p in logs.iterdir() if p.is_dir())[-1]
    late = sorted(newest.glob("*.jsonl"))[-1]
    aside = tmp_path / "late"
    late.rename(aside)
    for name in JUNK_DAYS:
        (logs / name).mkdir()
        (logs / name / "junk.txt").write_bytes(b"nothing")
    db = tmp_path / "index.sqlite3"

    async def messages() -> int:
        engine = _engine(root, db, Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and not room.partial
            return sum(1 for a in room.result.timeline if a.event.type == MESSAGE)
        finally:
            await _close(engine)

    assert run(messages()) == 11
    aside.rename(late)
    assert run(messages()) == 12


def test_a_day_folder_with_an_unsafe_name_does_not_stop_the_room_being_read(
    tmp_path: Path,
) -> None:
    """A folder whose name this app refuses as part of a path (a backslash: a Linux
    folder may have one) among the days: listing it raised "refusing unsafe object
    path", and every pass, and the safety listing (it sorts after every real day),
    ended as the storage offline and the room not completely read."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=2, per_day=2)
    junk = root / "rooms" / ROOM / "logs" / "zz\\z"
    junk.mkdir()
    (junk / "junk.jsonl").write_bytes(b"junk")

    async def go() -> None:
        engine = _engine(root, tmp_path / "index.sqlite3", Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert engine.online, engine.status_message
            assert room.result is not None and not room.partial, room.unlisted
            assert sum(1 for a in room.result.timeline if a.event.type == MESSAGE) == 4
            await engine.refresh(ROOM)
            assert engine.online and not room.partial
        finally:
            await _close(engine)

    run(go())
