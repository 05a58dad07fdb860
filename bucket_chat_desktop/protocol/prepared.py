"""A segment decoded and its signatures checked: what a reader's worker produces.

Apart from ``audit`` on purpose: a worker process (``sync/verifier.py``) imports this
module, the parser and the signature check, and nothing of the audit, its relations or
room state, which are most of the protocol's import time (about 0.1 s of CPU in each
worker process, paid again by every cold read that starts the pool). ``audit`` re-exports
both names, so callers keep importing them from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .segment import DecodedSegment, decode_segment
from .signing import SignatureChecker


@dataclass(slots=True)
class PreparedSegment:
    """A decoded segment with a signature verdict per event: the expensive part of
    reading, done by ``prepare_segment`` on any thread."""

    decoded: DecodedSegment
    verdicts: list[tuple[bool | None, str]]

    @property
    def path(self) -> str:
        return self.decoded.path


def prepare_segment(
    path: str, data: bytes, room_id: str, checker: SignatureChecker | None = None
) -> PreparedSegment:
    """Decode a segment and check every signature. Pure and thread-safe: the sync engine
    runs it on a worker pool (libsodium releases the GIL while it verifies)."""
    decoded = decode_segment(path, data, room_id)
    check = (checker or SignatureChecker()).check
    return PreparedSegment(decoded, [check(loc.event) for loc in decoded.events])
