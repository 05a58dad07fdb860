"""How strings read from storage may be shown: on a terminal, in a name slot, as an id.

Every room name, display name, sender id, object name and body came from someone who
may be hostile. This module is the one policy both front ends use:

- ``terminal_safe`` for the command line: control characters (C0, DEL, C1 including the
  8-bit CSI), bidi controls, invisible format characters, line/paragraph separators and
  lone surrogates are shown as visible escapes (``\\x1b``, ``\\u202e``), so no string can
  move the cursor, rewrite a line, recolour the screen or hide "NOT CLEAN".
- ``display_name_safe`` for a name shown next to an id: invisible and format characters
  go, runs of blanks collapse, combining-mark floods are cut and the length is capped,
  so a name can never push the real id or the trust badge out of view.
- ``id_warning`` and ``RoomIds`` say why an id may fool a reader: invisible characters,
  mixed scripts in one label, look-alike letters from other scripts or compatibility
  forms, and ids that look the same as an id already seen in the room.
- ``html_escape`` is the one escape for rich text (``html.escape`` underneath).

Pure: no I/O, no Qt. Scripts are read from ``unicodedata`` character names and the
look-alike table is our own short list of the letters people actually confuse (Cyrillic,
Greek, Armenian, and ASCII digit/letter pairs); NFKC folds full-width and mathematical
forms first. It is not the full Unicode confusables table (UTS #39), so an exotic
look-alike from a script not listed can slip through the look-alike check; the mixed-script
and invisible-character checks do not depend on the table.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# -- character classes --------------------------------------------------------------------

# Letters that render as nothing (their category is not Cf, so they need naming).
_BLANK_LETTERS = frozenset(
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u2800"  # braille pattern blank
    "\u034f"  # combining grapheme joiner
    "\u17b4\u17b5"  # Khmer inherent vowels
    "\u180b\u180c\u180d\u180f"  # Mongolian variation selectors
)
BLANK_LETTERS = _BLANK_LETTERS  # for the rules that must know them (reaction texts)
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f"  # Arabic letter mark, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # isolates
)
_VARIATION_SELECTORS = frozenset(chr(c) for c in range(0xFE00, 0xFE10)) | frozenset(
    chr(c) for c in range(0xE0100, 0xE01F0)
)
MAX_MARKS = 2  # combining marks kept on one base character in a name
NAME_LIMIT = 64
ID_LIMIT = 128


def _hidden(ch: str) -> bool:
    """Characters that are invisible, move the cursor or change the text's direction."""
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn") or ch in _BLANK_LETTERS


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


# -- terminals ------------------------------------------------------------------------------


def terminal_safe(text: object, *, limit: int | None = None, multiline: bool = False) -> str:
    """``text`` made harmless for a terminal: every character that could act on the
    terminal or hide/reorder text becomes a visible escape.

    With ``multiline`` a ``\\n`` is kept (the caller indents what follows); ``\\r``, tab,
    backspace, ESC and every other control never are. ``limit`` caps the number of
    characters shown and says how many were left out.
    """
    if not isinstance(text, str):
        text = str(text)
    cut = 0
    if limit is not None and len(text) > limit:
        cut = len(text) - limit
        text = text[:limit]
    out: list[str] = []
    for ch in text:
        if ch == "\n" and multiline:
            out.append(ch)
        elif ch in _BLANK_LETTERS:
            out.append(_escape(ch))
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) == "Zs":  # a no-break or wide space is harmless
            out.append(" ")
        else:
            out.append(_escape(ch))
    if cut:
        out.append(f"… ({cut:,} more characters)")
    return "".join(out)


# -- names ----------------------------------------------------------------------------------


def display_name_safe(name: object, limit: int = NAME_LIMIT) -> str:
    """A display name fit to show beside its id: no invisible, control or bidi
    characters, single spaces, at most ``MAX_MARKS`` combining marks per letter, at most
    ``limit`` characters (an ellipsis shows a cut). "" when nothing visible is left: the
    caller then shows the id alone.

    Bidi controls are removed, but right-to-left letters stay: a caller that puts the
    name on one line with other text isolates it (``isolate``) or draws it on its own.
    """
    if not isinstance(name, str):
        return ""
    if name.isascii() and name.isprintable():  # nothing to drop; the space the only blank
        text = " ".join(name.split())
        return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"
    out: list[str] = []
    marks = 0
    space = False
    for ch in name:
        cat = unicodedata.category(ch)
        if cat in ("Zs", "Zl", "Zp") or ch in "\t\n\r\v\f\x85":
            space = bool(out)
            continue
        if _hidden(ch) and cat != "Cn":  # unassigned here may be a newer emoji: kept
            continue
        if cat in ("Mn", "Me", "Mc") or ch in _VARIATION_SELECTORS:
            if not out or out[-1] == " " or marks >= MAX_MARKS:
                continue
            marks += 1
            out.append(ch)
            continue
        if space:
            out.append(" ")
            space = False
        marks = 0
        out.append(ch)
    text = "".join(out)
    if len(text) > limit:
        text = text[: max(1, limit - 1)].rstrip() + "…"
    return text


def one_line(text: object, limit: int = 200) -> str:
    """A preview or a title from untrusted text: ``display_name_safe`` with a longer cap
    (line breaks become spaces)."""
    return display_name_safe(text, limit)


def inline_safe(text: object) -> str:
    """A piece of untrusted text drawn inside a line (a search snippet, cut into matched
    and unmatched pieces): invisible, control and bidi characters removed, every line
    break or other blank a single space, at most ``MAX_MARKS`` combining marks per
    letter. Unlike ``display_name_safe`` the blanks at either end are kept (the pieces
    are drawn side by side) and nothing is capped (the caller cuts)."""
    if not isinstance(text, str):
        return ""
    out: list[str] = []
    marks = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Zs", "Zl", "Zp") or ch in "\t\n\r\v\f\x85":
            out.append(" ")
            marks = 0
        elif _hidden(ch) and cat != "Cn":
            continue
        elif cat in ("Mn", "Me", "Mc") or ch in _VARIATION_SELECTORS:
            if out and out[-1] != " " and marks < MAX_MARKS:
                marks += 1
                out.append(ch)
        else:
            marks = 0
            out.append(ch)
    return "".join(out)


FSI, PDI = "\u2068", "\u2069"


def isolate(text: str) -> str:
    """``text`` wrapped as a bidi isolate, so its direction cannot reorder the text
    around it on the same line (FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE). Use on
    text that went through ``display_name_safe`` (which removed any stray PDI)."""
    return f"{FSI}{text}{PDI}"


def shown_id(sender_id: str) -> str:
    """A sender id as the GUI or a terminal shows it: the real id, never cleaned up, with
    anything invisible or active spelled out as an escape (and every combining mark past
    two on one letter: stacked, they reach over the lines around the id) and the length
    capped."""
    return spell_marks(terminal_safe(sender_id, limit=ID_LIMIT))


def spell_marks(text: str, most: int = MAX_MARKS) -> str:
    """``text`` with at most ``most`` combining marks drawn on any one character, the rest
    spelled out as escapes (``\\u0301``): a letter under dozens of marks ("Zalgo" text) is
    stacked far above and below its line, over the text around it. For text put into a
    document next to the app's own words (an audit finding's object, event and message);
    what it said stays readable."""
    if text.isascii():
        return text
    out: list[str] = []
    marks = 0
    for ch in text:
        if unicodedata.category(ch) in ("Mn", "Me", "Mc"):
            marks += 1
            out.append(ch if marks <= most else _escape(ch))
        else:
            marks = 0
            out.append(ch)
    return "".join(out)


def shown_id_ends(sender_id: str, limit: int = 40) -> str:
    """``shown_id`` for text that is cut to a length after it (a notification's title):
    shortened in its middle to at most ``limit`` characters, so both ends stay — the end
    is where an imitation (``bob@example.com.....evil.org``) differs from the id it
    imitates, and a cut at the end would have left only the imitated part."""
    text = spell_marks(terminal_safe(sender_id))
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head) :]}"


def html_escape(text: object) -> str:
    """The one escape for rich text (Qt labels, tooltips, documents): ``& < > " '``."""
    return html.escape(text if isinstance(text, str) else str(text), quote=True)


# -- ids ------------------------------------------------------------------------------------

# Look-alikes of ASCII letters and digits (case-sensitive, applied after NFKC, before
# case folding). Case-sensitive because a capital and its small letter may imitate
# different letters (Greek "Η" passes for "H", its "η" for "n"): folding first would
# lose those. So a capital that looks like what its small letter imitates needs its own
# entry ("Ү" for "Y" as "ү" for "y"): without one, "Үes" was not taken for "Yes".
# Capitals that look like nothing their small letter imitates (Cyrillic "П", "Г", Greek
# "Γ", Armenian "Հ", "Ո", "Ց", "Զ", "Ա") have none: ``tests/unit/protocol``
# checks that every case partner of an entry is listed or named as such.
_LOOKALIKES: dict[str, str] = {
    # Cyrillic
    "а": "a", "А": "A", "В": "B", "в": "b", "Ь": "b", "ь": "b", "с": "c", "С": "C",
    "ԁ": "d", "е": "e", "Е": "E", "һ": "h", "Н": "H", "н": "h", "і": "i", "І": "I",
    "ј": "j", "Ј": "J", "к": "k", "К": "K", "ӏ": "l", "Ӏ": "l", "м": "m", "М": "M",
    "п": "n", "о": "o", "О": "O", "р": "p", "Р": "P", "ԛ": "q", "г": "r", "ѕ": "s",
    "Ѕ": "S", "т": "t", "Т": "T", "у": "y", "У": "Y", "ү": "y", "ԝ": "w", "Ԝ": "W",
    "х": "x", "Х": "X", "З": "3", "з": "3", "Ꙇ": "l", "ꙇ": "i", "Ү": "Y", "Һ": "h",
    "Ԁ": "d", "Ԛ": "Q",
    # Greek
    "α": "a", "Α": "A", "Β": "B", "β": "b", "Ε": "E", "ε": "e", "Ζ": "Z", "Η": "H",
    "η": "n", "Ι": "I", "ι": "i", "Κ": "K", "κ": "k", "Μ": "M", "Ν": "N", "ν": "v",
    "Ο": "O", "ο": "o", "Ρ": "P", "ρ": "p", "Τ": "T", "τ": "t", "Υ": "Y", "υ": "u",
    "Χ": "X", "χ": "x", "γ": "y", "ϲ": "c", "Ϲ": "C", "ϳ": "j", "Ϳ": "J",
    # Armenian
    "օ": "o", "Օ": "O", "ս": "u", "Ս": "U", "հ": "h", "ո": "n", "ց": "g", "զ": "q",
    "ա": "w", "Տ": "S", "Լ": "L",
    # Latin letters that pass for others
    "ı": "i", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʋ": "u", "ȷ": "j", "ǀ": "l", "ɪ": "i",
    "ʟ": "l", "ᴀ": "a", "ᴄ": "c", "ᴏ": "o", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ꜱ": "s",
    "Ɑ": "a", "Ɡ": "G", "Ɩ": "l", "Ʋ": "U", "Ɪ": "I",
}  # fmt: skip
# ASCII that passes for other ASCII, folded after case folding (so "ALICE" ~ "alice").
# "i" is the case folding of "I", which passes for "l" in most sans-serif faces (the
# sender id "aIice" for "alice" went unmarked): folded to "l" too.
_FOLDED_PAIRS = (
    ("1", "l"), ("|", "l"), ("i", "l"), ("0", "o"), ("rn", "m"), ("vv", "w"), ("cl", "d"),
)  # fmt: skip
# Scripts that mix within one word in everyday use (Japanese, Chinese, Korean).
_MIXES_OK = (
    frozenset({"CJK", "HIRAGANA", "KATAKANA", "LATIN"}),
    frozenset({"CJK", "BOPOMOFO", "LATIN"}),
    frozenset({"CJK", "HANGUL", "LATIN"}),
)
_SCRIPT_ALIASES = {"FULLWIDTH": "LATIN", "HALFWIDTH": "KATAKANA", "IDEOGRAPHIC": "CJK"}


@lru_cache(maxsize=8192)  # an id is read letter by letter, and a room uses few letters
def _script(ch: str) -> str | None:
    """The script of a letter, from its Unicode name (``CYRILLIC SMALL LETTER A`` →
    CYRILLIC); None for digits, punctuation and symbols."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    name = unicodedata.name(ch, "")
    if not name:
        return "UNKNOWN"
    word = name.split(" ", 1)[0]
    if word == "MODIFIER":
        return None
    return _SCRIPT_ALIASES.get(word, word)


# What ``skeleton`` drops of ASCII besides the space (Zs): the controls (invisible).
_ASCII_CONTROLS = dict.fromkeys((*range(0x20), 0x7F))


@lru_cache(maxsize=4096)
def skeleton(text: str) -> str:
    """What an id looks like: compatibility forms folded (NFKC), invisible characters
    dropped, look-alike letters and digits mapped to one letter, case folded. Two ids
    with the same skeleton can be taken for each other.

    Letter by letter after NFKC (case folding reads no context), each letter's part
    made once (``_skeleton_part``); ASCII (NFKC leaves it as it is, no look-alike
    maps it) only drops its controls and spaces and lower-cases. The same as folding,
    mapping, dropping and case folding the whole text in turn
    (``tests/unit/protocol/test_untrusted_text.py``), at a fraction of the cost: the
    state thread asks once for every sender id of a room, 50,000 from one member who
    wants to be many."""
    if text.isascii():
        kept = text if text.isprintable() else text.translate(_ASCII_CONTROLS)
        kept = kept.replace(" ", "").lower()
    else:
        kept = "".join(map(_skeleton_part, unicodedata.normalize("NFKC", text)))
    for old, new in _FOLDED_PAIRS:
        kept = kept.replace(old, new)
    return kept


@lru_cache(maxsize=8192)
def _skeleton_part(ch: str) -> str:
    """One letter of an NFKC-folded text as ``skeleton`` keeps it. A variation selector
    draws nothing on a letter ("Payro\ufe0ell" reads "Payroll"; red team rt62): dropped."""
    if _hidden(ch) or ch in _VARIATION_SELECTORS:
        return ""
    mapped = _LOOKALIKES.get(ch, ch)
    return "" if unicodedata.category(mapped) == "Zs" else mapped.casefold()


UNSEEN_CATEGORIES = ("Mn", "Me", "Cf")  # what ``text_look`` drops before its skeleton


def text_look(text: str) -> str:
    """What a short text counted as written (a reaction's) looks like: without its
    invisible parts (variation selectors, joiners, combining marks), look-alike letters
    made one and case folded (``skeleton``: a Cyrillic "о" for a Latin "o", "Ү" for "Y")."""
    return skeleton("".join(ch for ch in text if unicodedata.category(ch) not in UNSEEN_CATEGORIES))


def lookalike_texts(texts: Iterable[str]) -> frozenset[str]:
    """The texts among ``texts`` (each counted apart: reaction chips) that look like
    another of them: one ``text_look``, written differently. One member reacting "Yes",
    "Yеs", "Үes" and "Yeѕ" (Cyrillic letters) showed as four "Yes 1" chips, every one
    verified: each front end marks these (the command line follows them with their code
    points, the desktop app marks the chip and spells them in its tooltip). Texts that
    differ only in case ("OK", "ok"; "Да", "да"; "Schön", "SCHÖN") are told apart at a
    glance: not look-alikes of each other. A text holding a compatibility character (a
    Kelvin sign for "K", a fullwidth letter: NFKC changes it) is not read for its case."""
    groups: dict[str, list[str]] = {}
    writings: dict[str, set[str]] = {}
    for text in texts:
        look = text_look(text)
        groups.setdefault(look, []).append(text)
        plain = unicodedata.normalize("NFKC", text) == text
        writings.setdefault(look, set()).add(text.casefold() if plain else text)
    return frozenset(
        text for look, group in groups.items() if len(writings[look]) > 1 for text in group
    )


def _labels(text: str) -> list[str]:
    out: list[str] = []
    word: list[str] = []
    for ch in text:
        if ch in "@.:/_-+ ":
            if word:
                out.append("".join(word))
            word = []
        else:
            word.append(ch)
    if word:
        out.append("".join(word))
    return out


def _describe(chars: Iterable[str], limit: int = 2, *, unique: bool = True) -> str:
    """Characters by code point and name (never themselves: they may be invisible or look
    like others), each once unless ``unique`` is off, ``limit`` of them and how many more."""
    seen: list[str] = []
    for ch in chars:
        if not unique or ch not in seen:
            seen.append(ch)
    shown = ", ".join(
        f"U+{ord(c):04X} {unicodedata.name(c)}" if unicodedata.name(c, "") else f"U+{ord(c):04X}"
        for c in seen[:limit]
    )
    more = len(seen) - limit
    return shown + (f" and {more} more" if more > 0 else "")


# What ``id_warning`` asks of one character, as bits (``_facts``).
_HIDES = 1  # invisible, a control, or a variation selector
_BLANK = 2  # a space (Zs)
_FORM = 4  # NFKC changes it (a compatibility form)
_INVISIBLE = 8  # ``_hidden``
_FOREIGN = 16  # punctuation or a symbol outside ASCII


@lru_cache(maxsize=8192)  # ids are read letter by letter, and a room uses few letters
def _facts(ch: str) -> int:
    invisible = _hidden(ch)
    hides = invisible or ch in _VARIATION_SELECTORS
    cat = unicodedata.category(ch)
    return (
        (_HIDES if hides else 0)
        | (_BLANK if cat == "Zs" else 0)
        | (_FORM if unicodedata.normalize("NFKC", ch) != ch else 0)
        | (_INVISIBLE if invisible else 0)
        | (_FOREIGN if not ch.isascii() and cat[0] in "PS" else 0)
    )


@lru_cache(maxsize=4096)
def id_warning(sender_id: str) -> str | None:
    """Why ``sender_id`` may be taken for another id, in one sentence; None when it is
    plain. Looks at the id alone; ``RoomIds`` adds the comparison with the room's ids.

    Printable ASCII without a space is plain without looking further: nothing below
    finds anything in it (one script, no look-alike, no mark, nothing NFKC changes).
    What is asked of each character is asked once (``_facts``, ``_script``): the
    state thread asks about every sender id of a room, 50,000 from one member who
    wants to be many (``tests/unit/protocol/test_untrusted_text.py`` holds the plain
    form this equals)."""
    if sender_id.isascii() and sender_id.isprintable() and " " not in sender_id:
        return None
    reasons: list[str] = []
    facts = list(map(_facts, sender_id))
    every = 0
    for f in facts:
        every |= f
    if every & _HIDES:
        hidden = [ch for ch, f in zip(sender_id, facts, strict=True) if f & _HIDES]
        bidi = [ch for ch in hidden if ch in _BIDI_CONTROLS]
        if bidi:
            reasons.append(f"it holds text-direction controls ({_describe(bidi)})")
        other = [ch for ch in hidden if ch not in _BIDI_CONTROLS]
        if other:
            reasons.append(f"it holds invisible or control characters ({_describe(other)})")
    if every & _BLANK:
        reasons.append("it holds spaces")
    folded = unicodedata.normalize("NFKC", sender_id)
    # Marks NFC cannot fold into a letter (an overlay stroke, a dot on a dot) draw on
    # their neighbour: "alice@example.com" with U+0335 on the m reads as the plain id.
    marks = [ch for ch in unicodedata.normalize("NFC", folded) if unicodedata.combining(ch)]
    if marks:
        reasons.append(f"it holds combining marks ({_describe(marks)})")
    # Punctuation from other scripts passes for the separators of an id (U+06D4 ARABIC
    # FULL STOP for "."); ids are ASCII-punctuated in practice.
    foreign = [ch for ch in folded if _facts(ch) & _FOREIGN]
    if foreign:
        reasons.append(f"it holds punctuation or symbols from outside ASCII ({_describe(foreign)})")
    if every & _FORM:
        changed = [f for f in facts if f & _FORM]
        if not all(f & _INVISIBLE for f in changed):
            shown = [ch for ch, f in zip(sender_id, facts, strict=True) if f & _FORM]
            reasons.append(f"it uses look-alike forms ({_describe(shown)})")
    for label in _labels(folded):
        scripts = {s for s in map(_script, label) if s is not None}
        lookalikes = [ch for ch in label if ch in _LOOKALIKES and not ch.isascii()]
        if len(scripts) > 1 and not any(scripts <= ok for ok in _MIXES_OK):
            names = " and ".join(s.title() for s in sorted(scripts))
            reasons.append(f"it mixes {names} letters in one word")
            if lookalikes:
                reasons.append(f"{_describe(lookalikes)}: not Latin, but looks it")
        elif lookalikes and all(skeleton(ch).isascii() for ch in label):
            reasons.append(f"its letters only look like Latin ones ({_describe(lookalikes)})")
    if not reasons:
        return None
    unique = list(dict.fromkeys(reasons))
    return "This id may imitate another: " + "; ".join(unique) + "."


def _named(chars: str) -> str:
    """The characters where two ids differ, in order (``_describe``), or "nothing"."""
    return _describe(chars, limit=3, unique=False) if chars else "nothing"


@lru_cache(maxsize=4096)
def id_difference(sender_id: str, other: str) -> str | None:
    """Where two ids that look alike differ, spelled out by character name: on screen
    "aIice" and "alice" may be the same pixels, "LATIN CAPITAL LETTER I" and "LATIN
    SMALL LETTER L" are not. None when they are equal; at most two places are named.
    Linear in the ids' length (it is asked for every row painted): ids of one length
    differ by the characters at the same places; others by what lies between their
    common start and their common end."""
    if sender_id == other:
        return None
    a, b = sender_id, other
    places: list[tuple[int, str, str]] = []
    if len(a) == len(b):
        start = -1
        for i in range(len(a) + 1):
            differs = i < len(a) and a[i] != b[i]
            if differs and start < 0:
                start = i
            elif not differs and start >= 0:
                places.append((start, a[start:i], b[start:i]))
                start = -1
    else:
        shorter = min(len(a), len(b))
        head = 0
        while head < shorter and a[head] == b[head]:
            head += 1
        tail = 0
        while tail < shorter - head and a[-1 - tail] == b[-1 - tail]:
            tail += 1
        places.append((head, a[head : len(a) - tail], b[head : len(b) - tail]))
    said = [_one_difference(at, mine, theirs) for at, mine, theirs in places[:2]]
    more = f" (and {len(places) - 2} more places)" if len(places) > 2 else ""
    return "Where they differ: " + "; ".join(said) + more + "."


def _one_difference(at: int, mine: str, theirs: str) -> str:
    where = (
        f"character {at + 1} is" if len(mine) == 1 else f"characters {at + 1}–{at + len(mine)} are"
    )
    if not theirs:
        return f"{where} {_named(mine)}, which the other does not have"
    if not mine:
        after = f"after character {at}" if at else "at the start"
        return f"the other has {_named(theirs)} {after}"
    return f"{where} {_named(mine)} where the other has {_named(theirs)}"


class RoomIds:
    """The sender ids of one room in the order they were first seen, and which of them
    look like another. Of two ids that look the same, the one marked is the one whose own
    characters are suspect (mixed scripts, invisible characters…). When neither is, both
    are marked: which of two plain ids wrote first cannot decide who owns the look, as
    a writer chooses the dates of its own events — an impostor whose events are dated
    years back would come first, and the real sender would be marked instead. Two ids
    with suspect characters are each marked by their own warning."""

    def __init__(self) -> None:
        # skeleton -> its first two ids, first seen first: all a question reads of a
        # group (immutable tuples, so a sealed copy shares them)
        self._groups: dict[str, tuple[str, ...]] = {}
        # Per id, its own warning and skeleton, and per skeleton its first plain id:
        # computed once when the id is added. Asking about an id is then O(1) — a room of
        # thousands of ids that share one skeleton (case variants cost nothing to write)
        # must not make every question walk the whole group (it took minutes).
        self._own: dict[str, str | None] = {}
        self._skeleton: dict[str, str] = {}
        self._first_plain: dict[str, str] = {}
        # per skeleton, its second plain id: with one, every plain id of it is marked
        self._second_plain: dict[str, str] = {}
        self._sealed = False

    def sealed_copy(self) -> RoomIds:
        """A copy that can no longer be added to: what a room's state hands to another
        thread (``room_state.Names``) while this one goes on growing."""
        copy = RoomIds()
        copy._groups = dict(self._groups)
        copy._own = dict(self._own)
        copy._skeleton = dict(self._skeleton)
        copy._first_plain = dict(self._first_plain)
        copy._second_plain = dict(self._second_plain)
        copy._sealed = True
        return copy

    def add(self, sender_id: str) -> None:
        if sender_id in self._own:
            return
        if self._sealed:
            raise TypeError("a sealed RoomIds is handed over: nobody adds to it")
        key = skeleton(sender_id)
        own = id_warning(sender_id)
        self._own[sender_id] = own
        self._skeleton[sender_id] = key
        head = self._groups.get(key, ())
        if len(head) < 2:
            self._groups[key] = (*head, sender_id)
        if own is None:
            if key not in self._first_plain:
                self._first_plain[key] = sender_id
            else:
                self._second_plain.setdefault(key, sender_id)

    def skeleton_of(self, sender_id: str) -> str:
        """The skeleton of an id added (what it looks like)."""
        return self._skeleton[sender_id]

    def plain(self, sender_id: str) -> bool:
        """Whether an id added has no suspect characters of its own."""
        return self._own[sender_id] is None

    def first_two(self, key: str) -> tuple[str, ...]:
        """The first two ids (or fewer) that look like ``key``, a skeleton."""
        return self._groups.get(key, ())

    def first_plain(self, key: str) -> str | None:
        """The first plain id that looks like ``key``, a skeleton."""
        return self._first_plain.get(key)

    def second_plain(self, key: str) -> str | None:
        """The second plain id that looks like ``key``, a skeleton: once there is one,
        the first is marked as well."""
        return self._second_plain.get(key)

    def update(self, ids: Iterable[str]) -> None:
        for sender_id in ids:
            self.add(sender_id)

    def __len__(self) -> int:
        return len(self._own)

    def ids(self) -> list[str]:
        """Every id added, first seen first."""
        return list(self._own)

    def lookalike_of(self, sender_id: str) -> str | None:
        """The id that ``sender_id`` is taken to imitate, if any."""
        key = self._skeleton.get(sender_id)
        if key is None:
            key = skeleton(sender_id)
        group = self._groups.get(key, ())
        first_plain = self._first_plain.get(key)
        own = self._own[sender_id] if sender_id in self._own else id_warning(sender_id)
        if own is not None:
            if first_plain is not None:
                return first_plain  # never sender_id itself: it is not plain
            return next((i for i in group[:2] if i != sender_id), None)
        # A plain id is marked for any other plain id that looks the same: the group's
        # first plain id, and the first plain id for the second (an id not added yet
        # comes after all of them).
        if first_plain != sender_id:
            return first_plain
        return self._second_plain.get(key)

    def warning(self, sender_id: str, display_name: str | None = None) -> str | None:
        """``id_warning`` plus "looks like <other id>" when another id of the room looks
        the same, and a note when ``display_name`` looks like another sender's id."""
        parts: list[str] = []
        own = self._own[sender_id] if sender_id in self._own else id_warning(sender_id)
        if own:
            parts.append(own)
        other = self.lookalike_of(sender_id)
        if other is not None:
            if not own:
                parts.append(
                    "Two senders here have ids that look alike: either may imitate the other."
                )
            parts.append(
                f"It looks like {terminal_safe(other, limit=ID_LIMIT)}, a different sender"
                + (" in this room: compare their keys to tell them apart." if not own else ".")
            )
            difference = id_difference(sender_id, other)
            if difference:
                parts.append(difference)
        if display_name:
            group = self._groups.get(skeleton(display_name), ())
            named = next((i for i in group[:2] if i != sender_id), None)
            if named is not None:
                parts.append(
                    f"Its display name looks like the id of {terminal_safe(named, limit=ID_LIMIT)},"
                    " a different sender."
                )
        return " ".join(parts) or None


# Format characters a message body keeps as they are: joiners that build emoji and
# scripts (ZWNJ, ZWJ) and the tag characters of subdivision flags.
_BODY_FORMAT_OK = frozenset("\u200c\u200d") | frozenset(chr(c) for c in range(0xE0020, 0xE0080))


def body_safe(text: str) -> str:
    """A message body for a document a person reads (an export): line breaks and tabs
    stay, every other control character, every bidi control and every invisible format
    character is spelled out as a visible escape (``\\u202e``), so a body can neither
    reorder the text around it nor hide part of itself. Right-to-left letters stay: the
    document shows each body as its own bidi isolate."""
    if text.isascii() and text.isprintable():
        return text
    out: list[str] = []
    for ch in text:
        if ch in "\n\t" or ch in _BODY_FORMAT_OK:
            out.append(ch)
        elif ch in "\u2028\u2029":
            out.append("\n")
        elif ch in _BLANK_LETTERS or (_hidden(ch) and unicodedata.category(ch) != "Cn"):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


__all__ = [
    "ID_LIMIT",
    "NAME_LIMIT",
    "UNSEEN_CATEGORIES",
    "RoomIds",
    "body_safe",
    "display_name_safe",
    "html_escape",
    "id_warning",
    "isolate",
    "lookalike_texts",
    "one_line",
    "shown_id",
    "shown_id_ends",
    "skeleton",
    "spell_marks",
    "terminal_safe",
    "text_look",
]
