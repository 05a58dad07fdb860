"""The room audit: signatures, hash chains, key pinning, trust states and display order.

``RoomLedger`` is fed segments (bytes read from storage) in any order and at any time;
``audit()`` then says, for every event, what could be proven about it, and lists every
finding about the room. Only this module decides a trust state: the UI's "verified" badge
comes from here and nowhere else.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .event import MEMBER, Event
from .findings import Finding, Kind, Severity
from .segment import DecodedSegment, Located, decode_segment
from .signing import SignatureChecker

DEVICE_ADD_FIELD = "add_device_key"


class TrustState(enum.StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    KEY_CHANGED = "key-changed"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Assessed:
    """An event with the verdict on it and the sentence that explains the verdict."""

    event: Event
    state: TrustState
    reason: str
    path: str
    line: int


@dataclass(slots=True)
class AuditResult:
    room_id: str
    timeline: list[Assessed]  # shown events, in display order (never invalid ones)
    invalid: list[Assessed]
    findings: list[Finding]
    segments: int
    pending_gaps: int = 0

    @property
    def counts(self) -> dict[TrustState, int]:
        counts = dict.fromkeys(TrustState, 0)
        for item in self.timeline:
            counts[item.state] += 1
        counts[TrustState.INVALID] = len(self.invalid)
        return counts

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def clean(self) -> bool:
        return not self.errors


@dataclass(slots=True)
class _Copy:
    located: Located
    sig_ok: bool | None
    sig_why: str


@dataclass(slots=True)
class _Node:
    copy: _Copy
    depth: int = 0
    eff: tuple[int, str] = (0, "")
    problems: list[str] = field(default_factory=list)


class RoomLedger:
    """Everything read so far about one room, ready to be audited."""

    def __init__(self, room_id: str, checker: SignatureChecker | None = None) -> None:
        self.room_id = room_id
        self.checker = checker or SignatureChecker()
        self._copies: dict[str, list[_Copy]] = {}
        self._seen_paths: set[str] = set()
        self._findings: list[Finding] = []

    @property
    def segment_count(self) -> int:
        return len(self._seen_paths)

    def has_segment(self, path: str) -> bool:
        return path in self._seen_paths

    def add_segment(self, path: str, data: bytes) -> DecodedSegment:
        """Decode, check signatures and keep one segment. Re-adding a path is a no-op."""
        if path in self._seen_paths:
            return DecodedSegment(path)
        decoded = decode_segment(path, data, self.room_id)
        self.add_decoded(decoded)
        return decoded

    def add_decoded(self, decoded: DecodedSegment) -> None:
        """Keep a segment decoded elsewhere (e.g. on a worker thread)."""
        if decoded.path in self._seen_paths:
            return
        self._seen_paths.add(decoded.path)
        self._findings.extend(decoded.findings)
        for located in decoded.events:
            self.add_event(located)

    def add_event(self, located: Located) -> None:
        ev = located.event
        copies = self._copies.setdefault(ev.event_id, [])
        for existing in copies:
            old = existing.located.event
            if old.canonical == ev.canonical and old.signature == ev.signature:
                return  # an identical copy is just de-duplicated
        ok, why = self.checker.check(ev)
        copies.append(_Copy(located, ok, why))

    def add_finding(self, finding: Finding) -> None:
        self._findings.append(finding)

    def audit(self, pinned: Mapping[str, Iterable[str]] | None = None) -> AuditResult:
        """Assess every event. ``pinned`` maps sender ids to keys this device pinned before."""
        findings = list(self._findings)
        invalid: list[Assessed] = []
        chosen: list[_Copy] = []

        for event_id, copies in self._copies.items():
            copies.sort(key=lambda c: (c.located.path, c.located.line))
            good = [c for c in copies if c.sig_ok is not False]
            for bad in (c for c in copies if c.sig_ok is False):
                loc = bad.located
                invalid.append(
                    Assessed(loc.event, TrustState.INVALID, bad.sig_why, loc.path, loc.line)
                )
                findings.append(
                    Finding(
                        Kind.INVALID_SIGNATURE,
                        f"{bad.sig_why}; event not shown",
                        loc.path,
                        loc.line,
                        event_id,
                    )
                )
            if len(copies) > 1:
                first = copies[0].located
                others = ", ".join(f"{c.located.path}:{c.located.line}" for c in copies[1:])
                findings.append(
                    Finding(
                        Kind.REPLAY,
                        f"event id appears {len(copies)} times with different contents "
                        f"(also at {others}); only one copy is shown",
                        first.path,
                        first.line,
                        event_id,
                    )
                )
            if good:
                chosen.append(good[0])

        unsigned = [c for c in chosen if c.sig_ok is None]
        signed = [c for c in chosen if c.sig_ok]
        nodes = self._check_chains(signed, findings, invalid)
        shown = self._order(unsigned, nodes)
        timeline = self._assess(shown, nodes, pinned or {}, findings)
        invalid.sort(key=lambda a: (a.path, a.line))
        return AuditResult(self.room_id, timeline, invalid, findings, self.segment_count)

    # -- chains -------------------------------------------------------------------------

    def _check_chains(
        self, signed: list[_Copy], findings: list[Finding], invalid: list[Assessed]
    ) -> dict[str, _Node]:
        by_key: dict[str, list[_Copy]] = defaultdict(list)
        for copy in signed:
            by_key[copy.located.event.sender_key or ""].append(copy)
        nodes: dict[str, _Node] = {}  # by event_id
        for key, copies in by_key.items():
            copies.sort(key=lambda c: c.located.event.order_key)
            # A key is bound to the sender id of its chain root (its join), else its first event.
            roots = [c for c in copies if c.located.event.prev_event_hash is None]
            bound = (roots[0] if roots else copies[0]).located.event.sender_id
            kept: list[_Copy] = []
            for c in copies:
                ev, loc = c.located.event, c.located
                if ev.sender_id != bound:
                    why = f"signed by the key of {bound!r} but claims to be from {ev.sender_id!r}"
                    invalid.append(Assessed(ev, TrustState.INVALID, why, loc.path, loc.line))
                    findings.append(
                        Finding(Kind.SENDER_MISMATCH, why, loc.path, loc.line, ev.event_id)
                    )
                else:
                    kept.append(c)
            by_hash = {c.located.event.hash: c for c in kept}
            children: dict[str | None, list[_Copy]] = defaultdict(list)
            for c in kept:
                children[c.located.event.prev_event_hash].append(c)
                nodes[c.located.event.event_id] = _Node(c)
            short = key[:12]
            for prev, kids in children.items():
                if len(kids) > 1:
                    where = ", ".join(
                        f"{k.located.event.event_id} ({k.located.path}:{k.located.line})"
                        for k in kids
                    )
                    what = "start a chain" if prev is None else f"follow {prev[:12]}…"
                    first = kids[0].located
                    findings.append(
                        Finding(
                            Kind.FORK,
                            f"fork: {len(kids)} events by {bound!r} (key {short}…) {what}: {where}",
                            first.path,
                            first.line,
                            first.event.event_id,
                        )
                    )
                    for k in kids:
                        nodes[k.located.event.event_id].problems.append("its chain forks here")
                if prev is not None and prev not in by_hash:
                    for k in kids:
                        loc = k.located
                        findings.append(
                            Finding(
                                Kind.GAP,
                                f"gap: the predecessor of this event by {bound!r} "
                                f"(hash {prev[:12]}…) is not in the room: "
                                "a segment is missing, or an event was modified",
                                loc.path,
                                loc.line,
                                loc.event.event_id,
                            )
                        )
                        nodes[loc.event.event_id].problems.append(
                            "its chain predecessor is missing"
                        )
            for c in roots:
                ev = c.located.event
                if ev.event_id in nodes and not (
                    ev.type == MEMBER and ev.content.get("membership") == "join"
                ):
                    findings.append(
                        Finding(
                            Kind.MISSING_JOIN,
                            f"the first event of {bound!r}'s device key {short}… is not a join",
                            c.located.path,
                            c.located.line,
                            ev.event_id,
                        )
                    )
            # Effective order key: never before the chain predecessor.
            for c in sorted(kept, key=lambda c: c.located.event.order_key):
                self._effective(nodes, by_hash, c.located.event.event_id)
        return nodes

    @staticmethod
    def _effective(nodes: dict[str, _Node], by_hash: Mapping[str, _Copy], event_id: str) -> None:
        # Walk up to the nearest computed ancestor iteratively (chains can be long).
        path: list[_Node] = []
        node: _Node | None = nodes[event_id]
        while node is not None and node.eff == (0, ""):
            path.append(node)
            prev = node.copy.located.event.prev_event_hash
            parent = by_hash.get(prev) if prev is not None else None
            node = nodes.get(parent.located.event.event_id) if parent is not None else None
            if node is not None and node in path:  # a hash cycle cannot occur; stay safe
                node = None
        for item in reversed(path):
            ev = item.copy.located.event
            prev = ev.prev_event_hash
            parent = by_hash.get(prev) if prev is not None else None
            pnode = nodes.get(parent.located.event.event_id) if parent is not None else None
            if pnode is not None and pnode.eff != (0, ""):
                item.eff = max(ev.order_key, pnode.eff)
                item.depth = pnode.depth + 1
            else:
                item.eff = ev.order_key
                item.depth = 0

    @staticmethod
    def _order(
        unsigned: list[_Copy], nodes: Mapping[str, _Node]
    ) -> list[tuple[_Copy, _Node | None]]:
        rows: list[tuple[tuple[int, str, int], _Copy, _Node | None]] = []
        for c in unsigned:
            ev = c.located.event
            rows.append(((ev.timestamp_ms, ev.event_id, 0), c, None))
        for node in nodes.values():
            rows.append(((node.eff[0], node.eff[1], node.depth), node.copy, node))
        rows.sort(key=lambda r: r[0])
        return [(c, n) for _, c, n in rows]

    # -- trust ----------------------------------------------------------------------------

    @staticmethod
    def _assess(
        shown: list[tuple[_Copy, _Node | None]],
        nodes: Mapping[str, _Node],
        pinned: Mapping[str, Iterable[str]],
        findings: list[Finding],
    ) -> list[Assessed]:
        authorized: dict[str, set[str]] = {s: set(keys) for s, keys in pinned.items()}
        reported: set[tuple[str, str]] = set()
        out: list[Assessed] = []
        for copy, node in shown:
            loc = copy.located
            ev = loc.event
            if node is None:
                out.append(Assessed(ev, TrustState.UNVERIFIED, copy.sig_why, loc.path, loc.line))
                continue
            key = ev.sender_key or ""
            keys = authorized.setdefault(ev.sender_id, set())
            if not keys:
                keys.add(key)  # trust on first use
            if key not in keys:
                state = TrustState.KEY_CHANGED
                reason = (
                    f"signature good, but {ev.sender_id!r} used another key before and no "
                    "statement from that key introduced this one"
                )
                if (ev.sender_id, key) not in reported:
                    reported.add((ev.sender_id, key))
                    findings.append(
                        Finding(
                            Kind.KEY_CHANGED,
                            f"{ev.sender_id!r} now signs with key {key[:12]}…, which no earlier "
                            "key of theirs introduced",
                            loc.path,
                            loc.line,
                            ev.event_id,
                        )
                    )
            elif node.problems:
                state = TrustState.UNVERIFIED
                reason = "signature good, but " + " and ".join(node.problems)
            else:
                state = TrustState.VERIFIED
                reason = "signature good, chain intact, key pinned for this sender"
                added = ev.content.get(DEVICE_ADD_FIELD) if ev.type == MEMBER else None
                if isinstance(added, str):
                    keys.add(added)
            out.append(Assessed(ev, state, reason, loc.path, loc.line))
        return out
