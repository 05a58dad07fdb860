"""Steps side by side (``answer_within``): one step's request that gets no answer is that
step's, not its neighbours'.

The join dialog reads each room's name as a step of its own (red team rt95), eight at
a time. A request of another step counted for a step from its own start, as if it were
the step's: one room's stalled read gave up every room still being read beside it,
though their own requests were answered all along.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from held_storage import Held

from bucket_chat_desktop.storage.base import Level
from bucket_chat_desktop.sync.watched import NoAnswerError, WatchedStorage, answer_within

DEADLINE = 0.3


class Slow(Held):
    """Listings answered after ``pause`` seconds each: a slow storage that answers."""

    pause = DEADLINE / 2

    async def list_level(self, prefix: str) -> Level:
        level = await super().list_level(prefix)
        if prefix.startswith("slow/"):
            await asyncio.sleep(self.pause)
        return level


def test_a_stalled_request_of_one_step_does_not_give_up_the_step_beside_it(
    tmp_path: Path,
) -> None:
    inner = Slow(tmp_path, lambda what, path: what == "get" and path == "stalled")
    store = WatchedStorage(inner)

    async def answered_often() -> int:
        answers = 0
        for n in range(6):  # six answers in a row, twice the deadline in all
            await store.list_dirs(f"slow/{n}/")
            answers += 1
        return answers

    async def go() -> tuple[int, BaseException | None]:
        slow = asyncio.create_task(answer_within(store, answered_often(), DEADLINE))
        await asyncio.sleep(0)  # the slow step first: the stalled request is sent after
        stalled = asyncio.create_task(answer_within(store, store.get("stalled"), DEADLINE))
        done = await slow
        with pytest.raises(NoAnswerError) as caught:
            await stalled
        return done, caught.value

    answers, error = asyncio.run(go())
    assert answers == 6
    assert isinstance(error, NoAnswerError)
    assert inner.held == 1


def test_a_step_whose_own_request_stalls_is_given_up_while_others_are_answered(
    tmp_path: Path,
) -> None:
    """The rule for a step's own requests is as it was: given up after the deadline,
    whatever answers other steps get meanwhile."""
    inner = Slow(tmp_path, lambda what, path: what == "get" and path == "stalled")
    store = WatchedStorage(inner)

    async def answered_often() -> int:
        for n in range(6):
            await store.list_dirs(f"slow/{n}/")
        return 6

    async def mine() -> None:
        await store.list_dirs("slow/mine/")
        await store.get("stalled")

    async def go() -> int:
        others = asyncio.create_task(answer_within(store, answered_often(), DEADLINE))
        with pytest.raises(NoAnswerError):
            await answer_within(store, mine(), DEADLINE)
        return await others

    assert asyncio.run(go()) == 6
    assert inner.held == 1
