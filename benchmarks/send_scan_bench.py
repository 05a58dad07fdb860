"""What a send costs right after messages were placed behind one dated a little ahead.

Run:  .venv/bin/python benchmarks/send_scan_bench.py [--events 100000] [--placements 10]
(from a git worktree: ``PYTHONPATH=. `` first, or the venv's installed checkout is measured)

Builds a room of N signed events by 20 senders on a ledger that keeps no bodies (the
app's), adds a message dated 59 minutes ahead (shown: it sorts last until its date), then
has ``--placements`` messages of other senders arrive one at a time, each placed before it
(``RoomLedger.try_place``, as the engine does), and after each one a send reads what it
needs from the timeline (``publisher.send_context``: the introductions on offer, each
device's newest event for the witness). Prints the median CPU time of that read:

- carried: the send scan carried over the placement at the end of its job
  (``RoomState.carry_scan``), then brought up to date by the send;
- rebuilt: the scan made again from the first row, what every such send did before
  (a placement gives the result a new audit number).

Each carried scan is checked against the rebuilt one (the same newest event per device,
in the same order, and the same offers).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid

from relations_bench import ROOM, ledger_of, make_signers

from bucket_chat_desktop.protocol.audit import prepare_segment
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.sync.publisher import send_context
from bucket_chat_desktop.sync.room_state import RoomState, SendScan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--placements", type=int, default=10)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    signers = make_signers(args.events, 0, 0, 0)
    segments = signers.segments()
    now = signers.t
    planted = signers.emit(
        0, MESSAGE, {"body": "soon", "msgtype": "m.text"}, at=(now + 59 * 60_000, str(uuid.uuid4()))
    )
    signers.t = now
    late = []
    for i in range(args.placements):
        ev = signers.emit(i % 19 + 1, MESSAGE, {"body": f"meanwhile {i}", "msgtype": "m.text"})
        late.append((path_for([ev], f"late{i}"), encode_segment([ev])))
    ledger = ledger_of(segments)
    ledger.add_prepared(
        prepare_segment(path_for([planted], "planter"), encode_segment([planted]), ROOM)
    )
    room = RoomState(ROOM, ledger, result=ledger.audit(now_ms=now), complete=True)
    user_id, key = signers.people[1]
    key_text = b64encode(bytes(key.verify_key))
    send_context(room, user_id, key_text)  # an earlier send made the scan
    carried, rebuilt = [], []
    for segment in late:
        shown = room.result
        assert shown is not None
        placed = ledger.try_place(ledger.add_prepared(prepare_segment(*segment, ROOM)), now)
        assert placed is not None and placed.inserted, "not placed before the planted row"
        room.result = ledger.result
        assert room.result is not None
        room.moved = (shown, room.result, placed.at, len(placed.rows))
        scan = room.scan
        c = time.process_time()
        room.carry_scan()  # the end of the placement's job (``keeper._publish``)
        room.moved = None
        context = send_context(room, user_id, key_text)
        carried.append(time.process_time() - c)
        assert room.scan is scan, "not carried"
        c = time.process_time()
        fresh = SendScan(room.result)
        fresh.catch_up()
        offers = fresh.introductions(user_id, key_text).offers()
        rebuilt.append(time.process_time() - c)
        assert context is not None and context[1] == offers
        assert context[2] == fresh.witness_order(key_text), "the carried scan differs"
    print(
        f"{args.events:,} events, {args.placements} messages placed before one dated 59 "
        f"minutes ahead; the next send's read of the timeline: "
        f"carried {statistics.median(carried) * 1000:.2f} ms median "
        f"(max {max(carried) * 1000:.2f}), rebuilt {statistics.median(rebuilt) * 1000:.1f} ms "
        f"median (max {max(rebuilt) * 1000:.1f})"
    )


if __name__ == "__main__":
    main()
