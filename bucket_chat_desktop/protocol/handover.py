"""A prepared segment handed from a worker process to the reader that keeps it.

A cold read decodes and verifies segments in worker processes (``sync/verifier.py``):
on every core, without the interpreter lock of the process that keeps the room. Pickling
the decoded ``Event`` tuples back cost more than decoding them (about 13 µs an event of
the 50 the whole read costs), so a worker sends what the parser established in a compact
form instead: per event its line as stored, its hash and its signature verdict, and the
segment's findings. ``unpack`` turns that back into the ``PreparedSegment`` the worker
had, decoding each line with the function the worker's parser decoded it with
(``event.decode_json_line``: orjson where it agrees with ``json``, else ``json``), which
gives the same value for the same bytes; nothing is validated a second way, and what is
not an event the worker accepted cannot come back as one (``unpack`` refuses anything
that is not the shape the worker's parser produced). The engine unpacks on its state
thread as it keeps a slice of segments (``sync/keeper.py``), so the packed form, smaller
than the events, is what waits in a back-fill's run-ahead.

The one difference, on purpose: an unpacked ``Event`` carries no canonical bytes
(``canonical == b""``). They exist to be verified, which the worker did; the ledger drops
them anyway once a verdict is known (``audit._Copy``).
``tests/fuzz/test_handover_agreement.py`` proves on every test vector and on generated
valid and hostile lines that ``unpack(pack(prepare_segment(...)))`` equals
``prepare_segment(...)`` in everything else: events field by field (the raw mapping's key
order too), lines, findings, verdicts.
"""

from __future__ import annotations

from typing import Any

from .event import Event, Malformed, decode_json_line, event_of_hash
from .findings import Finding
from .prepared import PreparedSegment, prepare_segment
from .segment import DecodedSegment, Located
from .signing import SignatureChecker

# (line number, line as stored, event hash, signature verdict, why)
PackedEvent = tuple[int, bytes, str, bool | None, str]
# (path, events, findings)
PackedSegment = tuple[str, list[PackedEvent], list[Finding]]


class HandoverError(ValueError):
    """What came back from a worker is not what ``pack`` makes (a bug, never input)."""


def pack(prepared: PreparedSegment) -> PackedSegment:
    decoded = prepared.decoded
    return (
        decoded.path,
        [
            (loc.line, line, loc.event.hash, ok, why)
            for loc, line, (ok, why) in zip(
                decoded.events, decoded.lines, prepared.verdicts, strict=True
            )
        ],
        list(decoded.findings),
    )


_checker = SignatureChecker()
MAX_CACHED_KEYS = 4096  # a worker's cache of parsed public keys; emptied when fuller


def prepare_packed(path: str, data: bytes, room_id: str) -> PackedSegment:
    """``pack(prepare_segment(path, data, room_id))``: what a worker process runs. The
    worker keeps its parsed public keys from one segment to the next (bounded: a room
    can name any number of keys)."""
    global _checker
    if _checker.cached_keys > MAX_CACHED_KEYS:
        _checker = SignatureChecker()
    return pack(prepare_segment(path, data, room_id, _checker))


def unpack(packed: PackedSegment, room_id: str) -> PreparedSegment:
    """The ``PreparedSegment`` a worker packed (events without canonical bytes)."""
    path, rows, findings = packed
    events: list[Located] = []
    lines: list[bytes] = []
    verdicts: list[tuple[bool | None, str]] = []
    for number, line, event_hash, ok, why in rows:
        events.append(Located(_rebuilt(line, room_id, event_hash), path, number))
        lines.append(line)
        verdicts.append((ok, why))
    return PreparedSegment(DecodedSegment(path, events, list(findings), lines), verdicts)


def _rebuilt(line: bytes, room_id: str, event_hash: str) -> Event:
    obj: Any = decode_json_line(line)
    if isinstance(obj, Malformed):
        raise HandoverError(f"not an event the worker's parser accepted: {obj.reason}")
    try:
        signature = obj.pop("signature")
        # parse_event takes the signature out to canonicalise and puts it back: last.
        obj["signature"] = signature
        event = event_of_hash(obj, event_hash)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise HandoverError(f"not an event the worker's parser accepted: {exc!r}") from exc
    if event.room_id != room_id:
        raise HandoverError("an event of another room came back from a worker")
    return event
