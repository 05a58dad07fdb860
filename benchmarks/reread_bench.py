"""What reading a room again costs when one segment of it could not be read.

Run:  .venv/bin/python benchmarks/reread_bench.py [--days 365]

Writes a room with one segment a day for ``--days`` days into a local folder, opens it
in a sync engine with a real SQLite index while one old segment gets no answer, then
lets the storage answer and has one poll round read the room again. Printed: the
storage requests (listings and reads) and the time of that pass, as it is made now
(the days a warm pass lists and the day of what was not read, ``RoomState.problem_days``)
and as it is made when the note is of the whole room (every day listed: what every
such pass cost before 2026-12-07). A member's junk notice owes readers one such pass
15 s after it, then after 1, 4 and 16 minutes (``poller.OWED_BACKOFF``).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "reread-bench"
DAY_MS = 86_400_000
T0 = 1_700_000_000_000
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


class OneUnread(LocalStorage):
    """A local folder where reads of ``fail`` get no answer."""

    fail = ""

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path == self.fail:
            raise StorageOfflineError(f"no answer for {path}")
        return await super().get(path, max_bytes=max_bytes)


async def write(store: LocalStorage, days: int) -> str:
    """The room, one segment a day; returns the path of a segment 30 days from the start."""
    now = {"ms": T0}
    writer = RoomWriter(
        store, ROOM, "alice@example.com", SigningKey(bytes([1]) * 32), clock=lambda: now["ms"]
    )
    await writer.write_metadata("Bench", "2023-11-14T22:13:20.000Z")
    old = ""
    for day in range(days):
        now["ms"] = T0 + day * DAY_MS
        path, _ = await writer.send([Draft.text(f"day {day}")])
        if day == min(30, days // 2):
            old = path
    return old


async def pass_cost(root: Path, old: str, whole: bool) -> tuple[int, float, bool]:
    """Requests and seconds of the poll round that reads the room again, and whether
    that left it settled (nothing noted, the final verdict)."""
    store = OneUnread(root / "store")
    store.fail = old
    with tempfile.TemporaryDirectory() as db:
        engine = SyncEngine(store, index=Index.open(Path(db) / "i.sqlite3"), config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.unread, "the old segment was read"
            store.fail = ""
            if whole:  # a note of the whole room: every day is listed
                room.unlisted[logs_prefix(ROOM)] = "its days could not be listed"
            room.last_safety = 0.0
            before = engine.requests
            t = time.perf_counter()
            await engine.poll_once()
            took = time.perf_counter() - t
            settled = not room.unread and not room.unlisted and not room.partial
            return engine.requests - before, took, settled
        finally:
            await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        old = asyncio.run(write(LocalStorage(root / "store"), args.days))
        for whole, what in ((False, "now (its day and the warm days)"), (True, "every day")):
            requests, took, settled = asyncio.run(pass_cost(root, old, whole))
            print(
                f"{args.days}-day room, one segment unread, read again {what}: "
                f"{requests} requests, {took * 1000:.0f} ms"
                f"{'' if settled else ' (NOT settled)'}"
            )


if __name__ == "__main__":
    main()
