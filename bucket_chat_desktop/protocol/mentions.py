"""Mentions: whom a message names, in its text and in its ``mentions`` field.

The wire form (PROTOCOL.md section 19): the body carries the readable mention, ``@`` and
the person's display name or user id (``"@Bob, see this"``, ``"@bob@example.com"``), so
a reader that only reads ``body`` — the reference implementation — shows it as text. A
message may also carry ``"mentions": ["bob@example.com", ...]``: the user ids its sender
meant, so a client need not parse text to know whom to notify. Both come from the
sender, who may be hostile: the field is read only when it is a list of at most
``MAX_MENTIONS`` strings of at most ``MAX_ID_CHARS`` characters each, and ignored whole
otherwise; a text match is bounded by ``MAX_SCANNED`` characters of body and
``MAX_TARGETS`` names.

Pure: no I/O, no Qt.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MENTIONS_FIELD = "mentions"
MAX_MENTIONS = 64  # ids in one message's field; more and the field is ignored
MAX_ID_CHARS = 256  # characters of one id in the field; longer and the field is ignored
MAX_SCANNED = 20_000  # characters of a body searched for mentions
MAX_TARGETS = 500  # names and ids one search looks for (a room's members)


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
_END = ""  # a trie node's key for "a name ends here" (no character is empty)
MAX_STEPS = 100_000  # characters one search compares, all texts together; then it stops


@functools.lru_cache(maxsize=4096)
def _alike(char: str) -> str:
    """One character standing for every character ``char`` matches case-insensitively."""
    # a letter's simple lowercase form: the first of its full one ("İ" -> "i" + a dot)
    low = ord(char.lower()[0])
    return chr(min((low, *_ALIKE.get(low, ()))))


Trie = dict[str, Any]


@functools.lru_cache(maxsize=256)
def _trie(targets: tuple[str, ...]) -> Trie | None:
    """The targets, letter by letter (each letter as ``_alike`` stands for it), in a tree
    whose nodes say where one ends. Only the first ``MAX_TARGETS`` targets count:
    callers list a room's members first seen first, so a flood of later senders cannot
    push the room's early members out."""
    kept = list(dict.fromkeys(t for t in targets if t.strip()))[:MAX_TARGETS]
    if not kept:
        return None
    root: Trie = {}
    for name in kept:
        node = root
        for char in name:
            node = node.setdefault(_alike(char), {})
        node[_END] = True
    return root


def mention_spans_each(texts: Sequence[str], targets: Iterable[str]) -> list[list[tuple[int, int]]]:
    """``mention_spans`` of each of ``texts``, comparing at most ``MAX_STEPS`` characters
    in all: a text past that budget has no more mentions found (a hostile body cannot
    make the search long; a real one never comes near it)."""
    trie = _trie(tuple(targets))
    found: list[list[tuple[int, int]]] = [[] for _ in texts]
    if trie is None:
        return found
    budget = MAX_STEPS
    for spans, whole in zip(found, texts, strict=True):
        text = whole[:MAX_SCANNED]
        end = len(text)
        at = text.find("@")
        while at >= 0 and budget > 0:
            # "@" not inside a word: no letter, digit, "_" or "@" right before it
            if at and (text[at - 1] == "@" or _WORD.match(text, at - 1)):
                at = text.find("@", at + 1)
                continue
            # the longest target after it that no letter or digit follows
            node = trie
            pos = at + 1
            best = -1
            while True:
                if _END in node and (pos == end or not _WORD.match(text, pos)):
                    best = pos
                if pos == end or budget <= 0:
                    break
                budget -= 1
                below = node.get(_alike(text[pos]))
                if below is None:
                    break
                node, pos = below, pos + 1
            if best >= 0:
                spans.append((at, best))
                at = text.find("@", best)
            else:
                at = text.find("@", at + 1)
    return found


def mention_spans(body: str, targets: Iterable[str]) -> list[tuple[int, int]]:
    """Where ``body`` mentions one of ``targets`` (names or ids, without the ``@``): the
    (start, end) of each ``@name``, the ``@`` included, left to right, never overlapping,
    the longest name wherever several fit; case-insensitive, the way ``re.IGNORECASE``
    compares. Only the first ``MAX_SCANNED`` characters are searched, comparing at most
    ``MAX_STEPS`` characters: the work is linear in the body, whatever the names."""
    if "@" not in body:
        return []
    return mention_spans_each((body,), targets)[0]


def mentions_in(text: str, members: Sequence[tuple[str, str]]) -> list[str]:
    """The user ids ``text`` mentions as ``@<user id>`` or ``@<display name>``, among
    ``members`` ((user id, display name or "") pairs): what a sender puts in the
    ``mentions`` field. In the order they first appear; at most ``MAX_MENTIONS``."""
    owners: dict[str, str] = {}  # casefolded id or name -> user id (ids win over names)
    targets: list[str] = []
    for user_id, _ in members:
        owners.setdefault(user_id.casefold(), user_id)
        targets.append(user_id)
    for user_id, name in members:
        if name:
            owners.setdefault(name.casefold(), user_id)
            targets.append(name)
    found: list[str] = []
    for start, end in mention_spans(text, tuple(targets)):
        owner = owners.get(text[start + 1 : end].casefold())
        if owner is not None and owner not in found:
            found.append(owner)
    return found[:MAX_MENTIONS]


def mentions_me(content: Mapping[str, Any], user_id: str, names: Iterable[str] = ()) -> bool:
    """Whether a message names ``user_id``: in its ``mentions`` field, or as ``@<user
    id>`` or ``@<one of names>`` in its body (for senders that do not write the field)."""
    if not user_id:
        return False
    if user_id in mentions_of(content):
        return True
    body = content.get("body") if isinstance(content, Mapping) else None
    if not isinstance(body, str):
        return False
    return bool(mention_spans(body, (user_id, *(n for n in names if n))))


def with_mentions(content: dict[str, Any], members: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``content`` with the ``mentions`` field its body calls for (unchanged when the
    body mentions nobody)."""
    body = content.get("body")
    found = mentions_in(body, members) if isinstance(body, str) else []
    return {**content, MENTIONS_FIELD: found} if found else content


__all__ = [
    "MAX_ID_CHARS",
    "MAX_MENTIONS",
    "MENTIONS_FIELD",
    "mention_spans",
    "mention_spans_each",
    "mentions_in",
    "mentions_me",
    "mentions_of",
    "with_mentions",
]
