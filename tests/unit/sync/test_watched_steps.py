"""Steps side by side (``answer_within``): one step's request that gets no answer is that
step's, not its neighbours'.

The join dialog reads each room's name as a step of its own (red team rt95), eight at
a time. A request of another step counted for a step from its own start, as if it were
the step's: one room's stalled read gave up every room still being read beside it,
though their own requests were answered all along.

The storage answers the busy step's requests at once, one after another, for as long as
the test lets it (until the stalled step has been given up): what is checked is which
step was given up and that every answer asked for arrived, never how long a pause was.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from held_storage import Held

from bucket_chat_desktop.sync.watched import NoAnswerError, WatchedStorage, answer_within

DEADLINE = 2.0  # a local listing answers in far less, even on a loaded machine


def _stalled_get(tmp_path: Path) -> Held:
    """The folder, where a read of "stalled" gets no answer; every listing answers."""
    return Held(tmp_path, lambda what, path: what == "get" and path == "stalled")


def _listed(inner: Held, prefix: str) -> int:
    return sum(1 for what, path in inner.asked if what == "list_dirs" and path.startswith(prefix))


async def _answered_until(store: WatchedStorage, over: asyncio.Event) -> int:
    """Listings one after another, each answered at once, until ``over``: a step that
    keeps getting answers. How many it got."""
    answers = 0
    while not over.is_set():
        await store.list_dirs(f"busy/{answers}/")
        answers += 1
    return answers


def test_a_stalled_request_of_one_step_does_not_give_up_the_step_beside_it(
    tmp_path: Path,
) -> None:
    """The stalled step waits twice as long as the busy one, so its read is in flight
    past the busy step's deadline: the busy step, answered all along, is not given up."""
    inner = _stalled_get(tmp_path)
    store = WatchedStorage(inner)

    async def go() -> int:
        over = asyncio.Event()
        busy = asyncio.create_task(answer_within(store, _answered_until(store, over), DEADLINE))
        while not inner.asked:  # the busy step first: the stalled request is sent after
            await asyncio.sleep(0)
        with pytest.raises(NoAnswerError):
            await answer_within(store, store.get("stalled"), 2 * DEADLINE)
        over.set()
        return await busy

    answers = asyncio.run(go())
    assert answers >= 1 and answers == _listed(inner, "busy/")
    assert inner.held == 1


def test_a_step_whose_own_request_stalls_is_given_up_while_others_are_answered(
    tmp_path: Path,
) -> None:
    """The rule for a step's own requests is as it was: given up after the deadline,
    whatever answers other steps get meanwhile."""
    inner = _stalled_get(tmp_path)
    store = WatchedStorage(inner)

    async def mine() -> None:
        await store.list_dirs("mine/")
        await store.get("stalled")

    async def go() -> int:
        over = asyncio.Event()
        # the others' own deadline is not what is tested: long, so a loaded machine's
        # slow local listing gives none of them up
        others = asyncio.create_task(
            answer_within(store, _answered_until(store, over), 10 * DEADLINE)
        )
        with pytest.raises(NoAnswerError):
            await answer_within(store, mine(), DEADLINE)
        over.set()
        return await others

    answers = asyncio.run(go())
    assert answers >= 1 and answers == _listed(inner, "busy/")
    assert _listed(inner, "mine/") == 1 and inner.held == 1
