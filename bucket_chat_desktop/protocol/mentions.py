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


@functools.lru_cache(maxsize=256)
def _pattern(targets: tuple[str, ...]) -> re.Pattern[str] | None:
    """``@`` and one of ``targets`` (longest first, case-insensitive), not inside a word:
    no letter or digit before the ``@``, none right after the name. Only the first
    ``MAX_TARGETS`` targets count: callers list a room's members first seen first, so a
    flood of later senders cannot push the room's early members out."""
    kept = list(dict.fromkeys(t for t in targets if t.strip()))[:MAX_TARGETS]
    names = sorted(kept, key=len, reverse=True)
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?<![\w@])@(?:{alternatives})(?!\w)", re.IGNORECASE)


def mention_spans(body: str, targets: Iterable[str]) -> list[tuple[int, int]]:
    """Where ``body`` mentions one of ``targets`` (names or ids, without the ``@``): the
    (start, end) of each ``@name``, the ``@`` included, left to right, never overlapping.
    Only the first ``MAX_SCANNED`` characters are searched."""
    pattern = _pattern(tuple(targets))
    if pattern is None or "@" not in body:
        return []
    return [m.span() for m in pattern.finditer(body, 0, min(len(body), MAX_SCANNED))]


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
    "mentions_in",
    "mentions_me",
    "mentions_of",
    "with_mentions",
]
