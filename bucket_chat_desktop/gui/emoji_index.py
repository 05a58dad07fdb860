"""The emoji the picker offers, with their names, in a few groups, searchable offline.

The data is the ``emoji`` package's (Unicode's emoji list with CLDR short names and the
common aliases such as ``:+1:``): fully qualified emoji only, without the skin-tone
variants (one of each), up to ``MAX_VERSION`` so that what is offered has a glyph in the
emoji fonts people have, and only what the protocol takes as a reaction
(``relations.reaction_key``). The package has no groups; ``GROUPS`` places each emoji by the
Unicode block of its first code point, which is what the blocks were made for and good
enough to browse by.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import emoji
from emoji.unicode_codes import STATUS

from ..protocol.relations import reaction_key

MAX_VERSION = 15.0
# (group, [(first, last) code point]): the first group whose range holds an emoji's
# first code point is its group; the last one takes the rest.
GROUPS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("Flags", ((0x1F1E6, 0x1F1FF), (0x1F3C1, 0x1F3C1), (0x1F3F3, 0x1F3F4), (0x1F6A9, 0x1F6A9))),
    (
        "Smileys & people",
        (
            (0x1F600, 0x1F64F),
            (0x1F910, 0x1F92F),
            (0x1F970, 0x1F97A),
            (0x1F9B0, 0x1F9B9),
            (0x1F9D0, 0x1F9DF),
            (0x1F440, 0x1F450),
            (0x1F466, 0x1F487),
            (0x1F48B, 0x1F48C),
            (0x1F491, 0x1F491),
            (0x1F493, 0x1F49F),
            (0x1F574, 0x1F57A),
            (0x1F590, 0x1F596),
            (0x1F5E3, 0x1F5E3),
            (0x1F6B4, 0x1F6B6),
            (0x1F930, 0x1F939),
            (0x1F9BB, 0x1F9BF),
            (0x1FAE0, 0x1FAFF),
            (0x1FAC3, 0x1FAC5),
            (0x261D, 0x261D),
            (0x2639, 0x263A),
            (0x2763, 0x2764),
            (0x270A, 0x270D),
            (0x1F4A2, 0x1F4AF),
            (0x1F90C, 0x1F90F),
            (0x1F9E1, 0x1F9E1),
            (0x1F90D, 0x1F90D),
            (0x1F5A4, 0x1F5A4),
            (0x1FA75, 0x1FA77),
        ),
    ),
    (
        "Animals & nature",
        (
            (0x1F400, 0x1F43F),
            (0x1F980, 0x1F9AE),
            (0x1F330, 0x1F344),
            (0x1F490, 0x1F490),
            (0x1F490, 0x1F490),
            (0x1F4AE, 0x1F4AE),
            (0x1F54A, 0x1F54A),
            (0x1F577, 0x1F578),
            (0x1F940, 0x1F940),
            (0x1FAB0, 0x1FABF),
            (0x1FAB7, 0x1FAB7),
            (0x1F300, 0x1F32C),
            (0x2600, 0x2604),
            (0x2614, 0x2614),
            (0x26A1, 0x26A1),
            (0x26C4, 0x26C8),
            (0x2744, 0x2744),
            (0x2B50, 0x2B50),
            (0x1F31F, 0x1F320),
        ),
    ),
    (
        "Food & drink",
        (
            (0x1F345, 0x1F37F),
            (0x1F950, 0x1F96F),
            (0x1F9C0, 0x1F9CF),
            (0x1FAD0, 0x1FADF),
            (0x2615, 0x2615),
            (0x1F942, 0x1F94F),
        ),
    ),
    (
        "Activities",
        (
            (0x1F380, 0x1F3CF),
            (0x1F93A, 0x1F93F),
            (0x26BD, 0x26BE),
            (0x26F3, 0x26F3),
            (0x26F8, 0x26F8),
            (0x1F941, 0x1F941),
            (0x1F94C, 0x1F94C),
            (0x1F9E7, 0x1F9E9),
            (0x1FA80, 0x1FA8F),
            (0x265F, 0x265F),
            (0x2660, 0x2667),
            (0x1F0CF, 0x1F0CF),
            (0x1F004, 0x1F004),
            (0x1F3AD, 0x1F3AD),
        ),
    ),
    (
        "Travel & places",
        (
            (0x1F680, 0x1F6C5),
            (0x1F6CB, 0x1F6FF),
            (0x1F3D4, 0x1F3F0),
            (0x1F5FA, 0x1F5FF),
            (0x1F32D, 0x1F32F),
            (0x26E9, 0x26FA),
            (0x2708, 0x2708),
            (0x1F30D, 0x1F31E),
        ),
    ),
    (
        "Objects",
        (
            (0x1F4B0, 0x1F4FF),
            (0x1F550, 0x1F567),
            (0x1F56F, 0x1F573),
            (0x1F57B, 0x1F5F9),
            (0x1FA70, 0x1FAAF),
            (0x231A, 0x23FF),
            (0x1F9E0, 0x1F9FF),
            (0x1F488, 0x1F48F),
            (0x1F50B, 0x1F53D),
            (0x2602, 0x2602),
            (0x260E, 0x260E),
            (0x2692, 0x269C),
            (0x2702, 0x2702),
            (0x2709, 0x2709),
            (0x270F, 0x2712),
        ),
    ),
    ("Symbols", ((0, 0x10FFFF),)),
)
# Shown in this order (``GROUPS`` is in matching order: flags first, their ranges
# overlap the others').
GROUP_NAMES = (
    "Smileys & people",
    "Animals & nature",
    "Food & drink",
    "Activities",
    "Travel & places",
    "Objects",
    "Symbols",
    "Flags",
)
FREQUENT = ("👍", "❤️", "😂", "🎉", "😮", "🙏")  # the hover bar's quick reactions
_WORDS = re.compile(r"[a-z0-9+\-']+")


@dataclass(frozen=True, slots=True)
class Emoji:
    char: str
    name: str  # "thumbs up"
    aliases: tuple[str, ...]  # "thumbsup", "+1"
    group: str

    @property
    def words(self) -> str:
        """Everything a search looks in, lower case."""
        return " ".join((self.name, *self.aliases)).lower()


def _lead(char: str) -> int:
    """Within a group: faces first (😀), then the other pictographs, then the older
    symbols."""
    cp = ord(char[0])
    if 0x1F600 <= cp <= 0x1F64F or 0x1F910 <= cp <= 0x1F92F or 0x1F970 <= cp <= 0x1F97A:
        return 0
    return 1 if cp >= 0x1F000 else 2


def _plain(short_name: str) -> str:
    return short_name.strip(":").replace("_", " ")


def group_of(char: str) -> str:
    cp = ord(char[0])
    for name, ranges in GROUPS:
        if any(lo <= cp <= hi for lo, hi in ranges):
            return name
    return GROUPS[-1][0]


@functools.lru_cache(maxsize=1)
def all_emoji() -> tuple[Emoji, ...]:
    """Every emoji offered, by group then code points."""
    qualified = STATUS["fully_qualified"]
    out = []
    for char, data in emoji.EMOJI_DATA.items():
        name = data.get("en", "")
        if data.get("status") != qualified or "skin_tone" in name:
            continue
        if float(data.get("E", 99)) > MAX_VERSION:
            continue
        if reaction_key(char) != char:
            continue  # tag sequences (🏴 of England): their tag characters are refused
        aliases = tuple(_plain(a) for a in data.get("alias", ()))
        out.append(Emoji(char, _plain(name), aliases, group_of(char)))
    order = {name: i for i, name in enumerate(GROUP_NAMES)}
    out.sort(key=lambda e: (order[e.group], _lead(e.char), [ord(c) for c in e.char]))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def by_char() -> dict[str, Emoji]:
    return {e.char: e for e in all_emoji()}


def lookup(char: str) -> Emoji | None:
    """The entry of ``char`` (with or without its variation selector), or None."""
    table = by_char()
    return table.get(char) or table.get(char + "\ufe0f") or table.get(char.replace("\ufe0f", ""))


def search(query: str, limit: int = 400) -> list[Emoji]:
    """Emoji whose name or an alias holds every word of ``query`` (each as the start
    of a word in the name, or anywhere when the word is long): a name or alias that is
    the query first, then those starting with it, then whole-word matches, then the
    rest, each in the table's order."""
    words = _WORDS.findall(query.lower())
    if not words:
        return []
    ranked: list[tuple[int, int, Emoji]] = []
    joined = " ".join(words)
    for i, e in enumerate(all_emoji()):
        text = e.words
        names = (e.name, *e.aliases)
        if not all(_has_word(text, w) for w in words):
            continue
        if any(n.lower() == joined for n in names):
            rank = 0
        elif any(n.lower().startswith(joined) for n in names):
            rank = 1
        elif all(f" {w} " in f" {text} " for w in words):
            rank = 2
        else:
            rank = 3
        ranked.append((rank, i, e))
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in ranked[:limit]]


def _has_word(text: str, word: str) -> bool:
    if len(word) >= 4:
        return word in text
    return text.startswith(word) or f" {word}" in text


def recent_list(recent: Sequence[str], chosen: str, keep: int = 24) -> list[str]:
    """``recent`` with ``chosen`` moved to the front, at most ``keep`` long."""
    return [chosen, *(r for r in recent if r != chosen)][:keep]
