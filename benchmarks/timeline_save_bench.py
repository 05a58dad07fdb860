"""What the cached timeline costs: ``Index.save_audit`` time, the first paint's read
(``Index.newest``) and the timeline table's size on disk, for one room.

Run:  .venv/bin/python benchmarks/timeline_save_bench.py [--events 100000] [--runs 5]

Builds an index file of ``--events`` signed messages in one room (segments of 500, a
ledger without bodies as the app keeps a large room), audits it, then saves the audit
``--runs`` times (each replaces the whole timeline, as a full audit does), reads the
newest rows as the first paint does and checks the saved rows against the audit as a
warm start does (``Index.timeline_is``). Reported: the median save, read and check times, and the
bytes of the ``timeline`` table with its indexes (SQLite's ``dbstat``) and of the file.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index, IndexedEvent
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "bench-room"
FIRST_PAINT_ROWS = 200


def build(path: Path, events: int) -> RoomLedger:
    index = Index.open(path, "bench")
    key = SigningKey(bytes([7]) * 32)
    ledger = RoomLedger(ROOM, keep_bodies=False)
    prev = None
    base = 1_764_000_000_000
    for start in range(0, events, 500):
        batch = []
        for i in range(start, min(events, start + 500)):
            ev = build_event(
                room_id=ROOM,
                sender_id="alice@example.com",
                event_type=MESSAGE,
                content={"body": f"message number {i} of the benchmark", "msgtype": "m.text"},
                timestamp_ms=base + i * 1000,
                unique=str(uuid.UUID(int=i + 1, version=4)),
                prev_event_hash=prev,
                signing_key=key,
            )
            prev = ev.hash
            batch.append(ev)
        seg = path_for(batch, "alice-00000000")
        data = encode_segment(batch)
        rows = [
            IndexedEvent(seg, n, e.event_id, e.timestamp_ms, e.line().decode().rstrip(), True, "")
            for n, e in enumerate(batch, start=1)
        ]
        index.add_segment(ROOM, seg, len(data), None, rows, [])
        ledger.add_segment(seg, data)
    index.close()
    return ledger


def table_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        names = [
            n
            for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE tbl_name = 'timeline' "
                "AND type IN ('table', 'index')"
            )
        ]
        marks = ", ".join("?" * len(names))
        (total,) = conn.execute(
            f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})", names
        ).fetchone()
        return int(total or 0)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="timeline-bench-") as tmp:
        path = Path(tmp) / "index.sqlite3"
        ledger = build(path, args.events)
        result = ledger.audit({})
        index = Index.open(path, "bench")
        saves, reads, checks = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            index.save_audit(ROOM, result, history_complete=True)
            saves.append(time.perf_counter() - started)
            started = time.perf_counter()
            rows = index.newest(ROOM, FIRST_PAINT_ROWS)
            reads.append(time.perf_counter() - started)
            assert len(rows) == min(FIRST_PAINT_ROWS, len(result.timeline))
            started = time.perf_counter()
            assert index.timeline_is(ROOM, result.timeline)
            checks.append(time.perf_counter() - started)
        index._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        index.close()
        print(f"rows in the timeline: {len(result.timeline):,}")
        print(f"save_audit: median {statistics.median(saves) * 1000:.0f} ms of {args.runs}")
        print(f"newest({FIRST_PAINT_ROWS}): median {statistics.median(reads) * 1000:.1f} ms")
        print(f"timeline_is: median {statistics.median(checks) * 1000:.0f} ms")
        print(f"timeline table and indexes: {table_bytes(path) / 2**20:.1f} MiB")
        print(f"index file: {path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
