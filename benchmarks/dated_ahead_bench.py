"""What one message planted far in the future costs every later message.

Run:  .venv/bin/python benchmarks/dated_ahead_bench.py [--events 100000] [--appends 10]
(from a git worktree: ``PYTHONPATH=. `` first, or the venv's installed checkout is measured)

Builds a room of N signed events by 20 senders on a ledger that keeps no bodies (the
app's), adds one message dated 100 years ahead, then appends ``--appends`` ordinary
messages one segment at a time, as the engine does (``try_place``, else a full audit),
and prints the median CPU time per arriving message:

- read by a clock (the app: the planted row is held back, PROTOCOL.md section 9): each
  message is an append;
- read without a clock (as before the hold: the planted row sorts last and every message
  sorts before it): each message was a full re-audit; now placed before it (``try_place``)
  while it is one of the last ``INSERT_TAIL`` rows;
- a message dated 59 minutes ahead instead, read by a clock: shown (within the hour), it
  sorts last until its date, and every message that arrives meanwhile sorts before it.
  Each was a full re-audit (233 ms at 100,000 events); ``try_place`` now puts it where a
  full audit would, before the planted row (0.7 ms; PROTOCOL.md section 9).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid

from relations_bench import ROOM, ledger_of, make_signers

from bucket_chat_desktop.protocol.audit import RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.segment import encode_segment, path_for

YEAR_MS = 365 * 24 * 3600 * 1000


def arrivals(
    ledger: RoomLedger, late: list[tuple[str, bytes]], now_ms: int | None
) -> tuple[list[float], int]:
    """CPU seconds per arriving message, and how many of them took a full audit."""
    took, full = [], 0
    for segment in late:
        c = time.process_time()
        added = ledger.add_prepared(prepare_segment(*segment, ROOM))
        if ledger.try_place(added, now_ms) is None:
            ledger.audit(now_ms=now_ms)
            full += 1
        took.append(time.process_time() - c)
    return took, full


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--appends", type=int, default=10)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    signers = make_signers(args.events, 0, 0, 0)
    segments = signers.segments()
    now = signers.t
    planted_segments = {}
    for ahead in (100 * YEAR_MS, 59 * 60_000):
        at = (now + ahead, str(uuid.uuid4()))
        planted = signers.emit(0, MESSAGE, {"body": "last forever", "msgtype": "m.text"}, at=at)
        signers.t = now
        planted_segments[ahead] = (
            path_for([planted], f"planter{ahead}"),
            encode_segment([planted]),
        )
    late = []  # the same arriving messages for both readers
    for i in range(args.appends):
        ev = signers.emit(i + 1, MESSAGE, {"body": f"after {i}", "msgtype": "m.text"})
        late.append((path_for([ev], f"late{i}"), encode_segment([ev])))
    cases = (
        ("1 dated 100 years ahead, read by a clock (held back)", 100 * YEAR_MS, now),
        ("1 dated 100 years ahead, read without a clock (as before)", 100 * YEAR_MS, None),
        ("1 dated 59 minutes ahead, read by a clock (shown)", 59 * 60_000, now),
    )
    for label, ahead, clock in cases:
        ledger = ledger_of(segments)
        ledger.audit(now_ms=clock)
        ledger.add_prepared(prepare_segment(*planted_segments[ahead], ROOM))
        ledger.audit(now_ms=clock)
        took, full = arrivals(ledger, late, clock)
        assert ledger.result is not None
        print(
            f"{args.events:,} events + {label}: "
            f"{statistics.median(took) * 1000:.1f} ms median per arriving message "
            f"(max {max(took) * 1000:.1f} ms; {full} of {args.appends} full audits; "
            f"{len(ledger.result.timeline):,} rows shown)"
        )


if __name__ == "__main__":
    main()
