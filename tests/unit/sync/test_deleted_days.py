"""Red team rt70: storage that changes under the running reader over many safety rounds.

A member (or the provider) removes a whole day folder of segments this device read and
checked, or the room's whole history, while the app runs. In an object store a day with
no object left is no prefix any more: the safety listing of the newest days listed the
days that were left and compared nothing with the day gone, so round after round the
room stayed "completely read" and clean, while the next start reported every segment.
The safety round notes them as an opening does (``backfill.note_days_gone``), from the
listing of the room's days it makes anyway: no request more than an honest round.

Real folders, a real SQLite index and the real engine (as test_vanished_days.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_engine import ROOM, Recorder, create_room, run, write_history
from test_engine_pages import _close, _engine

from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage


def _open_once(root: Path, db: Path) -> tuple[set[str], bool, bool]:
    async def go() -> tuple[set[str], bool, bool]:
        engine = _engine(root, db, Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            named = {f.path for f in room.result.findings if f.kind is Kind.SEGMENT_VANISHED}
            return named, room.partial, room.result.clean
        finally:
            await _close(engine)

    return run(go())


# Each safety round: what is noted (segments, or the room's logs/ folder), partial,
# clean, messages shown, requests made.
Seen = list[tuple[set[str], bool, bool, int, int]]


def _rounds(root: Path, db: Path, games: list[Callable[[Any], None]], n: int = 3) -> Seen:
    """Open the room (read whole), then for each of ``games`` play it on the storage and
    run ``n`` safety rounds of the running engine; what each round's verdict says."""

    async def go() -> Seen:
        engine = _engine(root, db, Recorder())
        out: Seen = []
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and room.result.clean and not room.partial
            for game in games:
                game(room)
                for _ in range(n):
                    before = engine.requests
                    room.last_safety = -1e9  # due now
                    await engine.poll_once(markers=False)
                    if room.backfill is not None:
                        await room.backfill
                    if room.reaudit is not None:
                        await room.reaudit
                    await asyncio.sleep(0)
                    out.append(
                        (
                            {**room.vanished, **room.unlisted}.keys() | set(),
                            room.partial,
                            room.result.clean,
                            sum(1 for a in room.result.timeline if a.event.type == MESSAGE),
                            engine.requests - before,
                        )
                    )
        finally:
            await _close(engine)
        return out

    return run(go())


def _nothing(room: object) -> None:
    """An honest round: what a round costs when nothing changed."""


def _day_folders(root: Path) -> list[Path]:
    return sorted(p for p in (root / "rooms" / ROOM / "logs").iterdir() if p.is_dir())


def test_the_newest_day_removed_while_the_app_runs_is_reported_by_its_safety_rounds(
    tmp_path: Path,
) -> None:
    """A member (or the provider) removes the newest day's segments while the app runs:
    in an object store the day is then no prefix at all. The app's safety listing of the
    newest days listed the days that are left, and compared nothing with the day gone:
    round after round the room stayed "completely read", clean, while the next start
    (``_read_history``: days read before and no longer listed) reported every segment.
    Each round notes them, with no listing more than an honest round's."""
    root, db = tmp_path / "store", tmp_path / "index.sqlite3"
    create_room(LocalStorage(root))
    write_history(LocalStorage(root), days=4, per_day=3)
    newest = _day_folders(root)[-1]
    gone = {p.relative_to(root).as_posix() for p in newest.glob("*.jsonl")}
    seen = _rounds(root, db, [_nothing, lambda room: shutil.rmtree(newest)], n=5)
    honest, removed = seen[:5], seen[5:]
    assert all(not noted and not partial and clean for noted, partial, clean, _, _ in honest)
    cost = max(requests for *_, requests in honest)
    # the running app, round after round
    for noted, partial, clean, messages, requests in removed:
        assert messages == 12  # what was checked here stays shown (held)
        assert gone <= noted and partial and not clean, (
            "the newest day's segments, read and checked here, are gone from storage: "
            f"the running app says nothing ({len(noted)} noted, partial={partial})"
        )
        assert requests <= cost, "the day gone is not listed again at each round"
    # what a restart says: the same
    restarted, partial, clean = _open_once(root, db)
    assert gone <= restarted and partial and not clean


def test_the_whole_history_removed_while_the_app_runs_is_reported_by_its_safety_rounds(
    tmp_path: Path,
) -> None:
    """The room's whole ``logs/`` emptied (every day gone) while the app runs: the safety
    rounds listed no day and compared nothing; the room stayed clean and final. Each
    round says it, as an opening does ("it lists no day at all"), in one listing."""
    root, db = tmp_path / "store", tmp_path / "index.sqlite3"
    create_room(LocalStorage(root))
    write_history(LocalStorage(root), days=3, per_day=2)

    def empty(room: object) -> None:
        for day in _day_folders(root):
            shutil.rmtree(day)

    seen = _rounds(root, db, [empty], n=3)
    for noted, partial, clean, messages, requests in seen:
        assert messages == 6
        assert noted and partial and not clean, "the whole history removed: nothing said"
        assert requests == 1, "one listing of the room's days: there is nothing else"
    _, partial, clean = _open_once(root, db)  # what a restart says: the same
    assert partial and not clean


def test_a_day_put_back_while_the_app_runs_takes_its_reports_back(tmp_path: Path) -> None:
    """A synced folder's tool that removes a day and brings it back (or a member who
    puts it back): the running app's next round takes the reports back, as for one
    segment put back; the room is clean again, nothing shown twice."""
    root, db = tmp_path / "store", tmp_path / "index.sqlite3"
    create_room(LocalStorage(root))
    write_history(LocalStorage(root), days=4, per_day=2)
    newest, older = _day_folders(root)[-1], _day_folders(root)[0]
    away = tmp_path / "away"
    away.mkdir()

    def remove(room: object) -> None:
        for day in (newest, older):
            shutil.move(day, away / day.name)

    def restore(room: object) -> None:
        for day in (newest, older):
            shutil.move(away / day.name, day)

    seen = _rounds(root, db, [remove, restore], n=2)
    (noted, partial, clean, _, _), _ = seen[:2]
    assert len(noted) == 4 and partial and not clean  # both days' segments
    for noted, partial, clean, messages, _ in seen[2:]:
        assert not noted and not partial and clean
        assert messages == 8


def test_the_whole_history_put_back_while_the_app_runs_is_whole_again(tmp_path: Path) -> None:
    """Every day moved away (a folder not synced yet, a history removed), then back: the
    room's "lists no day at all" note goes at the next round while the app runs."""
    root, db = tmp_path / "store", tmp_path / "index.sqlite3"
    create_room(LocalStorage(root))
    write_history(LocalStorage(root), days=3, per_day=2)
    days = _day_folders(root)
    away = tmp_path / "away"
    away.mkdir()

    def remove(room: object) -> None:
        for day in days:
            shutil.move(day, away / day.name)

    def restore(room: object) -> None:
        for day in days:
            shutil.move(away / day.name, day)

    seen = _rounds(root, db, [remove, restore], n=2)
    assert all(noted and partial for noted, partial, *_ in seen[:2])
    for noted, partial, clean, messages, _ in seen[2:]:
        assert not noted and not partial and clean
        assert messages == 6
