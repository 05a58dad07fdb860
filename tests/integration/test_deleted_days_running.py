"""Red team rt70: every segment of a room's day deleted from the bucket while the app runs.

An object store has no folders: a day with no object left is no prefix any more, so no
listing of that day is ever compared with what was read from it. The running app's
safety rounds noted nothing, round after round, while the next opening reported it
(``backfill.note_days_gone``, which both now use). Real moto S3."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.schedule import SAFETY_BURST

from . import _emulators as emu
from .conftest import StoresMaker
from .test_rewritten_segments import ROOM, room_written


async def test_a_days_segments_deleted_while_the_app_runs_are_reported_on_s3(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """Someone with write access (or the provider) deletes every segment of the room's
    day (here the whole history: one day) while the app runs. An object store has no
    folders: the day is no prefix any more. Thirty safety rounds of the running app:
    each must say what storage no longer holds, as a restart says at once — and each
    costs one listing of the room's days, as an honest round of this room does."""
    stores = stores_for("s3")
    key = SigningKey.generate()
    await room_written(stores, key, ("hello one",), ("hello two",))
    db = tmp_path / "index.sqlite3"
    reader = SyncEngine(stores.new(), index=(index := Index.open(db)))
    proc = stores.emulators.get("s3") if stores.emulators else None
    assert proc is not None and stores.emulators is not None
    assert stores.emulators.s3_admin is not None
    s3 = emu.s3_client(proc.endpoint, stores.emulators.s3_admin)
    noted: list[int] = []
    try:
        room = await reader.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean and not room.partial
        segments = sorted(p for p in room.known if p.endswith(".jsonl"))
        for path in segments:
            s3.delete_object(Bucket=stores.bucket, Key=f"{stores.location.prefix}/{path}")
        assert await stores.new().list_objects(f"rooms/{ROOM}/logs/") == []
        requests = reader.requests
        for _ in range(30):
            room.last_safety = -1e9  # due now,
            reader._poller.safety_pace.tokens = SAFETY_BURST  # and the hours between passed
            await reader.poll_once(markers=False)
            if room.backfill is not None:
                await room.backfill
            if room.reaudit is not None:
                await room.reaudit
            noted.append(len(room.vanished) + len(room.unlisted))
        bodies = [a.event.body for a in room.result.timeline if a.event.type == MESSAGE]
        assert bodies == ["hello one", "hello two"]  # kept: checked here
        assert all(noted) and room.partial and not room.result.clean, (
            "every segment read here deleted from the bucket: the running app says nothing "
            f"(notes per round {noted})"
        )
        assert reader.requests - requests == 30, "one listing of the room's days a round"
    finally:
        await reader.close()
        index.close()
