"""What a read leaves for the cyclic garbage collector.

``RoomLedger.add_segments`` and ``audit`` pause the collector; what they allocated (a
room's events: acyclic and long-lived) must then sit in the oldest generation, not the
youngest: else the next allocation scans it all, and every full collection after it
again as the room grows (a fifth of the reading overhead at 100,000 events).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bucket_chat_desktop.protocol import heap
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.heap import gc_paused

from ._support import ROOM, T0, alice, seg


@pytest.fixture
def collector_on() -> Iterator[None]:
    """The collector on, with only the youngest generation due (older ones never by
    count): where a read leaves its objects is then up to the read alone."""
    was_enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(700, 1_000_000, 1_000_000)
    gc.enable()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not was_enabled:
            gc.disable()


def _room() -> list[tuple[str, bytes]]:
    writer = alice()
    events = [writer.join(T0)] + [writer.say(T0 + i, f"message {i}") for i in range(1, 300)]
    return [seg(events[i : i + 50]) for i in range(0, len(events), 50)]


def _young_ids() -> set[int]:
    return {id(o) for o in gc.get_objects(generation=0)}


def test_the_read_room_is_left_in_the_oldest_generation(collector_on: None) -> None:
    ledger = RoomLedger(ROOM)
    decoded = ledger.add_segments(_room())
    gc.disable()  # look before anything else allocates (and so collects)
    try:
        young = _young_ids()
        oldest = {id(o) for o in gc.get_objects(generation=2)}
    finally:
        gc.enable()
    kept = [located.event.raw for d in decoded for located in d.events]
    assert len(kept) == 300
    assert not any(id(raw) in young for raw in kept)
    assert all(id(raw) in oldest for raw in kept)
    result = ledger.audit()
    gc.disable()
    try:
        young = _young_ids()
    finally:
        gc.enable()
    assert not any(id(a) in young for a in result.timeline)
    assert gc.isenabled()


def test_a_paused_collector_stays_paused_and_nothing_is_moved() -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        ledger = RoomLedger(ROOM)
        ledger.add_segments(_room())
        assert not gc.isenabled()
        young = _young_ids()
        # The events the ledger keeps are still young: the caller's pause, the caller's call.
        assert any(id(a.event.raw) in young for a in ledger.audit().timeline)
    finally:
        if was_enabled:
            gc.enable()


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_a_cycle_made_during_a_pause_is_still_collected(collector_on: None) -> None:
    with gc_paused():
        node = _Node()
        gone = weakref.ref(node)
        del node
    assert gone() is not None  # a cycle: references alone do not free it
    gc.collect()
    assert gone() is None


def test_a_pause_keeps_a_settled_heap_settled(collector_on: None) -> None:
    """An engine settles what a back-fill keeps (``heap.settle``); a read's pause ending
    meanwhile must not hand it all back to the collector (it used to: ``unfreeze``)."""
    heap.begin_settling()
    try:
        # lists, not tuples: a collection run meanwhile (another thread's, by hand) may
        # untrack tuples of atomic values, which a freeze then does not count
        kept = [[i, str(i)] for i in range(1000)]
        heap.settle()
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        with gc_paused():
            with gc_paused():  # nested: counted, the outer one ends the pause
                more = [[i, str(i)] for i in range(500)]
            assert not gc.isenabled()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(more)
    finally:
        heap.unsettle()
    assert gc.get_freeze_count() == 0


def test_concurrent_pauses_restore_the_collector_after_the_last() -> None:
    import threading

    was = gc.isenabled()
    gc.enable()
    try:
        inside = threading.Barrier(2)
        leave = threading.Event()

        def hold() -> None:
            with gc_paused():
                inside.wait()
                leave.wait(5)

        t = threading.Thread(target=hold)
        t.start()
        with gc_paused():
            inside.wait()
        assert not gc.isenabled()  # the other read still runs: still paused
        leave.set()
        t.join()
        assert gc.isenabled()
    finally:
        if not was:
            gc.disable()


# -- collecting by hand (the desktop app: on its GUI thread only) ---------------------------


@pytest.fixture
def by_hand() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    heap.collect_by_hand()
    try:
        yield
    finally:
        heap.collect_automatically()
        if not was_enabled:
            gc.disable()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_by_hand_the_collector_stays_off_through_pauses_and_comes_back_after(
    by_hand: None,
) -> None:
    assert not gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # a pause ending does not switch it back on
    heap.collect_by_hand()  # a second owner
    heap.collect_automatically()
    assert not gc.isenabled()  # the first one still collects by hand
    heap.collect_automatically()
    assert gc.isenabled()
    heap.collect_by_hand()  # for the fixture's own undo


def test_by_hand_a_pause_still_ages_what_it_allocated(by_hand: None) -> None:
    gc.collect()
    with gc_paused():
        made = [[i] for i in range(2_000)]
    young = {id(o) for o in gc.get_objects(generation=0)}
    assert not any(id(o) in young for o in made)


def test_collect_due_runs_what_is_due_and_nothing_while_a_pause_holds(by_hand: None) -> None:
    gc.collect()
    assert heap.collect_due() is None  # nothing allocated since
    padding = [[i] for i in range(gc.get_threshold()[0] + 10)]
    with gc_paused():
        assert heap.collect_due() is None  # a read runs: it ages its own objects
    ref = weakref.ref(_Cycle())
    padding += [[i] for i in range(gc.get_threshold()[0] + 10)]
    assert ref() is not None  # off: nobody collected it on allocation
    assert heap.collect_due() is not None
    assert ref() is None  # collected here, by the call
    del padding


def test_a_full_collection_waits_for_its_caller_and_for_a_quarter_more_old_objects(
    by_hand: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython's rule, kept by hand: a full collection only once what young collections
    moved to the oldest generation is a quarter of what the last full one left there.
    Without it the collector rescanned a room's million events every 10 s on the GUI
    thread (0.2-0.45 s each, gui_bench)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(10, 1, 1)
    kept: list[list[int]] = []
    try:
        gc.collect()
        monkeypatch.setattr(heap, "_long_lived_total", 4_000)  # as a full one left it
        monkeypatch.setattr(heap, "_long_lived_pending", 0)
        runs: list[int | None] = []
        while heap._long_lived_pending < 1_000:  # survivors of young collections
            kept += [[i] for i in range(50)]
            runs.append(heap.collect_due(full=True))
        assert 1 in runs and 2 not in runs
        kept += [[i] for i in range(50)]
        assert heap.collect_due(full=False) in (0, 1)  # the caller's pace comes first
        kept += [[i] for i in range(50)]
        assert heap.collect_due(full=True) == 2
        assert heap._long_lived_pending == 0
        assert heap._long_lived_total == len(gc.get_objects(generation=2))
    finally:
        gc.set_threshold(*thresholds)
