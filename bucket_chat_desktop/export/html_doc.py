"""The HTML export: one page a browser shows without a script or a remote resource.

``HtmlWriter`` writes to a binary file a page of rows at a time (``begin``, ``page``
for each page, ``end``): the room is never one string in memory. Every string read from
storage goes through ``html_escape`` (bodies through ``body.body_html``), display names
through the room's display-name rule and ``display_name_safe`` (shown in ``<bdi>`` next
to the real id, spelled out by ``shown_id``, and marked "look-alike id" wherever a
sender is named: rows, quotes, reactors), and every message carries a visible trust
badge; what is not verified says so in words as well as in colour.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from .. import __version__, timestamps
from ..protocol.attachments import is_file_message, message_text, parse_file_content
from ..protocol.audit import Assessed
from ..protocol.event import MEMBER, MESSAGE, Event, Malformed
from ..protocol.relations import EDIT, HIDDEN_TYPES, REDACTION, Aggregate, Edit, ReactionChip
from ..protocol.room_state import DisplayNames, membership_text, statement_claim
from ..protocol.untrusted_text import html_escape, lookalike_texts, one_line, shown_id
from ..sync.blobs import human_size
from ..sync.events import ShownEvent
from .body import body_html
from .snapshot import REPEATED_ID, RoomSnapshot

QUOTE_CHARS = 240  # of a quoted parent's text
QUOTES_KEPT = 5_000  # recent messages whose quote is kept for replies to them
WHO_KEPT = 10_000  # senders whose name, id and look-alike mark are rendered once
SPELLED = 16  # code points spelled out of a reaction chip that looks like another
LOOKALIKE_CHIP = "looks like another reaction here, written differently"

BADGES = {
    "verified": ("✓ verified", "The signature checks out and the key is the sender's."),
    "unverified": ("UNVERIFIED", "Not verified: read the reason below the message."),
    "key-changed": ("KEY CHANGED", "Signed with a key nobody introduced for this sender."),
    "invalid": ("INVALID", "The audit could not accept this event."),
}

CSP = (
    "default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

STYLE = """
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1d2330; --muted: #5f6b7a;
  --line: #e3e7ee; --card: #f6f8fb; --ok: #207a48; --warn: #a35a00; --bad: #b3261e;
  --link: #1a5fb4; --chip: #eef2f7; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #16191f; --fg: #e6e9ef; --muted: #9aa4b2; --line: #2b313b;
    --card: #1e232b; --ok: #5cc38a; --warn: #f0a64a; --bad: #ff7b72; --link: #8ab4f8;
    --chip: #262c36; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 900px; margin: 0 auto; padding: 16px 20px; }
header { border-bottom: 1px solid var(--line); }
h1 { font-size: 1.5em; margin: 0 0 4px; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.verdict { padding: 8px 12px; border-radius: 6px; margin: 10px 0; border: 1px solid; }
.verdict.clean { color: var(--ok); border-color: var(--ok); }
.verdict.findings, .verdict.partial { color: var(--bad); border-color: var(--bad); }
.verdict ul { margin: 4px 0 0; }
ol.timeline { list-style: none; margin: 0; padding: 0; }
ol.timeline > li { padding: 8px 10px; border-bottom: 1px solid var(--line); }
li.msg.t-unverified, li.msg.t-key-changed, li.msg.t-invalid { border-left: 4px solid var(--bad); }
li.notice { color: var(--muted); font-size: 0.92em; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 8px; align-items: baseline; }
.name { font-weight: 600; }
.uid { color: var(--muted); font-size: 0.88em; overflow-wrap: anywhere; }
time { color: var(--muted); font-size: 0.85em; }
.badge { font-size: 0.75em; font-weight: 700; padding: 1px 6px; border-radius: 4px;
  border: 1px solid; white-space: nowrap; }
.b-verified { color: var(--ok); border-color: var(--ok); }
.b-unverified, .b-key-changed, .b-invalid { color: #fff; background: var(--bad);
  border-color: var(--bad); }
.lookalike { color: var(--warn); font-size: 0.85em; font-weight: 600; }
li.doubted, li.late { border-left: 4px solid var(--warn); }
.doubt { color: var(--warn); }
.edited { color: var(--muted); font-size: 0.85em; font-style: italic; }
.body { unicode-bidi: isolate; overflow-wrap: anywhere; margin-top: 2px; }
.body p { margin: 4px 0; }
.body pre { background: var(--card); padding: 8px; white-space: pre-wrap; }
.plain { white-space: pre-wrap; }
.note, .why { color: var(--muted); font-size: 0.85em; font-style: italic; margin: 2px 0; }
.why { color: var(--bad); }
.why.late, .why.doubt { color: var(--warn); }
.deleted { color: var(--muted); font-style: italic; }
blockquote.quote { margin: 4px 0; padding: 4px 10px; border-left: 3px solid var(--line);
  background: var(--card); color: var(--muted); font-size: 0.9em; unicode-bidi: isolate; }
a { color: var(--link); }
.dest { color: var(--muted); font-size: 0.85em; }
details.versions { margin-top: 4px; font-size: 0.9em; }
details.versions li { margin: 4px 0; }
.reactions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.chip { background: var(--chip); border: 1px solid var(--line); border-radius: 12px;
  padding: 1px 8px; font-size: 0.88em; }
.chip.unverified { border-color: var(--bad); }
.chip .who { color: var(--muted); }
.chip .who .bad { color: var(--bad); font-weight: 600; }
.thread { color: var(--muted); font-size: 0.85em; }
.attachment { margin-top: 4px; padding: 6px 8px; background: var(--card); border-radius: 6px; }
.attachment img { display: block; max-width: 100%; max-height: 480px; margin-top: 4px; }
.attachment.missing { color: var(--bad); }
footer { color: var(--muted); font-size: 0.85em; }
"""


@dataclass(frozen=True, slots=True)
class Attachment:
    """What became of one message's file: ``href`` (relative URL) when it was copied,
    else ``problem`` says why not."""

    name: str
    size: int
    href: str | None = None
    image: bool = False  # shown inline (a raster image, by its bytes)
    risky: bool = False  # copied, but not linked: opening it could run code
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    sender_id: str
    text: str
    state: str
    # the text is an edit's: maybe not the one a reply to it answered
    edited: bool = False


def _badge(state: str, reason: str = "") -> str:
    label, title = BADGES.get(state, (state.upper(), ""))
    tip = html_escape(reason or title)
    return f'<span class="badge b-{html_escape(state)}" title="{tip}">{html_escape(label)}</span>'


def _doubt_mark(doubt: str | None) -> str:
    """The ⚠ after a sender whose key another room does not trust for them (its
    sentence as the tip; ``_doubt_note`` says it on the page)."""
    if not doubt:
        return ""
    return f' <span class="lookalike" title="{html_escape(doubt)}">⚠ key doubted elsewhere</span>'


def _doubt_note(doubt: str | None) -> str:
    if not doubt:
        return ""
    return f'<p class="why doubt">⚠ {html_escape(doubt[:1].upper() + doubt[1:])}.</p>'


def _late_note(late: str | None) -> str:
    """The sentence the app's row shows under a message that arrived long after its
    date (``RoomSnapshot.late_note``): the date is its sender's word, and the app that
    made the export first read it long after (a member's new words dated weeks back)."""
    if not late:
        return ""
    return f'<p class="why late">⚠ {html_escape(late)}.</p>'


def _time(ts: int) -> str:
    stamp = timestamps.iso(ts)
    attr = f' datetime="{html_escape(stamp)}"' if stamp else ""
    return f"<time{attr}>{html_escape(timestamps.with_zone(ts))}</time>"


def row_anchor(position: int) -> str:
    return f"e{position}"


class HtmlWriter:
    """Writes one room's HTML export to ``out`` (binary). Not thread-safe: the runner
    calls one method at a time (from a worker thread)."""

    def __init__(
        self,
        snapshot: RoomSnapshot,
        out: BinaryIO,
        *,
        exported_at: float | None = None,
    ) -> None:
        self.snap = snapshot
        self.out = out
        self.exported_at = time.time() if exported_at is None else exported_at
        self.names: DisplayNames = snapshot.names()
        self.rel = snapshot.relations
        self._quotes: OrderedDict[str, Quote] = OrderedDict()
        self._who_cache: dict[str, str] = {}  # sender id -> how the page names them
        self._short_cache: dict[str, str] = {}  # ... and inside a line (``_short_who``)
        self.written = 0  # rows shown as a message or a notice
        self.damaged = 0
        self.late = 0  # messages written with a late-arrival note (``RoomSnapshot.late``)
        # Edits and deletions the app saw arrive late (every copy noted, applied or not, as
        # the JSONL counts its lines): the rows say so of those they show.
        self.late_changes = 0

    # -- who ---------------------------------------------------------------------------------

    def _who(self, sender_id: str) -> str:
        got = self._who_cache.get(sender_id)
        if got is None:
            got = self._who_text(sender_id)
            if len(self._who_cache) < WHO_KEPT:
                self._who_cache[sender_id] = got
        return got

    def _who_text(self, sender_id: str) -> str:
        name = self.names.name(sender_id)
        parts = []
        if name:
            parts.append(f'<span class="name"><bdi>{html_escape(name)}</bdi></span>')
        parts.append(f'<span class="uid">{html_escape(shown_id(sender_id))}</span>')
        mark = self._lookalike(sender_id)
        if mark:
            parts.append(mark)
        return " ".join(parts)

    def _lookalike(self, sender_id: str) -> str:
        warning = self.names.warning(sender_id)
        if not warning:
            return ""
        return f'<span class="lookalike" title="{html_escape(warning)}">⚠ look-alike id</span>'

    def _short_who(self, sender_id: str) -> str:
        """A sender inside a line (a quote, a reactor, an emote): name and id, with the
        look-alike mark of their rows (``_who``)."""
        got = self._short_cache.get(sender_id)
        if got is None:
            name = self.names.name(sender_id)
            uid = html_escape(shown_id(sender_id))
            got = f"<bdi>{html_escape(name)}</bdi> ({uid})" if name else uid
            mark = self._lookalike(sender_id)
            got = f"{got} {mark}" if mark else got
            if len(self._short_cache) < WHO_KEPT:
                self._short_cache[sender_id] = got
        return got

    # -- the page ------------------------------------------------------------------------------

    def _write(self, parts: Iterable[str]) -> None:
        self.out.write("".join(parts).encode("utf-8", "backslashreplace"))

    def begin(self) -> None:
        s = self.snap
        title = one_line(s.name, 200) if s.name else ""
        shown_title = title or s.room_id
        facts = [
            ("Room id", html_escape(shown_id(s.room_id))),
            ("Storage", html_escape(one_line(s.storage, 300))),
            ("Exported", html_escape(timestamps.with_zone(int(self.exported_at * 1000)))),
            (
                "Events",
                f"{s.total:,} ({s.relations.shown_count(s.total):,} messages and notices; "
                "reactions, edits and deletions are shown on the messages they concern)",
            ),
        ]
        counts = ", ".join(
            f"{n:,} {html_escape(state)}"
            for state, n in s.counts.items()
            if n or state != "invalid"
        )
        facts.append(("Trust", counts))
        head = [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
            '<meta name="referrer" content="no-referrer">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f'<meta name="generator" content="Bucket Chat {html_escape(__version__)}">\n',
            f"<title>{html_escape(shown_title)} — Bucket Chat export</title>\n",
            f"<style>{STYLE}</style>\n</head>\n<body>\n<header>\n",
            f"<h1><bdi>{html_escape(shown_title)}</bdi></h1>\n",
            '<dl class="facts">',
            *(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts),
            "</dl>\n",
            self._verdict(),
            '</header>\n<main>\n<ol class="timeline">\n',
        ]
        self._write(head)

    def _verdict(self) -> str:
        s = self.snap
        out = []
        if s.vanished:
            out.append(
                '<div class="verdict partial"><strong>Part of the history was removed or '
                "changed in storage after this device read it.</strong> This export holds "
                "what was checked here; no verdict in it is final.</div>\n"
            )
        elif not s.complete:
            out.append(
                '<div class="verdict partial"><strong>History not completely read.</strong> '
                "This export holds what was read; no verdict in it is final.</div>\n"
            )
        if s.clean and not s.findings:
            out.append(
                '<div class="verdict clean"><strong>Audit: clean.</strong> Every signature '
                "and chain checks out.</div>\n"
            )
            return "".join(out)
        word = "clean, with notices" if s.clean else "findings"
        cls = "clean" if s.clean else "findings"
        items = "".join(
            f"<li>{html_escape(kind)} ({html_escape(sev)}): {n:,}</li>"
            for kind, sev, n in s.finding_kinds()
        )
        out.append(
            f'<div class="verdict {cls}"><strong>Audit: {word}.</strong> '
            f"{len(s.errors):,} error(s), {len(s.findings):,} finding(s) in all "
            f"(<code>bucket-chat verify</code> explains each):<ul>{items}</ul></div>\n"
        )
        return "".join(out)

    def end(self) -> None:
        late = ""
        if self.late == 1:
            late = (
                "<p>1 message arrived long after the date it bears, as the app that made "
                "this export saw it arrive: it says so below it.</p>\n"
            )
        elif self.late:
            late = (
                f"<p>{self.late:,} messages arrived long after the dates they bear, as the "
                "app that made this export saw them arrive: each says so below it.</p>\n"
            )
        if self.late_changes:
            many = self.late_changes != 1
            late += (
                f"<p>{self.late_changes:,} edit{'s' if many else ''} or deletion"
                f"{'s' if many else ''} arrived long after the date{'s' if many else ''} "
                f"{'they bear' if many else 'it bears'}, as the app that made this export saw "
                f"{'them' if many else 'it'} arrive. A message says so of its latest edit or "
                "its deletion, and Previous versions beside an earlier edit; an edit or "
                "deletion that changed nothing, or an edit of a message since deleted, is "
                "not shown here.</p>\n"
            )
        self._write(
            [
                "</ol>\n</main>\n<footer>\n",
                f"<p>{self.written:,} messages and notices. Exported by Bucket Chat "
                f"{html_escape(__version__)}. Trust states are this device's verdicts at export "
                "time; a deleted message is hidden here, but copies can remain in the "
                "storage.</p>\n",
                late,
                "</footer>\n</body>\n</html>\n",
            ]
        )

    # -- quotes (replies) ----------------------------------------------------------------------

    def wanted_quotes(self, rows: Sequence[ShownEvent]) -> dict[str, int]:
        """Parents of replies in ``rows`` whose quote is not at hand and not in ``rows``
        themselves: event id -> timeline position (the runner reads those rows)."""
        here = {r.event.event_id for r in rows if isinstance(r.event, Event)}
        wanted: dict[str, int] = {}
        for r in rows:
            ev = r.event
            if not isinstance(ev, Event) or ev.parent_event_id is None:
                continue
            parent = ev.parent_event_id
            if parent in self._quotes or parent in here:
                continue
            position = self.rel.positions.get(parent)
            if position is not None:
                wanted[parent] = position
        return wanted

    def remember(self, rows: Iterable[ShownEvent]) -> None:
        repeated = self.rel.repeated  # quoted by nobody (``_quote``)
        for r in rows:
            ev = r.event
            if isinstance(ev, Event) and ev.type == MESSAGE and ev.event_id not in repeated:
                text = self._text_of(ev, self.rel.of(ev.event_id))
                state = str(r.verdict.state)
                agg = self.rel.of(ev.event_id)
                if agg is not None:
                    state = agg.state(state)
                edited = agg is not None and agg.redacted is None and agg.latest is not None
                self._quotes[ev.event_id] = Quote(ev.sender_id, text[:QUOTE_CHARS], state, edited)
                self._quotes.move_to_end(ev.event_id)
                while len(self._quotes) > QUOTES_KEPT:
                    self._quotes.popitem(last=False)

    @staticmethod
    def _text_of(ev: Event, agg: Aggregate | None) -> str:
        if agg is not None and agg.redacted is not None:
            return "(message deleted)"
        if agg is not None and agg.latest is not None:
            return agg.latest.body
        return message_text(ev.content)  # a file message: its name, as its card shows

    def _quote(self, ev: Event) -> str:
        parent = ev.parent_event_id
        if parent is None or parent == ev.event_id:  # a reply to itself quotes nothing
            return ""
        if parent in self.rel.repeated:  # shown once per device that signed it: neither
            return (
                '<blockquote class="quote">In reply to a message that is ambiguous: two '
                "devices used its id (see the room's audit).</blockquote>"
            )
        position = self.rel.positions.get(parent)
        q = self._quotes.get(parent)
        if q is None:
            if ev.event_id not in self.rel.thread_root:
                return (
                    '<blockquote class="quote">In reply to a message that was not read '
                    f"(<code>{html_escape(one_line(parent, 160))}</code>).</blockquote>"
                )
            return '<blockquote class="quote">In reply to a message not shown here.</blockquote>'
        link = f'<a href="#{row_anchor(position)}">↩</a> ' if position is not None else "↩ "
        badge = "" if q.state == "verified" else " " + _badge(q.state)
        if q.edited:  # its latest text is quoted, which the reply may not have answered
            badge += (
                ' <span class="edited" title="The message was edited: its latest text is '
                'quoted, which may not be the one this reply answered">(edited)</span>'
            )
        text = html_escape(one_line(q.text, QUOTE_CHARS)) or "<i>(no text)</i>"
        return (
            f'<blockquote class="quote">{link}{self._short_who(q.sender_id)}{badge}: '
            f"<bdi>{text}</bdi></blockquote>"
        )

    # -- rows ----------------------------------------------------------------------------------

    def page(
        self,
        start: int,
        rows: Sequence[ShownEvent],
        attachments: Mapping[int, Attachment],
    ) -> None:
        """Rows ``start…`` of the timeline (``attachments``: by timeline position, what
        the runner copied; an id signed by two devices is two rows, each its own file).
        Relation events are applied to their targets, not shown."""
        self.remember(rows)
        for offset, row in enumerate(rows):
            # One row at a time: a hostile room's rows can each be a 256 KiB body that
            # escaping makes several times longer; a page of them is never one string.
            position = start + offset
            self._write((self._row(position, row, attachments.get(position)),))

    def _row(self, position: int, row: ShownEvent, attachment: Attachment | None) -> str:
        verdict: Assessed = row.verdict
        ev = row.event
        state = str(verdict.state)
        if isinstance(ev, Malformed):
            self.damaged += 1
            self.written += 1
            return (
                f'<li class="notice t-invalid" id="{row_anchor(position)}">'
                f"{_badge('invalid')} This device's copy of event "
                f"<code>{html_escape(one_line(verdict.event.event_id, 200))}</code> is damaged: "
                f"{html_escape(ev.reason)}</li>\n"
            )
        if ev.type in HIDDEN_TYPES:
            if ev.type in (EDIT, REDACTION) and self.snap.late_of(
                ev.event_id, verdict.path, verdict.line
            ):
                self.late_changes += 1  # counted by copy, as the JSONL's lines are
            return ""
        self.written += 1
        anchor = row_anchor(position)
        doubt = self.snap.doubt(ev.sender_id, ev.sender_key)
        doubted = " doubted" if doubt else ""
        if ev.type == MEMBER:
            claim = statement_claim(ev.sender_id, ev.content, self.snap.claims)
            what = html_escape(membership_text(ev.content, with_name=True, claim=claim))
            return (
                f'<li class="notice t-{state}{doubted}" id="{anchor}"><div class="meta">'
                f"{self._who(ev.sender_id)}{_doubt_mark(doubt)} <span>{what}</span> "
                f"{_time(ev.timestamp_ms)} {_badge(state, verdict.reason)}</div>"
                f"{self._why(state, verdict.reason)}{_doubt_note(doubt)}</li>\n"
            )
        if ev.type != MESSAGE:
            kind = html_escape(one_line(ev.type, 120))
            return (
                f'<li class="notice t-{state}{doubted}" id="{anchor}"><div class="meta">'
                f"{self._who(ev.sender_id)}{_doubt_mark(doubt)} <span>sent an event of type "
                f"<code>{kind}</code> (not shown)</span> {_time(ev.timestamp_ms)} "
                f"{_badge(state, verdict.reason)}</div>{_doubt_note(doubt)}</li>\n"
            )
        agg = self.rel.of(ev.event_id)
        late = self.snap.late_note(ev.event_id, verdict.path, verdict.line)
        return self._message(anchor, ev, state, verdict.reason, agg, attachment, doubt, late)

    @staticmethod
    def _why(state: str, reason: str) -> str:
        if state == "verified" or not reason:
            return ""
        label = BADGES.get(state, (state.upper(), ""))[0]
        return f'<p class="why">{html_escape(label)}: {html_escape(reason)}</p>'

    def _message(
        self,
        anchor: str,
        ev: Event,
        own: str,
        reason: str,
        agg: Aggregate | None,
        attachment: Attachment | None,
        doubt: str | None = None,
        late: str | None = None,
    ) -> str:
        """A message's row. ``doubt``: why its key is marked though this room trusts it
        (``RoomSnapshot.doubted``): the ⚠ beside its sender, and the sentence below it, as
        the app's timeline has them. A message the app saw arrive long after its date
        says so below it (``late``: ``RoomSnapshot.late_note`` of its copy), as its row
        in the app does; so does one whose latest edit or deletion did
        (``RoomSnapshot.late_change``), and an earlier edit says it beside its date."""
        redacted = agg.redacted if agg is not None else None
        edits = agg.edits if agg is not None and redacted is None else ()
        shown = agg.shown_state(own) if agg is not None else own
        if late is not None:
            self.late += 1
        # the change the row shows (its deletion, else its latest edit) when the app saw it
        # arrive long after its date, as the app's row says it
        change = redacted if redacted is not None else (edits[-1] if edits else None)
        came = self.snap.late_change(change) if change is not None else None
        late_change = (
            came.note_with_zone(
                timestamps.DELETION if redacted is not None else timestamps.LATEST_EDIT
            )
            if came is not None
            else None
        )
        marks = (" doubted" if doubt else "") + (" late" if late or late_change else "")
        parts = [
            f'<li class="msg t-{shown}{marks}" id="{anchor}"><div class="meta">'
            f"{self._who(ev.sender_id)}{_doubt_mark(doubt)} ",
            f"{_time(ev.timestamp_ms)} {_badge(shown, reason)}",
        ]
        if edits:
            parts.append(f' <span class="edited" title="{len(edits)} edit(s)">(edited)</span>')
        parts.append("</div>")
        parts.append(self._quote(ev))
        if redacted is not None:
            why = (
                f" Reason given: “{html_escape(one_line(redacted.reason, 300))}”."
                if redacted.reason
                else ""
            )
            parts.append(
                f'<div class="body deleted">Message deleted by its sender '
                f"{_time(redacted.timestamp_ms)} {_badge(redacted.state)}.{why}</div>"
            )
            parts.append(self._why(own, reason))
            parts.append(_doubt_note(doubt))
            parts.append(_late_note(late))
            parts.append(_late_note(late_change))
            parts.append("</li>\n")
            return "".join(parts)
        parts.append(self._content(ev, edits[-1].body if edits else None, attachment))
        parts.append(self._why(own, reason))
        parts.append(_doubt_note(doubt))
        parts.append(_late_note(late))
        parts.append(_late_note(late_change))
        if ev.event_id in self.rel.repeated:
            # a replay (PROTOCOL.md 18.1): this copy's edits and deletion, even those made
            # before the other copy appeared, no longer apply; its first text is shown
            parts.append(f'<p class="why">{html_escape(REPEATED_ID)}</p>')
        for e in edits:
            if e.state != "verified":
                parts.append(
                    f'<p class="why">An edit of this message is {html_escape(e.state)}: its '
                    "text is shown, and the badge says so.</p>"
                )
                break
        if edits:
            parts.append(self._versions(ev, edits))
        if agg is not None and agg.reactions:
            parts.append(self._reactions(agg.reactions))
        if agg is not None and agg.thread:
            n = len(agg.thread)
            replies = "1 reply" if n == 1 else f"{n:,} replies"
            parts.append(f'<p class="thread">{replies} in this thread</p>')
        parts.append("</li>\n")
        return "".join(parts)

    def _content(self, ev: Event, edited: str | None, attachment: Attachment | None) -> str:
        if edited is None and is_file_message(ev.content):
            return self._attachment(ev, attachment)
        text = edited if edited is not None else ev.body
        if text is None:
            return '<div class="body note">(a message without text)</div>'
        html_body = body_html(text)
        if ev.content.get("msgtype") == "m.emote" and edited is None:
            html_body = f"<p><i>* {self._short_who(ev.sender_id)}</i></p>{html_body}"
        return f'<div class="body" dir="auto">{html_body}</div>'

    def _attachment(self, ev: Event, att: Attachment | None) -> str:
        info = parse_file_content(ev.content)
        if isinstance(info, str):
            return (
                '<div class="attachment missing">A file was announced, but the message '
                f"cannot be used: {html_escape(info)}.</div>"
            )
        name = html_escape(info.name)
        size = html_escape(human_size(info.size))
        if att is None or att.href is None:
            problem = att.problem if att is not None else None
            why = problem or "this export copies no attachments"
            return (
                f'<div class="attachment missing">📎 <bdi>{name}</bdi> ({size}) — not copied: '
                f"{html_escape(why)}</div>"
            )
        if att.risky:
            return (
                f'<div class="attachment">📎 <bdi>{name}</bdi> ({size}) — copied to '
                f"<code>{html_escape(att.href)}</code>, not linked: opening this kind of file "
                "can run code. Its SHA-256 matched the signed message.</div>"
            )
        href = html_escape(att.href)
        img = f'<img src="{href}" alt="{name}" loading="lazy">' if att.image else ""
        return (
            f'<div class="attachment">📎 <a href="{href}"><bdi>{name}</bdi></a> ({size}, SHA-256 '
            f"checked){img}</div>"
        )

    def _versions(self, ev: Event, edits: Sequence[Edit]) -> str:
        items = [
            f'<li>Original {_time(ev.timestamp_ms)}: <div class="body" dir="auto">'
            f"{body_html(ev.body or '')}</div></li>"
        ]
        for e in edits[:-1]:
            came = self.snap.late_change(e)  # beside its date, as Previous versions says it
            note = (
                f' <span class="why late">⚠ {html_escape(came.note_with_zone())}</span>'
                if came is not None
                else ""
            )
            items.append(
                f"<li>Edit {_time(e.timestamp_ms)} {_badge(e.state)}{note}: "
                f'<div class="body" dir="auto">{body_html(e.body)}</div></li>'
            )
        return (
            f'<details class="versions"><summary>Previous versions ({len(items)})</summary>'
            f"<ol>{''.join(items)}</ol></details>"
        )

    def _reactions(self, chips: Sequence[ReactionChip]) -> str:
        """The chips, each with who reacted so. Chips that look alike but count apart
        ("Yes" and "Үes" with a Cyrillic "Ү": ``lookalike_texts``, as the app and
        ``history`` mark them) are marked ⚠ and followed by their code points: drawn
        alike, one counted the real votes and the other an impostor's."""
        alike = lookalike_texts(c.key for c in chips)
        out = ['<div class="reactions">']
        for chip in chips:
            who = ", ".join(
                self._short_who(r.sender_id)
                + (
                    ""
                    if r.state == "verified"
                    else f' <span class="bad">{html_escape(r.state.upper())}</span>'
                )
                for r in chip.reactors
            )
            cls = "chip" if chip.all_verified else "chip unverified"
            mark = "" if chip.all_verified else " ⚠"
            if chip.key in alike:
                mark += (
                    f' <span class="lookalike" title="{LOOKALIKE_CHIP}">⚠ '
                    f"{html_escape(spelled(chip.key))}</span>"
                )
            out.append(
                f'<span class="{cls}" title="{html_escape(chip.state)}">'
                f"<bdi>{html_escape(chip.key)}</bdi> "
                f'<b>{chip.count:,}</b>{mark} <span class="who">{who}</span></span>'
            )
        out.append("</div>")
        return "".join(out)


def spelled(text: str) -> str:
    """A reaction's text by its code points ("U+04AE U+0065 U+0073"), the first
    ``SPELLED`` of them."""
    out = " ".join(f"U+{ord(ch):04X}" for ch in text[:SPELLED])
    return f"{out} …" if len(text) > SPELLED else out


def attachment_href(folder_name: str, file_name: str) -> str:
    """The relative URL of a copied file (both names already safe file names)."""
    return f"{quote(folder_name)}/{quote(file_name)}"
