"""A storage that hangs (connections open, no answers) is not one that refuses.

Each emulator is frozen with SIGSTOP mid-conversation, as a flaky network or a stuck
service behaves, and thawed with SIGCONT (always, in a ``finally``). The real
``bucket-chat`` command runs as a subprocess, as a user runs it, so a command that hangs
fails the test by its ``timeout`` instead of hanging the suite:

- ``send`` commits to the outbox before any network access and reports "queued" (exit 3)
  instead of waiting for the service's timeouts; a device that knows nothing of the room
  queues nothing and says why (exit 2) — it never signs onto a guessed chain head;
- ``history`` and ``rooms`` answer from this device's index, saying the storage did not
  answer and since when the view is stale (exit 0);
- ``sync`` gives up within the same deadline: this device's copy's counts, a line naming
  the storage and since when it has not answered, the outbox kept (exit 4);
- after the thaw every message is stored exactly once and the room verifies clean — the
  process that queued them exited (was gone) right after it returned.

How long each step takes is measured by ``benchmarks/hung_network.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import make_key  # tests/ is on sys.path (rootdir-relative packages)

from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.segment import decode_segment
from bucket_chat_desktop.storage.base import Level, ObjectInfo, Storage, StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.storage.url import StorageLocation
from bucket_chat_desktop.sync.watched import (
    DEADLINE_ENV,
    DEADLINE_RANGE,
    NoAnswerError,
    WatchedStorage,
    answer_within,
)

from . import _emulators as emu
from .conftest import Emulators, Stores

ROOM = "team"
PASSPHRASE = "hung network test"


@contextmanager
def frozen(process: subprocess.Popen[bytes] | None) -> Iterator[None]:
    """The emulator stops answering (its sockets stay open) until the block ends."""
    assert process is not None and process.poll() is None
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


class Cli:
    """``bucket-chat`` as a separate process, as one device (its own home folder)."""

    def __init__(self, stores: Stores, home: Path) -> None:
        self.home = home
        self.env = dict(os.environ)
        self.env.update(
            BUCKET_CHAT_HOME=str(home),
            BUCKET_CHAT_KEY_STORE="file",
            BUCKET_CHAT_PASSPHRASE=PASSPHRASE,
            COLUMNS="100000",  # its lines read whole (a pipe's are cut at 80: ``fit``)
        )
        if stores.kind == "s3":
            self.env["AWS_ACCESS_KEY_ID"] = stores.secrets["access_key_id"]
            self.env["AWS_SECRET_ACCESS_KEY"] = stores.secrets["secret_access_key"]
        elif stores.kind == "az":
            self.env["AZURE_STORAGE_ACCOUNT_KEY"] = emu.AZ_KEY

    def setup_keys(self, user_id: str) -> None:
        """The key file ``setup-keys`` leaves, made at the tests' low Argon2id cost
        (``e2e.conftest.make_key``): each command that signs unlocks it in a millisecond,
        not 0.2-0.45 s of CPU. The command itself is tested in tests/unit/cli."""
        self.home.mkdir(parents=True, exist_ok=True)
        make_key(self.home, user_id, PASSPHRASE)

    def __call__(
        self, url: str, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bucket_chat_desktop.cli.main", "-s", url, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def with_options(stores: Stores, **options: str) -> str:
    """This test's storage URL with some tuning options replaced (same data, same index)."""
    loc = stores.location
    return StorageLocation(loc.kind, loc.bucket, loc.prefix, {**loc.options, **options}).url()


async def stored_bodies(store: Storage) -> tuple[Counter[str], Counter[str]]:
    """(message bodies, event ids) of every event stored in the room, with multiplicity."""
    bodies: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    for item in await store.list_objects(f"rooms/{ROOM}/logs/"):
        decoded = decode_segment(item.path, await store.get(item.path), ROOM)
        assert decoded.findings == [], decoded.findings
        for loc in decoded.events:
            ids[loc.event.event_id] += 1
            if loc.event.type == MESSAGE:
                bodies[loc.event.body or ""] += 1
    return bodies, ids


def test_cli_with_a_frozen_storage_queues_reads_the_index_and_delivers_once_after(
    cloud_stores: Stores, emulators: Emulators, tmp_path: Path
) -> None:
    stores = cloud_stores
    # The storage's own timeout is long (as by default): only the interactive deadline
    # can make the commands return while it is frozen.
    url = with_options(stores, timeout="30", retries="3")
    alice = Cli(stores, tmp_path / "alice")
    alice.setup_keys("alice@example.com")
    made = alice(url, "create-room", "--room-id", ROOM, "--name", "Team", "--user-id",
                 "alice@example.com")  # fmt: skip
    assert made.returncode == 0, made.stderr
    sent = alice(url, "send", "--room-id", ROOM, "--user-id", "alice@example.com", "before")
    assert sent.returncode == 0, sent.stderr
    read = alice(url, "history", "--room-id", ROOM)  # this device reads the room whole
    assert read.returncode == 0 and "before" in read.stdout, read.stderr
    # Everything on every backend would add ~10 s per backend to the suite: S3 also runs
    # a second send, a device that knows nothing, a sync and a fresh device.
    full = stores.kind == "s3"
    stranger = Cli(stores, tmp_path / "stranger")  # a device that never read the room
    if full:
        stranger.setup_keys("sam@example.com")

    bodies = ["before", "during 1", "during 2"] if full else ["before", "during 1"]
    # While frozen every step ends by the deadline, whatever its length: the shortest one
    # there is (an existing setting) shows the same and waits less. Thawed, the default.
    for device in (alice, stranger):
        device.env[DEADLINE_ENV] = f"{DEADLINE_RANGE[0]:g}"
    with frozen(emulators.get(stores.kind).process):
        for body in bodies[1:]:
            queued = alice(url, "send", "--room-id", ROOM, "--user-id", "alice@example.com",
                           body, timeout=20)  # fmt: skip
            assert queued.returncode == 3, queued.stderr
            assert "queued" in queued.stderr and "no answer" in queued.stderr
            assert "bucket-chat sync" in queued.stderr and "Traceback" not in queued.stderr

        history = alice(url, "history", "--room-id", ROOM, timeout=20)
        assert history.returncode == 0, history.stderr
        assert "before" in history.stdout  # what this device verified...
        assert "during" not in history.stdout  # ...not what is only queued
        (note,) = history.stderr.strip().splitlines()
        assert "did not answer" in note and "last read 20" in note

        rooms = alice(url, "rooms", timeout=20)
        assert rooms.returncode == 0, rooms.stderr
        assert rooms.stdout.split() == [ROOM, "Team"]
        assert "did not answer" in rooms.stderr

        if full:  # a device that never read the room: nothing can be queued
            nothing = stranger(url, "send", "--room-id", ROOM, "--user-id", "sam@example.com",
                               "guess", timeout=20)  # fmt: skip
            assert nothing.returncode == 2
            (line,) = nothing.stderr.strip().splitlines()
            assert "no answer" in line and "nothing was done" in line

        if full:  # sync gives up within the deadline, with this device's copy
            synced = alice(url, "sync", "--room-id", ROOM, timeout=20)
            assert synced.returncode == 4, synced.stderr
            assert synced.stdout.startswith(f"{ROOM}: 2 events as this device verified them")
            assert "could not deliver everything yet" in synced.stdout
            (note,) = synced.stderr.strip().splitlines()
            assert "has not answered since" in note and "this device's copy" in note, note
            assert "2 event(s) stay queued in the outbox" in note, note

    for device in (alice, stranger):
        del device.env[DEADLINE_ENV]
    # Thawed: the next sync delivers what the exited sends queued, exactly once.
    synced = alice(url, "sync", "--room-id", ROOM)
    assert synced.returncode == 0, synced.stderr
    assert "0 finding(s)" in synced.stdout
    verified = alice(url, "verify", "--room-id", ROOM)
    assert verified.returncode == 0 and "CLEAN" in verified.stdout, verified.stdout
    if full:
        bystander = Cli(stores, tmp_path / "bob")  # another device's fresh, complete read
        cold = bystander(url, "verify", "--room-id", ROOM)
        assert cold.returncode == 0 and "CLEAN:" in cold.stdout, cold.stdout

    async def check() -> None:
        found, ids = await stored_bodies(stores.new())
        assert found == Counter(bodies)
        assert max(ids.values()) == 1
        assert len(ids) == len(bodies) + 1  # + alice's join

    asyncio.run(check())


def test_a_stranger_never_signs_onto_a_guessed_head(tmp_path: Path) -> None:
    """The engine itself, without the CLI's room check: nothing local knows the head and
    the storage does not answer -> nothing is signed or queued, and it says why."""
    from nacl.signing import SigningKey

    from bucket_chat_desktop.sync.engine import NotQueuedError, SyncEngine
    from bucket_chat_desktop.sync.outbox import Outbox

    class Silent(LocalStorage):
        async def list_objects(self, prefix: str) -> list[ObjectInfo]:
            await asyncio.sleep(3600)  # a request that never gets an answer
            raise AssertionError

    async def go() -> None:
        box = Outbox(tmp_path / "outbox.sqlite3")
        engine = SyncEngine(Silent(tmp_path / "store"), outbox=box)
        try:
            with pytest.raises(NotQueuedError, match="nothing was queued: no answer"):
                await engine.send(
                    ROOM, "sam@example.com", SigningKey(bytes(32)), [(MESSAGE, {"body": "x"})]
                )
            assert box.is_empty() and not box.knows_room(ROOM)
        finally:
            await engine.close()
            box.close()

    asyncio.run(go())


async def test_answer_within_cuts_off_silence_but_not_a_slow_answering_storage(
    tmp_path: Path,
) -> None:
    """Silence: given up after the deadline. Slow but answering: never cut off."""

    class Slow(LocalStorage):
        async def list_level(self, prefix: str) -> Level:
            await asyncio.sleep(0.3)
            return await super().list_level(prefix)

    store = WatchedStorage(Slow(tmp_path / "store"))

    async def many_slow_answers() -> int:
        for _ in range(5):  # 1.5 s in all, each answer within 0.3 s
            await store.list_dirs("rooms/")
        return 5

    assert await answer_within(store, many_slow_answers(), 0.6) == 5

    async def silence() -> None:
        await store._timed(asyncio.sleep(3600))

    with pytest.raises(NoAnswerError) as caught:
        await answer_within(store, silence(), 0.3)
    assert isinstance(caught.value, StorageOfflineError) and caught.value.transient
    assert store.oldest_unanswered() is None  # the given-up request is no longer counted


async def test_a_request_hanging_from_before_a_step_counts_from_the_step_s_start(
    tmp_path: Path,
) -> None:
    """A background request that hangs since before the step (the storage was away, the
    connection is dead) gave a step begun later up at once, "waiting since" a time
    before the person even asked. It counts from the step's start now: a step whose own
    requests are answered ends well; one that waits on the old silence is given up a
    deadline after it began."""

    class Mixed(LocalStorage):
        async def list_level(self, prefix: str) -> Level:
            if prefix == "hung/":
                await asyncio.sleep(3600)  # a request from before that never ends
            await asyncio.sleep(0.02)
            return await super().list_level(prefix)

    store = WatchedStorage(Mixed(tmp_path / "store"))
    background = asyncio.ensure_future(store.list_dirs("hung/"))
    try:
        await asyncio.sleep(1.5)  # unanswered for longer than the deadline below

        async def answered() -> int:
            for _ in range(3):
                await store.list_dirs("rooms/")
            return 3

        assert await answer_within(store, answered(), 1.0) == 3

        async def waits_on_the_silence() -> None:
            await asyncio.shield(background)

        turns = 0  # the loop's turns while the step waited: none if given up at once

        async def ticking() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0.01)
                turns += 1

        ticker = asyncio.ensure_future(ticking())
        wall = time.time()
        try:
            with pytest.raises(NoAnswerError) as caught:
                await answer_within(store, waits_on_the_silence(), 1.0)
        finally:
            ticker.cancel()
        assert turns >= 3, turns  # not at once: it waited for the step's own deadline
        assert caught.value.since >= wall - 0.01  # since the step began, not before
    finally:
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background


async def test_a_step_that_keeps_getting_answers_is_not_given_up_for_an_older_hang(
    tmp_path: Path,
) -> None:
    """A request hanging from before the step (a stalled attachment download, which goes
    through the watch now; a poll on a dead connection) gave up any step that took longer
    in all than the deadline, 1.2 s after it began, even while every request of its own
    was answered at once: opening a room or listing the rooms while a download stalled.
    An older request counts from the latest answer to one of the step's own requests
    instead; a step that gets none is still given up a deadline after it began (the
    test above), whatever else the storage answers meanwhile."""

    class Mixed(LocalStorage):
        async def list_level(self, prefix: str) -> Level:
            if prefix == "hung/":
                await asyncio.sleep(3600)  # e.g. an attachment whose bytes stopped coming
            await asyncio.sleep(0.1)
            return await super().list_level(prefix)

    store = WatchedStorage(Mixed(tmp_path / "store"))
    background = asyncio.ensure_future(store.list_dirs("hung/"))
    try:
        await asyncio.sleep(0.1)  # in flight before the step

        async def answered_at_once(times: int) -> int:
            for _ in range(times):  # 2 s in all, each answered within 0.1 s
                await store.list_dirs("rooms/")
            return times

        assert await answer_within(store, answered_at_once(20), 0.6) == 20

        async def answered_then_waits_on_the_silence() -> None:
            await answered_at_once(3)
            await asyncio.shield(background)

        with pytest.raises(NoAnswerError):
            await answer_within(store, answered_then_waits_on_the_silence(), 0.6)
        assert store.oldest_unanswered() is not None  # the background request goes on

        # Answers to other work meanwhile (the app's polling, another room's read) are
        # not the step's: one that waits on the older silence is given up all the same.
        async def others() -> None:
            while True:
                await store.list_dirs("rooms/")

        busy = asyncio.ensure_future(others())
        try:
            with pytest.raises(NoAnswerError):
                await asyncio.wait_for(
                    answer_within(store, answered_then_waits_on_the_silence(), 0.6), 60
                )
        finally:
            busy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await busy
    finally:
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background


def test_an_index_alone_never_gives_the_head_of_a_send(tmp_path: Path) -> None:
    """No outbox head (this outbox never wrote here, or it was lost), but the index holds
    a complete read: the head is not taken from it. Red team rt71: the index holds the
    room as of its last read, and this device's sends since (a ``bucket-chat send``
    opens no room, so they never reach the index) are not in it; continuing its newest
    own event forked the chain. So the storage is asked, and when it does not answer
    nothing is queued (as for a device that never read the room), within the deadline.
    The storage's answer, once it comes, gives the real head (``test_first_send``)."""
    from nacl.signing import SigningKey

    from bucket_chat_desktop.index import Index
    from bucket_chat_desktop.sync.engine import NotQueuedError, SyncEngine
    from bucket_chat_desktop.sync.outbox import Outbox
    from bucket_chat_desktop.sync.writer import Draft, RoomWriter

    root = tmp_path / "store"
    mine, other = SigningKey(bytes([1]) * 32), SigningKey(bytes([2]) * 32)

    class Hangs(LocalStorage):
        """Every request waits for ever (a frozen service)."""

        async def _hang(self) -> Any:
            await asyncio.sleep(3600)

        async def get(self, path: str, *, max_bytes: int = 0) -> bytes:
            return await self._hang()  # type: ignore[no-any-return]

        async def list_objects(self, prefix: str) -> list[ObjectInfo]:
            return await self._hang()  # type: ignore[no-any-return]

        async def list_level(self, prefix: str) -> Level:
            return await self._hang()  # type: ignore[no-any-return]

        async def exists(self, path: str) -> bool:
            return await self._hang()  # type: ignore[no-any-return]

        async def put_if_absent(self, path: str, data: bytes) -> bool:
            return await self._hang()  # type: ignore[no-any-return]

    async def go() -> None:
        store = LocalStorage(root)
        me = RoomWriter(store, ROOM, "alice@example.com", mine)
        await me.write_metadata("Team", "2026-01-05T09:00:00.000Z")
        await me.send([Draft.text("one")])
        await RoomWriter(store, ROOM, "bob@example.com", other).send([Draft.text("hi")])
        index = Index.open(tmp_path / "index.sqlite3")
        reading = SyncEngine(store, index=index)
        await reading.open_room(ROOM, background=False)  # a complete read, into the index
        await reading.close()
        await me.send([Draft.text("two")])  # after the read: the index does not know it

        box = Outbox(tmp_path / "fresh-outbox.sqlite3")
        engine = SyncEngine(Hangs(root), index=index, outbox=box)
        try:
            with pytest.raises(NotQueuedError, match="nothing was queued: no answer"):
                await asyncio.wait_for(
                    engine.send(ROOM, "alice@example.com", mine, [(MESSAGE, {"body": "three"})]),
                    timeout=10,
                )
            assert box.pending() == []  # nothing signed onto the index's older head
        finally:
            await engine.close()
            box.close()
            index.close()

    asyncio.run(go())


def test_test_connection_says_a_frozen_storage_does_not_answer(
    cloud_stores: Stores, emulators: Emulators
) -> None:
    """The connection test a person waits for gives up when one request has gone
    unanswered for TEST_NO_ANSWER seconds — not after the SDK's own timeouts and retries
    (up to CHECK_TIMEOUT) — and works again once the service answers."""
    from bucket_chat_desktop.gui.storage.check import TEST_NO_ANSWER, check_storage

    stores = cloud_stores
    location = StorageLocation(
        stores.location.kind,
        stores.location.bucket,
        stores.location.prefix,
        {**stores.location.options, "timeout": "30", "retries": "3"},
    )
    with frozen(emulators.get(stores.kind).process):
        result = asyncio.run(check_storage(location, stores.secrets))
    assert result.level == "error", result
    assert result.message.startswith("no answer from "), result.message
    assert f"within {TEST_NO_ANSWER:g} s" in result.message, result.message
    after = asyncio.run(check_storage(location, stores.secrets))
    assert after.level == "ok", after


async def test_a_slow_link_can_wait_longer_than_the_interactive_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``BUCKET_CHAT_INTERACTIVE_DEADLINE``: where a new connection's first answer takes
    longer than 1.2 s (a slow link), a person can wait longer; the value is kept within
    0.5-120 s, and what is not a number of seconds is ignored with a warning."""
    from bucket_chat_desktop.sync.watched import (
        INTERACTIVE_DEADLINE,
        interactive_deadline,
    )

    class FirstAnswerSlow(LocalStorage):
        async def list_level(self, prefix: str) -> Level:
            await asyncio.sleep(0.8)  # one answer, later than a 0.5 s deadline
            return await super().list_level(prefix)

    store = WatchedStorage(FirstAnswerSlow(tmp_path / "store"))
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", "0.5")
    assert interactive_deadline() == 0.5
    with pytest.raises(NoAnswerError, match=r"within 0\.5 s"):
        await answer_within(store, store.list_dirs("rooms/"))
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", " 4 ")
    assert await answer_within(store, store.list_dirs("rooms/")) == []
    for text, seconds in (("0", 0.5), ("-3", 0.5), ("1e9", 120.0), ("", INTERACTIVE_DEADLINE)):
        monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", text)
        assert interactive_deadline() == seconds
    for junk in ("soon", "nan", "inf", "\x1b[31m"):
        monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", junk)
        with caplog.at_level("WARNING", logger="bucket_chat.sync"):
            assert interactive_deadline() == INTERACTIVE_DEADLINE
    assert "is not a number of seconds" in caplog.text
    assert "\x1b" not in caplog.text  # shown with repr: no terminal escape reaches a log
