"""One room's audit as the dialog shows it, and the same audit as ``bucket-chat verify``
prints it (`report_text`). No Qt: this is the data the dialog and its tests read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ...protocol.audit import AuditResult
from ...protocol.findings import Finding, Severity, vanished_only
from ...protocol.metadata import (
    UNUSABLE_TITLE,
    RoomMetadata,
    Signer,
    check_signer,
    signer_text,
    unusable,
)
from ...protocol.untrusted_text import (
    RoomIds,
    display_name_safe,
    id_warning,
    shown_id,
    terminal_safe,
)

TITLE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class AuditView:
    """One room's audit as shown: the engine's result plus the metadata findings, which
    the engine keeps apart and ``verify`` lists first."""

    room_id: str
    result: AuditResult
    metadata: RoomMetadata | None = None
    metadata_findings: Sequence[Finding] = ()
    complete: bool = True
    storage_name: str = ""
    # Part of the history could not be read (a segment unreadable, vanished or changed,
    # a listing that failed): what is shown is what could be read, no verdict is final.
    partial: bool = False
    # The room's sender ids (``Names.lookalikes``): a creator id that looks like one of
    # them is marked (None: the id is checked alone).
    ids: RoomIds | None = None

    @property
    def signer(self) -> tuple[Signer, list[Finding]]:
        """Who signed the metadata, as far as this audit knows (PROTOCOL.md section 10)."""
        if self.metadata is None:
            return Signer.UNSIGNED, []
        return check_signer(self.metadata, self.result.authorized)

    @property
    def findings(self) -> list[Finding]:
        return [*self.metadata_findings, *self.signer[1], *self.result.findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def notices(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.NOTICE]

    @property
    def clean(self) -> bool:
        return not self.errors

    @property
    def total_events(self) -> int:
        return len(self.result.timeline) + len(self.result.invalid)

    @property
    def title(self) -> str:
        """As ``verify`` prints it after "Room <id>: "."""
        meta = self.metadata
        if unusable(self.room_id, meta, self.metadata_findings):
            return f"{self.room_id} ({UNUSABLE_TITLE})"
        if meta is None:
            return f"{self.room_id} (no metadata)"
        return f"{self.name} ({self.signer_phrase})"

    @property
    def signer_phrase(self) -> str:
        """Who signed the metadata (``signer_text``), with the creator id as it is shown:
        the check itself uses the real id."""
        if self.metadata is None:
            return ""
        shown = dataclasses.replace(
            self.metadata, creator_id=shown_id(self.metadata.creator_id or "?")
        )
        return signer_text(shown, self.signer[0])

    @property
    def creator_warning(self) -> str | None:
        """Why the metadata's creator id may imitate another (a sender of the room, with
        ``ids``), or None."""
        creator = self.metadata.creator_id if self.metadata is not None else None
        if not creator:
            return None
        return self.ids.warning(creator) if self.ids is not None else id_warning(creator)

    @property
    def name(self) -> str:
        """The room's name cleaned for display (it is read from storage)."""
        raw = self.metadata.name if self.metadata else None
        return display_name_safe(raw, TITLE_LIMIT) or self.room_id


def report_text(view: AuditView) -> str:
    """The text ``bucket-chat verify`` prints for this audit (plus a line when older
    history is still loading)."""
    result = view.result
    counts = result.counts
    lines = [
        f"Room {view.room_id}: {view.title}",
        f"{view.total_events:,} events in {result.segments:,} segments",
    ]
    if not view.complete:
        lines.append("(still loading older history: this covers what was read so far)")
    lines.extend(f"  {state.value:12} {n:>8,}" for state, n in counts.items())
    findings = view.findings
    if findings:
        lines.append(f"Findings ({len(findings)}):")
        for f in findings:
            head = f"  {f.severity.value.upper():6} {f.kind.value:22} {terminal_safe(f.where())}"
            lines.append(f"{head}\n         {terminal_safe(f.message)}")
    if view.clean:
        extra = f" ({len(findings)} notice(s))" if findings else ""
        lines.append(f"CLEAN: every signature and chain checks out{extra}.")
    else:
        lines.append(f"NOT CLEAN: {len(view.errors)} finding(s) need attention.")
    return "\n".join(lines) + "\n"


def checked_text(view: AuditView) -> str:
    result = view.result
    shown_signed = result.timeline.signed_count()
    signed = shown_signed + len(result.invalid)
    unsigned = len(result.timeline) - shown_signed
    parts = [
        f"Every signature ({signed:,}) checked with Ed25519; a message whose signature fails "
        "is never shown.",
        "Every chain link followed: each event names the SHA-256 hash of its device's "
        "previous one, so a removed, reordered or edited event breaks the chain.",
        "Every key matched against the keys pinned for its sender on this computer.",
        f"Every line of {result.segments:,} segment(s) parsed strictly."
        + (
            (
                " Some segments are no longer in storage as they were read: the findings name them."
                if vanished_only(result.findings)
                else " Some segments could not be read: the findings name them."
            )
            if view.partial
            else ""
        ),
    ]
    if unsigned:
        parts.append(
            f"{unsigned:,} event(s) carry no key (an older app wrote them): they are shown "
            "as unverified."
        )
    return " ".join(parts)
