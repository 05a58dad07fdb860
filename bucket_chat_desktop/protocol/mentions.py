"""Mentions: whom a message names, in its text and in its ``mentions`` field.

The wire form (PROTOCOL.md section 19): the body carries the readable mention, ``@`` and
the person's display name or user id (``"@Bob, see this"``, ``"@bob@example.com"``), so
a reader that only reads ``body`` — the reference implementation — shows it as text. A
message may also carry ``"mentions": ["bob@example.com", ...]``: the user ids its sender
meant, so a client need not parse text to know whom to notify. Both come from the
sender, who may be hostile: the field is read only when it is a list of at most
``MAX_MENTIONS`` strings of at most ``MAX_ID_CHARS`` characters each, and ignored whole
otherwise; a text match is bounded by ``MAX_SCANNED`` characters of body and
``MAX_STEPS`` characters compared, never by the number of members: every member's id and
name counts (``MentionTargets``).

Pure: no I/O, no Qt.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

MENTIONS_FIELD = "mentions"
MAX_MENTIONS = 64  # ids in one message's field; more and the field is ignored
MAX_ID_CHARS = 256  # characters of one id in the field; longer and the field is ignored
MAX_SCANNED = 20_000  # characters of a body searched for mentions


def mentions_of(content: Mapping[str, Any]) -> tuple[str, ...]:
    """The user ids a message's ``mentions`` field names, in order, without repeats; ()
    when there is no field or it is not a bounded list of strings (ignored whole: a
    half-read list would be a guess)."""
    value = content.get(MENTIONS_FIELD) if isinstance(content, Mapping) else None
    if not isinstance(value, list) or len(value) > MAX_MENTIONS:
        return ()
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_ID_CHARS for v in value):
        return ()
    return tuple(dict.fromkeys(value))


# How the ``re`` module compares characters case-insensitively (what the text match has
# always meant): two characters are alike when their simple lowercase forms are, or are
# the same letter written two ways (``s`` and long ``ſ``, ``k`` and the Kelvin sign...),
# the pairs ``re`` itself adds (``re._casefix``).
try:
    from re._casefix import _EXTRA_CASES as _ALIKE  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - another Python
    _ALIKE = {}
_WORD = re.compile(r"\w")  # a letter, digit or "_": what may not touch a mention
MAX_STEPS = 100_000  # characters one search compares, all texts together; then it stops


# A character past every other: with it after a prefix, ``bisect`` finds where the keys
# that start with that prefix end. ``_alike`` never gives it (the one character that
# would, a noncharacter, stands for the one below it).
_TOP = "\U0010ffff"


@functools.lru_cache(maxsize=4096)
def _alike(char: str) -> str:
    """One character standing for every character ``char`` matches case-insensitively."""
    # a letter's simple lowercase form: the first of its full one ("İ" -> "i" + a dot)
    low = ord(char.lower()[0])
    return chr(min((low, *_ALIKE.get(low, ()), 0x10FFFE)))


class _Folds(dict[int, int]):
    """``_alike`` by code point, filled as characters are met (up to ``_KEPT`` of them):
    ``str.translate``'s table."""

    def __missing__(self, code: int) -> int:
        alike = ord(_alike(chr(code)))
        if len(self) < _KEPT:
            self[code] = alike
        return alike


_KEPT = 1 << 16


_FOLDS = _Folds()


def fold(text: str) -> str:
    """``text`` as the mention search compares it: each character by ``_alike`` (one
    character for one, so a position in the text is the same in its fold)."""
    return text.translate(_FOLDS)


# Who a key names when several could: the user's own names first (what the user is
# called is theirs to recognise), then ids (an id is one sender's), then display names.
_OWN, _ID, _NAME = 0, 1, 2
AMBIGUOUS = ""  # the owner of a name two members go by: it names nobody


class MentionTargets:
    """What ``@...`` can name in a room, searched in time linear in the text whatever the
    number of members: every member's id and display name, folded (``fold``) and sorted,
    with whom each names. Made once per roster (``of``) and asked for many texts.

    No target is dropped, however many members there are, and no tie is decided by the
    order members were first seen (a writer dates its own events, so a hostile member can
    come first): an id names its sender; a display name names the one member who goes by
    it, or nobody (``AMBIGUOUS``) when two do — the rule ``RoomIds`` applies to two plain
    ids that look alike, and the ``@`` list's, which writes such a member's id instead. An
    id beats a display name written the same (a name cannot take over an id), and the
    user's own id and names (``own``) beat both."""

    __slots__ = ("keys", "owners")

    def __init__(self, keys: Sequence[str], owners: Sequence[str]) -> None:
        self.keys = tuple(keys)  # folded, sorted, no repeats, none empty
        self.owners = tuple(owners)  # per key: the user id it names, or AMBIGUOUS

    @classmethod
    def of(
        cls,
        members: Iterable[tuple[str, str]],
        own_user: str = "",
        own_names: Iterable[str] = (),
        written: Callable[[str], str] | None = None,
    ) -> MentionTargets:
        """The targets of ``members`` ((user id, display name or "") pairs), with
        ``own_user``'s id and ``own_names`` recognised as theirs first. ``written`` is
        how a target appears in the text searched (``html_escape`` for rich text)."""
        best: dict[str, tuple[int, str]] = {}  # key -> (rank, owner)

        def put(target: str, rank: int, owner: str) -> None:
            if not target.strip():
                return
            key = fold(written(target) if written is not None else target)
            held = best.get(key)
            if held is None or rank < held[0]:
                best[key] = (rank, owner)
            elif rank == held[0] and held[1] not in (owner, AMBIGUOUS) and rank != _OWN:
                best[key] = (rank, AMBIGUOUS)

        if own_user:
            for target in (own_user, *own_names):
                put(target, _OWN, own_user)
        pairs = list(members)
        for user_id, _ in pairs:
            put(user_id, _ID, user_id)
        for user_id, name in pairs:
            if name:
                put(name, _NAME, user_id)
        keys = sorted(best)
        return cls(keys, [best[k][1] for k in keys])

    def __len__(self) -> int:
        return len(self.keys)

    def owner(self, target: str) -> str | None:
        """Whom ``@<target>`` names: a user id, ``AMBIGUOUS``, or None (nobody here)."""
        key = fold(target)
        at = bisect.bisect_left(self.keys, key)
        return self.owners[at] if at < len(self.keys) and self.keys[at] == key else None

    def spans_each(self, texts: Sequence[str]) -> list[list[tuple[int, int, str]]]:
        """The mentions in each of ``texts``: (start, end, whom it names), the ``@``
        included, left to right, never overlapping, the longest target wherever several
        fit; case-insensitive, the way ``re.IGNORECASE`` compares; an ``@`` inside a word
        (a letter, digit, "_" or "@" right before it) starts none, and no letter or digit
        may follow one. Only the first ``MAX_SCANNED`` characters of a text are searched,
        comparing at most ``MAX_STEPS`` characters in all: a text past that budget has no
        more mentions found (a hostile body cannot make the search long; a real one never
        comes near it)."""
        found: list[list[tuple[int, int, str]]] = [[] for _ in texts]
        keys, owners = self.keys, self.owners
        if not keys:
            return found
        budget = MAX_STEPS
        first = bisect.bisect_left
        for spans, whole in zip(found, texts, strict=True):
            text = whole[:MAX_SCANNED]
            end = len(text)
            at = text.find("@")
            while at >= 0 and budget > 0:
                if at and (text[at - 1] == "@" or _WORD.match(text, at - 1)):
                    at = text.find("@", at + 1)
                    continue
                # narrow the keys that start with what follows, a character at a time:
                # [lo, hi) start with ``prefix``; keys[lo] is ``prefix`` when it is one
                lo, hi = 0, len(keys)
                prefix = ""
                pos = at + 1
                best, whom = -1, AMBIGUOUS
                while pos < end and budget > 0:
                    budget -= 1
                    prefix += _alike(text[pos])
                    lo = first(keys, prefix, lo, hi)
                    hi = first(keys, prefix + _TOP, lo, hi)
                    if lo >= hi:
                        break
                    pos += 1
                    if keys[lo] == prefix and (pos == end or not _WORD.match(text, pos)):
                        best, whom = pos, owners[lo]
                if best >= 0:
                    spans.append((at, best, whom))
                    at = text.find("@", best)
                else:
                    at = text.find("@", at + 1)
        return found

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """``spans_each`` of one text."""
        if "@" not in text:
            return []
        return self.spans_each((text,))[0]

    def named_in(self, text: str) -> list[str]:
        """The user ids ``text`` mentions, in the order they first appear, without
        repeats; a name two members go by names neither. At most ``MAX_MENTIONS``."""
        found = dict.fromkeys(whom for _, _, whom in self.spans(text) if whom != AMBIGUOUS)
        return list(found)[:MAX_MENTIONS]


@functools.lru_cache(maxsize=256)
def _targets(targets: tuple[str, ...]) -> MentionTargets:
    """Plain strings as targets (each naming itself): a few names, asked often."""
    return MentionTargets.of((t, "") for t in targets)


def mention_spans_each(texts: Sequence[str], targets: Iterable[str]) -> list[list[tuple[int, int]]]:
    """``mention_spans`` of each of ``texts``, comparing at most ``MAX_STEPS`` characters
    in all (``MentionTargets.spans_each``)."""
    found = _targets(tuple(targets)).spans_each(texts)
    return [[(a, b) for a, b, _ in spans] for spans in found]


def mention_spans(body: str, targets: Iterable[str]) -> list[tuple[int, int]]:
    """Where ``body`` mentions one of ``targets`` (names or ids, without the ``@``): the
    (start, end) of each ``@name``, the ``@`` included, left to right, never overlapping,
    the longest name wherever several fit; case-insensitive, the way ``re.IGNORECASE``
    compares. Only the first ``MAX_SCANNED`` characters are searched, comparing at most
    ``MAX_STEPS`` characters: the work is linear in the body, whatever the names. For a
    room's members, make ``MentionTargets`` once and ask it."""
    if "@" not in body:
        return []
    return mention_spans_each((body,), targets)[0]


def mentions_in(text: str, members: Sequence[tuple[str, str]] | MentionTargets) -> list[str]:
    """The user ids ``text`` mentions as ``@<user id>`` or ``@<display name>``, among
    ``members`` ((user id, display name or "") pairs, or their ``MentionTargets``): what a
    sender puts in the ``mentions`` field. In the order they first appear; at most
    ``MAX_MENTIONS``. Every member counts, whatever their number; a display name two
    members go by names neither (``MentionTargets``)."""
    if "@" not in text:
        return []
    targets = members if isinstance(members, MentionTargets) else MentionTargets.of(members)
    return targets.named_in(text)


def mentions_me(
    content: Mapping[str, Any], user_id: str, names: Iterable[str] | MentionTargets = ()
) -> bool:
    """Whether a message names ``user_id``: in its ``mentions`` field, or as ``@<user
    id>`` or ``@<one of names>`` in its body (for senders that do not write the field).

    ``names``: what the user is called, or better the room's ``MentionTargets`` made with
    the user's id and names (``MentionTargets.of(members, user_id, names)``): the reading
    the timeline highlights and a sender's ``mentions`` field is made from, the longest
    target at an ``@`` winning over every member's. Then ``@Alice Cooper``, another
    member's name, is theirs and not a mention of the user called "Alice" (red team rt81:
    it was highlighted as the other member's, yet accented and notified as the user's);
    the user's own names win only over a target written the same. With names alone, only
    the user's id and names are looked for. Linear in the body either way."""
    if not user_id:
        return False
    if user_id in mentions_of(content):
        return True
    body = content.get("body") if isinstance(content, Mapping) else None
    if not isinstance(body, str) or "@" not in body:
        return False
    if isinstance(names, MentionTargets):
        targets = names
    else:
        targets = _own_targets(user_id, tuple(dict.fromkeys(n for n in names if n)))
    return any(whom == user_id for _, _, whom in targets.spans(body))


@functools.lru_cache(maxsize=64)
def _own_targets(user_id: str, names: tuple[str, ...]) -> MentionTargets:
    """The user's own id and names alone as targets (``mentions_me`` without a room)."""
    return MentionTargets.of((), user_id, names)


def with_mentions(
    content: dict[str, Any], members: Sequence[tuple[str, str]] | MentionTargets
) -> dict[str, Any]:
    """``content`` with the ``mentions`` field its body calls for (unchanged when the
    body mentions nobody)."""
    body = content.get("body")
    found = mentions_in(body, members) if isinstance(body, str) else []
    return {**content, MENTIONS_FIELD: found} if found else content


__all__ = [
    "AMBIGUOUS",
    "MAX_ID_CHARS",
    "MAX_MENTIONS",
    "MENTIONS_FIELD",
    "MentionTargets",
    "fold",
    "mention_spans",
    "mention_spans_each",
    "mentions_in",
    "mentions_me",
    "mentions_of",
    "with_mentions",
]
