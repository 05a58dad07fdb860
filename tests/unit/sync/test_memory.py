"""Freed heap is handed back to the system after a large room was rebuilt (glibc)."""

from __future__ import annotations

import sys

import pytest

from bucket_chat_desktop.sync import memory


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_pages_freed_by_a_rebuild_go_back_to_the_system() -> None:
    assert memory._malloc_trim() is not None  # the test machines run glibc
    # What a rebuild leaves: many mid-sized blocks (glibc's heap, not pymalloc's arenas)
    # freed but for a few that stay (the kept room), pinning the heap's top.
    blocks = [bytearray(600) for _ in range(200_000)]
    kept = blocks[-1000:]
    del blocks
    before = _rss_kib()
    memory.release_freed_heap(memory.TRIM_AFTER_EVENTS)
    after = _rss_kib()
    assert kept and before - after > 50_000  # over 50 MB of the ~120 MB given back


def test_a_small_room_makes_no_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda: calls.append)
    memory.release_freed_heap(memory.TRIM_AFTER_EVENTS - 1)
    assert calls == []
    memory.release_freed_heap(memory.TRIM_AFTER_EVENTS)
    assert calls == [0]
