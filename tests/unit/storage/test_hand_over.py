"""The I/O side of a cloud request telling a caller whose loop closed (``_Far.post``).

The race found by the red team (``rtio``): the caller's loop closes on its own thread
between ``post``'s ``is_closed`` check and its ``call_soon_threadsafe``. An asyncio loop
then raises ``RuntimeError``: on a progress post that failed the read it ran in, on a
settle post it was logged on the I/O loop. The window cannot be hit on demand, so this
closes a real loop and lets its ``is_closed`` answer as it did a moment before."""

from __future__ import annotations

import asyncio
import weakref

import pytest

from bucket_chat_desktop.storage.cloud import _Far, _Near


async def _request() -> bytes:
    return b""


@pytest.mark.parametrize("what, arg", [("progress", 16_384), ("settle", None)])
def test_a_post_to_a_loop_closed_since_the_check_is_dropped(
    monkeypatch: pytest.MonkeyPatch, what: str, arg: object
) -> None:
    loop = asyncio.new_event_loop()
    near = _Near(loop, lambda size: None)
    call = _request()
    far = _Far(call, weakref.ref(near), True, None)
    loop.close()
    try:
        with pytest.raises(RuntimeError):  # what a closed loop does with a call
            loop.call_soon_threadsafe(print)
        monkeypatch.setattr(loop, "is_closed", lambda: False)  # checked before it closed
        far.post(what, arg)  # dropped: nobody waits on a closed loop
        assert not near.waiter.done()
    finally:
        call.close()
