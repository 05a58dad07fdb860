"""Mentions: the ``mentions`` field read as untrusted input, text matches, what a sender
writes (PROTOCOL.md section 19)."""

from __future__ import annotations

from typing import Any

import pytest

from bucket_chat_desktop.protocol.mentions import (
    MAX_ID_CHARS,
    MAX_MENTIONS,
    mention_spans,
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


def test_protocol_md_states_the_limits_the_code_uses() -> None:
    from pathlib import Path

    from bucket_chat_desktop.protocol import mentions

    doc = (Path(__file__).resolve().parents[3] / "docs" / "PROTOCOL.md").read_text("utf-8")
    section = doc[doc.index("## 19. Mentions") :]
    assert f"at\nmost {MAX_MENTIONS} strings of 1–{MAX_ID_CHARS} characters" in section
    assert f"first {mentions.MAX_SCANNED:,} characters" in section
