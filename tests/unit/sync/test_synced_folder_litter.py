"""A room in a synced folder sees the sync tool's own temporary files beside the
segments: Resilio Sync's ``<name>.!sync`` while a segment arrives, then renamed (hidden
ones, such as Syncthing's ``.syncthing.<name>.tmp``, are never listed). Such litter is a
notice when listed, never history: its disappearing or changing size was reported as
"removed or moved by someone with write access" / "changed in storage", tampering alarms
against nobody. Real folders, a real index."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from test_engine import ROOM, Recorder, create_room, store_segments, write_history

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def read(root: Path, db: Path) -> tuple[dict[str, str], list[tuple[Kind, str | None]], bool]:
    async def go() -> tuple[dict[str, str], list[tuple[Kind, str | None]], bool]:
        engine = SyncEngine(
            LocalStorage(root), index=Index.open(db), listener=Recorder(), config=QUIET
        )
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            found = [(f.kind, f.path) for f in room.result.findings]
            return {**room.unread, **room.vanished}, found, room.partial
        finally:
            await engine.close()
            assert engine.index is not None
            engine.index.close()

    return asyncio.run(go())


def test_a_sync_tools_temporary_files_never_raise_a_tampering_alarm(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=1, per_day=2)
    day = store_segments(root)[0].parent
    arriving = day / f"{store_segments(root)[0].name}.!sync"
    growing = day / "~$notes.tmp"
    arriving.write_bytes(b"half of a segment")
    growing.write_bytes(b"x")
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    db = tmp_path / "index.sqlite3"

    unread, found, partial = read(root, db)
    assert unread == {} and not partial
    assert sorted(found) == sorted(
        [(Kind.UNEXPECTED_OBJECT, rel(arriving)), (Kind.UNEXPECTED_OBJECT, rel(growing))]
    )

    arriving.unlink()  # renamed into place by the sync tool (here: simply gone)
    growing.write_bytes(b"xxxx")
    unread, found, partial = read(root, db)  # a warm start lists the day again
    assert unread == {} and not partial, unread
    assert [k for k, _ in found if k is not Kind.UNEXPECTED_OBJECT] == []

    # a segment removed still is what it is
    gone = store_segments(root)[1]
    gone.unlink()
    unread, found, partial = read(root, db)
    assert list(unread) == [rel(gone)] and partial
    assert "removed or moved" in unread[rel(gone)]


@pytest.mark.parametrize(
    "disguise",
    [lambda n: f"{n}.!sync", lambda n: n.upper(), lambda n: n.replace(".jsonl", ".JSONL")],
    ids=["sync-temp", "upper-case", "extension-case"],
)
def test_a_segment_disguised_as_litter_is_still_reported_gone(
    tmp_path: Path, disguise: Callable[[str], str]
) -> None:
    """A member renames a segment already read to a name that is litter (a sync tool's
    temporary name, a case variant the protocol does not accept): the litter rule must
    not hide that the segment is gone, and the renamed copy is no history."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=1, per_day=2)
    db = tmp_path / "index.sqlite3"
    unread, _, partial = read(root, db)
    assert unread == {} and not partial
    seg = store_segments(root)[0]
    rel = seg.relative_to(root).as_posix()
    seg.rename(seg.with_name(disguise(seg.name)))
    unread, found, partial = read(root, db)
    assert list(unread) == [rel] and partial
    assert "removed or moved" in unread[rel]
    renamed = seg.with_name(disguise(seg.name)).relative_to(root).as_posix()
    assert (Kind.UNEXPECTED_OBJECT, renamed) in found
