"""The vanish check's rules for content tags (``backfill._note_vanished``): what a listing
that does not show the tag kept for a segment leads to. A kept tag is never replaced by
one of another scheme (one rewrite that changes the scheme would set what is compared
after), a kept MD5 (computed here from the bytes read) is settled by reading again, not
reported on the listing's word, and only a value cached before tags had schemes is
replaced by the listing's."""

from __future__ import annotations

from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.storage.base import ObjectInfo
from bucket_chat_desktop.sync.backfill import CHANGED_SAME_SIZE, _note_vanished
from bucket_chat_desktop.sync.room_state import RoomState, unread_findings

FOLDER = "rooms/team/logs/2026-12-05/"
SEG = f"{FOLDER}messages_1796477486096_1796477486096_alice-0934c419.jsonl"


def check(kept: str | None, listed: str | None) -> tuple[RoomState, dict, dict]:
    room = RoomState("team", RoomLedger("team"))
    room.known[SEG] = 100
    if kept is not None:
        room.tags[SEG] = kept
    learnt, recheck = _note_vanished(room, FOLDER, [ObjectInfo(SEG, 100, listed)], 1)
    assert room.unread == {}  # a note of what storage holds: never "could not be read"
    return room, learnt, recheck


def test_a_tag_of_one_scheme_is_compared_and_a_change_reported() -> None:
    room, learnt, recheck = check("s3-etag:aaa", "s3-etag:bbb")
    assert room.vanished == {SEG: CHANGED_SAME_SIZE} and not learnt and not recheck
    room, learnt, recheck = check("s3-etag:aaa", "s3-etag:aaa")
    assert room.vanished == {} and not learnt and not recheck


def test_a_tag_of_another_scheme_or_none_does_not_replace_the_kept_one() -> None:
    for kept, listed in [
        ("crc32c:AAAAAA==", "md5:1B2M2Y8AsgTpgAmY7PhCfg=="),
        ("s3-etag:aaa", None),
        ("crc32c:AAAAAA==", None),
    ]:
        room, learnt, recheck = check(kept, listed)
        assert room.vanished == {} and not learnt and not recheck
        assert room.tags[SEG] == kept, (kept, listed)


def test_a_kept_md5_the_listing_does_not_show_is_read_again_not_reported() -> None:
    kept = "md5:1B2M2Y8AsgTpgAmY7PhCfg=="
    for listed in ["md5:AAAAAAAAAAAAAAAAAAAAAA==", None, "crc32c:AAAAAA=="]:
        room, learnt, recheck = check(kept, listed)
        assert room.vanished == {} and not learnt
        assert recheck == {SEG: (kept, listed)}
        assert room.tags[SEG] == kept
    room, learnt, recheck = check(kept, kept)
    assert room.vanished == {} and not learnt and not recheck
    # An S3 ETag that was the MD5 of the bytes read
    kept = "s3-md5:d41d8cd98f00b204e9800998ecf8427e"
    assert check(kept, "s3-etag:d41d8cd98f00b204e9800998ecf8427e")[2] == {}
    for listed in ["s3-etag:0123456789abcdef0123456789abcdef-1", None]:
        room, learnt, recheck = check(kept, listed)
        assert room.vanished == {} and not learnt
        assert recheck == {SEG: (kept, listed)}
        assert room.tags[SEG] == kept


def test_none_kept_or_a_value_from_before_schemes_is_replaced_by_the_listings() -> None:
    for kept in [None, '"0x8DC0FFEE"']:
        room, learnt, recheck = check(kept, "md5:1B2M2Y8AsgTpgAmY7PhCfg==")
        assert learnt == {SEG: "md5:1B2M2Y8AsgTpgAmY7PhCfg=="} and not recheck
        assert room.vanished == {} and room.tags[SEG] == learnt[SEG]


def test_a_kept_segment_has_one_note_of_one_kind() -> None:
    """What storage no longer holds as read (``vanished``) and a read that failed
    (``unread``) are notes of their own kinds: the first is no reason to read the room
    all over again, the second is; a segment has at most one; both keep the verdict
    from being final, each with its own words."""
    room = RoomState("team", RoomLedger("team"))
    room.known[SEG] = 100
    room.note_vanished(SEG, "gone")
    assert room.vanished == {SEG: "gone"} and not room.unread
    assert room.partial and not room.worth_reading_again
    [finding] = unread_findings(room)
    assert finding.path == SEG and "no longer holds this segment as this device read it" in (
        finding.message
    )
    room.note_failed(SEG, "no answer")
    assert room.unread == {SEG: "no answer"} and not room.vanished
    assert room.partial and room.worth_reading_again
    [finding] = unread_findings(room)
    assert "this segment could not be read (no answer)" in finding.message
    room.note_vanished(SEG, "gone")
    assert set(room.vanished) == {SEG} and not room.unread
    room.listed_as_read(SEG)
    assert not room.vanished and not room.unread and not room.partial
    assert unread_findings(room) == []
