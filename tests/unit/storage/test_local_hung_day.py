"""A member's hung mount inside a day folder holds up listings of that day, and nothing
else (red team rt58).

The poller lists each day folder; the listing reads every entry's details, and that of
the member's mount point never returns. Keyed by its folder, that stuck listing made
every segment write into the day "no answer" at once (although a write never touches
the mount), and a stuck walk of ``logs/`` refused the one-level listing of the days. A
stuck listing now holds up only the same listing; calls on objects, only calls into the
same folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hung_mount import HUNG_MOUNT, mountable, run_child

DAY = "rooms/r/logs/2026-01-05"

CHILD = r"""
import asyncio
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.storage.base import StorageError

local.READ_TIMEOUT = 1.0
store = local.LocalStorage(sys.argv[2])
fresh = local.LocalStorage(sys.argv[2])  # the same folder, no call stuck in it
day = "rooms/r/logs/2026-01-05"


async def main() -> None:
    try:  # the poller's listing of the day: stats the member's mount point, hangs
        await store.list_objects(day + "/")
        print("list answered", flush=True)
    except StorageError as exc:
        print("list", "transient" if exc.transient else "final", flush=True)
    try:  # this device's next segment, dated that day
        print("put", await store.put_if_absent(day + "/seg-a.jsonl", b"{}\n"), flush=True)
    except StorageError as exc:
        print("put refused:", exc, flush=True)
    try:  # the very same write on the same folder, with no stuck call remembered
        print("fresh put", await fresh.put_if_absent(day + "/seg-b.jsonl", b"{}\n"), flush=True)
    except StorageError as exc:
        print("fresh put refused:", exc, flush=True)


asyncio.run(main())
print("ending", flush=True)
"""


def test_a_hung_mount_in_a_day_folder_does_not_refuse_writes_into_that_day(
    tmp_path: Path,
) -> None:
    why = mountable()
    if why:
        pytest.skip(why)
    root = tmp_path / "store"
    (root / DAY / "zz").mkdir(parents=True)  # the member's mount point
    script = tmp_path / "child.py"
    script.write_text(HUNG_MOUNT + CHILD)
    out, err = run_child(script, str(root / DAY / "zz"), str(root))
    assert "Traceback" not in err, err
    assert out[0] == "list transient", out
    assert "fresh put True" in out, out  # the write itself works
    assert "put True" in out, out  # ... but the storage that listed the day refuses it


LOGS_CHILD = r"""
import asyncio
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.storage.base import StorageError

local.READ_TIMEOUT = 1.0
store = local.LocalStorage(sys.argv[2])
fresh = local.LocalStorage(sys.argv[2])


async def main() -> None:
    try:  # a first send's head lookup (writer.read_room_segments), or verify: recursive
        await store.list_objects("rooms/r/logs/")
        print("walk answered", flush=True)
    except StorageError as exc:
        print("walk", "transient" if exc.transient else "final", flush=True)
    for name, s in (("level", store), ("fresh level", fresh)):
        try:  # the poller's list of the room's days: never goes into a day folder
            print(name, sorted((await s.list_level("rooms/r/logs/")).folders), flush=True)
        except StorageError as exc:
            print(name, "refused:", exc, flush=True)


asyncio.run(main())
print("ending", flush=True)
"""


def test_a_hung_walk_of_logs_does_not_refuse_the_list_of_days(tmp_path: Path) -> None:
    """One day with a member's hung mount in it: the walk of logs/ hangs (rightly); the
    poller's one-level listing of the days, which never enters a day folder, answers
    (it was refused, keyed like the walk by "rooms/r/logs")."""
    why = mountable()
    if why:
        pytest.skip(why)
    root = tmp_path / "store"
    (root / DAY / "zz").mkdir(parents=True)
    (root / "rooms/r/logs/2026-01-04").mkdir(parents=True)
    script = tmp_path / "child.py"
    script.write_text(HUNG_MOUNT + LOGS_CHILD)
    out, err = run_child(script, str(root / DAY / "zz"), str(root))
    assert "Traceback" not in err, err
    assert out[0] == "walk transient", out
    assert "fresh level ['2026-01-04', '2026-01-05']" in out, out
    assert "level ['2026-01-04', '2026-01-05']" in out, out


ENGINE_CHILD = r"""
import asyncio, os, sys, time
from pathlib import Path
from nacl.signing import SigningKey
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import logs_prefix, utc_date
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox

local.READ_TIMEOUT = 1.0
root, home = Path(sys.argv[1]), Path(sys.argv[2])
ALICE, KEY = "alice@example.com", SigningKey(b"\x01" * 32)
today = logs_prefix("room-1") + utc_date(int(time.time() * 1000)) + "/"


def said(body):
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


async def main() -> None:
    storage = local.LocalStorage(root)
    engine = SyncEngine(storage, outbox=Outbox(home / "outbox.sqlite3"))
    try:
        await engine.send("room-1", ALICE, KEY, said("m0"))
        print("flushed", await engine.flush(10), flush=True)
        # a member mounts something that never answers inside today's folder
        mount = root / today / "zz"
        mount.mkdir()
        sys.argv[1] = str(mount)
        exec(MOUNT, {})
        try:  # the poller's listing of today's folder (each round)
            await storage.list_objects(today)
        except Exception as exc:
            print("listing:", type(exc).__name__, flush=True)
        await engine.send("room-1", ALICE, KEY, said("m1"))
        print("flushed", await engine.flush(5), flush=True)
        for p in engine.outbox.pending("room-1"):
            print("pending", p.state, (p.error or "")[-120:], flush=True)
    finally:
        await asyncio.wait_for(engine.close(), 30)


asyncio.run(main())
print("ending", flush=True)
"""


def test_a_members_hung_mount_in_todays_folder_stops_no_message(tmp_path: Path) -> None:
    """The app's own flow: a message sent, then a member's hung mount inside today's
    folder; the poller's listing of the day gets no answer (rightly), and the next
    message of this device dated today is stored all the same (it stayed "sending", "no
    answer … is the folder on a network share", although writing it would succeed)."""
    from nacl.signing import SigningKey

    from bucket_chat_desktop.storage.local import LocalStorage
    from bucket_chat_desktop.sync.writer import RoomWriter

    why = mountable()
    if why:
        pytest.skip(why)
    root = tmp_path / "store"
    w = RoomWriter(LocalStorage(root), "room-1", "alice@example.com", SigningKey(b"\x01" * 32))
    import asyncio

    asyncio.run(w.create_room("room-1", "2025-09-14T12:00:45.000Z"))
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "child.py"
    script.write_text(f"MOUNT = {HUNG_MOUNT!r}\n" + ENGINE_CHILD)
    out, err = run_child(script, str(root), str(home))
    assert out[:2] == ["flushed True", "listing: StorageOfflineError"], (out, err[-2000:])
    assert out[2] == "flushed True", (out, err[-3000:])
