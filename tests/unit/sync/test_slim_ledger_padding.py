"""A warm open of a room (the app's engine, ``keep_bodies=False``: the slim ledger,
``audit._Columns``) whose member padded fields the rules never read (red team rt91).

docs/MEMORY.md puts the slim ledger at about 120 bytes an event; a member who padded each
event's ``witness`` with entries no rule reads (none is a key mapped to a hash) up to the
line limit made every such event cost the open room ~800 KB for as long as it was open,
and reopening the room from this device's index (a warm open: no download) brought it
all back. The ledger now keeps the entries a reader reads alone. Counted as the bytes of
the ledger's store (``room.ledger._store``, a ``_Columns``) and of everything it holds,
after the warm open, per event: no timing. (The newest page with bodies and the warm
rows are whole events by design: not counted.)"""

from __future__ import annotations

import gc
import json
import sys
import types
from binascii import b2a_base64
from pathlib import Path

from nacl.signing import SigningKey
from test_engine import ROOM, Recorder, create_room, run  # same folder's helpers

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.canonical import canonical_json
from bucket_chat_desktop.protocol.event import MESSAGE, Event, Malformed, parse_event
from bucket_chat_desktop.protocol.ids import iso_utc_ms
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event, public_key_text
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine

SLIM = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0, keep_bodies=False)
ALICE = "alice@example.com"
T0 = 1757851245000
N = 20
BOUND = 8 * 1024  # bytes an event (the design: ~120)
_PAD = {f"{j:030d}": 0 for j in range(7000)}  # ~238 KB on the line, not too dense


def _events(padded: bool) -> list[Event]:
    signing = SigningKey(bytes([1]) * 32)  # key(1): the room's creator, Alice
    public = public_key_text(signing)
    join = build_event(
        room_id=ROOM,
        sender_id=ALICE,
        event_type="m.room.member",
        content={"membership": "join"},
        timestamp_ms=T0,
        unique="00000000-0000-4000-8000-000000000001",
        prev_event_hash=None,
        signing_key=signing,
    )
    out, prev = [join], join.hash
    for i in range(N):
        ts = T0 + 1 + i
        obj: dict[str, object] = {
            "event_id": f"{ROOM}::{iso_utc_ms(ts)}::00000000-0000-4000-8000-{i + 2:012x}",
            "room_id": ROOM,
            "timestamp_ms": ts,
            "sender_id": ALICE,
            "type": MESSAGE,
            "parent_event_id": None,
            "prev_event_hash": prev,
            "sender_key": public,
            "content": {"body": f"m{i}", "msgtype": "m.text"},
        }
        if padded:
            obj["witness"] = _PAD
        signature = signing.sign(canonical_json(obj)).signature
        obj["signature"] = b2a_base64(signature, newline=False).decode("ascii")
        ev = parse_event(json.loads(canonical_json(obj)), ROOM)
        assert not isinstance(ev, Malformed), ev
        out.append(ev)
        prev = ev.hash
    return out


def _deep_size(root: object) -> int:
    """Bytes of ``root`` and of every object reachable from it (each once): values and
    containers only, never a class, function or module (shared by everything)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def _engine(root: Path, db: Path) -> SyncEngine:
    return SyncEngine(LocalStorage(root), index=Index.open(db), listener=Recorder(), config=SLIM)


def _warm_open_bytes(tmp: Path, padded: bool) -> int:
    root, db = tmp / "store", tmp / "index.sqlite3"
    create_room(LocalStorage(root))
    events = _events(padded)
    target = root / path_for(events, "alice")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode_segment(events))

    async def cold() -> None:  # fills this device's index
        engine = _engine(root, db)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and len(room.result.timeline) == N + 1
        finally:
            await engine.close()
            assert engine.index is not None
            engine.index.close()

    run(cold())

    async def warm() -> int:  # from this device's index: nothing downloaded
        engine = _engine(root, db)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and len(room.result.timeline) == N + 1
            assert not room.ledger.keeps_bodies  # the app's slim ledger
            return _deep_size(room.ledger._store)
        finally:
            await engine.close()
            assert engine.index is not None
            engine.index.close()

    return run(warm())


def test_a_warm_open_keeps_nothing_of_a_padded_witness(tmp_path: Path) -> None:
    honest = _warm_open_bytes(tmp_path / "honest", padded=False)
    assert honest / (N + 1) <= BOUND  # the control: the measure is the ledger's
    padded = _warm_open_bytes(tmp_path / "padded", padded=True)
    assert padded / (N + 1) <= BOUND, (
        f"after a warm open the app's ledger holds {padded / (N + 1):,.0f} bytes an event "
        f"({padded:,} bytes for {N + 1} events; the same room unpadded: {honest:,})"
    )
