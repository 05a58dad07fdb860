"""The member fold of a room of many distinct sender ids: what the state thread spends.

Run:  .venv/bin/python benchmarks/members_bench.py [--ids 50000] [--rounds 3]
(from a git worktree: ``PYTHONPATH=. `` first, or the venv's installed checkout is measured)

A member who writes under a new sender id for every event (nothing stops it: an id is
text) makes the engine's state thread fold every one of them (``room_state.RoomState``:
counted, checked for look-alikes of the room's other ids and names, then made into a
member record by ``roster``). Measured here, in this process's CPU time, median of
``--rounds``, for three rooms of ``--ids`` ids, every second one joining with a display
name (verified):

- ascii: ``user123@example.com``, named ``User 123`` (what people use);
- look-alikes: a third as above, a third the same ids with a Cyrillic letter in them
  (``usеr123@…``), a third Greek ids (``χρήστης123@…``) named in Greek;
- the look-alike checks alone (``RoomIds.add`` of those ids: a skeleton and a warning);
- one append: a new id in the ascii room after its roster was made (the roster is made
  again only for whom the new id concerns).

The rows are verdicts handed to the fold (``Assessed``), as the audit hands them: no
signing, no audit.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

from bucket_chat_desktop.protocol.audit import Assessed, TrustState
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event, parse_event
from bucket_chat_desktop.protocol.room_state import RoomState
from bucket_chat_desktop.protocol.untrusted_text import RoomIds

ROOM = "bench-room"
KEY = "a" * 43 + "="


def row(i: int, sender: str, name: str | None) -> Assessed:
    """Row ``i``: a verified join named ``name``, or (None) a message."""
    kind, content = (
        (MEMBER, {"membership": "join", "displayname": name})
        if name is not None
        else (MESSAGE, {"body": "hello", "msgtype": "m.text"})
    )
    raw = {
        "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::{i}",
        "room_id": ROOM,
        "timestamp_ms": 1_767_225_600_000 + i,
        "sender_id": sender,
        "type": kind,
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "",
        "content": content,
        "sender_key": KEY,
    }
    ev = parse_event(raw, ROOM)
    assert isinstance(ev, Event), ev
    return Assessed(ev, TrustState.VERIFIED, "", "p", i)


def ascii_room(n: int) -> list[Assessed]:
    return [row(i, f"user{i}@example.com", f"User {i}" if i % 2 else None) for i in range(n)]


def lookalike_room(n: int) -> list[Assessed]:
    rows = []
    for i in range(n):
        named = i % 2 == 1
        if i % 3 == 0:
            sender, name = f"user{i}@example.com", f"User {i}"
        elif i % 3 == 1:  # Cyrillic е: looks like user{i - 1}@example.com
            sender, name = f"us\u0435r{i - 1}@example.com", f"User {i - 1}"
        else:
            sender, name = f"χρήστης{i}@example.com", f"Χρήστης {i}"
        rows.append(row(i, sender, name if named else None))
    return rows


def fold(rows: list[Assessed]) -> RoomState:
    state = RoomState(dedupe=False)  # as the engine folds a timeline
    state.add(rows)
    state.roster()
    return state


def lookalikes(ids: list[str]) -> RoomIds:
    """What the fold asks of each new id (``RoomIds.add``: its skeleton and its own
    warning), alone."""
    room = RoomIds()
    room.update(ids)
    return room


def timed(label: str, n: int, rounds: int, work: Callable[[], object]) -> None:
    took = []
    for _ in range(rounds):
        c = time.process_time()
        work()
        took.append(time.process_time() - c)
    median = statistics.median(took)
    print(
        f"{label}: median {median * 1000:.0f} ms, {median / n * 1e6:.1f} µs an id "
        f"(min {min(took) * 1000:.0f}, max {max(took) * 1000:.0f} ms)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {impl}; {args.ids:,} distinct sender ids")
    plain, mixed = ascii_room(args.ids), lookalike_room(args.ids)
    timed("full fold + roster, ascii", args.ids, args.rounds, lambda: fold(plain))
    timed("full fold + roster, look-alikes", args.ids, args.rounds, lambda: fold(mixed))
    for label, rows in (("ascii", plain), ("look-alikes", mixed)):
        ids = [r.event.sender_id for r in rows]
        timed(
            f"  of which the look-alike checks, {label}",
            args.ids,
            args.rounds,
            lambda ids=ids: lookalikes(ids),  # type: ignore[misc]
        )
    state = fold(plain)
    extra = [row(args.ids + k, f"newcomer{k}@example.com", "User 7") for k in range(args.rounds)]
    took = []
    for one in extra:
        c = time.process_time()
        state.add([one])
        state.roster()
        took.append(time.process_time() - c)
    print(f"one new id appended, roster again: median {statistics.median(took) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
