"""The look-alike checks a room asks about every sender id (``skeleton``, ``id_warning``)
and the name cleaning of every join (``display_name_safe``) take short cuts: printable
ASCII is answered without the Unicode walk, and what is asked of each character is
asked once. Each must equal the plain form it replaced, kept here as the oracle, on
any text: ASCII, look-alike letters, marks, invisible and bidi characters, spaces of
every kind, compatibility forms, lone surrogates."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol import untrusted_text as ut
from bucket_chat_desktop.protocol.untrusted_text import display_name_safe, id_warning, skeleton


def plain_skeleton(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text)
    shown = (ch for ch in folded if not ut._hidden(ch) and ch not in ut._VARIATION_SELECTORS)
    kept = "".join(ut._LOOKALIKES.get(ch, ch) for ch in shown)
    kept = "".join(ch for ch in kept if unicodedata.category(ch) != "Zs")
    kept = kept.casefold()
    for old, new in ut._FOLDED_PAIRS:
        kept = kept.replace(old, new)
    return kept


def plain_id_warning(sender_id: str) -> str | None:
    reasons: list[str] = []
    hidden = [ch for ch in sender_id if ut._hidden(ch) or ch in ut._VARIATION_SELECTORS]
    bidi = [ch for ch in hidden if ch in ut._BIDI_CONTROLS]
    if bidi:
        reasons.append(f"it holds text-direction controls ({ut._describe(bidi)})")
    other = [ch for ch in hidden if ch not in ut._BIDI_CONTROLS]
    if other:
        reasons.append(f"it holds invisible or control characters ({ut._describe(other)})")
    if [ch for ch in sender_id if unicodedata.category(ch) == "Zs"]:
        reasons.append("it holds spaces")
    folded = unicodedata.normalize("NFKC", sender_id)
    marks = [ch for ch in unicodedata.normalize("NFC", folded) if unicodedata.combining(ch)]
    if marks:
        reasons.append(f"it holds combining marks ({ut._describe(marks)})")
    foreign = [ch for ch in folded if not ch.isascii() and unicodedata.category(ch)[0] in "PS"]
    if foreign:
        reasons.append(
            f"it holds punctuation or symbols from outside ASCII ({ut._describe(foreign)})"
        )
    changed = [ch for ch in sender_id if unicodedata.normalize("NFKC", ch) != ch]
    if changed and not all(ut._hidden(ch) for ch in changed):
        reasons.append(f"it uses look-alike forms ({ut._describe(changed)})")
    for label in ut._labels(folded):
        scripts = {s for s in map(ut._script, label) if s is not None}
        lookalikes = [ch for ch in label if ch in ut._LOOKALIKES and not ch.isascii()]
        if len(scripts) > 1 and not any(scripts <= ok for ok in ut._MIXES_OK):
            names = " and ".join(s.title() for s in sorted(scripts))
            reasons.append(f"it mixes {names} letters in one word")
            if lookalikes:
                reasons.append(f"{ut._describe(lookalikes)}: not Latin, but looks it")
        elif lookalikes and all(plain_skeleton(ch).isascii() for ch in label):
            reasons.append(f"its letters only look like Latin ones ({ut._describe(lookalikes)})")
    if not reasons:
        return None
    return "This id may imitate another: " + "; ".join(dict.fromkeys(reasons)) + "."


def plain_display_name_safe(name: str, limit: int = ut.NAME_LIMIT) -> str:
    out: list[str] = []
    marks = 0
    space = False
    for ch in name:
        cat = unicodedata.category(ch)
        if cat in ("Zs", "Zl", "Zp") or ch in "\t\n\r\v\f\x85":
            space = bool(out)
            continue
        if ut._hidden(ch) and cat != "Cn":
            continue
        if cat in ("Mn", "Me", "Mc") or ch in ut._VARIATION_SELECTORS:
            if not out or out[-1] == " " or marks >= ut.MAX_MARKS:
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


# Characters the checks treat specially, and the letters of the scripts they compare.
SPECIAL = (
    *ut._LOOKALIKES,
    *"\u202e\u2066\u200e\u061c\u200b\u200d\ufeff\u3164\u2800\u034f\ufe0f\U000e0100",
    *"\u0301\u0335\u0308\u20dd\u093f",  # combining marks (one spacing)
    *"\u00a0\u3000\u2028\u2029\t\n\x85\x00\x1b\x7f",  # blanks and controls
    *"ＡＢｃ１ℌ𝐚ﬁ㎏①\u2126\u212a",  # compatibility forms, NFKC changes them
    *"\u06d4\u3002\uff0e\u2024@.:/_-+ ",  # separators, foreign and ASCII
    *"あアカ漢字한글ㄅ",  # scripts that mix in everyday use
    "\ud800",
)
texts = st.text(
    st.one_of(st.sampled_from(SPECIAL), st.characters(max_codepoint=0x7F), st.characters()),
    max_size=24,
)
ascii_texts = st.text(st.characters(max_codepoint=0x7F), max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.one_of(texts, ascii_texts))
def test_skeleton_equals_the_plain_form(text: str) -> None:
    skeleton.cache_clear()
    assert skeleton(text) == plain_skeleton(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(texts, ascii_texts))
def test_id_warning_equals_the_plain_form(text: str) -> None:
    id_warning.cache_clear()
    assert id_warning(text) == plain_id_warning(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, ascii_texts), st.integers(1, 70))
def test_display_name_safe_equals_the_plain_form(text: str, limit: int) -> None:
    assert display_name_safe(text, limit) == plain_display_name_safe(text, limit)


def test_every_character_alone_and_in_ascii_context() -> None:
    """Each character of the special set and every ASCII character, alone and between
    ASCII letters (the per-character answers are cached: asked twice, same answer)."""
    ascii_chars = [chr(c) for c in range(0x80)]
    for ch in [*SPECIAL, *ascii_chars]:
        for text in (ch, f"a{ch}b@ex.com", f"{ch}{ch}  {ch}"):
            for _ in range(2):
                assert skeleton(text) == plain_skeleton(text), text
                assert id_warning(text) == plain_id_warning(text), text
                assert display_name_safe(text) == plain_display_name_safe(text), text
    assert not any(k.isascii() for k in ut._LOOKALIKES)  # what the ASCII short cut assumes
