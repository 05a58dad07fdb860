"""Handing freed heap back to the operating system after a large room was rebuilt.

Rebuilding a room of a million events (from the index, or by a full read) makes and drops
hundreds of megabytes of short-lived objects: every cached line is parsed, and only a
slim copy of each event is kept. Python frees them, but glibc's allocator keeps the freed
pages of its heap for later use, so the app's resident memory stays near the rebuild's
peak (``benchmarks/gui_bench.py``: about 50 MB of a 1,000,000-event room's). On Linux
with glibc ``malloc_trim(0)`` returns them (2 ms at that size); elsewhere (macOS,
Windows, musl) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

# Rooms smaller than this leave little behind: a trim is not worth a call.
TRIM_AFTER_EVENTS = 50_000


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


def release_freed_heap(events: int) -> None:
    """After a room of ``events`` events was rebuilt: give the allocator's free pages
    back to the system when the room is large enough for that to matter."""
    if events < TRIM_AFTER_EVENTS:
        return
    trim = _malloc_trim()
    if trim is None:
        return
    try:
        trim(0)
    except OSError as exc:  # never fatal: memory stays as it was
        log.debug("malloc_trim failed: %s", exc)
