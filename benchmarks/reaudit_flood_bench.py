"""What a member who makes every segment need a full audit costs the room's readers.

Run:  .venv/bin/python benchmarks/reaudit_flood_bench.py [--events 100000] [--plants 20]
          [--every 0.5]
(from a git worktree: ``PYTHONPATH=. `` first, or the venv's installed checkout is measured)

Writes a room of N signed events (10 senders, segments of 1,000) into a local folder,
opens it in a sync engine with a real SQLite index and reads it whole, then plants one
segment every ``--every`` seconds whose second line does not parse (a ``bad-json``
finding: only a full audit takes a new finding in) and hands each to the engine as a
hint names it. Printed, with the pacing (``keeper.REAUDIT_SHARE``) and without it (the
share set to 1: every such arrival audited at once): the full audits made, the state
thread's busy share while the plants came, and the longest wait of a probe job put on
the state thread's interactive lane every 50 ms (what a room switch or a page waits).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from gui_bench import _write_room  # the same bench room
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import keeper
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded

ROOM = "big"
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def plant(root: Path, i: int, prev: str | None) -> tuple[str, str]:
    k = SigningKey(bytes([77]) * 32)
    ev = build_event(
        room_id=ROOM,
        sender_id="mallory@example.com",
        event_type=MESSAGE,
        content={"body": f"planted {i}", "msgtype": "m.text"},
        timestamp_ms=int(time.time() * 1000) - 1000,
        unique=str(uuid.UUID(int=10**9 + i, version=4)),
        prev_event_hash=prev,
        signing_key=k,
    )
    path = path_for([ev], client_id_for("mallory@example.com", bytes(k.verify_key)))
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(encode_segment([ev]) + b"{not json\n")
    return path, ev.hash


async def flood(root: Path, home: Path, plants: int, every: float) -> dict[str, float]:
    seen: list[EngineEvent] = []
    index = Index.open(home / "index.sqlite3")
    engine = SyncEngine(LocalStorage(root), index=index, listener=seen.append, config=QUIET)
    try:
        await engine.open_room(ROOM)
        while not any(isinstance(e, RoomLoaded) and e.complete for e in seen):
            await asyncio.sleep(0.05)
        room = engine.rooms[ROOM]
        before = len(seen)
        waits: list[float] = []
        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                asked = time.monotonic()
                await engine._serially(lambda: None, room=ROOM, interactive=True)
                waits.append(time.monotonic() - asked)
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe())
        t0 = time.monotonic()
        prev = None
        for i in range(plants):
            path, prev = plant(root, i, prev)
            await engine.fetch_segment(ROOM, path)
            await asyncio.sleep(every)
        while room.audit_owed or (room.reaudit is not None and not room.reaudit.done()):
            await asyncio.sleep(0.05)
        span = time.monotonic() - t0
        stop.set()
        await prober
        audits = sum(isinstance(e, RoomLoaded) for e in seen[before:])
        cost = room.audit_cost
        return {
            "audits": audits,
            "cost": cost,
            "busy": min(1.0, audits * cost / span),
            "span": span,
            "wait_max": max(waits),
            "wait_p95": sorted(waits)[int(len(waits) * 0.95) - 1],
        }
    finally:
        await engine.close()
        index.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--plants", type=int, default=20)
    ap.add_argument("--every", type=float, default=0.5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bc-flood-") as tmp:
        base = Path(tmp)
        print(f"writing a room of {args.events:,} events ...", flush=True)
        _write_room(base / "store", ROOM, "Big", args.events, 1000)
        for label, share in (("paced (REAUDIT_SHARE 0.25)", 0.25), ("unpaced (share 1)", 1.0)):
            keeper.REAUDIT_SHARE = share
            home = base / f"home-{share}"
            home.mkdir()
            # Each run on a room without the other's plants.
            store = base / f"store-{share}"
            shutil.copytree(base / "store", store)
            got = asyncio.run(flood(store, home, args.plants, args.every))
            print(
                f"{label}: {args.plants} bad segments, one every {args.every:g} s: "
                f"{got['audits']} full audits of {got['cost'] * 1000:.0f} ms "
                f"(state thread ~{got['busy']:.0%} busy over {got['span']:.1f} s); "
                f"an interactive job waited p95 {got['wait_p95'] * 1000:.0f} ms, "
                f"max {got['wait_max'] * 1000:.0f} ms"
            )
    print(f"machine: {platform.machine()}, {platform.python_version()}")


if __name__ == "__main__":
    main()
