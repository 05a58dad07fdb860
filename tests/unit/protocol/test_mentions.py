"""Mentions: the ``mentions`` field read as untrusted input, text matches, what a sender
writes (PROTOCOL.md section 19)."""

from __future__ import annotations

import random
import re
import sys
from typing import Any

import pytest

from bucket_chat_desktop.protocol.mentions import (
    MAX_ID_CHARS,
    MAX_MENTIONS,
    MAX_SCANNED,
    MAX_STEPS,
    mention_spans,
    mention_spans_each,
    mentions_in,
    mentions_me,
    mentions_of,
    with_mentions,
)

BOB = "bob@example.com"
MEMBERS = [("alice@example.com", "Alice"), (BOB, "Bob"), ("carol@example.com", "")]


def test_the_field_is_read_when_it_is_a_bounded_list_of_strings() -> None:
    assert mentions_of({"mentions": [BOB, "carol@example.com", BOB]}) == (
        BOB,
        "carol@example.com",
    )
    assert mentions_of({"body": "hi"}) == ()


@pytest.mark.parametrize(
    "value",
    [
        BOB,  # a string, not a list
        {"id": BOB},
        [BOB, 7],  # one item is not a string: the whole field is ignored
        [BOB, None],
        [""],
        ["x" * (MAX_ID_CHARS + 1)],
        [f"u{i}@example.com" for i in range(MAX_MENTIONS + 1)],
        [[BOB]],
    ],
)
def test_a_field_of_any_other_shape_is_ignored_whole(value: Any) -> None:
    assert mentions_of({"mentions": value}) == ()
    assert not mentions_me({"body": "hello", "mentions": value}, BOB)


def test_content_that_is_not_a_mapping_names_nobody() -> None:
    assert mentions_of([BOB]) == ()  # type: ignore[arg-type]
    assert not mentions_me("hi @bob", BOB)  # type: ignore[arg-type]


def test_spans_cover_at_and_name_and_prefer_the_longest() -> None:
    body = "ping @Bob and @bob@example.com, not alice@example.com or @Bobby"
    spans = mention_spans(body, ["Bob", BOB])
    assert [body[a:b] for a, b in spans] == ["@Bob", "@bob@example.com"]


def test_a_name_with_spaces_and_regex_characters_matches_literally() -> None:
    body = "@Dr. (Who) see @Dr* x"
    assert [body[a:b] for a, b in mention_spans(body, ["Dr. (Who)", "Dr"])] == [
        "@Dr. (Who)",
        "@Dr",
    ]


def test_mentions_in_finds_ids_by_name_or_id_in_order() -> None:
    assert mentions_in("@carol@example.com and @bob, hi", MEMBERS) == ["carol@example.com", BOB]
    assert mentions_in("mail bob@example.com", MEMBERS) == []
    assert mentions_in("@Nobody", MEMBERS) == []


def test_with_mentions_adds_the_field_only_when_someone_is_named() -> None:
    plain = {"body": "hello", "msgtype": "m.text"}
    assert with_mentions(plain, MEMBERS) is plain
    named = with_mentions({"body": "@Bob look", "msgtype": "m.text"}, MEMBERS)
    assert named == {"body": "@Bob look", "msgtype": "m.text", "mentions": [BOB]}


def test_mentions_me_by_field_by_id_or_by_name() -> None:
    assert mentions_me({"body": "x", "mentions": [BOB]}, BOB)
    assert mentions_me({"body": "hey @BOB@example.com"}, BOB)
    assert mentions_me({"body": "hey @bob!"}, BOB, ["Bob"])
    assert not mentions_me({"body": "hey bob"}, BOB, ["Bob"])
    assert not mentions_me({"body": "hey @Bobby"}, BOB, ["Bob"])
    assert not mentions_me({"body": 5}, BOB, ["Bob"])
    assert not mentions_me({"body": "@bob"}, "", ["Bob"])


def test_a_huge_body_is_searched_only_at_its_start() -> None:
    body = "x " * 20_000 + "@Bob"
    assert mention_spans(body, ["Bob"]) == []


def _by_regex(body: str, targets: list[str]) -> list[tuple[int, int]]:
    """What a mention was before the search became linear (red team rt67): ``@`` and the
    longest target, ``re.IGNORECASE``, not inside a word. The reference it must agree with."""
    kept = list(dict.fromkeys(t for t in targets if t.strip()))
    names = sorted(kept, key=len, reverse=True)
    if not names or "@" not in body:
        return []
    alternatives = "|".join(re.escape(n) for n in names)
    pattern = re.compile(rf"(?<![\w@])@(?:{alternatives})(?!\w)", re.IGNORECASE)
    return [m.span() for m in pattern.finditer(body, 0, min(len(body), MAX_SCANNED))]


def test_spans_are_what_the_case_insensitive_pattern_found() -> None:
    """Case as ``re`` folds it (long s, Kelvin sign, dotted and dotless i, sigmas, sharp
    s), words, "@" next to "@", names within names, blank and repeated names."""
    letters = (
        "aAbB@@  _.-\u017fsSkK\u212a\u0130iI\u0131\u00dfs\u03a3\u03c3\u03c2\u0345\u03b91\u00e9"
    )
    rng = random.Random(67)
    for _ in range(20_000):
        targets = [
            "".join(rng.choice(letters) for _ in range(rng.randint(0, 5)))
            for _ in range(rng.randint(0, 6))
        ]
        body = "".join(rng.choice(letters) for _ in range(rng.randint(0, 40)))
        if targets and rng.random() < 0.5:
            at = rng.randint(0, len(body))
            body = f"{body[:at]}@{rng.choice(targets)}{body[at:]}"
        assert mention_spans(body, targets) == _by_regex(body, targets), (body, targets)
    assert mention_spans_each(["@bob x", "", "@BOB"], ["Bob"]) == [[(0, 4)], [], [(0, 4)]]


# Red team rt67: a body of "@x @x @x ..." and a hundred member ids "x @x @x ...#i" of 500
# characters each: every id matched almost whole at every "@" before failing, 0.7 s a
# search, two or three searches a paint, the window frozen for seconds.
LONG_ID = ("x @" * 200)[:500]
HOSTILE_IDS = [f"{LONG_ID}#{i}" for i in range(100)]
HOSTILE_BODY = ("@x " * 7000)[:MAX_SCANNED]


def _work(body: str, targets: list[str]) -> int:
    """Lines of Python ``mention_spans`` runs: work counted, not timed."""
    lines = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(trace)
    try:
        mention_spans(body, targets)
    finally:
        sys.settrace(None)
    return lines


def test_the_search_is_bounded_whatever_the_names() -> None:
    targets = [*HOSTILE_IDS, "Bob"]
    hostile = _work(HOSTILE_BODY, targets)
    plain = _work(("@Bob hi " * 3000)[:MAX_SCANNED], targets)  # 2,500 mentions
    assert hostile < 10 * MAX_STEPS
    assert hostile < 10 * plain
    # the search stops there: a mention before the hostile part is found, one after not
    body = f"@Bob {HOSTILE_BODY[:15_000]} @Bob"
    assert mention_spans(body, targets) == [(0, 4)]
    # an ordinary long message is searched to its end
    ordinary = "@Bob, see @bob@example.com " * 700
    assert len(mention_spans(ordinary, [*HOSTILE_IDS, "Bob", BOB])) == 1_400


def test_protocol_md_states_the_limits_the_code_uses() -> None:
    from pathlib import Path

    from bucket_chat_desktop.protocol import mentions

    doc = (Path(__file__).resolve().parents[3] / "docs" / "PROTOCOL.md").read_text("utf-8")
    section = doc[doc.index("## 19. Mentions") :]
    assert f"at\nmost {MAX_MENTIONS} strings of 1–{MAX_ID_CHARS} characters" in section
    assert f"first {mentions.MAX_SCANNED:,} characters" in section
    assert f"at most\n{MAX_STEPS:,} of its characters" in section
