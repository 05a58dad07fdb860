"""The timeline of a room with relations: first paint, scrolling, memory.

Run:  .venv/bin/python benchmarks/relations_gui_bench.py [--events 100000]
          [--reactions 10000] [--edits 1000] [--replies 1000]

Builds a room of N signed events by 10 people in which reactions, edits and replies are
interleaved with the messages (each reaction on one of the 300 messages before it, each
edit of its sender's own recent message), audits it on a ledger (bodies kept, so pages
come straight from the audit), and then, offscreen, with the app's real model, delegate
and view (``TimelineView`` + ``MessageDelegate``):

1. ``relations.build`` (the engine's state thread does this, never the GUI thread);
2. first paint: ``set_audit`` with the newest rows and the relations (the controller's
   call on a ``RoomLoaded``), laying out and painting the view at the bottom; median of
   5, with and without relations (without: every relation event is a row of its own);
3. scrolling: after paging in 5 pages (1,000 rows) by scrolling up, the view is scrolled
   from top to bottom in 120-pixel steps; each step's repaint timed (p50, p95, max);
4. memory: the process's resident size before and after the relations are built (what
   the aggregates cost), and tracemalloc's count of what the Relations object holds;
5. room state (members, devices, display names): the fold on the engine's state thread
   (a full audit's, and an append's), and the GUI thread's time to show the room with
   the members panel open, now (the models take the ``Roster``) and as it was (the
   members model folded the whole timeline, ``RoomState.of``, and the timeline model
   folded display names over every row, ``DisplayNames.update``); median of 5.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
import tracemalloc
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication
from relations_bench import EMOJI, ROOM, Signers, room_arguments  # type: ignore[import-not-found]

from bucket_chat_desktop.gui import theme
from bucket_chat_desktop.gui.main_window import TimelineView
from bucket_chat_desktop.gui.models.members_model import MembersModel
from bucket_chat_desktop.gui.models.timeline_model import PAGE, TimelineModel
from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, Relations, build
from bucket_chat_desktop.protocol.room_state import (
    DisplayNames,
    Names,
    RoomState,
    conflicted_senders,
)
from bucket_chat_desktop.sync.events import ShownEvent

PEOPLE = 10


def make_room(n: int, reactions: int, edits: int, replies: int) -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    signers = Signers(PEOPLE, step=20_000)
    senders, emit = signers.people, signers.emit
    messages: list[Event] = []
    kinds = ["reaction"] * reactions + ["edit"] * edits + ["reply"] * replies
    kinds += ["message"] * (n - PEOPLE - len(kinds))
    rng.shuffle(kinds)
    kinds[:50] = ["message"] * 50  # something to react to first

    for i in range(PEOPLE):
        emit(i, MEMBER, {"membership": "join", "displayname": f"Person {i}"})
    for i, kind in enumerate(kinds):
        who = rng.randrange(PEOPLE)
        recent = messages[-300:]
        if kind == "reaction":
            target = rng.choice(recent)
            emit(who, REACTION, {"relates_to": target.event_id, "reaction": rng.choice(EMOJI)})
        elif kind == "edit":
            target = rng.choice(recent)
            own = senders.index(next(s for s in senders if s[0] == target.sender_id))
            body = {"body": f"edited {i}: " + "words " * rng.randrange(3, 30), "msgtype": "m.text"}
            emit(own, EDIT, {"replaces": target.event_id, "new_content": body})
        else:
            body = {"body": f"message {i} " + "words " * rng.randrange(2, 40), "msgtype": "m.text"}
            parent = rng.choice(recent).event_id if kind == "reply" else None
            messages.append(emit(who, MESSAGE, body, parent))
    return signers.segments()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def first_paint(
    app: QApplication, timeline: Any, rel: Relations | None, names: Names | None = None
) -> tuple[float, Any]:
    total = len(timeline)

    def pager(start: int, stop: int, reply: Any) -> None:
        reply([ShownEvent(a, a.event) for a in timeline[max(0, start) : max(0, stop)]])

    view = TimelineView()
    view.setItemDelegate(MessageDelegate(view))
    view.resize(800, 700)
    model = TimelineModel()
    model.own_user = "user0@example.com"
    view.setModel(model)
    view.show()
    app.processEvents()
    newest = tuple(ShownEvent(a, a.event) for a in timeline[total - PAGE : total])
    gc.collect()
    t0 = time.perf_counter()
    model.set_audit(total, newest, True, names, pager, rel)
    view.executeDelayedItemsLayout()
    view.scrollToBottom()
    view.viewport().repaint()
    took = time.perf_counter() - t0
    return took, view


def room_state(app: QApplication, result: Any, rel: Relations) -> None:
    """Section 5 of the module's docstring."""
    timeline = result.timeline
    c = time.process_time()
    fold = RoomState.of(result)
    roster = fold.roster()
    full = time.process_time() - c
    c = time.process_time()
    last = timeline[-1]
    for i in range(100):  # one message each, by a member (new event ids)
        fold.add([last._replace(event=last.event._replace(event_id=f"appended-{i}"))])
        fold.roster()
    append = (time.process_time() - c) / 100
    print(
        f"room state (engine thread): full fold {full * 1000:.0f} ms; an append of one "
        f"message {append * 1000:.2f} ms; {len(roster.everyone)} members"
    )

    def show(old: bool) -> tuple[float, float]:
        members = MembersModel("user0@example.com")
        gc.collect()
        t0 = time.perf_counter()
        got = roster
        if old:  # the members model's fold, as it was: row by row (no Timeline pass)
            folded_members = RoomState()
            folded_members.add(iter(timeline))
            folded_members.disputed = conflicted_senders(result)
            got = folded_members.roster()
        members.set_state(got)
        names = got.names
        if old:  # the timeline model's own fold over every row
            folded = DisplayNames()
            folded.update(timeline)
            names = folded.frozen()
        took = time.perf_counter() - t0
        paint, view = first_paint(app, timeline, rel, names)
        view.close()
        view.deleteLater()
        app.processEvents()
        assert members.rowCount() == PEOPLE
        return took + paint, took

    for label, old in (("now (takes the Roster)", False), ("before (folded here)", True)):
        runs = [show(old) for _ in range(5)]
        times = [t for t, _ in runs]
        print(
            f"showing the room with its members (GUI thread) {label}: median "
            f"{statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, "
            f"max {max(times) * 1000:.0f}), of which the members and names "
            f"{statistics.median(m for _, m in runs) * 1000:.1f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    room_arguments(ap, replies=1_000)
    args = ap.parse_args()
    app = QApplication([])
    theme.apply(app, "light")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    t0 = time.perf_counter()
    segments = make_room(args.events, args.reactions, args.edits, args.replies)
    print(
        f"room: {args.events:,} events ({args.reactions:,} reactions, {args.edits:,} edits, "
        f"{args.replies:,} replies, interleaved), signed in {time.perf_counter() - t0:.1f} s"
    )
    ledger = RoomLedger(ROOM)
    ledger.add_segments(segments)
    del segments
    result = ledger.audit()
    timeline = result.timeline
    print(f"audited: {len(timeline):,} rows")

    gc.collect()
    before = rss_mb()
    c = time.process_time()
    rel = build(ROOM, timeline)
    built = time.process_time() - c
    gc.collect()
    after = rss_mb()
    chips = sum(len(a.reactions) for a in rel.aggregates.values())
    edited = sum(1 for a in rel.aggregates.values() if a.edits)
    print(
        f"relations (engine thread): {built * 1000:.0f} ms; {len(rel.aggregates):,} targets, "
        f"{chips:,} chips, {edited:,} edited, {len(rel.hidden):,} hidden rows, "
        f"{len(rel.findings)} findings"
    )
    tracemalloc.start()
    t_before = tracemalloc.get_traced_memory()[0]
    again = build(ROOM, timeline)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - t_before
    tracemalloc.stop()
    del again
    print(
        f"memory: resident {before:.0f} MB without relations, {after:.0f} MB with "
        f"({after - before:+.1f} MB: the allocator reuses what the audit freed); the "
        f"Relations object holds {held / 1e6:.1f} MB (tracemalloc: the aggregates' cost)"
    )

    room_state(app, result, rel)

    for label, relations in (("with relations", rel), ("without (relation events as rows)", None)):
        times = []
        for _ in range(5):
            took, view = first_paint(app, timeline, relations)
            times.append(took)
            view.close()
            view.deleteLater()
            app.processEvents()
        print(
            f"first paint {label}: median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; target 300 ms)"
        )

    took, view = first_paint(app, timeline, rel)
    model = view.model()
    bar = view.verticalScrollBar()
    while model.rowCount() < 5 * PAGE:
        before_rows = model.rowCount()
        bar.setValue(bar.minimum())
        app.processEvents()
        if model.rowCount() == before_rows:
            model.fetch_older()
    view.executeDelayedItemsLayout()
    frames = []
    bar.setValue(bar.minimum())
    app.processEvents()
    value = bar.minimum()
    while value < bar.maximum():
        value = min(bar.maximum(), value + 120)
        t = time.perf_counter()
        bar.setValue(value)
        view.viewport().repaint()
        frames.append(time.perf_counter() - t)
    frames.sort()
    p95 = frames[int(len(frames) * 0.95) - 1]
    print(
        f"scrolling {model.rowCount():,} rows top to bottom, {len(frames)} frames: "
        f"p50 {statistics.median(frames) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {frames[-1] * 1000:.1f} ms (target p95 50 ms)"
    )
    shown = sum(1 for i in range(model.rowCount()) if model.index(i).data() is not None)
    assert shown == model.rowCount()


if __name__ == "__main__":
    main()
