"""The untrusted-text policy: what may reach a terminal, a name slot, an id."""

from __future__ import annotations

import unicodedata

import pytest

from bucket_chat_desktop.protocol import untrusted_text as ut
from bucket_chat_desktop.protocol.untrusted_text import (
    NAME_LIMIT,
    RoomIds,
    display_name_safe,
    html_escape,
    id_warning,
    isolate,
    lookalike_texts,
    skeleton,
    spell_marks,
    terminal_safe,
)

HOSTILE = (
    "\x1b[2J\x1b]0;owned\x07"  # clear screen, set the window title
    "\rNOT CLEAN\x08\x08\x08"  # carriage return, backspaces
    "\x9b31m"  # 8-bit CSI (C1)
    "\x85\u2028\u2029"  # NEL, line and paragraph separators
    "\u202e\u2066\u200e\u061c"  # bidi controls
    "\u200b\ufeff\u3164"  # zero width space, BOM, Hangul filler
    "\ud800"  # a lone surrogate (JSON can carry one)
    "\x7f"
)


def _raw_controls(text: str) -> list[str]:
    return [
        ch
        for ch in text
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") or ch == "\u3164"
    ]


def test_terminal_safe_leaves_no_control_character() -> None:
    shown = terminal_safe(HOSTILE)
    assert _raw_controls(shown) == []
    assert "\\x1b" in shown and "\\x9b" in shown and "\\x0d" in shown and "\\x08" in shown
    assert "\\u202e" in shown and "\\u2028" in shown and "\\ud800" in shown
    assert "\\u3164" in shown  # a blank letter is named, not shown as nothing


def test_terminal_safe_keeps_text_and_newlines_only_when_asked() -> None:
    assert terminal_safe("héllo wörld ✓ 日本") == "héllo wörld ✓ 日本"
    assert terminal_safe("a\nb") == "a\\x0ab"
    assert terminal_safe("a\nb", multiline=True) == "a\nb"
    assert terminal_safe("a\u00a0b") == "a b"  # a no-break space is only a space


def test_terminal_safe_caps_long_strings() -> None:
    shown = terminal_safe("x" * 5000, limit=100)
    assert shown.startswith("x" * 100) and "4,900 more characters" in shown
    assert len(shown) < 140


def test_display_name_loses_padding_and_controls() -> None:
    padded = "Bob" + "\u3164" * 400 + "\u200b" * 400 + " " * 300 + "\u202e\u2066Smith\u2069"
    assert display_name_safe(padded) == "Bob Smith"
    assert display_name_safe("\u200b\u200d\u3164  \u2800") == ""
    assert display_name_safe(None) == ""
    assert display_name_safe("a\nb\r\tc\u2028d") == "a b c d"


def test_display_name_is_capped_and_marks_are_bounded() -> None:
    assert len(display_name_safe("W" * 1000)) == NAME_LIMIT
    assert display_name_safe("W" * 1000).endswith("…")
    zalgo = "Z" + "\u0301" * 200 + "oe"
    assert display_name_safe(zalgo) == "Z\u0301\u0301oe"
    assert display_name_safe("❤️ Ana") == "❤️ Ana"  # one variation selector is fine
    assert display_name_safe("שלום") == "שלום"  # right-to-left letters stay


def test_isolate_and_html_escape() -> None:
    assert isolate("abc") == "\u2068abc\u2069"
    assert html_escape("<b>x</b> & <img src=y>'\"") == (
        "&lt;b&gt;x&lt;/b&gt; &amp; &lt;img src=y&gt;&#x27;&quot;"
    )


@pytest.mark.parametrize(
    "sender_id",
    [
        "alice@example.com",
        "bob.smith+chat@example.org",
        "дмитрий@почта.рф",  # one script per label is fine
        "田中たろう@example.jp",  # Japanese mixes scripts in everyday use
        "josé@example.es",
    ],
)
def test_plain_ids_have_no_warning(sender_id: str) -> None:
    assert id_warning(sender_id) is None


@pytest.mark.parametrize(
    ("sender_id", "says"),
    [
        ("\u0430lice@example.com", "mixes Cyrillic and Latin"),
        ("\u0391lice@example.com", "mixes Greek and Latin"),
        ("\u0430\u0440\u0440\u04cf\u0435@example.com", "only look like Latin"),
        ("a\u200blice@example.com", "ZERO WIDTH SPACE"),
        ("alice\u202e@example.com", "text-direction controls"),
        ("\uff41lice@example.com", "look-alike forms"),
        ("alice @example.com", "spaces"),
        ("alice\x1b[2J@example.com", "control characters"),
    ],
)
def test_confusable_ids_say_why(sender_id: str, says: str) -> None:
    warning = id_warning(sender_id)
    assert warning is not None and says in warning


def test_skeletons_match_look_alikes() -> None:
    base = skeleton("alice@example.com")
    for other in (
        "\u0430lice@example.com",
        "ALICE@example.com",
        "a\u200blice@example.com",
        "\uff41lice@example.com",
        "a1ice@example.com",
        "aIice@example.com",  # a capital I for the l: one in most sans-serif faces
    ):
        assert skeleton(other) == base, other
    assert skeleton("rnallory@x") == skeleton("mallory@x")
    assert skeleton("ǀaura@x") == skeleton("laura@x")
    assert skeleton("bob@example.com") != base


@pytest.mark.parametrize(
    ("capital", "latin"),
    [
        ("\u04ae", "Y"),  # CYRILLIC CAPITAL LETTER STRAIGHT U
        ("\u04ba", "h"),  # CYRILLIC CAPITAL LETTER SHHA
        ("\u037f", "J"),  # GREEK CAPITAL LETTER YOT
        ("\u051a", "Q"),  # CYRILLIC CAPITAL LETTER QA
        ("\u0500", "d"),  # CYRILLIC CAPITAL LETTER KOMI DE
    ],
)
def test_a_capital_look_alike_matches_the_letter_it_imitates(capital: str, latin: str) -> None:
    """Red team: the table held only the small letters ("ү" for "y"), and look-alikes
    are mapped before case folding, so their capitals matched nothing: "Үes" was not
    taken for "Yes" (four reaction chips of one member read "Yes 1"), nor "Үvonne@…" for
    "yvonne@…"."""
    assert skeleton(f"{capital}es") == skeleton(f"{latin}es")
    assert skeleton(f"{capital}vonne@example.com") == skeleton(f"{latin}vonne@example.com")
    warning = id_warning(f"{capital}{capital}{capital}@example.com")
    assert warning is not None and "only look like Latin" in warning


def test_a_capital_keeps_the_letter_it_imitates_itself() -> None:
    """Folding case before the look-alike table would weaken it: Greek "Η" passes for
    "H" (its small "η" for "n"), "Ν" for "N" ("ν" for "v"), "Υ" for "Y" ("υ" for "u")."""
    assert skeleton("\u0397elen@x") == skeleton("helen@x") != skeleton("nelen@x")
    assert skeleton("\u039ded@x") == skeleton("ned@x") != skeleton("ved@x")
    assert skeleton("\u03a5uri@x") == skeleton("yuri@x") != skeleton("uuri@x")


# Case partners of look-alikes that imitate no letter their partner imitates (a Cyrillic
# "П" is no "n", a Greek "ζ" no "Z"): left out of the table on purpose.
UNLIKE_PARTNERS = frozenset("ПГζμΓՀՈՑԶԱտլ")


def test_every_case_partner_of_a_look_alike_is_listed_or_named_unlike() -> None:
    """A capital (or small letter) whose partner is in the look-alike table is listed
    too, or named here as one that does not look like it: none is forgotten again."""
    forgotten = sorted(
        partner
        for ch in ut._LOOKALIKES
        for partner in {ch.upper(), ch.lower()}
        if len(partner) == 1
        and partner != ch
        and not partner.isascii()
        and partner not in ut._LOOKALIKES
        and partner not in UNLIKE_PARTNERS
    )
    assert not forgotten, [f"U+{ord(c):04X} {unicodedata.name(c)}" for c in forgotten]


def test_lookalike_texts_are_those_written_differently_that_look_the_same() -> None:
    """The rule both front ends mark reaction chips by."""
    texts = ["No", "Yes", "Y\u0435s", "\u04aees", "Ye\u0455", "👍", "👍\ufe0f", "❤\ufe0f"]
    assert lookalike_texts(texts) == {"Yes", "Y\u0435s", "\u04aees", "Ye\u0455", "👍", "👍\ufe0f"}
    # ASCII that differs only in case is told apart at a glance; a Kelvin sign is not
    assert lookalike_texts(["OK", "ok", "Ok"]) == frozenset()
    assert lookalike_texts(["OK", "O\u212a"]) == {"OK", "O\u212a"}
    assert lookalike_texts(["lol", "Iol"]) == {"lol", "Iol"}  # a capital I for the l
    assert lookalike_texts(["Yes"]) == frozenset()


def test_texts_that_differ_only_in_case_are_no_lookalikes_in_any_script() -> None:
    """Red team: "Да"/"да", "Sí"/"SÍ", "Schön"/"SCHÖN", "Ναι"/"ΝΑΙ" were each marked
    "looks like another reaction here, written differently"; only ASCII was read for its
    case. A letter of another script in the same word still is a look-alike."""
    for pair in (["Да", "да"], ["Sí", "SÍ"], ["Schön", "SCHÖN"], ["Ναι", "ΝΑΙ"]):
        assert lookalike_texts(pair) == frozenset(), pair
    assert lookalike_texts(["Да", "Дa"]) == {"Да", "Дa"}  # a Latin a in the Russian word
    assert lookalike_texts(["ΝΑΙ", "NAI"]) == {"ΝΑΙ", "NAI"}  # Greek capitals, Latin ones
    assert lookalike_texts(["ＯＫ", "ok"]) == {"ＯＫ", "ok"}  # fullwidth: not read for case


def test_room_ids_mark_the_suspect_look_alike_and_both_plain_ones() -> None:
    ids = RoomIds()
    ids.update(["alice@example.com", "mallory@example.com"])
    ids.add("\u0430lice@example.com")
    ids.add("rnallory@example.com")
    # a plain id is not marked for a look-alike whose own letters are suspect
    assert ids.warning("alice@example.com") is None
    cyrillic = ids.warning("\u0430lice@example.com")
    assert cyrillic is not None and "looks like alice@example.com" in cyrillic
    # two plain ids that look the same: which wrote first decides nothing (an impostor
    # backdates its events), so each is marked as looking like the other
    ascii_only = ids.warning("rnallory@example.com")
    assert ascii_only is not None and "looks like mallory@example.com" in ascii_only
    real = ids.warning("mallory@example.com")
    assert real is not None and "looks like rnallory@example.com" in real
    assert "compare their keys" in real
    assert ids.lookalike_of("bob@example.com") is None


def test_a_warning_never_carries_raw_controls() -> None:
    ids = RoomIds()
    ids.add("alice\x1b]0;x\x07@example.com")
    ids.add("alice\x1b]0;y\x07@example.com")
    warning = ids.warning("alice\x1b]0;y\x07@example.com")
    assert warning is not None and "\x1b" not in warning and "\x07" not in warning


def test_a_display_name_copying_another_id_is_marked() -> None:
    ids = RoomIds()
    ids.update(["alice@example.com", "bob@example.com"])
    warning = ids.warning("bob@example.com", "alice@example.com")
    assert warning is not None and "display name looks like the id of alice@example.com" in warning
    assert ids.warning("bob@example.com", "\u0430lice@EXAMPLE.com") is not None
    assert ids.warning("bob@example.com", "Bob") is None
    assert ids.warning("alice@example.com", "alice@example.com") is None  # their own id


def test_the_suspect_id_is_marked_even_when_it_wrote_first() -> None:
    ids = RoomIds()
    ids.update(["\u0430lice@example.com", "alice@example.com"])  # the impostor came first
    assert ids.warning("alice@example.com") is None
    impostor = ids.warning("\u0430lice@example.com")
    assert impostor is not None and "looks like alice@example.com" in impostor


def test_spell_marks_keeps_two_marks_on_a_letter_and_spells_out_the_rest() -> None:
    zalgo = "e" + "\u0301\u0300\u0302\u0303"
    assert spell_marks(zalgo) == "e\u0301\u0300\\u0302\\u0303"
    assert spell_marks(zalgo + "x\u0301") == "e\u0301\u0300\\u0302\\u0303x\u0301"
    # everyday accents and scripts are left alone
    for text in ("Tiếng Việt", "naïve café", "ภาษาไทย", "plain ascii"):
        assert spell_marks(text) == text
