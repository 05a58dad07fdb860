"""The relation rules on a big room: build time, the append check, memory.

Run:  .venv/bin/python benchmarks/relations_bench.py [--events 100000] [--reactions 10000]
          [--edits 1000] [--replies 2000]
(from a git worktree: ``PYTHONPATH=. `` first, or the venv's installed checkout is measured)

Builds a room of N signed events by 20 senders (plain messages, then reactions, edits and
replies spread over the messages), audits it on a ledger that keeps no bodies (the app's),
and measures on that audit's timeline, in this process's CPU time:

1. ``relations.build`` from scratch (what the engine's state thread does after a full audit
   or an append that holds a relation): median of 5;
2. the check an append of plain messages costs instead (``RoomState.relations`` keeps the
   old relations): median of 5, for 10 appended rows; and an append of one relation
   (``relations.extended``: the new rows read, a target named anew looked for from the
   newest row back), beside a full build of the longer timeline; and the arrival of a
   row that a relation appended before it waited for (a member names an id in one
   segment and writes it in the next: only what waited is decided again);
3. the memory the relations hold (tracemalloc, the built object only), and the memory the
   slim ledger keeps for the relation events' contents (versus a room of plain messages).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
import tracemalloc
import uuid
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import RoomLedger, Timeline, prepare_segment
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import make_event_id
from bucket_chat_desktop.protocol.relations import (
    EDIT,
    REACTION,
    REDACTION,
    Relations,
    build,
    extended,
)
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync.room_state import RoomState

ROOM = "bench-room"
EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "🙏", "🚀", "👀"]


class Signers:
    """``count`` people signing events into one room, each on their own chain, the clock
    stepping ``step`` ms an event; ``segments`` cuts each chain into 200-event segments."""

    def __init__(self, count: int, step: int) -> None:
        self.people = [
            (f"user{i}@example.com", SigningKey(bytes([i + 1]) * 32)) for i in range(count)
        ]
        self.prev: dict[str, str | None] = {s: None for s, _ in self.people}
        self.chains: dict[str, list[Event]] = {s: [] for s, _ in self.people}
        self.t = 1_757_851_245_000
        self.step = step

    def emit(
        self,
        who: int,
        kind: str,
        content: dict[str, Any],
        parent: str | None = None,
        at: tuple[int, str] | None = None,
    ) -> Event:
        """Person ``who`` (modulo the count) signs the next event of their chain; ``at``:
        its time and unique part, chosen beforehand (``reserve``), else the next step's."""
        sender, key = self.people[who % len(self.people)]
        self.t = at[0] if at is not None else self.t + self.step
        ev = build_event(
            room_id=ROOM,
            sender_id=sender,
            event_type=kind,
            content=content,
            timestamp_ms=self.t,
            unique=at[1] if at is not None else str(uuid.uuid4()),
            prev_event_hash=self.prev[sender],
            signing_key=key,
            parent_event_id=parent,
        )
        self.prev[sender] = ev.hash
        self.chains[sender].append(ev)
        return ev

    def reserve(self, ahead: int) -> tuple[tuple[int, str], str]:
        """A time ``ahead`` steps on and a unique part, with the event id an event signed
        there (``emit(..., at=...)``) will have: a relation can name it before it exists."""
        at = (self.t + ahead * self.step, str(uuid.uuid4()))
        return at, make_event_id(ROOM, *at)

    def segments(self) -> list[tuple[str, bytes]]:
        segments = []
        for sender, events in self.chains.items():
            client = sender.split("@")[0]
            for k in range(0, len(events), 200):
                chunk = events[k : k + 200]
                segments.append((path_for(chunk, client), encode_segment(chunk)))
        return segments


def room_arguments(ap: argparse.ArgumentParser, replies: int = 2_000) -> None:
    """The room's size, as every relations benchmark takes it."""
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--reactions", type=int, default=10_000)
    ap.add_argument("--edits", type=int, default=1_000)
    ap.add_argument("--replies", type=int, default=replies)


def make_room(n: int, reactions: int, edits: int, replies: int) -> list[tuple[str, bytes]]:
    return make_signers(n, reactions, edits, replies).segments()


def make_signers(n: int, reactions: int, edits: int, replies: int) -> Signers:
    """The room's people with every event of it signed (``Signers.segments`` cuts them)."""
    signers = Signers(20, step=1)
    senders = signers.people
    emit = signers.emit
    plain = n - reactions - edits - replies - len(senders)
    messages: list[Event] = []

    for i in range(len(senders)):
        emit(i, MEMBER, {"membership": "join"})
    for i in range(plain):
        messages.append(emit(i, MESSAGE, {"body": f"message {i} " * 4, "msgtype": "m.text"}))
    for i in range(reactions):
        target = messages[(i * 7919) % len(messages)]
        emit(i, REACTION, {"relates_to": target.event_id, "reaction": EMOJI[i % len(EMOJI)]})
    for i in range(edits):
        j = (i * 104729) % len(messages) // len(senders) * len(senders)  # own messages
        target = (
            messages[j + i % len(senders)] if j + i % len(senders) < len(messages) else messages[0]
        )
        content = {
            "replaces": target.event_id,
            "new_content": {"body": "edited", "msgtype": "m.text"},
        }
        emit(messages.index(target) % len(senders), EDIT, content)
    for i in range(replies):
        parent = messages[(i * 15485863) % len(messages)]
        emit(i, MESSAGE, {"body": f"reply {i}", "msgtype": "m.text"}, parent=parent.event_id)
    return signers


def appended(
    ledger: RoomLedger, made: Relations, ev: Event, client: str, label: str
) -> tuple[Relations, Timeline]:
    """``ev`` appended to the ledger (its own segment) and the relations ``made`` of the
    timeline before extended by it: timed (median of 5, process time) beside a full
    build of the longer timeline, checked equal to it, and printed."""
    added = ledger.add_prepared(prepare_segment(path_for([ev], client), encode_segment([ev]), ROOM))
    assert ledger.try_append(added) is not None and ledger.result is not None
    longer = ledger.result.timeline
    took = []
    for _ in range(5):
        c = time.process_time()
        grown = extended(made, longer)
        took.append(time.process_time() - c)
    c = time.process_time()
    full = build(ROOM, longer)
    full_took = time.process_time() - c
    assert grown == full and grown.findings == full.findings
    print(
        f"append of {label}: extended in {statistics.median(took) * 1000:.2f} ms "
        f"(a full build: {full_took * 1000:.0f} ms)"
    )
    return grown, longer


def ledger_of(segments: list[tuple[str, bytes]]) -> RoomLedger:
    ledger = RoomLedger(ROOM, keep_bodies=False)
    ledger.add_segments(segments)
    return ledger


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    room_arguments(ap)
    args = ap.parse_args()
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {impl}")
    t0 = time.perf_counter()
    signers = make_signers(args.events, args.reactions, args.edits, args.replies)
    segments = signers.segments()
    print(
        f"room: {args.events:,} events ({args.reactions:,} reactions, {args.edits:,} edits, "
        f"{args.replies:,} replies), signed in {time.perf_counter() - t0:.1f} s"
    )
    ledger = ledger_of(segments)
    result = ledger.audit()
    timeline = result.timeline
    print(f"audited: {len(timeline):,} shown rows")

    times = []
    rel = None
    for _ in range(5):
        gc.collect()
        c = time.process_time()
        rel = build(ROOM, timeline)
        times.append(time.process_time() - c)
    assert rel is not None
    edited = sum(1 for a in rel.aggregates.values() if a.edits)
    chips = sum(len(a.reactions) for a in rel.aggregates.values())
    print(
        f"relations: {len(rel.aggregates):,} targets, {chips:,} chips, {edited:,} edited, "
        f"{len(rel.hidden):,} hidden rows, {len(rel.findings)} findings, {rel.waiting} waiting"
    )
    print(
        f"build from scratch: median {statistics.median(times) * 1000:.1f} ms "
        f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})"
    )

    # Ten plain rows appended (what a live room mostly gets): ``extended`` reads only them
    # and gives the old relations back, instead of a rebuild.
    plain = next(
        i
        for i in range(len(timeline) - 10, 0, -1)
        if all(
            timeline[j].event.type == MESSAGE and timeline[j].event.parent_event_id is None
            for j in range(i, i + 10)
        )
    )
    before, grown = build(ROOM, timeline[:plain]), timeline[: plain + 10]
    assert extended(before, grown) is before
    checks = []
    for _ in range(5):
        c = time.perf_counter()
        for _ in range(100):
            extended(before, grown)
        checks.append((time.perf_counter() - c) / 100)
    print(
        f"append of 10 plain rows, extended instead of a rebuild: median "
        f"{statistics.median(checks) * 1e6:.0f} µs"
    )
    room = RoomState(ROOM, ledger)
    room.result = result
    assert room.relations() is room.relations()

    # A relation appended (what a live room does): the old relations extended by the new
    # row, instead of built again from the whole room.
    rows = list(timeline)
    newest = next(
        a for a in reversed(rows) if a.event.type == MESSAGE and not a.event.parent_event_id
    )
    oldest = next(a for a in rows if a.event.type == MESSAGE)
    del rows
    made = build(ROOM, timeline)
    signers.t += 10_000
    # Rows that something waits for, written after what names them (a member can do it
    # once per pair of segments): times and ids chosen now, each signed when appended.
    message_at, message_id = signers.reserve(20)
    parent_at, parent_id = signers.reserve(40)
    steps: list[tuple[str, int, str, dict[str, Any], str | None, tuple[int, str] | None]] = [
        (
            "a reaction to the newest message",
            0,
            REACTION,
            {"relates_to": newest.event.event_id, "reaction": "👍"},
            None,
            None,
        ),
        (
            "a reaction to the room's first message",
            0,
            REACTION,
            {"relates_to": oldest.event.event_id, "reaction": "👍"},
            None,
            None,
        ),
        (
            "a reply to the newest message",
            0,
            MESSAGE,
            {"body": "late reply", "msgtype": "m.text"},
            newest.event.event_id,
            None,
        ),
        (
            "an edit of the newest message",
            0,
            EDIT,
            {
                "replaces": newest.event.event_id,
                "new_content": {"body": "late edit", "msgtype": "m.text"},
            },
            None,
            None,
        ),
        (
            "a reaction to a message not read (waits)",
            0,
            REACTION,
            {"relates_to": message_id, "reaction": "👍"},
            None,
            None,
        ),
        (
            "the message it waited for (arrives)",
            1,
            MESSAGE,
            {"body": "written late", "msgtype": "m.text"},
            None,
            message_at,
        ),
        (
            "a reply to a message not read (waits)",
            0,
            MESSAGE,
            {"body": "early reply", "msgtype": "m.text"},
            parent_id,
            None,
        ),
        (
            "the message it waited for (arrives)",
            2,
            MESSAGE,
            {"body": "written late", "msgtype": "m.text"},
            None,
            parent_at,
        ),
    ]
    for label, who, kind, content, parent, at in steps:
        ev = signers.emit(who, kind, content, parent=parent, at=at)
        made, _ = appended(ledger, made, ev, f"user{who}", label)
    timeline = ledger.result.timeline

    # A planted copy (PROTOCOL.md 18.1): user1 signs a deletion under the id of user0's
    # deletion of their own message. Such copies are judged one by one by a full decision;
    # relations appended after it that do not touch what they bear on are decided alone.
    own = next(a.event for a in reversed(timeline) if a.event.sender_id == "user0@example.com")
    other = next(a.event for a in reversed(timeline) if a.event.sender_id == "user1@example.com")
    at, _ = signers.reserve(1)
    planted = [
        signers.emit(0, REDACTION, {"redacts": own.event_id}, at=at),
        signers.emit(1, REDACTION, {"redacts": other.event_id}, at=at),
    ]
    for who, ev in enumerate(planted):
        ledger.add_prepared(
            prepare_segment(path_for([ev], f"user{who}"), encode_segment([ev]), ROOM)
        )
    timeline = ledger.audit().timeline
    assert planted[0].event_id in timeline.repeated
    made = build(ROOM, timeline)
    for label, who, content in [
        ("a reaction", 2, {"relates_to": newest.event.event_id, "reaction": "🎉"}),
        ("an edit", 3, None),
    ]:
        kind = REACTION
        if content is None:  # an edit of the sender's own newest message
            mine = next(
                a
                for a in reversed(timeline)
                if a.event.sender_id == f"user{who}@example.com" and a.event.type == MESSAGE
            )
            kind, content = (
                EDIT,
                {
                    "replaces": mine.event.event_id,
                    "new_content": {"body": "fixed", "msgtype": "m.text"},
                },
            )
        ev = signers.emit(who, kind, content)
        made, timeline = appended(
            ledger, made, ev, f"user{who}", f"{label} after a planted copy of a deletion"
        )

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build(ROOM, timeline)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"memory held by the relations: {(after - before) / 1e6:.1f} MB "
        f"({(after - before) / max(1, len(kept.aggregates)):.0f} B per target)"
    )

    del ledger, result, timeline, room, rel, kept
    gc.collect()
    tracemalloc.start()
    b0 = tracemalloc.get_traced_memory()[0]
    led = ledger_of(segments)
    with_rel = tracemalloc.get_traced_memory()[0] - b0
    led.audit()
    del led
    gc.collect()
    plain = make_room(args.events, 0, 0, 0)
    b1 = tracemalloc.get_traced_memory()[0]
    led2 = ledger_of(plain)
    without = tracemalloc.get_traced_memory()[0] - b1
    del led2
    tracemalloc.stop()
    print(
        f"slim ledger: {with_rel / 1e6:.0f} MB with relations vs {without / 1e6:.0f} MB for "
        f"plain messages ({(with_rel - without) / 1e6:+.1f} MB: relation contents kept)"
    )


if __name__ == "__main__":
    main()
