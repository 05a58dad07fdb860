"""Findings: what a reader reports about hostile or broken input.

Parsing never raises into the caller: a bad line becomes a ``Finding`` that names the
object and line it came from, and the good events around it are kept.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"  # the history is not clean: verify exits non-zero
    NOTICE = "notice"  # worth knowing, not a sign of tampering


class Kind(enum.StrEnum):
    # line level
    LINE_TOO_LONG = "line-too-long"
    BAD_ENCODING = "bad-encoding"
    BAD_JSON = "bad-json"
    TOO_DEEP = "too-deep"
    TOO_DENSE = "too-dense"
    FLOAT = "float-not-allowed"
    BAD_SCHEMA = "bad-schema"
    WRONG_ROOM = "wrong-room"
    TRUNCATED = "truncated"
    # segment level
    SEGMENT_NAME_MISMATCH = "segment-name-mismatch"
    SEGMENT_TOO_LARGE = "segment-too-large"
    SEGMENT_ABANDONED = "segment-abandoned"
    SEGMENT_UNREADABLE = "segment-unreadable"
    # read and checked here before, no longer in storage as read (removed, replaced,
    # rewritten): its events stay shown as checked; the verdict is not final
    SEGMENT_VANISHED = "segment-vanished"
    UNEXPECTED_OBJECT = "unexpected-object"
    EMPTY_SEGMENT = "empty-segment"
    # event and room level
    INVALID_SIGNATURE = "invalid-signature"
    SENDER_MISMATCH = "sender-mismatch"
    GAP = "gap"
    FORK = "fork"
    REPLAY = "replay"
    KEY_CHANGED = "key-changed"
    KEY_CONFLICT = "key-conflict"
    IMPERSONATION = "impersonation"
    TRUNCATED_CHAIN = "truncated-chain"
    MISSING_JOIN = "missing-join"
    DATED_AHEAD = "dated-ahead"
    # an event dated before another device's witness that had not read it yet (section 6.1)
    DATED_BEFORE_WITNESS = "dated-before-witness"
    # reading
    UNREAD = "unread"
    # this reader stopped reading the room on a fault of its own (a bug): not final
    READ_STOPPED = "read-stopped"
    # room metadata
    METADATA_MISSING = "metadata-missing"
    METADATA_UNSIGNED = "metadata-unsigned"
    METADATA_INVALID = "metadata-invalid"
    METADATA_SIGNER_UNKNOWN = "metadata-signer-unknown"
    # read and used here before, now other, gone or unusable: the first is kept
    METADATA_CHANGED = "metadata-changed"
    # attachments
    BLOB_MISMATCH = "blob-mismatch"
    # relations (PROTOCOL.md section 17)
    RELATION_INVALID = "relation-invalid"
    RELATION_CROSS_ROOM = "relation-cross-room"
    RELATION_NOT_SENDER = "relation-not-sender"


_NOTICES = {
    Kind.UNEXPECTED_OBJECT,
    Kind.MISSING_JOIN,
    Kind.DATED_AHEAD,
    Kind.DATED_BEFORE_WITNESS,
    Kind.METADATA_UNSIGNED,
    Kind.METADATA_MISSING,
    Kind.EMPTY_SEGMENT,
}


# Findings about the room's metadata (its name and creator), not about its messages.
METADATA_KINDS = frozenset(
    {
        Kind.METADATA_MISSING,
        Kind.METADATA_UNSIGNED,
        Kind.METADATA_INVALID,
        Kind.METADATA_SIGNER_UNKNOWN,
        Kind.METADATA_CHANGED,
    }
)


# Findings that say part of the history was not read (a read failed or was refused):
# nothing read later can be vouched for until it is.
NOT_READ = frozenset(
    {
        Kind.UNREAD,
        Kind.READ_STOPPED,
        Kind.SEGMENT_UNREADABLE,
        Kind.SEGMENT_TOO_LARGE,
        Kind.SEGMENT_ABANDONED,
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    message: str
    path: str | None = None
    line: int | None = None
    event_id: str | None = None

    @property
    def severity(self) -> Severity:
        return Severity.NOTICE if self.kind in _NOTICES else Severity.ERROR

    def where(self) -> str:
        if self.path is None:
            return "room"
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "event_id": self.event_id,
        }


def vanished_only(findings: Iterable[Finding]) -> bool:
    """Whether what keeps a room's verdict from being final is only segments read and
    checked on this device that storage no longer holds as read (``SEGMENT_VANISHED``:
    removed or rewritten), not a read that failed. Front ends and exports say so in
    those words, not "could not be read"."""
    kinds = {f.kind for f in findings}
    return Kind.SEGMENT_VANISHED in kinds and not kinds & NOT_READ
