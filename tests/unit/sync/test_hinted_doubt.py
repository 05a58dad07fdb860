"""What a read on a notice (no listed size) keeps: the object's own bytes, bad lines and
all, but not what looks like an answer that is not the object (``backfill._hinted_doubt``).

Red team: the first rule refused any segment with a finding, so a real message written
with one bad line among good events (a hostile member, a buggy client) was hidden until
the room's next full re-read: up to 4 h with the window in the background, and a listing
of every day of the room each time."""

from __future__ import annotations

import uuid

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import prepare_segment
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.handover import pack
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync.backfill import _hinted_doubt

ROOM = "room-1"
T0 = 1_780_000_000_000


def _segment(*bodies: str) -> tuple[str, bytes]:
    """Alice's join and a message per body, one segment."""
    key, prev, events = SigningKey(b"\x01" * 32), None, []
    drafts = [(MEMBER, {"membership": "join"})]
    drafts += [(MESSAGE, {"body": b, "msgtype": "m.text"}) for b in bodies]
    for n, (kind, content) in enumerate(drafts):
        ev = build_event(
            room_id=ROOM,
            sender_id="alice@example.com",
            event_type=kind,
            content=content,
            timestamp_ms=T0 + 10 * n,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        events.append(ev)
    return path_for(events, "alice-c"), encode_segment(events)


def _doubt(path: str, data: bytes) -> list[str | None]:
    """The doubt of both forms a read comes back in (prepared here, packed by a worker)."""
    got = prepare_segment(path, data, ROOM)
    return [_hinted_doubt(got, len(data)), _hinted_doubt(pack(got), len(data))]


def test_a_bad_line_among_good_events_is_kept() -> None:
    path, data = _segment("real message")
    lines = data.splitlines(keepends=True)
    planted = lines[0] + b"{not json\n" + lines[1]
    assert _doubt(path, planted) == [None, None]
    assert _doubt(path, data) == [None, None]


def test_what_is_not_the_object_is_doubted() -> None:
    path, data = _segment("one", "two")
    lines = data.splitlines(keepends=True)
    page = b"<html><body>Service error</body></html>"
    for body, why in (
        (b"", "holding no event"),
        (page, "holding no event"),
        (data[:-20], "truncated"),  # cut short inside the last line
        (b"".join(lines[:2]), "segment-name-mismatch"),  # cut at a line's end
    ):
        for doubt in _doubt(path, body):
            assert doubt is not None and why in doubt, (body[:40], doubt)
