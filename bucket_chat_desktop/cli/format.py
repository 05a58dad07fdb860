"""How the command line shows events, findings and audits to a person.

Every string read from storage (room names, ids, display names, bodies, object names,
error text quoting them) goes through ``terminal_safe`` before it is printed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from .. import timestamps
from ..keys.identity import display_fingerprint, fingerprint_of
from ..osfiles import open_fd
from ..protocol.attachments import message_text
from ..protocol.audit import Assessed, AuditResult, TrustState, on_trial
from ..protocol.event import MEMBER, MESSAGE
from ..protocol.findings import Finding
from ..protocol.metadata import RoomMetadata, check_signer, signer_text
from ..protocol.relations import EDIT, MAX_REACTION_CHARS, REACTION, REDACTION, target_of
from ..protocol.room_state import (
    DeviceRecord,
    DeviceState,
    MemberRecord,
    key_bytes,
    membership_text,
    statement_claim,
)
from ..protocol.untrusted_text import (
    ID_LIMIT,
    RoomIds,
    display_name_safe,
    id_warning,
    terminal_safe,
)
from ..sync.client import SearchHit, Snippet


def harden_streams() -> None:
    """Text from storage that the terminal's encoding cannot show (an emoji on a Latin-1
    terminal, or on Windows when output goes to a file in the ANSI code page) is written
    as a visible escape instead of ending the command with a traceback. Bytes on
    standard input that its encoding cannot read become lone surrogates
    (``surrogateescape``), which ``chat``, ``send -`` and ``edit -`` refuse in one line
    (``has_lone_surrogate``): Python does that by itself only under the POSIX locale, and
    under a UTF-8 one (the usual desktop) a Latin-1 byte killed ``chat``'s reading of
    its input, leaving the chat waiting for ever, and ended ``send -`` with a traceback
    (red team rt84)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")


def silence_stdout() -> None:
    """Standard output's reader has gone (``| head`` has its lines): point it at the null
    device, as the Python documentation advises for SIGPIPE, so that what is printed
    after (and Python's own flush at exit) goes nowhere instead of failing again. A
    stream that is no file (a test's capture) is left as it is."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return
    null = open_fd(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


BADGES = {
    TrustState.VERIFIED: "[verified]",
    TrustState.UNVERIFIED: "[UNVERIFIED]",
    TrustState.KEY_CHANGED: "[KEY CHANGED]",
    TrustState.INVALID: "[INVALID]",
}


# Printed lines longer than this are cut into rows this program makes, each after the
# first indented, so that no terminal ever wraps them (``fit``): on a terminal, its
# width; in a pipe or a file, what any terminal it is later shown on has.
PIPE_WIDTH = 80
CONTINUED = " " * 4


def line_width(stream: Any = None) -> int:
    """The columns a line printed to ``stream`` (standard output by default) may take:
    its terminal's; in a pipe or a file, ``COLUMNS`` when it is set (as programs read
    it), else ``PIPE_WIDTH``. Standard error is measured for itself: it stays on a
    narrow terminal when standard output goes to a file (red team rt66)."""
    stream = sys.stdout if stream is None else stream
    try:
        if stream.isatty():
            return max(20, os.get_terminal_size(stream.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return max(20, int(columns)) if columns.isdigit() and len(columns) < 10 else PIPE_WIDTH


def _cells(ch: str) -> int:
    """Columns a terminal may give ``ch``, never fewer: printable ASCII takes one, any
    other character is counted as two (wide letters, emoji; a wrong guess only cuts a
    row early)."""
    return 1 if " " <= ch <= "~" else 2


def fit(text: str, width: int | None = None) -> str:
    """``text`` (lines already made safe by ``terminal_safe``) with every line longer
    than ``width`` columns cut into rows: at a space where there is one in the row's
    second half, the rest after ``CONTINUED`` with its leading spaces dropped.

    A terminal wraps a long line at its width, and what comes after the wrap begins a
    screen row as if it were a line of its own: a body padded with spaces to the width
    put "2026-05-28 21:10:00  alice@example.com  [verified]  I approve …" at the start
    of a row, read as alice's verified message (red team rt60). A row this program did
    not begin itself never starts at the first column now."""
    width = line_width() if width is None else width
    if all(len(line) * 2 <= width for line in text.split("\n")):
        return text  # the common case, at a glance
    rows: list[str] = []
    for line in text.split("\n"):
        first = True
        while line:
            room = width if first else width - len(CONTINUED)
            used, cut, space = 0, len(line), -1
            for i, ch in enumerate(line):
                used += _cells(ch)
                if used > room:
                    cut = i
                    break
                if ch == " ":
                    space = i
            if cut < len(line) and space >= room // 2:
                cut = space + 1  # after the space: a word stays whole
            cut = max(cut, 1)
            piece = line[:cut].rstrip(" ")
            rows.append(piece if first else CONTINUED + piece)
            line = line[cut:].lstrip(" ")
            first = False
        if first:
            rows.append("")  # an empty line stays one
    return "\n".join(rows)


def out(text: object = "", *, file: Any = None, flush: bool = False) -> None:
    """``print`` for every line a command shows a person (not ``--json``): cut into rows
    by ``fit``, so no text from storage anywhere in it can begin a terminal's row."""
    print(fit(str(text), line_width(file)), file=file, flush=flush)


def local_time(timestamp_ms: int) -> str:
    """Never raises: a time past the year 9999 (the protocol allows up to 2^53-1 ms) is
    shown as a label, not a crash of ``history`` or ``sync --follow``."""
    return timestamps.full(timestamp_ms)


BODY_LIMIT = 20_000  # characters of one body on a terminal; --json has them all


def body_text(body: str) -> str:
    """A message body for a terminal (``terminal_safe``, lines kept), with a ``>`` or a
    ``* `` that begins one of its lines escaped (``\\>``, ``\\* ``, as Markdown writes
    them literally): a reply's quote of its parent is such a line, and so is a notice of
    what an event did ("* reacted 👍 to alice@example.com: …", "* joined the room"). A
    body beginning ``> alice@example.com: I agree to pay $5000`` printed exactly as a
    reply quoting words alice never wrote."""
    text = terminal_safe(body, limit=BODY_LIMIT, multiline=True)
    if ">" not in text and "*" not in text:
        return text
    return "\n".join(_escaped_line(line) for line in text.split("\n"))


def _escaped_line(line: str) -> str:
    rest = line.lstrip(" ")
    if rest.startswith(">") or rest.startswith("* ") or rest == "*":
        return f"{line[: len(line) - len(rest)]}\\{rest}"
    return line


@dataclasses.dataclass(frozen=True, slots=True)
class KeyClaims:
    """What to say of a statement naming a device key that is not its sender's
    (``statement_claim``): "names your key as theirs" for one of this device's own keys
    (``own``: the (user id, key) pairs it writes as), "names bob@…'s key as theirs" for a
    key that writes as another id in the room (``claims``: ``Names.claims``). Such a
    statement makes no device of theirs, and "added a device" would say it did."""

    claims: Mapping[str, str] = dataclasses.field(default_factory=dict)
    own: tuple[tuple[str, str], ...] = ()

    def of(self, item: Assessed) -> str:
        ev = item.event
        if ev.type != MEMBER:
            return ""
        for user_id, key in self.own or (("", ""),):
            said = statement_claim(ev.sender_id, ev.content, self.claims, user_id, key)
            if said:
                return said
        return ""


NO_CLAIMS = KeyClaims()


def describe_event(item: Assessed, claims: KeyClaims = NO_CLAIMS) -> str:
    ev = item.event
    if ev.type == MESSAGE:  # a file message says its name, never its body
        text = body_text(message_text(ev.content))
    elif ev.type == MEMBER:
        said = membership_text(ev.content, with_name=True, claim=claims.of(item))
        text = f"* {terminal_safe(said)}"
    elif ev.type in (REACTION, EDIT, REDACTION) and (target := target_of(ev)) is not None:
        # What the event asks, not whether it applies (``history`` applies the rules):
        # ``sync --follow`` and ``chat`` print each event as it arrives.
        where = terminal_safe(target, limit=ID_LIMIT)
        if ev.type == REACTION:
            key = terminal_safe(ev.content.get("reaction", ""), limit=MAX_REACTION_CHARS)
            text = f"* reaction {key} to {where}"
        else:
            text = f"* {'edit' if ev.type == EDIT else 'deletion'} of {where}"
    else:
        text = f"* {terminal_safe(ev.type, limit=ID_LIMIT)}"
    return text.replace("\n", "\n" + " " * 4)


def _id_warning(sender_id: str, ids: RoomIds | None) -> str | None:
    """Why ``sender_id`` may imitate another sender of ``ids`` (``None``: judged alone)."""
    return (ids.warning(sender_id) if ids is not None else id_warning(sender_id)) or None


def shown_id(sender_id: str, ids: RoomIds | None = None) -> str:
    """A sender id for a terminal: escaped, capped, and marked when it may imitate another
    (the reason is listed by ``id_notes``)."""
    text = terminal_safe(sender_id, limit=ID_LIMIT)
    return f"{text} {LOOKALIKE_MARK}" if _id_warning(sender_id, ids) else text


LOOKALIKE_MARK = "[!LOOK-ALIKE ID]"
# a room's name that looks like another room's name or id (``room_names.name_lookalikes``)
LOOKALIKE_NAME_MARK = "[!LOOK-ALIKE NAME]"


def id_notes(sender_ids: Iterable[str], ids: RoomIds | None = None) -> list[str]:
    """One line per marked id saying why it is marked."""
    lines: list[str] = []
    for sender_id in dict.fromkeys(sender_ids):
        warned = _id_warning(sender_id, ids)
        if warned:
            lines.append(f"  {terminal_safe(sender_id, limit=ID_LIMIT)}: {warned}")
    return lines


def event_line(item: Assessed, ids: RoomIds | None = None, claims: KeyClaims = NO_CLAIMS) -> str:
    ev = item.event
    return (
        f"{local_time(ev.timestamp_ms)}  {shown_id(ev.sender_id, ids)}  "
        f"{BADGES[item.state]}  {describe_event(item, claims)}"
    )


def finding_said(f: Finding) -> str:
    """A finding on one line, as ``chat``, ``sync --follow`` and ``members`` say it."""
    return f"! {f.kind.value}: {terminal_safe(f.message)} ({terminal_safe(f.where())})"


def finding_line(f: Finding) -> str:
    head = f"  {f.severity.value.upper():6} {f.kind.value:22} {terminal_safe(f.where())}"
    return f"{head}\n         {terminal_safe(f.message)}"


def room_title(
    meta: RoomMetadata | None,
    room_id: str,
    authorized: Mapping[str, frozenset[str]] | None = None,
    ids: RoomIds | None = None,
    *,
    mark: str = "",
) -> str:
    """``describe(meta, authorized)`` for a terminal: the name is cleaned, the creator id
    escaped and marked when it may imitate another — with ``ids`` (the room's senders),
    also when it looks like a sender's id there: ``aIice@…`` signing a room where
    ``alice@…`` writes (the check uses the real id). ``mark`` follows the name
    (``LOOKALIKE_NAME_MARK``)."""
    if meta is None:
        return f"{room_id} (no metadata)"
    signer = check_signer(meta, authorized)[0]
    shown = dataclasses.replace(meta, creator_id=shown_id(meta.creator_id or "?", ids))
    name = display_name_safe(meta.name, TITLE_LIMIT) or room_id
    marked = f"{terminal_safe(name)} {mark}" if mark else terminal_safe(name)
    return f"{marked} ({signer_text(shown, signer)})"


TITLE_LIMIT = 200


def json_text(doc: object) -> str:
    """JSON for a terminal or a pipe: readable non-ASCII text, but every character that
    could act on a terminal (C1, DEL, bidi, separators, lone surrogates) as a ``\\u``
    escape, which any JSON reader turns back into the same string."""
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    return _JSON_UNSAFE.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    ch = match.group()
    if terminal_safe(ch) == ch:
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # as a UTF-16 surrogate pair, as JSON spells it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


_JSON_UNSAFE = re.compile("[^\x20-\x7e\n]")  # json.dumps escapes the other C0 itself


DEVICE_BADGES = {
    DeviceState.CONFIRMED: "[confirmed]",
    DeviceState.VERIFIED: "[verified]",
    DeviceState.UNVERIFIED: "[UNVERIFIED]",
    DeviceState.KEY_CHANGED: "[KEY CHANGED]",
    DeviceState.DISPUTED: "[DISPUTED]",
}


def member_lines(member: MemberRecord) -> list[str]:
    """A member and their devices, as ``protocol.room_state`` folds them (the same members,
    names and device states as the app's members panel). The id is marked when it, or
    the name it goes by, may imitate someone else's (``member_notes`` says why)."""
    name = f'"{terminal_safe(member.display_name)}"  ' if member.display_name else ""
    if not member.joined:
        note = "  (wrote without joining)"
    elif not member.present:
        note = f"  ({membership_text({'membership': member.membership})})"
    else:
        note = ""
    who = terminal_safe(member.user_id, limit=ID_LIMIT)
    if member.id_warning:
        who += f" {LOOKALIKE_MARK}"
    head = f"{name}{who}  {DEVICE_BADGES[member.state]}{note}"
    lines = [head, *(_device_line(d) for d in member.devices)]
    if member.unlisted:
        lines.append(f"  and {member.unlisted:,} more named by statements alone (not listed)")
    return lines


def member_notes(members: Iterable[MemberRecord]) -> list[str]:
    return [
        f"  {terminal_safe(m.user_id, limit=ID_LIMIT)}: {terminal_safe(m.id_warning)}"
        for m in members
        if m.id_warning
    ]


def _device_line(device: DeviceRecord) -> str:
    raw = key_bytes(device.key)
    if not device.key:
        what = "unsigned events (no device key)"
    elif raw is None:
        what = "a key that is not one"
    else:
        what = f"fingerprint {display_fingerprint(raw)}"
    name = f' "{terminal_safe(device.name)}"' if device.name else ""
    seen = f"{device.events:,} event(s)"
    if device.events:
        seen += f", last {local_time(device.last_seen)}"
    elif device.introduced_by:
        seen += ", not accepted yet"  # a statement alone authorizes nothing (section 7)
    line = f"  device {device.number}{name}  {DEVICE_BADGES[device.state]}  {what}  {seen}"
    if device.speaks_for:
        owner = terminal_safe(device.speaks_for, limit=ID_LIMIT)
        line += f"  (names {owner}'s key as theirs: not a device of theirs)"
    elif device.introduced_by:
        line += f"  (added by key {terminal_safe(device.introduced_by[:12])}…)"
    return line


def member_json(member: MemberRecord) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "display_name": member.display_name or None,
        "membership": member.membership or None,
        "joined": member.joined,
        "state": member.state.value,
        "id_warning": member.id_warning,
        "devices": [
            {
                "key": d.key or None,
                "fingerprint": fingerprint_of(raw) if (raw := key_bytes(d.key)) else None,
                "name": d.name or None,
                "state": d.state.value,
                "events": d.events,
                "first_seen": d.first_seen,
                "last_seen": d.last_seen,
                "introduced_by": d.introduced_by or None,
                # another sender id this key writes as: their statement named it, it is
                # not a device of theirs
                "speaks_for": d.speaks_for or None,
            }
            for d in member.devices
        ],
        "unlisted_devices": member.unlisted,  # named by statements alone past the cap
    }


def event_json(
    item: Assessed, ids: RoomIds | None = None, claims: KeyClaims = NO_CLAIMS
) -> dict[str, Any]:
    """``ids``: the room's senders, for ``sender_id_warning`` (the reason text marks
    ``[!LOOK-ALIKE ID]``); ``None`` judges the id alone. ``statement_claim``: what a
    statement naming a key that is not its sender's claims ("names your key as theirs",
    ``KeyClaims``), null otherwise."""
    ev = item.event
    return {
        "event_id": ev.event_id,
        "timestamp_ms": ev.timestamp_ms,
        "sender_id": ev.sender_id,
        "sender_id_warning": _id_warning(ev.sender_id, ids),
        "sender_key": ev.sender_key,
        "type": ev.type,
        "content": dict(ev.content),
        "statement_claim": claims.of(item) or None,
        "trust": item.state.value,
        "reason": item.reason,
        "path": item.path,
        "line": item.line,
    }


def counts_text(result: AuditResult) -> list[str]:
    return [f"  {state.value:12} {n:>8,}" for state, n in result.counts.items()]


# -- search -----------------------------------------------------------------------------------

UNCHECKED_BADGE = "[NOT CHECKED YET]"
SNIPPET_LIMIT = 300  # characters of a snippet on a terminal


def marked_snippet(snippet: Snippet, mark: tuple[str, str]) -> str:
    """A search snippet for a terminal: each piece made safe on its own (``terminal_safe``,
    line breaks shown as ``\n``), matches wrapped in ``mark`` — added after the text was
    made safe, so no text can pose as a mark or end one."""
    out = ["…" if snippet.cut_before else ""]
    for text, matched in snippet.parts():
        safe = terminal_safe(text, limit=SNIPPET_LIMIT).replace("\n", "\\n")
        out.append(f"{mark[0]}{safe}{mark[1]}" if matched else safe)
    if snippet.cut_after:
        out.append("…")
    return "".join(out)


NOT_FINAL_BADGE = "[NOT FINAL YET]"  # verified on trial, older history not read then
REPEATED_ID = (
    "another device signed a message under this id: edits, a deletion and reactions of "
    "it are not shown"
)


def search_line(
    hit: SearchHit, mark: tuple[str, str], room_label: str, ids: RoomIds | None = None
) -> str:
    """One hit; ``ids``: the senders of the hit's room (``SearchPage.senders``), so that
    an id imitating another sender's there (``aIice@`` beside ``alice@``) is marked as
    ``history`` marks it, not only an id suspect on its own."""
    if on_trial(hit.trust, hit.trust_reason):
        badge = NOT_FINAL_BADGE  # an audit saved while older history loaded
    else:
        badge = BADGES[hit.trust] if hit.trust is not None else UNCHECKED_BADGE
    edited = " (edited)" if hit.edited else ""
    if hit.superseded:
        edited += " (an earlier version: edited since)"
    if hit.copy is not None:  # as history says of it (PROTOCOL.md 18.1)
        edited += f" ({REPEATED_ID})"
    return (
        f"{local_time(hit.timestamp_ms)}  {terminal_safe(room_label, limit=ID_LIMIT)}  "
        f"{shown_id(hit.sender_id, ids)}  {badge}  {marked_snippet(hit.snippet, mark)}{edited}\n"
        f"    event {terminal_safe(hit.event_id, limit=ID_LIMIT)}"
    )


def search_id_notes(
    hits: Iterable[SearchHit], senders: Mapping[str, RoomIds], room_labels: Mapping[str, str]
) -> list[str]:
    """Why each sender id marked in ``hits`` is marked (``id_notes``), per room: an id is
    a look-alike of another in its own room only. With hits from several rooms, each
    room's notes come under its name."""
    by_room: dict[str, dict[str, None]] = {}
    for hit in hits:
        by_room.setdefault(hit.room_id, {})[hit.sender_id] = None
    lines: list[str] = []
    for room_id, ids in by_room.items():
        notes = id_notes(ids, senders.get(room_id))
        if notes and len(by_room) > 1:
            label = room_labels.get(room_id, room_id)
            lines.append(f"  in {terminal_safe(label, limit=ID_LIMIT)}:")
            notes = [f"  {line}" for line in notes]
        lines.extend(notes)
    return lines


def search_json(hit: SearchHit, ids: RoomIds | None = None) -> dict[str, Any]:
    """``ids``: the senders of the hit's room (``SearchPage.senders``), as ``search_line``."""
    return {
        "storage_id": hit.storage_id,
        "room_id": hit.room_id,
        "event_id": hit.event_id,
        "source_event_id": hit.source_id,
        "edited": hit.edited,
        "superseded": hit.superseded,
        "repeated_id": hit.copy is not None,
        "sender_id": hit.sender_id,
        "sender_id_warning": _id_warning(hit.sender_id, ids),
        "timestamp_ms": hit.timestamp_ms,
        "trust": hit.trust.value if hit.trust is not None else None,
        "trust_reason": hit.trust_reason,
        "snippet": hit.snippet.text,
        "marks": [list(m) for m in hit.snippet.marks],
        "snippet_cut_before": hit.snippet.cut_before,
        "snippet_cut_after": hit.snippet.cut_after,
    }
