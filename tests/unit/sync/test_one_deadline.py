"""The rooms of one listing share one interactive deadline (``watched.OneDeadline``).

Each room's reads are a step of their own (red team rt95), eight rooms at a time. Each
waited its own deadline: a storage that answered the listing and then stopped answering
kept ``bucket-chat rooms`` waiting ≈ (rooms ÷ 8) × 1.2 s — 1,000 rooms ≈ 150 s (review
rev1). Once a step got no answer and no step has been answered since, the rest are given
up unasked; a step already running is never given up for another's silence.

The steps here are answered by the test (a result, a refusal, or "no answer"), so what
is checked is which steps were begun and in what order, never how long anything took.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bucket_chat_desktop.storage.base import StorageNotFoundError, StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.watched import NoAnswerError, OneDeadline, WatchedStorage

SILENT = "no answer from the store within 1.2 s (waiting since 10:00:00)"


class Steps:
    """Steps that wait for the test's word; ``log`` says what began and what was said."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self._words: dict[str, asyncio.Future[object]] = {}

    def _word(self, name: str) -> asyncio.Future[object]:
        return self._words.setdefault(name, asyncio.get_running_loop().create_future())

    async def step(self, name: str) -> object:
        self.log.append(f"began {name}")
        outcome = await self._word(name)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def begun(self, name: str) -> None:
        while f"began {name}" not in self.log:
            await asyncio.sleep(0)

    def say(self, name: str, outcome: object) -> None:
        self.log.append(f"said {name}")
        self._word(name).set_result(outcome)


def _silent() -> NoAnswerError:
    return NoAnswerError(SILENT, since=1_000.0)


def _deadline(tmp_path: Path) -> OneDeadline:
    return OneDeadline(WatchedStorage(LocalStorage(tmp_path)), what="the store")


def test_after_a_step_got_no_answer_the_next_is_given_up_unasked(tmp_path: Path) -> None:
    async def go() -> None:
        steps, shared = Steps(), _deadline(tmp_path)
        first = asyncio.create_task(shared(steps.step("a")))
        await steps.begun("a")
        steps.say("a", _silent())
        with pytest.raises(NoAnswerError):
            await first
        for name in ("b", "c"):
            with pytest.raises(NoAnswerError) as caught:
                await shared(steps.step(name))
            assert str(caught.value) == SILENT and caught.value.since == 1_000.0
        assert steps.log == ["began a", "said a"]
        assert (shared.asked, shared.skipped) == (1, 2)

    asyncio.run(go())


def test_a_step_waits_for_those_running_and_begins_once_one_is_answered(
    tmp_path: Path,
) -> None:
    """One room without an answer does not blank the rooms that do (rt95): the storage
    answered a step running beside it, so the next room is asked."""

    async def go() -> None:
        steps, shared = Steps(), _deadline(tmp_path)
        a = asyncio.create_task(shared(steps.step("a")))
        b = asyncio.create_task(shared(steps.step("b")))
        await steps.begun("a")
        await steps.begun("b")
        steps.say("a", _silent())
        with pytest.raises(NoAnswerError):
            await a
        c = asyncio.create_task(shared(steps.step("c")))
        steps.say("b", "Bravo")
        assert await b == "Bravo"
        await steps.begun("c")
        steps.say("c", "Charlie")
        assert await c == "Charlie"
        assert steps.log.index("began c") > steps.log.index("said b")
        assert (shared.asked, shared.skipped) == (3, 0)

    asyncio.run(go())


@pytest.mark.parametrize(
    ("outcome", "asked"),
    [
        (_silent(), False),  # the one running got no answer either
        (StorageOfflineError("connection refused"), False),  # nor this: no word
        (StorageNotFoundError("rooms/b/metadata.json: not found"), True),  # an answer
    ],
    ids=["no-answer", "refused-connection", "not-found"],
)
def test_a_step_waiting_behind_one_running_goes_by_that_ones_outcome(
    tmp_path: Path, outcome: BaseException, asked: bool
) -> None:
    async def go() -> None:
        steps, shared = Steps(), _deadline(tmp_path)
        a = asyncio.create_task(shared(steps.step("a")))
        b = asyncio.create_task(shared(steps.step("b")))
        await steps.begun("a")
        await steps.begun("b")
        steps.say("a", _silent())
        with pytest.raises(NoAnswerError):
            await a
        c = asyncio.create_task(shared(steps.step("c")))
        steps.say("b", outcome)
        with pytest.raises(type(outcome)):
            await b
        if asked:
            await steps.begun("c")
            steps.say("c", "Charlie")
            assert await c == "Charlie"
        else:
            with pytest.raises(NoAnswerError) as caught:
                await c
            assert str(caught.value) == SILENT
            assert "began c" not in steps.log
        assert shared.skipped == (0 if asked else 1)

    asyncio.run(go())


def test_a_step_not_begun_is_closed_when_its_caller_is_cancelled(tmp_path: Path) -> None:
    """Waiting behind a running step, then cancelled: the step never runs, and Python
    says nothing of a coroutine never awaited."""

    async def go() -> None:
        steps, shared = Steps(), _deadline(tmp_path)
        a = asyncio.create_task(shared(steps.step("a")))
        b = asyncio.create_task(shared(steps.step("b")))
        await steps.begun("a")
        await steps.begun("b")
        steps.say("a", _silent())
        with pytest.raises(NoAnswerError):
            await a
        waiting = steps.step("c")
        c = asyncio.create_task(shared(waiting))
        await asyncio.sleep(0)
        c.cancel()
        with pytest.raises(asyncio.CancelledError):
            await c
        assert waiting.cr_frame is None  # closed, never begun
        steps.say("b", "Bravo")
        assert await b == "Bravo"
        assert "began c" not in steps.log

    asyncio.run(go())
