"""Cloud requests run on fsspec's I/O loop, not on the loop that awaits them.

The SDKs parse every answer where their coroutines run: a listing page of 1,000 keys
held the caller's loop 0.2 s on moto, and in the app that loop is the window's. These
tests pin what the hand-over (``FsspecStorage._there``) must keep: where the work runs,
that cancelling the caller stops it there, and that read progress reaches the caller's
loop — on each real emulator.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import warnings
from typing import Any

import pytest
import qasync
from waiting import until

from bucket_chat_desktop.storage.base import READ_PROGRESS, StorageError
from bucket_chat_desktop.storage.cloud import FsspecStorage, io_loop
from bucket_chat_desktop.storage.open import open_location

from .conftest import Stores
from .test_hung_reads import Proxied, proxied

__all__ = ["proxied"]  # a fixture used by name


def _ours_on_the_io_loop() -> int:
    """Hand-over tasks (``_Far._run``) alive on the I/O loop right now."""

    async def count() -> int:
        return sum(
            1
            for task in asyncio.all_tasks()
            if "_Far._run" in getattr(task.get_coro(), "__qualname__", "")
        )

    return asyncio.run_coroutine_threadsafe(count(), io_loop()).result(10)


async def test_requests_and_their_parsing_run_on_the_io_loop(cloud_stores: Stores) -> None:
    store = cloud_stores.new()
    assert isinstance(store, FsspecStorage)
    caller = asyncio.get_running_loop()
    seen: list[tuple[asyncio.AbstractEventLoop, str]] = []
    listed = store._list_keys

    async def spying(*args: Any, **kwargs: Any) -> Any:
        seen.append((asyncio.get_running_loop(), threading.current_thread().name))
        return await listed(*args, **kwargs)

    store._list_keys = spying  # type: ignore[method-assign]
    await store.put_if_absent("rooms/r/a.jsonl", b"a")
    assert [o.path for o in await store.list_objects("rooms/r")] == ["rooms/r/a.jsonl"]
    assert await store.exists("rooms/r/a.jsonl")
    assert seen and all(loop is io_loop() and loop is not caller for loop, _ in seen)
    assert {name for _, name in seen} == {"fsspecIO"}
    assert store._loop is io_loop()  # the SDK's client lives there too


async def test_a_storage_serves_a_loop_after_the_one_that_opened_it(
    cloud_stores: Stores,
) -> None:
    """Two loops one after the other (a CLI command, then another): the second is served
    by the same client, on the I/O loop, and closing from it closes that client."""
    store = open_location(cloud_stores.location, cloud_stores.secrets)
    assert isinstance(store, FsspecStorage)

    def in_a_thread_of_its_own() -> None:
        asyncio.run(store.put_if_absent("x/one", b"1"))

    thread = threading.Thread(target=in_a_thread_of_its_own)
    thread.start()
    thread.join(60)
    assert await store.get("x/one") == b"1"
    await store.close()
    assert store._fs is None


async def test_cancelling_the_caller_stops_the_request_on_the_io_loop(
    proxied: Proxied,
) -> None:
    store = proxied.storage(timeout="60", retries="1")
    await store.put_if_absent("rooms/r/held.bin", b"held")
    proxied.proxy.stall(r"held\.bin")
    before = _ours_on_the_io_loop()
    reading = asyncio.ensure_future(store.get("rooms/r/held.bin"))
    await until(lambda: proxied.proxy.stalled() == 1)
    assert _ours_on_the_io_loop() == before + 1
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await until(lambda: _ours_on_the_io_loop() == before)
    proxied.proxy.release()
    assert await store.get("rooms/r/held.bin") == b"held"  # the storage works on


async def test_a_deadline_of_the_caller_ends_a_hung_listing(proxied: Proxied) -> None:
    """``asyncio.timeout`` on the caller's loop (how the engine bounds a request) ends a
    request that runs on the I/O loop, and the storage answers the next one."""
    kind = proxied.stores.kind
    store = proxied.storage(timeout="60", retries="1")
    await store.put_if_absent("rooms/r/a.jsonl", b"a")
    pattern = {"s3": r"list-type=2", "gs": r"/o\?", "az": r"comp=list"}[kind]
    proxied.proxy.stall(pattern)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await store.list_objects("rooms/r")
    proxied.proxy.release()
    assert [o.path for o in await store.list_objects("rooms/r")] == ["rooms/r/a.jsonl"]


async def test_read_progress_is_told_on_the_callers_loop(cloud_stores: Stores) -> None:
    """``READ_PROGRESS`` hooks (``WatchedStorage``'s) change the caller's state: they are
    called on the caller's thread, never on the I/O thread, and add up to the object."""
    store = cloud_stores.new()
    body = bytes(range(256)) * 2048  # 512 KiB
    await store.put_if_absent("rooms/r/blob.bin", body)
    calls: list[tuple[int, int]] = []
    token = READ_PROGRESS.set(lambda size: calls.append((threading.get_ident(), size)))
    try:
        assert await store.get("rooms/r/blob.bin") == body
    finally:
        READ_PROGRESS.reset(token)
    await asyncio.sleep(0)  # the last call-back may be queued behind the answer
    await until(lambda: sum(size for _, size in calls) >= len(body))
    assert {ident for ident, _ in calls} == {threading.get_ident()}


async def test_errors_cross_the_hand_over_as_they_were(cloud_stores: Stores) -> None:
    store = cloud_stores.new()
    with pytest.raises(StorageError, match="does not exist"):
        await store.get("rooms/r/missing.bin")
    with pytest.raises(StorageError, match="only self-test probes"):
        await store.remove_probe("rooms/r/a.jsonl")


@pytest.mark.parametrize("escaping", [SystemExit, KeyboardInterrupt])
async def test_an_exit_raised_by_a_request_reaches_its_caller_not_the_io_loop(
    cloud_stores: Stores, escaping: type[BaseException]
) -> None:
    """asyncio lets ``SystemExit``/``KeyboardInterrupt`` out of the loop running the task:
    raised by a request on the I/O loop, it ended fsspec's I/O thread, and every request
    after it, of every storage, waited for ever. The caller's loop gets it instead, as
    when the request ran there."""
    store = cloud_stores.new()
    other = cloud_stores.new()
    assert isinstance(store, FsspecStorage)
    await other.put_if_absent("rooms/r/a.jsonl", b"a")

    async def raising(*args: Any, **kwargs: Any) -> Any:
        raise escaping("from a request")

    store._list_keys = raising  # type: ignore[method-assign]
    got: list[BaseException] = []

    def a_caller_of_its_own() -> None:  # its loop ends with what escaped, not the test's
        try:
            asyncio.run(asyncio.wait_for(store.list_objects("rooms/r"), 20))
        except BaseException as exc:
            got.append(exc)

    await asyncio.to_thread(a_caller_of_its_own)
    assert [type(exc) for exc in got] == [escaping]
    async with asyncio.timeout(20):  # the I/O loop still answers, for any storage
        assert await other.exists("rooms/r/a.jsonl")


async def test_closing_ends_a_request_that_waits_on_the_service(proxied: Proxied) -> None:
    """``close()`` from one task while another's read hangs on the service (an engine
    stopping): the read ends at once with a ``StorageError`` (its caller was not
    cancelled, so not a ``CancelledError``), and the storage is closed, not held open
    until the service answers."""
    store = proxied.storage(timeout="60", retries="1")
    await store.put_if_absent("rooms/r/held.bin", b"held")
    proxied.proxy.stall(r"held\.bin")
    reading = asyncio.ensure_future(store.get("rooms/r/held.bin"))
    await until(lambda: proxied.proxy.stalled() == 1)
    async with asyncio.timeout(20):
        await store.close()
        with pytest.raises(StorageError, match="closed while this request ran"):
            await reading
    assert isinstance(store, FsspecStorage) and store._fs is None
    proxied.proxy.release()
    assert await store.get("rooms/r/held.bin") == b"held"  # a request after it reopens


async def test_closing_as_the_first_request_starts_leaves_no_session_open(
    cloud_stores: Stores,
) -> None:
    """``close()`` right after a first request was handed over: the SDK opened its HTTP
    session lazily, at the request's first send, on a client ``close()`` had closed, and
    nothing closed that session ("Unclosed client session" when collected)."""
    writer = cloud_stores.new()
    await writer.put_if_absent("rooms/r/a.jsonl", b"a")
    for _ in range(5):
        store = open_location(cloud_stores.location, cloud_stores.secrets)
        checking = asyncio.ensure_future(store.exists("rooms/r/a.jsonl"))
        await asyncio.sleep(0)  # handed over
        await store.close()
        try:
            assert await checking
        except StorageError as exc:
            assert "closed while this request ran" in str(exc)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del store, checking
            gc.collect()
        assert not [w for w in caught if "Unclosed" in str(w.message)]


async def _collect() -> None:
    gc.collect()


@pytest.mark.parametrize("collected_in", ["no loop", "another loop"])
def test_a_qt_loop_that_ends_closes_what_was_never_closed(
    cloud_stores: Stores, qapp: Any, collected_in: str
) -> None:
    """The app's loop is qasync's, which installs no async generator hooks: the
    ``close()`` safety net is closed only when the garbage collector takes that loop,
    with no loop or another loop running. It then closes the client on the I/O loop; it
    used to ``await`` there ("no running event loop" or "async generator ignored
    GeneratorExit" reported as ignored, a coroutine never awaited, and the HTTP session
    left open: "Unclosed client session")."""
    store = open_location(cloud_stores.location, cloud_stores.secrets)
    assert isinstance(store, FsspecStorage)
    ignored: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: ignored.append(f"{u.exc_value!r} in {u.object!r}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = qasync.QEventLoop(qapp)
            try:
                assert not loop.run_until_complete(store.exists("rooms/r/none.jsonl"))
            finally:
                loop.close()
            client = store._fs
            assert client is not None
            del loop
            if collected_in == "no loop":  # the loop, and the safety net it kept, go
                gc.collect()
            else:
                asyncio.run(_collect())
            deadline = time.monotonic() + 20
            while store._fs is not None:  # closed over there
                assert time.monotonic() < deadline, "the client was never closed"
                time.sleep(0.01)
            del client
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert ignored == []
    assert [str(w.message) for w in caught if "nclosed" in str(w.message)] == []


async def test_a_request_in_a_task_nobody_keeps_is_answered(proxied: Proxied) -> None:
    """A task started and not kept (what a Qt slot does with ``ensure_future``) lives
    while it awaits a request, as while it awaits a socket: the I/O side holds the
    caller's side only weakly, so the collector destroyed the waiting task ("Task was
    destroyed but it is pending!") and the answer was lost."""
    store = proxied.storage(timeout="60", retries="1")
    await store.put_if_absent("rooms/r/held.bin", b"held")
    proxied.proxy.stall(r"held\.bin")
    got: list[bytes] = []
    done = asyncio.Event()

    async def reader() -> None:
        got.append(await store.get("rooms/r/held.bin"))
        done.set()

    asyncio.ensure_future(reader())  # noqa: RUF006 (not kept, on purpose)
    await until(lambda: proxied.proxy.stalled() == 1)
    gc.collect()
    proxied.proxy.release()
    async with asyncio.timeout(20):
        await done.wait()
    assert got == [b"held"]
