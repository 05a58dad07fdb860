"""One device's hash chain in a room (PROTOCOL.md section 6): which of its events is the
chain's head, and how the next events continue it.

Pure and written once. The outbox signs every send of the app and the CLI with
``continue_chain``; the direct writer that creates rooms uses it too. ``chain_head`` picks
the head wherever this device's events were found: in the engine's verified read of the
room, in the index's verified rows, or in the segments read from storage by a device that
never read the room.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from .audit import (
    HOLD_AHEAD_MS,
    PreparedSegment,
    RoomLedger,
    first_confirmed,
    offered_introductions,
)
from .event import MEMBER, Event
from .signing import build_event

# event type, content, and optionally the parent event id (a reply, PROTOCOL.md 18.2)
Draft = tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str | None]


def chain_head(own: Iterable[Event]) -> tuple[Event | None, int]:
    """The newest of ``own`` that no other of them continues, and how many such heads there
    are (more than one: the chain forked; the newest is continued).

    ``own`` must be one device's events *whose signature by that device's key checked*,
    found wherever they are stored: segment names are not signed, and a storage that
    moved the device's newest segment under another name must not hide it (continuing an
    older event would fork the chain). An event with a bad signature is anyone's forgery:
    continuing it would hang the device's next events on it."""
    # One event stored twice (a copied segment, a retried write) is one event, not a
    # second head: the hash covers every signed byte.
    mine = list({e.hash: e for e in own}.values())
    referenced = {e.prev_event_hash for e in mine}
    heads = [e for e in mine if e.hash not in referenced]
    return (max(heads, key=lambda e: e.order_key) if heads else None), len(heads)


@dataclass(frozen=True, slots=True)
class OwnChain:
    """What a room's segments say about one device of a user: its chain's head (None: it
    never wrote there) and the number of heads; for a device that never wrote, the
    introductions of its key by the user's other devices (``offered``, PROTOCOL.md
    section 7) and the first of them by a key the person confirmed (``introduced_by``:
    the device's first join accepts it)."""

    head: Event | None
    heads: int
    introduced_by: str | None = None
    offered: tuple[str, ...] = ()


def own_chain(
    segments: Sequence[PreparedSegment],
    *,
    room_id: str,
    user_id: str,
    key_text: str,
    confirmed: Collection[str] = (),
    now_ms: int | None,
) -> OwnChain:
    """This device's chain from every segment of the room as decoded and checked once
    (``prepare_segment``): all segments count, whatever their names; only events whose
    signature by ``key_text`` checked (the verifier's verdict) are this device's.

    ``now_ms``: the reader's clock, as for ``RoomLedger.audit``. An introduction dated
    more than ``HOLD_AHEAD_MS`` after it is held back by every reader (section 9), so it
    is neither offered nor accepted until its time comes: offered at once, a member could
    time a fake offer. The head is found among all of this device's events, held or not
    (continuing an older one would fork the chain). None: nothing is held (tests)."""
    mine = (
        loc.event
        for seg in segments
        for loc, (ok, _) in zip(seg.decoded.events, seg.verdicts, strict=True)
        if ok and loc.event.sender_key == key_text
    )
    head, heads = chain_head(mine)
    if head is not None or not segments:
        return OwnChain(head, heads)
    ledger = RoomLedger(room_id)
    for seg in segments:
        ledger.add_prepared(seg)
    shown = [(a.event, a.state) for a in ledger.audit(now_ms=now_ms).timeline]
    offered = offered_introductions(shown, user_id, key_text)
    return OwnChain(None, 0, first_confirmed(offered, confirmed), tuple(offered))


def is_join(draft: Draft) -> bool:
    return draft[0] == MEMBER and draft[1].get("membership") == "join"


def continue_chain(
    head: Event | None,
    drafts: Sequence[Draft],
    *,
    room_id: str,
    sender_id: str,
    signing_key: SigningKey,
    timestamp_ms: int,
    unique: Callable[[], str],
    join: Mapping[str, Any] | None = None,
    witness: Mapping[str, str] | None = None,
) -> list[Event]:
    """Sign ``drafts`` as the events that follow ``head`` (None: the device never wrote in
    the room), each linked to the one before.

    A device's first event in a room is its join: without a head, and unless the first
    draft is a join, one is put first, with ``join`` as its content (default: a plain
    join). No event is stamped before the head (a clock that went backwards still moves
    the chain forward), unless the head is dated more than ``HOLD_AHEAD_MS`` after
    ``timestamp_ms``: readers hold such a head back (PROTOCOL.md section 9), and events
    stamped at its date would be held with it, the device's every later message hidden
    from everyone until then because its clock was once set ahead. ``witness`` goes into
    the first event only."""
    todo = list(drafts)
    if head is None and not (todo and is_join(todo[0])):
        todo.insert(0, (MEMBER, dict(join) if join is not None else {"membership": "join"}))
    events: list[Event] = []
    for draft in todo:
        event_type, content = draft[0], draft[1]
        ev = build_event(
            room_id=room_id,
            sender_id=sender_id,
            event_type=event_type,
            content=content,
            timestamp_ms=_stamp(timestamp_ms, head),
            unique=unique(),
            prev_event_hash=head.hash if head else None,
            signing_key=signing_key,
            witness=witness if not events else None,
            parent_event_id=draft[2] if len(draft) > 2 else None,
        )
        events.append(ev)
        head = ev
    return events


def _stamp(clock_ms: int, head: Event | None) -> int:
    """The date of the event after ``head`` by a clock at ``clock_ms`` (see
    ``continue_chain``): the head's date when the clock is behind it, except by more than
    ``HOLD_AHEAD_MS``."""
    if head is None or head.timestamp_ms > clock_ms + HOLD_AHEAD_MS:
        return clock_ms
    return max(clock_ms, head.timestamp_ms)
