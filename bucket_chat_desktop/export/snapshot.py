"""What an export reads: a frozen snapshot of one room and the verdict on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..protocol.audit import AuditResult
from ..protocol.findings import Finding, Severity
from ..protocol.metadata import check_signer
from ..protocol.relations import Edit, Redacted, Relations, build
from ..protocol.room_state import DisplayNames
from ..sync.room_state import RoomView
from ..timestamps import LateArrival, LateCopy, change_copy, late_copy

# What both formats say on a message whose id another device signed too, and the JSONL
# on a relation naming such an id (PROTOCOL.md 18.1: the id takes no relations).
REPEATED_ID = (
    "Another device signed a message under this id too (see the findings): edits, a "
    "deletion and reactions of it are not shown."
)


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """One audit of a room as an export writes it. ``findings``: the metadata's, the
    signer check's, the audit's and the relation rules' (the same list ``verify``
    reports, plus the relations). ``complete``: the whole history was read (else the
    export says that nothing in it is final). ``vanished``: not complete only because
    segments read and checked here are no longer in storage as read (removed or
    rewritten), not because a read failed: the export says that instead.
    ``doubted``: (sender id, key) -> why rows signed so are marked although this room
    trusts that key: another room of the storage does not (``doubted_elsewhere_note``,
    the timeline's sentence). The app knows every room it shows; the command line reads
    one room and gives none (docs/SECURITY.md).
    ``late``: copy (``late_copy``) -> when a message, an edit or a deletion arrived long
    after the date it bears, as the app's row says it ("Arrived …, dated …: sent or
    delivered long after its date"). Only the app knows, for what it read while it ran
    (docs/EXPORT.md); the command line gives none."""

    room_id: str
    name: str | None  # the metadata's name, untrusted (None: no metadata read)
    storage: str  # where the room is (``Storage.describe``)
    result: AuditResult
    relations: Relations
    findings: tuple[Finding, ...]
    complete: bool = True
    vanished: bool = False
    doubted: Mapping[tuple[str, str], str] = field(default_factory=lambda: MappingProxyType({}))
    # Keys a member's statement named as theirs that write as another id in the room
    # (``Names.claims``): such a statement says "names bob@…'s key as theirs", never
    # "added a device" (``statement_claim``).
    claims: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    late: Mapping[LateCopy, LateArrival] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def total(self) -> int:
        return len(self.result.timeline)

    @property
    def counts(self) -> dict[str, int]:
        """Events per trust state (``invalid``: events the audit could not show)."""
        return {state.value: n for state, n in self.result.counts.items()}

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def clean(self) -> bool:
        return not self.errors

    def finding_kinds(self) -> list[tuple[str, str, int]]:
        """(kind, severity, count), errors first, then by kind."""
        counts = Counter((f.kind.value, f.severity.value) for f in self.findings)
        return sorted(
            ((k, s, n) for (k, s), n in counts.items()),
            key=lambda t: (t[1] != Severity.ERROR.value, t[0]),
        )

    def names(self) -> DisplayNames:
        """Display names under the protocol's rule, and the room's ids (look-alikes).
        Folded over the timeline's verdicts: member events keep their content in every
        ledger, bodies are not needed."""
        names = DisplayNames()
        names.update(self.result.timeline)
        return names

    def doubt(self, sender_id: str, key: str | None) -> str | None:
        """Why a row by ``sender_id`` signed with ``key`` is marked (``doubted``), or None."""
        return self.doubted.get((sender_id, key)) if key else None

    def late_of(self, event_id: str, path: str, line: int) -> LateArrival | None:
        """The late arrival of the copy of ``event_id`` read at (``path``, ``line``), or
        None: only that copy's row says it (another's message under its id does not)."""
        return self.late.get(late_copy(event_id, path, line))

    def late_change(self, change: Edit | Redacted) -> LateArrival | None:
        """The late arrival of an applied edit or deletion, by the copy applied, or None."""
        copy = change_copy(change.event_id, change.path, change.line)
        return self.late.get(copy) if copy is not None else None

    def late_note(self, event_id: str, path: str, line: int) -> str | None:
        """What an export says below a message that arrived long after its date (the
        row's sentence, its times with their UTC offset), or None."""
        late = self.late_of(event_id, path, line)
        return late.note_with_zone() if late is not None else None


def snapshot_of(
    view: RoomView,
    storage: str,
    doubted: Mapping[tuple[str, str], str] | None = None,
    late: Mapping[LateCopy, LateArrival] | None = None,
) -> RoomSnapshot:
    """The snapshot of an engine's ``RoomView`` (CLI and app alike). ``doubted``: the
    app's sentences for the keys another room doubts (``RoomSnapshot.doubted``);
    ``late``: the messages its rows say arrived long after their date
    (``RoomSnapshot.late``); both copied: the export reads them on another thread.
    Raises ValueError for a view without an audit (nothing read yet)."""
    result = view.result
    if result is None:
        raise ValueError(f"room {view.room_id!r} has not been read yet: nothing to export")
    relations = view.relations if view.relations is not None else build(view.room_id, [])
    signer = check_signer(view.metadata, result.authorized)[1] if view.metadata else []
    findings = (*view.metadata_findings, *signer, *result.findings, *relations.findings)
    return RoomSnapshot(
        room_id=view.room_id,
        name=view.metadata.name if view.metadata is not None else None,
        storage=storage,
        result=result,
        relations=relations,
        findings=tuple(findings),
        complete=view.complete and not view.partial,
        # From the room's state at the view's moment, as ``partial`` is: the audit's
        # findings may be older (an audit put off), and a read that failed since must
        # not be called a removal, nor the reverse.
        vanished=view.complete and view.partial and view.vanished,
        doubted=MappingProxyType(dict(doubted or {})),
        late=MappingProxyType(dict(late or {})),
        claims=view.roster.names.claims if view.roster is not None else MappingProxyType({}),
    )
