"""Review rev1, point 2: the witness's queue keeps a chain a send does not see (a
command-line send sees the newest 500 cached rows only) until its newest event is known
named, and stays bounded (``WITNESS_QUEUE_KEPT``): the chains left out longest are kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.publisher import WITNESS_QUEUE_KEPT

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def test_chains_not_seen_keep_their_places_up_to_the_cap(tmp_path: Path) -> None:
    async def go() -> tuple[dict[str, str], dict[str, int]]:
        engine = SyncEngine(LocalStorage(tmp_path / "store"), config=QUIET)
        try:
            # turn n+1 for chain k<n>, in no order of turns; none among the rows seen
            queue = {f"k{n}": n + 1 for n in reversed(range(WITNESS_QUEUE_KEPT + 50))}
            queue["me"] = 1  # this device's own key is never queued
            return engine._publisher._witness("room-1", "me", (), queue, {"k3"})
        finally:
            await engine.close()

    witness, kept = asyncio.run(go())
    assert witness == {}
    assert "k3" not in kept  # named at its newest event: it leaves
    expected = [f"k{n}" for n in range(WITNESS_QUEUE_KEPT + 1) if n != 3]
    assert sorted(kept, key=kept.__getitem__) == expected  # the longest waiting, in order
    assert len(kept) == WITNESS_QUEUE_KEPT
