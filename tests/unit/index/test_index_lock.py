"""The index's one lock covers every method: the engine's worker thread and the GUI thread
share one SQLite connection, and a method that runs without the lock lets the other
thread's statements land inside its transaction."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

from bucket_chat_desktop.index import Index, IndexedEvent
from bucket_chat_desktop.protocol.findings import Finding, Kind

ROOM = "room-1"


def _public_methods() -> dict[str, object]:
    out = {}
    for name, value in vars(Index).items():
        if name.startswith("_") or isinstance(value, classmethod | staticmethod | property):
            continue
        if inspect.isfunction(value):
            out[name] = value
    return out


def test_every_public_method_takes_the_lock() -> None:
    methods = _public_methods()
    assert {"add_segment", "room_segments", "newest", "save_audit", "cursor"} <= set(methods)
    unlocked = [n for n, m in methods.items() if not getattr(m, "takes_index_lock", False)]
    assert unlocked == []


def _events(path: str, n: int) -> list[IndexedEvent]:
    # Rows need not be valid events here: this test is about the connection, not parsing.
    return [IndexedEvent(path, i, f"e{i}", i, "{}", True, "") for i in range(n)]


def test_a_segment_is_never_seen_half_written_from_another_thread(tmp_path: Path) -> None:
    """One thread keeps replacing a segment (delete its rows, insert them again, in one
    transaction) while another reads it back on the same connection. Without the lock the
    reader runs between the delete and the inserts and sees the segment with only part
    of its events (and a locked writer's commit would commit that half)."""
    index = Index.open(tmp_path / "index.sqlite3")
    path = "rooms/room-1/logs/2025-09-14/seg.jsonl"
    rows = 3000
    findings = [Finding(Kind.BAD_JSON, "not JSON", path, 1)]
    index.add_segment(ROOM, path, 1, None, _events(path, rows), findings)
    seen: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(60):
                index.add_segment(ROOM, path, 1, None, _events(path, rows), findings)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                for _p, events, _f in index.room_segments(ROOM):
                    seen.append(len(events))
                index.set_cursor("x", str(len(seen)))  # a locked write: commits what is open
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert seen and set(seen) == {rows}
        ((_p, events, _f),) = index.room_segments(ROOM)
        assert len(events) == rows
    finally:
        index.close()
