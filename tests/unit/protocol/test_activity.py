"""Activity marker names: what parses, and the junk that must never move a cursor."""

from __future__ import annotations

import pytest

from bucket_chat_desktop.protocol.activity import marker_path, parse_marker

T = 1_757_851_245_000  # 2025-09-14T12:00:45Z
SEG = "rooms/room-1/logs/2025-09-14/messages_1_1_alice-0a1b2c3d.jsonl"
GOOD = marker_path(T, SEG)


def test_a_marker_names_its_segment() -> None:
    assert GOOD.startswith("activity/2025-09-14/1757851245000~room-1~")
    assert parse_marker(GOOD) == (T, "room-1", SEG)


@pytest.mark.parametrize(
    "junk",
    [
        "activity/2025-09-14/zzzz",
        "activity/2025-09-14/~~~",
        # a time on another day than its folder: it would sort after every real marker
        GOOD.replace("1757851245000", "1757980800000"),  # the next day
        GOOD.replace("1757851245000", "9999999999999999"),
        GOOD.replace("1757851245000", "99999999999999999999"),
        GOOD.replace("1757851245000", "175785124500"),  # 12 digits
        GOOD.replace("1757851245000", "１７５７８５１２４５０００"),  # fullwidth digits
        GOOD.replace("room-1", "../x"),
        GOOD.replace("activity/", "activity/x/"),
    ],
)
def test_junk_does_not_parse(junk: str) -> None:
    assert parse_marker(junk) is None
