"""A hostile writer (or provider) removes a whole date folder of segments this device read
and checked before, or moves a day's only segment into another day. An object store has
no folders: a day with no object left is not listed at all, so no listing of that day is
ever compared with what was read from it. Each such segment must still be reported, as
one deleted from a day that is still listed is (``backfill._note_vanished``). Real
folders, a real SQLite index and the real engine."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_engine import ROOM, Recorder, create_room, run, write_history
from test_engine_pages import _close, _engine

from bucket_chat_desktop.protocol.audit import AuditResult
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.room_state import RoomState


def _read(root: Path, db: Path) -> tuple[dict[str, str], AuditResult, bool]:
    async def go() -> tuple[dict[str, str], AuditResult, bool]:
        engine = _engine(root, db, Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return {**room.unread, **room.vanished}, room.result, room.partial
        finally:
            await _close(engine)

    return run(go())


def _days(root: Path) -> list[Path]:
    return sorted(p for p in (root / "rooms" / ROOM / "logs").iterdir() if p.is_dir())


def _reported(root: Path, db: Path, gone: list[Path]) -> None:
    unread, result, partial = _read(root, db)
    as_path = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    assert set(unread) == {as_path(p) for p in gone}
    assert all("no longer in storage" in why for why in unread.values())
    assert partial and not result.clean
    named = {f.path for f in result.findings if f.kind is Kind.SEGMENT_VANISHED}
    assert named == {as_path(p) for p in gone}
    # what was checked before is still shown: the 12 messages of the 3 days
    assert sum(1 for a in result.timeline if a.event.type == MESSAGE) == 12


def _room_written(tmp_path: Path, *, days: int, per_day: int) -> Path:
    """A folder store holding the room, ``days`` days of ``per_day`` segments."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    write_history(LocalStorage(root), days=days, per_day=per_day)
    return root


async def _newest_moved(engine: SyncEngine, root: Path, aside: Path) -> tuple[RoomState, str]:
    """Open the room (read whole and clean), then move its newest segment to ``aside``."""
    room = await engine.open_room(ROOM, background=False)
    assert room.result is not None and room.result.clean
    path = max(p for p in room.known if p.endswith(".jsonl"))
    (root / path).rename(aside)
    return room, path


def _five_days_read(root: Path, db: Path) -> Path:
    """A room of five days of four segments, read whole into ``db``; a segment of its
    oldest day (which keeps three others)."""
    create_room(LocalStorage(root))
    write_history(LocalStorage(root), days=5, per_day=4)
    assert _read(root, db)[0] == {}
    return sorted(_days(root)[0].glob("*.jsonl"))[1]


async def _put_back(engine: SyncEngine, room: RoomState, aside: Path, at: Path) -> None:
    """Put a segment noted gone back, the same bytes: the next safety listing takes the
    note back and the verdict is audited again, clean."""
    aside.rename(at)
    await engine.refresh(ROOM)
    assert room.unread == {} == room.vanished
    if room.reaudit is not None:
        await room.reaudit
    assert not room.partial and room.result is not None and room.result.clean, (
        room.result and room.result.findings
    )


def test_a_whole_day_removed_after_it_was_read_is_reported(tmp_path: Path) -> None:
    """The oldest of three days removed whole (not listed any more): a warm pass lists
    only the newest days' objects, a full pass the days listed; neither looked at it."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=3, per_day=4)
    db = tmp_path / "index.sqlite3"
    unread, result, partial = _read(root, db)
    assert unread == {} and not partial and result.clean
    oldest = _days(root)[0]
    gone = sorted(oldest.glob("*.jsonl"))
    shutil.rmtree(oldest)  # as an object store shows it: no object, no prefix
    _reported(root, db, gone)
    _reported(root, db, gone)  # and again by the next pass (a full one now)


def test_a_days_only_segment_moved_into_another_day_is_reported(tmp_path: Path) -> None:
    """A day's only segment renamed into the next day's folder: its day is gone from
    the listing, and the copy under the new name is no reason to forget the old one."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=3, per_day=4)
    db = tmp_path / "index.sqlite3"
    days = _days(root)
    for extra in sorted(days[0].glob("*.jsonl"))[1:]:  # the first day keeps one segment
        extra.unlink()
    (moved,) = sorted(days[0].glob("*.jsonl"))
    unread, result, _ = _read(root, db)
    assert unread == {}
    moved.rename(days[1] / moved.name)
    shutil.rmtree(days[0])
    unread, result, partial = _read(root, db)
    as_path = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    assert as_path(moved) in unread
    assert "no longer in storage" in unread[as_path(moved)]
    assert partial and not result.clean


def test_a_room_whose_history_lists_no_day_at_all_says_so_once_and_recovers(
    tmp_path: Path,
) -> None:
    """Every day gone (the history folder removed, or a shared folder not mounted): one
    note that the room lists no day at all (not a tamper note per segment ever read);
    what was checked stays shown; once the days are back the room is whole again."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=3, per_day=4)
    db = tmp_path / "index.sqlite3"

    async def read() -> tuple[dict[str, str], dict[str, str], AuditResult]:
        engine = _engine(root, db, Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return {**room.unread, **room.vanished}, dict(room.unlisted), room.result
        finally:
            await _close(engine)

    assert run(read())[:2] == ({}, {})
    logs = root / "rooms" / ROOM / "logs"
    aside = tmp_path / "aside"
    logs.rename(aside)
    unread, unlisted, result = run(read())
    assert unread == {}
    ((prefix, why),) = unlisted.items()
    assert prefix == f"rooms/{ROOM}/logs/" and "lists no day at all" in why
    assert "read 3 days of it before" in why
    assert [f.kind for f in result.findings] == [Kind.UNREAD] and not result.clean
    assert sum(1 for a in result.timeline if a.event.type == MESSAGE) == 12
    aside.rename(logs)
    unread, unlisted, result = run(read())
    assert (unread, unlisted) == ({}, {}) and result.clean


def test_a_segment_removed_from_an_older_day_is_found_by_a_later_warm_pass(
    tmp_path: Path,
) -> None:
    """Once a room was read whole, a pass lists only its newest two days (and days never
    seen): one segment removed from an older day that keeps others went unreported for
    good. Each warm pass now lists one older day more, in turn: with three older days,
    the third pass after the removal finds it, and later passes keep saying so."""
    root, db = tmp_path / "store", tmp_path / "index.sqlite3"
    victim = _five_days_read(root, db)
    victim.unlink()
    as_path = victim.relative_to(root).as_posix()
    found = [as_path in _read(root, db)[0] for _ in range(3)]
    assert found == [False, False, True]
    unread, result, partial = _read(root, db)
    assert list(unread) == [as_path] and "no longer in storage" in unread[as_path]
    assert partial and not result.clean


def test_a_segment_removed_while_the_app_runs_is_reported_at_the_next_safety_listing(
    tmp_path: Path,
) -> None:
    """Not only at the room's next opening: the periodic listing of its newest days
    compares too, and the verdict shown is audited again at once."""
    root = _room_written(tmp_path, days=1, per_day=4)

    async def go() -> None:
        engine = _engine(root, tmp_path / "index.sqlite3", Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and room.result.clean
            await engine.refresh(ROOM)
            assert room.unread == {} == room.vanished
            gone = max(p for p in room.known if p.endswith(".jsonl"))
            (root / gone).unlink()
            await engine.refresh(ROOM)
            assert (
                set(room.vanished) == {gone}
                and not room.unread
                and "no longer in storage" in room.vanished[gone]
            )
            if room.reaudit is not None:  # paced: put off a moment after the last audit
                await room.reaudit
            assert room.partial and not room.result.clean
            named = [f for f in room.result.findings if f.kind is Kind.SEGMENT_VANISHED]
            assert [f.path for f in named] == [gone]
            # its events are shown as read: the finding does not call them missing
            assert "no longer holds this segment as this device read it" in named[0].message
            assert "missing" not in named[0].message
            assert sum(1 for a in room.result.timeline if a.event.type == MESSAGE) == 4
        finally:
            await _close(engine)

    run(go())


def test_a_segment_back_in_storage_clears_its_note_at_the_next_safety_listing(
    tmp_path: Path,
) -> None:
    """A synced folder's tool that deletes a file and downloads it again (or someone who
    moves a day's file away and back) leaves it missing for a moment: a safety listing
    every 30 s meets that moment. Once it is listed again, as it was read, the next
    listing takes the note back and the verdict is audited again: not a tampering alarm
    for the rest of the session (a pass, which starts over, ran only at the opening)."""
    root = _room_written(tmp_path, days=1, per_day=4)

    async def go() -> None:
        engine = _engine(root, tmp_path / "index.sqlite3", Recorder())
        try:
            aside = tmp_path / "aside"
            room, gone = await _newest_moved(engine, root, aside)
            await engine.refresh(ROOM)
            assert (
                set(room.vanished) == {gone}
                and not room.unread
                and "no longer in storage" in room.vanished[gone]
            )
            if room.reaudit is not None:
                await room.reaudit
            assert room.partial and not room.result.clean
            await _put_back(engine, room, aside, root / gone)
            assert sum(1 for a in room.result.timeline if a.event.type == MESSAGE) == 4
        finally:
            await _close(engine)

    run(go())


def test_a_segment_replaced_by_a_link_is_named_so_not_as_zero_bytes(tmp_path: Path) -> None:
    """A segment read before, now a symbolic link (to the same bytes even): links are never
    followed, and the listing shows no size for one. The note says what is there, not
    "N bytes then, 0 now" (nobody emptied it)."""
    root = _room_written(tmp_path, days=1, per_day=4)

    async def go() -> None:
        engine = _engine(root, tmp_path / "index.sqlite3", Recorder())
        try:
            aside = tmp_path / "aside"
            room, linked = await _newest_moved(engine, root, aside)
            (root / linked).symlink_to(aside)
            await engine.refresh(ROOM)
            assert set(room.vanished) == {linked} and not room.unread
            why = room.vanished[linked]
            assert "symbolic link" in why and "0 now" not in why, why
            if room.reaudit is not None:
                await room.reaudit
            assert room.partial and not room.result.clean
        finally:
            await _close(engine)

    run(go())


def test_a_removed_segment_does_not_make_every_round_read_the_whole_room_again(
    tmp_path: Path,
) -> None:
    """A room with something unread is read all over again at each safety round (every
    minute at most: what failed is retried). A segment removed (or rewritten) after it was
    read is no read to retry: no pass brings it back. One member who removes one segment
    had every reader list every day of the room every minute, for as long as the room is
    open (and download a rewritten segment again each time): the rounds list the newest
    days, as for an honest room, and still report it."""
    root = _room_written(tmp_path, days=5, per_day=2)

    async def go() -> None:
        engine = _engine(root, tmp_path / "index.sqlite3", Recorder())

        async def round_() -> int:
            room.last_safety = -1e9  # due now (a round every 30 s in a folder)
            before = engine.requests
            await engine.poll_once(markers=False)
            if room.backfill is not None:
                await room.backfill
            if room.reaudit is not None:
                await room.reaudit
            return engine.requests - before

        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and room.result.clean
            honest = await round_()
            gone = max(p for p in room.known if p.endswith(".jsonl"))
            aside = tmp_path / "aside"
            (root / gone).rename(aside)
            await round_()
            assert (
                set(room.vanished) == {gone}
                and not room.unread
                and "no longer in storage" in room.vanished[gone]
            )
            assert room.partial and not room.result.clean
            for _ in range(2):
                assert await round_() == honest
                assert set(room.vanished) == {gone} and not room.unread
                assert room.partial and not room.result.clean
            aside.rename(root / gone)  # put back: the next round takes the note back
            assert await round_() == honest
            assert room.unread == {} == room.vanished and not room.partial and room.result.clean
        finally:
            await _close(engine)

    run(go())


def test_a_segment_put_back_on_an_older_day_clears_its_note_at_the_next_safety_listing(
    tmp_path: Path,
) -> None:
    """The safety listing looks at the newest two days: a segment noted gone from an
    older day and put back (a sync tool's delete and download, a file moved away and
    back) kept its tampering alarm until the room's next opening. Days holding such a
    note are listed too."""
    root, db = tmp_path / "store", tmp_path / "index.sqlite3"
    victim = _five_days_read(root, db)
    gone = victim.relative_to(root).as_posix()
    aside = tmp_path / "aside"
    victim.rename(aside)

    async def go() -> None:
        for _ in range(4):  # each warm opening lists one older day more, in turn
            engine = _engine(root, db, Recorder())
            room = await engine.open_room(ROOM, background=False)
            if gone in room.vanished:
                break
            await _close(engine)
        else:
            raise AssertionError("the removed segment was never noted")
        try:
            assert "no longer in storage" in room.vanished[gone]
            assert room.partial and room.result is not None and not room.result.clean
            await engine.refresh(ROOM)
            assert set(room.vanished) == {gone}  # still gone: still said
            await _put_back(engine, room, aside, root / gone)
        finally:
            await _close(engine)

    run(go())
