"""One policy for the cyclic garbage collector while rooms are read (no I/O).

A room's history is read into many small, acyclic, long-lived objects (events, tuples,
strings). CPython's cyclic collector scans every tracked object in a generation each time
it is due; while a big room fills the heap that rescanning took a third of a cold read's
time and stopped every thread, the GUI's too, for 0.1-1.3 s at a time (measured,
docs/design/hot-paths.md and docs/SCHEDULING.md). Two tools, used everywhere through here
so that one caller never undoes another:

``gc_paused()``
    The collector pauses while a read or an audit runs (nested and concurrent uses count;
    the state before the first is restored after the last). What was allocated meanwhile
    is then moved out of the youngest generation without a scan (``gc.freeze``), else the
    next allocation would scan it all at once.
``settle()`` / ``unsettle()``
    A back-fill's results live as long as the room: ``settle`` moves everything into the
    permanent generation and keeps it there (reference counting still frees what is
    dropped); ``unsettle`` (an engine closing) hands everything back to the collector, so
    reference cycles made meanwhile are collected then.

Unsettled, a pause ends with ``freeze`` + ``unfreeze``: what it allocated lands in the
oldest generation, where a cycle among it is collected by the next full collection.
Settled, it ends with ``freeze`` alone: an ``unfreeze`` would undo the settling.

``collect_by_hand()`` / ``collect_due()``
    The desktop app collects on its GUI thread only: CPython runs a collection on
    whichever thread allocates when one is due — the I/O thread parsing a bucket's
    answer, the state thread — and a Qt object in a cycle collected there is destroyed on
    the wrong thread (Qt cannot stop its timers there: a warning, then a crash). By hand,
    the automatic collector is off and the app's timer calls ``collect_due``, which runs
    the generation the collector would have run, on the thread that calls it. Pauses
    still age what they allocated.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_holds = 0
_was_enabled = False
_settled = 0  # how many owners (engines) keep the heap settled
_by_hand = 0  # how many owners collect by hand (``collect_by_hand``)
# CPython's own rule for full collections, kept by hand (``collect_due``): objects in the
# oldest generation after the last full collection, and those moved there since by young
# collections. A full one runs only once the second is a quarter of the first.
_long_lived_total = 0
_long_lived_pending = 0


def _age() -> None:
    """Move what the youngest generations hold out of the collector's frequent scans."""
    gc.freeze()
    if not _settled:
        gc.unfreeze()  # to the oldest generation, not the permanent one


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for the duration (see the module's docstring). A caller
    that disabled the collector itself keeps it disabled, and nothing is moved."""
    global _holds, _was_enabled
    with _lock:
        if _holds == 0:
            _was_enabled = gc.isenabled() or _by_hand > 0
            gc.disable()
        _holds += 1
    try:
        yield
    finally:
        with _lock:
            _holds -= 1
            if _holds == 0 and _was_enabled:
                _age()
                if not _by_hand:
                    gc.enable()


def settle() -> None:
    """Move everything tracked into the permanent generation and keep it there until the
    last ``unsettle``. Call ``begin_settling`` once per owner first."""
    with _lock:
        gc.freeze()


def begin_settling() -> None:
    """An owner (an engine) will settle the heap from now on."""
    global _settled
    with _lock:
        _settled += 1


def unsettle() -> None:
    """An owner is done: when it was the last, everything goes back to the collector."""
    global _settled
    with _lock:
        _settled = max(0, _settled - 1)
        if not _settled:
            gc.unfreeze()


def collect_by_hand() -> None:
    """From now on the cyclic collector runs only in ``collect_due``, on the thread that
    calls it (the app's GUI thread). Undone by ``collect_automatically``."""
    global _by_hand
    with _lock:
        _by_hand += 1
        gc.disable()


def collect_automatically() -> None:
    """An owner of ``collect_by_hand`` is done: when it was the last (and no pause
    holds), CPython collects on its own again."""
    global _by_hand
    with _lock:
        _by_hand = max(0, _by_hand - 1)
        if not _by_hand and not _holds:
            gc.enable()


def collect_due(*, full: bool = True) -> int | None:
    """Run, here, the collection CPython's automatic collector would run now: the
    oldest generation whose count passed its threshold. A full one also needs what
    young collections moved to the oldest generation since the last full one to be a
    quarter of what that one left there (CPython's rule: without it a room's million
    events were scanned again and again, 0.2-0.45 s each on the GUI thread) and
    ``full`` (the caller paces them). None when none is due or a pause holds (a read or
    an audit ages what it allocated when it ends). Returns the generation collected."""
    global _long_lived_total, _long_lived_pending
    with _lock:
        if _holds:
            return None
    counts = gc.get_count()
    thresholds = gc.get_threshold()
    generation: int | None = None
    for gen in (0, 1):
        if thresholds[gen] and counts[gen] > thresholds[gen]:
            generation = gen
    if (
        generation is not None
        and full
        and thresholds[2]
        and counts[2] > thresholds[2]
        and _long_lived_pending >= _long_lived_total // 4
    ):
        generation = 2
    if generation is None:
        return None
    if generation == 2:
        gc.collect(2)
        _long_lived_total = len(gc.get_objects(generation=2))
        _long_lived_pending = 0
    elif generation == 1:
        young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
        found = gc.collect(1)
        _long_lived_pending += max(0, young - found)  # the survivors: now old
    else:
        gc.collect(0)
    return generation
