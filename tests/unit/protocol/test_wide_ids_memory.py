"""One hostile line must not cost the app's slim ledger more than the 8 KiB an event
that docs/MEMORY.md ("Only what is read, never the padding") and ``test_columns.py``
hold it under (red team rt99).

The slim ledger (``audit._Columns.add``) keeps six id-like fields per row whatever the
line's signature verdict: the event id (as UTF-8 bytes), ``sender_id``, ``type`` and
``sender_key`` (shared strings, one new string each when every line differs),
``parent_event_id`` (``_parents``) and a ``prev_event_hash`` that is not the key's row
before (``_apart``). While the limit counted characters, 512 characters outside the BMP
were 2 KiB of UTF-8 and 2 KiB of a Python ``str`` each: the storage provider with no
key, or a member with a valid signature, made each line cost ~16 KB of the open room.
The limit is 512 bytes of UTF-8 now (PROTOCOL.md section 12): such a line is refused as
``bad-schema``, and one filled to the new limit stays under the bound."""

from __future__ import annotations

import gc
import json
import tracemalloc
from binascii import b2a_base64

import pytest

from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.canonical import canonical_json
from bucket_chat_desktop.protocol.event import (
    MESSAGE,
    Event,
    Kind,
    Malformed,
    decode_json_line,
    parse_event,
)
from bucket_chat_desktop.protocol.ids import iso_utc_ms
from bucket_chat_desktop.protocol.segment import path_for

from ._support import ROOM, T0, Device, alice

LINES = 200
BOUND = 8 * 1024  # test_columns.BOUND, docs/MEMORY.md: "under 8 KiB an event"
WIDE = "\U0001f600"  # outside the BMP: 4 bytes of UTF-8, 4 bytes a character in a str


def _wide(i: int, tag: str, room: int = 0, *, chars: bool = True) -> str:
    """512 characters of ``WIDE`` (2 KiB of UTF-8) after a head; with ``chars`` False, as
    many as fit the limit's 512 bytes."""
    head = f"{tag}{i}-"
    if chars:
        return head + WIDE * (512 - room - len(head))
    return head + WIDE * ((512 - room - len(head)) // 4)


def _line(device: Device, ts: int, i: int, *, signed: bool, chars: bool) -> bytes:
    prefix = f"{ROOM}::{iso_utc_ms(ts)}::"
    obj: dict[str, object] = {
        "event_id": prefix + _wide(i, "u", len(prefix), chars=chars),
        "room_id": ROOM,
        "timestamp_ms": ts,
        "sender_id": _wide(i, "s", chars=chars),
        "type": _wide(i, "t", chars=chars),
        "parent_event_id": _wide(i, "p", chars=chars),
        "prev_event_hash": _wide(i, "h", chars=chars),
        # a member signs with their own key; the storage provider writes any text
        "sender_key": device.public if signed else _wide(i, "k", chars=chars),
        "content": {"body": "hi", "msgtype": MESSAGE},
    }
    sig = device.key.sign(canonical_json(obj)).signature if signed else bytes(64)
    obj["signature"] = b2a_base64(sig, newline=False).decode("ascii")
    ev = parse_event(json.loads(canonical_json(obj)), ROOM)
    if chars:  # 512 characters of 4 bytes: over the limit, refused by every reader
        assert isinstance(ev, Malformed) and ev.kind is Kind.BAD_SCHEMA, ev
        assert " bytes long, more than the 512 " in ev.reason, ev.reason
    else:  # at the limit: read (a member's line verifies, the provider's is refused later)
        assert isinstance(ev, Event), ev
    # raw UTF-8 on the line, as any JSON writer may put it (the signature is over the
    # canonical form)
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"


@pytest.mark.parametrize("chars", [True, False], ids=["512-chars", "512-bytes"])
@pytest.mark.parametrize("signed", [False, True], ids=["provider-no-key", "member-signed"])
def test_a_line_of_wide_ids_costs_the_slim_ledger_under_the_bound(
    signed: bool, chars: bool
) -> None:
    device = alice()
    join = device.join(T0)
    lines = [join.line()] + [
        _line(device, T0 + 1 + i, i, signed=signed, chars=chars) for i in range(LINES)
    ]
    data = b"".join(lines)
    path = path_for([join], "c")
    for line in lines:  # orjson's key cache filled first, as test_columns does
        decode_json_line(line)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ledger = RoomLedger(ROOM, keep_bodies=False)
        ledger.add_segment(path, data)
        result = ledger.audit({}, complete=True)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_event = kept / len(lines)
    line_bytes = len(data) // len(lines)
    if chars:  # each refused line is named, not kept
        refused = [f for f in result.findings if f.kind is Kind.BAD_SCHEMA]
        assert len(refused) == LINES and len(result.timeline) == 1
    else:
        assert len(result.timeline) + len(result.invalid) == len(lines)
    assert per_event <= BOUND, (
        f"the app's slim ledger keeps {per_event:,.0f} bytes per event of {line_bytes:,}-byte "
        f"lines ({'signed by a member' if signed else 'the provider, no key'}); bound {BOUND:,}"
    )
