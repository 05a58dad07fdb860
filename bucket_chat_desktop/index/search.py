"""Full-text search over the index: what is indexed, how a typed query becomes SQL, and
how a hit's snippet is cut and marked.

What is indexed (``search_text``): what each ``m.room.message`` event says
(``attachments.message_text``: a file message's name, never its body) under its own id,
and the new body of each ``m.room.edit`` under the id of the event it replaces,
so an edited message is found by its new text (and still by its old). Nothing else:
reactions, redactions, typing and membership events carry no message text.

The table is an FTS5 index with the ``trigram`` tokenizer. A trigram index matches any
substring of three characters or more, which is what searching as one types needs: a
half-typed word ("deplo") finds "deployment", and scripts written without spaces
between words (Chinese, Japanese, Thai) are found by any part of a sentence, where a
word tokenizer (``unicode61``) would index a whole CJK run as one "word" and match only
its first characters with a prefix query. It folds case (Unicode, not only ASCII). Terms
of one or two characters cannot be trigram-matched: those are checked with ``LIKE`` on
the stored text instead (ASCII case folding only).

Whatever a person types is data, never FTS5 syntax: ``build_query`` splits it into words
and double-quoted phrases and writes each as an FTS5 string literal (a quote inside is
doubled), so ``NEAR``, ``AND``, ``*``, ``-``, ``:``, parentheses and unbalanced quotes
are searched for as text and can never make the query fail to parse.

Pure: no SQL is run here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..protocol.attachments import message_text
from ..protocol.audit import TrustState
from ..protocol.event import MESSAGE, Event
from ..protocol.relations import EDIT, target_of
from ..protocol.untrusted_text import RoomIds

QUERY_LIMIT = 500  # characters of a query kept (a 10,000 character paste is cut)
TERM_LIMIT = 16  # words or phrases kept from a query
TRIGRAM = 3  # a term shorter than this is matched with LIKE, not the trigram index
SNIPPET_BEFORE = 40  # characters of context kept before the first match
SNIPPET_LENGTH = 200  # characters of a snippet at most


def search_text(event: Event) -> tuple[str, str] | None:
    """What of ``event`` is searchable, as (the id of the message it is found under, its
    text), or None. A message's body under its own id; an edit's new body under the id
    of the message it replaces. Anything else, or a field of the wrong type: None. A
    file message is found by its name as every view shows it ("📎 notes.txt"), not by a
    body no card shows. An edit naming itself as what it replaces is never applied (no
    message has its id): filed under its own id, its text was found as a message of its
    own that no timeline shows (a row indexed so before is dropped when read: each row
    is checked against this when found)."""
    content: Mapping[str, Any] = event.content
    if event.type == MESSAGE:
        text = message_text(content)
        return (event.event_id, text) if text else None
    if event.type == EDIT:  # the target as the relation rules read it (section 18)
        target, new = target_of(event), content.get("new_content")
        if target is not None and target != event.event_id and isinstance(new, Mapping):
            body = new.get("body")
            if isinstance(body, str) and body:
                return target, body
    return None


@dataclass(frozen=True, slots=True)
class Query:
    """A typed query made safe: its terms (words and phrases, as typed, case kept), the
    FTS5 MATCH expression of those long enough for the trigram index ("" when none is),
    and the ``LIKE`` patterns of the short ones. ``cut`` says the input was shortened."""

    terms: tuple[str, ...]
    match: str
    likes: tuple[str, ...]
    cut: bool

    @property
    def empty(self) -> bool:
        return not self.terms


def _clean(text: str) -> str:
    # Lone surrogates (a paste from a broken source) cannot be encoded for SQLite.
    return text.encode("utf-8", "ignore").decode("utf-8")


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def split_terms(text: str) -> list[str]:
    """Words, and phrases in double quotes (an unbalanced quote runs to the end)."""
    terms: list[str] = []
    for i, part in enumerate(text.split('"')):
        if i % 2:  # inside quotes: one phrase, its inner blanks made single spaces
            phrase = " ".join(part.split())
            if phrase:
                terms.append(phrase)
        else:
            terms.extend(part.split())
    return terms


def build_query(text: object) -> Query:
    """Any input becomes a ``Query`` (never an exception): at most ``QUERY_LIMIT``
    characters and ``TERM_LIMIT`` terms are kept; repeated terms count once."""
    raw = text if isinstance(text, str) else ""
    cut = len(raw) > QUERY_LIMIT
    raw = _clean(raw[:QUERY_LIMIT]).replace("\x00", " ")
    terms: list[str] = []
    seen: set[str] = set()
    for term in split_terms(raw):
        if term.casefold() in seen:
            continue
        seen.add(term.casefold())
        terms.append(term)
    if len(terms) > TERM_LIMIT:
        terms, cut = terms[:TERM_LIMIT], True
    long = [t for t in terms if len(t) >= TRIGRAM]
    match = " AND ".join('"' + t.replace('"', '""') + '"' for t in long)
    likes = tuple(_like(t) for t in terms if len(t) < TRIGRAM)
    return Query(tuple(terms), match, likes, cut)


def _pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    if not terms:
        return None
    alternatives = sorted(terms, key=len, reverse=True)  # the longest match wins
    return re.compile("|".join(re.escape(t) for t in alternatives), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Snippet:
    """A piece of a message's text around what matched: ``text`` as stored (untrusted:
    each front end makes it safe), ``marks`` the (start, end) offsets of matches in it,
    in order and not overlapping. ``cut_before``/``cut_after``: text was left out."""

    text: str
    marks: tuple[tuple[int, int], ...]
    cut_before: bool
    cut_after: bool

    def parts(self) -> tuple[tuple[str, bool], ...]:
        """The text in pieces, each with whether it is a match: a front end makes each
        piece safe on its own and marks the matches itself, so nothing in the text can
        pose as a marker."""
        out: list[tuple[str, bool]] = []
        at = 0
        for start, end in self.marks:
            if start > at:
                out.append((self.text[at:start], False))
            out.append((self.text[start:end], True))
            at = end
        if at < len(self.text):
            out.append((self.text[at:], False))
        return tuple(out)


def make_snippet(body: str, terms: tuple[str, ...], length: int = SNIPPET_LENGTH) -> Snippet:
    """The part of ``body`` around its first match of ``terms`` (case-insensitive), at
    most ``length`` characters, with every match in it marked. A body in which no term
    is found (a case folding SQLite and Python disagree on) gives its start, unmarked."""
    pattern = _pattern(terms)
    first = pattern.search(body) if pattern is not None else None
    start = 0
    if first is not None and first.start() > SNIPPET_BEFORE:
        start = first.start() - SNIPPET_BEFORE
        # Start at a word boundary when one is near, not in the middle of a word.
        space = body.find(" ", start, first.start())
        if 0 <= space < start + 15:
            start = space + 1
    end = min(len(body), start + length)
    text = body[start:end]
    marks: list[tuple[int, int]] = []
    if pattern is not None:
        marks = [(m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start()]
    return Snippet(text, tuple(marks), start > 0, end < len(body))


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One message found. ``event_id`` is the message to show (an edit's target);
    ``source_id`` the event whose text matched (the message itself, or an edit of it by
    ``sender_id``: the text's author is always the one named). ``trust`` is the trust
    state the last audit on this device gave the source event, None when that audit did
    not list it (not checked yet); ``trust_reason`` says why. ``storage_id`` is filled in
    by the client that merged results of several storages ("" from one index).
    ``edited``: the text is an edit's; ``superseded``: a later edit replaced it."""

    room_id: str
    event_id: str
    source_id: str
    sender_id: str
    timestamp_ms: int
    trust: TrustState | None
    trust_reason: str
    snippet: Snippet
    path: str
    line: int
    key: int  # the index's ordering key: newer hits have larger keys
    storage_id: str = ""
    # Which copy this hit is, when the room shows more than one copy of its event id
    # (signed by two devices: each is a message): its (path, line); None otherwise.
    # With the room and event id, what tells two hits of one message apart (set by the
    # engine, which finds a message once; a front end paging on does the same).
    copy: tuple[str, int] | None = None
    # The key that signed the source event (base64; "" when it names none): a front end
    # marks a key another room does not trust for the sender, as the timeline does.
    sender_key: str = ""
    # The text matched is not the message's current one (an applied edit replaced it):
    # set by the engine from the room's relations.
    superseded: bool = False

    @property
    def edited(self) -> bool:
        return self.source_id != self.event_id


@dataclass(frozen=True, slots=True)
class SearchPage:
    """What one index found, newest first. ``more``: older hits may exist (ask again with
    ``before`` = ``next_before``). ``error``: why the search could not run, if so.
    ``backlog``: cached segments whose text is not searchable yet (being indexed).
    ``next_before``: where to read on for older hits (the ``before`` of the next search;
    every hit with a larger key was read, shown or hidden), None when there is nothing
    older: from the index, the key of the last row it read, whether or not that row
    became a hit (a page of damaged or forged rows still moves the search on).
    ``unrelated``: rooms with an edit's text among the rows read that was left out because
    the room's relations were not known (set by the engine: a front end that reads no
    rooms rebuilds theirs and searches again). ``senders``: room id -> every sender id
    of that room as the audit the hits were judged by saw them (sealed), for each room
    with hits that a front end reading no rooms had rebuilt (``search_read_rooms``): an
    id that imitates another sender's of its room is marked as ``history`` marks it."""

    hits: tuple[SearchHit, ...]
    more: bool = False
    error: str | None = None
    query_cut: bool = False
    backlog: int = 0
    next_before: int | None = None
    unrelated: frozenset[str] = frozenset()
    senders: Mapping[str, RoomIds] = field(default_factory=lambda: MappingProxyType({}))
