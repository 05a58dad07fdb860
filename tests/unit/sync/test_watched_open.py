"""Opening a storage is not a request the service left unanswered.

A cloud storage opens on its first request: the SDK's import and client (s3fs's import
alone took 1-1.4 s on a loaded 2-core machine) and a credential lookup. Timed as part of
that request, it made ``answer_within`` give up a step — a ``bucket-chat`` command, in a
fresh process, reported "no answer" from a service that answered at once (the
integration test of the CLI with a frozen storage failed before the freeze). The opening
now counts as unanswered only once it took ``OPEN_GRACE`` seconds (a credential lookup
that hangs is still given up), and the request is timed from when it is sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bucket_chat_desktop.storage.base import Level
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import watched as watched_module
from bucket_chat_desktop.sync.watched import NoAnswerError, WatchedStorage, answer_within


class SlowToOpen(LocalStorage):
    """Opening takes ``seconds`` (an SDK's import on a busy machine), or for ever; a
    request opens it first if needed (as ``FsspecStorage`` does), then is answered at
    once."""

    def __init__(self, root: Path, seconds: float) -> None:
        super().__init__(root)
        self.seconds = seconds
        self.opened = False
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        async with self._lock:
            if not self.opened:
                await asyncio.sleep(self.seconds)
                self.opened = True

    async def list_level(self, prefix: str) -> Level:
        await self.open()
        return await super().list_level(prefix)


async def _first_answer(store: WatchedStorage, deadline: float) -> list[str]:
    return await answer_within(store, store.list_dirs("rooms/"), deadline)


def test_a_slow_opening_is_not_taken_for_a_service_that_does_not_answer(tmp_path: Path) -> None:
    (tmp_path / "store" / "rooms" / "r").mkdir(parents=True)
    store = WatchedStorage(SlowToOpen(tmp_path / "store", 1.0))
    assert asyncio.run(_first_answer(store, 0.5)) == ["r"]
    assert store.last_answer is not None and store.oldest_unanswered() is None


def test_an_opening_that_never_ends_is_still_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential lookup that hangs: given up ``OPEN_GRACE`` s after the deadline would
    have given up a request (the grace is shortened here), saying since when it waits."""
    monkeypatch.setattr(watched_module, "OPEN_GRACE", 0.3)
    store = WatchedStorage(SlowToOpen(tmp_path / "store", 3600))
    with pytest.raises(NoAnswerError, match=r"within 0\.2 s \(waiting since \d\d:\d\d:\d\d\)"):
        asyncio.run(_first_answer(store, 0.2))
    assert store.oldest_unanswered() is None  # the given-up opening is no longer counted
