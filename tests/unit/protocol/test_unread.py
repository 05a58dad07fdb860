"""Unread messages after a read marker (``protocol/unread.py``): what counts (messages of
other keys, not deleted; never joins, reactions, edits, deletions), where the "New
messages" line goes, the cap, and markers the rows do not hold (a rewritten history, a
marker of another audit, a hostile timestamp): a sensible count, never the whole room."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from bucket_chat_desktop.protocol.audit import (
    HOLD_AHEAD_MS,
    AuditResult,
    RoomLedger,
    Timeline,
    prepare_segment,
)
from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, REDACTION, Relations, build
from bucket_chat_desktop.protocol.unread import (
    FUTURE_SLACK_MS,
    UNREAD_CAP,
    ReadMarker,
    UnreadCount,
    arrived,
    count_unread,
    is_news_placed,
    is_unread_news,
    marker_for,
    placed_before,
    position_of,
    seen_place,
    unread_label,
)

from ._support import ROOM, T0, Device, alice, audit, bob, seg


def _room(*chains: list[Event]) -> tuple[AuditResult, Relations]:
    result = audit(*(seg(events, f"c{i}") for i, events in enumerate(chains)))
    return result, build(ROOM, result.timeline)


NOW = T0 + 3_600_000  # the reading device's clock: an hour after the room began


def _marker(ev: Event) -> ReadMarker:
    return ReadMarker(ev.event_id, ev.timestamp_ms)


def test_counts_other_keys_messages_after_the_marker_and_names_the_first() -> None:
    a, b = alice(), bob()
    seen = a.say(T0 + 10, "see you later")
    away = [b.say(T0 + 20 + i, f"while you were out {i}") for i in range(3)]
    own = a.say(T0 + 30, "back (from my laptop's twin key)")
    hers = [a.join(T0), a.say(T0 + 1, "hello"), seen, own]
    result, rel = _room(hers, [b.join(T0 + 2), b.say(T0 + 3, "hi"), *away])
    count = count_unread(result.timeline, _marker(seen), a.public, rel, NOW)
    assert count == UnreadCount(3, away[0].event_id, found=True)
    # the newest row seen: nothing unread; no key of one's own: one's own count too
    newest = result.timeline[len(result.timeline) - 1].event
    assert count_unread(result.timeline, _marker(newest), a.public, rel, NOW).count == 0
    assert count_unread(result.timeline, _marker(seen), None, rel, NOW).count == 4


def test_reactions_edits_deletions_joins_and_deleted_messages_are_not_news() -> None:
    a, b = alice(), bob()
    seen = a.say(T0 + 1, "anyone?")
    gone = b.say(T0 + 3, "oops, wrong room")
    kept = b.say(T0 + 4, "here")
    rows = [
        b.join(T0 + 2),
        gone,
        kept,
        b.emit(T0 + 5, REACTION, {"relates_to": seen.event_id, "reaction": "👍"}),
        b.emit(
            T0 + 6,
            EDIT,
            {"replaces": kept.event_id, "new_content": {"body": "here!", "msgtype": "m.text"}},
        ),
        b.emit(T0 + 7, REDACTION, {"redacts": gone.event_id}),
    ]
    result, rel = _room([a.join(T0), seen], rows)
    count = count_unread(result.timeline, _marker(seen), a.public, rel, NOW)
    assert count == UnreadCount(1, kept.event_id, found=True)
    # the one rule the live count uses too
    assert is_unread_news(kept, a.public, rel)
    assert not is_unread_news(gone, a.public, rel) and is_unread_news(gone, a.public, None)
    assert not is_unread_news(rows[0], a.public, rel) and not is_unread_news(seen, a.public, rel)
    assert not any(is_unread_news(ev, a.public, rel) for ev in rows[3:])


def test_a_marker_the_rows_do_not_hold_counts_only_what_is_newer_than_it() -> None:
    a, b = alice(), bob()
    early = [b.say(T0 + 10 + i, f"before {i}") for i in range(5)]
    late = [b.say(T0 + 100 + i, f"after {i}") for i in range(2)]
    result, rel = _room([a.join(T0)], [b.join(T0 + 1), *early, *late])
    rows = result.timeline
    # a marker of a rewritten history (its event is gone), dated between the two runs
    lost = ReadMarker(f"{ROOM}::gone", T0 + 50)
    assert count_unread(rows, lost, a.public, rel, NOW) == UnreadCount(2, late[0].event_id, False)
    # same timestamp as a row: only rows ordered after (timestamp, id) count
    tie = ReadMarker(early[2].event_id + "x", early[2].timestamp_ms)
    assert count_unread(rows, tie, a.public, rel, NOW) == UnreadCount(4, early[3].event_id, False)
    # a marker from the future (a hostile newest row, since rewritten away): nothing
    assert count_unread(rows, ReadMarker("x", 2**53 - 1), a.public, rel, NOW).count == 0
    # a marker older than the whole room: every message of others, as it would be
    assert count_unread(rows, ReadMarker("x", 0), a.public, rel, NOW).count == 7
    # no rows at all (an audit not read yet)
    assert count_unread([], lost, a.public, rel, NOW) == UnreadCount(0, "", False)


def test_a_back_dated_row_does_not_stop_the_walk_for_a_missing_marker() -> None:
    a, b = alice(), bob()
    old = [a.say(T0 + 1 + i, f"old {i}") for i in range(3)]
    new = [b.say(T0 + 100 + i, f"new {i}") for i in range(3)]
    result, rel = _room([a.join(T0), *old], [b.join(T0 + 50), *new])
    rows = list(result.timeline)
    # a hostile writer's row dated long ago but placed among the newest (plain rows here:
    # the count reads only the sequence it is given)
    liar = b.say(T0 - 1_000, "back-dated")
    hostile = [*rows[:-1], rows[-1]._replace(event=liar), rows[-1]]
    lost = ReadMarker("gone", T0 + 60)
    assert count_unread(hostile, lost, a.public, rel, NOW).count == 3


def test_the_count_stops_at_the_cap() -> None:
    a, b = alice(), bob()
    seen = a.say(T0 + 1, "see you")
    many = [b.say(T0 + 10 + i, f"m{i}") for i in range(12)]
    result, rel = _room([a.join(T0), seen], [b.join(T0 + 2), *many])
    capped = count_unread(result.timeline, _marker(seen), a.public, rel, NOW, cap=5)
    assert capped == UnreadCount(5, many[0].event_id, True, capped=True)
    missing = count_unread(result.timeline, ReadMarker("x", T0 + 5), a.public, rel, NOW, cap=5)
    assert missing.count == 5 and missing.capped and not missing.found
    assert UNREAD_CAP == 100  # enough to know the count is more than the 99 shown


def test_a_row_dated_far_in_the_future_cannot_swallow_later_messages() -> None:
    """Red team: Mallory plants a message dated in the year 2100. It sorts after everything
    written since; were it the read marker, Bob's messages that arrive after a restart
    would sort before it and never count."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    seen = b.say(T0 + 10, "seen before the restart")
    planted = mallory.say(4_102_444_800_000, "from the year 2100")
    before, rel = _room([a.join(T0), a.say(T0 + 1, "hi")], [b.join(T0 + 2), seen], [planted])
    newest = before.timeline[len(before.timeline) - 1].event
    assert newest.event_id == planted.event_id  # the newest row
    marker = marker_for(before.timeline, NOW)
    assert marker == _marker(seen)  # the newest row not dated past this device's clock
    # later: two genuine messages (read after a restart) sort before the planted row
    later = [b.say(NOW + 60_000 + i, f"while you were away {i}") for i in range(2)]
    after, rel = _room([a.join(T0), a.say(T0 + 1, "hi")], [b.join(T0 + 2), seen, *later], [planted])
    rows = after.timeline
    assert rows[len(rows) - 1].event.event_id == planted.event_id
    now = NOW + 120_000
    count = count_unread(rows, marker, a.public, rel, now)
    assert count == UnreadCount(2, later[0].event_id, found=True)  # the planted row: never
    # a marker whose event is gone counts by its (timestamp, id): the same two
    gone = ReadMarker(f"{ROOM}::gone", seen.timestamp_ms)
    assert count_unread(rows, gone, a.public, rel, now).count == 2
    # the planted row counts once its date is within a day of this device's clock
    assert (
        count_unread(rows, marker, a.public, rel, planted.timestamp_ms - FUTURE_SLACK_MS).count == 3
    )


def test_a_room_of_only_future_rows_leaves_the_marker_where_it_was() -> None:
    a, mallory = alice(), Device("mallory@example.com", 9)
    far = 4_102_444_800_000
    result, _ = _room([a.join(far), *(mallory.say(far + i, "x") for i in range(3))])
    assert marker_for(result.timeline, NOW) is None
    assert marker_for([], NOW) is None


def test_a_row_planted_an_hour_ahead_hides_nothing_from_the_count() -> None:
    """Red team: with a day of slack, a row dated 23 hours ahead was the marker, and what
    was written in those hours sorted before it: one planted row a day kept every
    message out of the count after a restart. The slack is minutes now."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    seen = b.say(T0 + 10, "seen before the restart")
    planted = [mallory.join(T0 + 5), mallory.say(NOW + 3_600_000, "an hour ahead")]
    hers = [a.join(T0), a.say(T0 + 1, "hi")]
    before, _ = _room(hers, [b.join(T0 + 2), seen], planted)
    marker = marker_for(before.timeline, NOW)
    assert marker == _marker(seen)
    later = [b.say(NOW + 60_000 + i, f"while you were away {i}") for i in range(2)]
    after, rel = _room(hers, [b.join(T0 + 2), seen, *later], planted)
    count = count_unread(after.timeline, marker, a.public, rel, NOW + 120_000)
    assert count == UnreadCount(2, later[0].event_id, found=True)
    # the edge: a row placed exactly FUTURE_SLACK_MS ahead is read, one past it is not
    edge = [mallory.join(T0 + 5), mallory.say(NOW + FUTURE_SLACK_MS, "at the edge")]
    rows, _ = _room(hers, [b.join(T0 + 2), seen], edge)
    assert marker_for(rows.timeline, NOW) == _marker(edge[1])
    assert marker_for(rows.timeline, NOW - 1) == _marker(seen)
    assert FUTURE_SLACK_MS <= 10 * 60_000


def test_the_shown_count_and_the_cap_agree() -> None:
    assert [unread_label(n) for n in (1, 99, 100, UNREAD_CAP, 5000)] == [
        "1",
        "99",
        "99+",
        "99+",
        "99+",
    ]
    assert unread_label(UNREAD_CAP - 1) == str(UNREAD_CAP - 1)  # every count below the cap


def test_a_past_dated_row_chained_after_a_future_one_cannot_be_the_marker() -> None:
    """Red team: Mallory plants a row dated in 2100, then a second row of her chain dated
    today. A row never shows before its chain predecessor, so the second one sorts last too,
    after every message written since; its own date is not in the future, but its place is.
    As the marker it would have hidden every later message from the count for good."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    seen = b.say(T0 + 10, "seen before the restart")
    planted = [
        mallory.join(T0 + 5),
        mallory.say(4_102_444_800_000, "from the year 2100"),
        mallory.say(T0 + 20, "dated today, shown after 2100"),
    ]
    hers = [a.join(T0), a.say(T0 + 1, "hi")]
    before, _ = _room(hers, [b.join(T0 + 2), seen], planted)
    rows = before.timeline
    assert rows[len(rows) - 1].event.event_id == planted[2].event_id
    marker = marker_for(rows, NOW)
    assert marker == _marker(seen)
    later = [b.say(NOW + 60_000 + i, f"while you were away {i}") for i in range(2)]
    after, rel = _room(hers, [b.join(T0 + 2), seen, *later], planted)
    assert marker is not None
    count = count_unread(after.timeline, marker, a.public, rel, NOW + 120_000)
    assert count == UnreadCount(2, later[0].event_id, found=True)


def test_how_far_a_room_was_read_passes_over_rows_placed_ahead_until_they_are_due() -> None:
    """``seen_place``, the one rule of the app's and ``sync --follow``'s late notes (red
    team rt98): rows placed past the clock are not read yet, a row dated today chained
    after one dated 2100 included (its place is 2100), until the clock reaches them; a
    plain sequence of rows is placed as ``placed_by`` walks it."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    seen = b.say(T0 + 10, "seen")
    soon = a.say(NOW + 3_600_000, "dated an hour ahead")
    planted = [
        mallory.join(T0 + 5),
        mallory.say(4_102_444_800_000, "from the year 2100"),
        mallory.say(T0 + 20, "dated today, shown after 2100"),
    ]
    result, _ = _room([a.join(T0), soon], [b.join(T0 + 2), seen], planted)
    rows = result.timeline
    assert isinstance(rows, Timeline)
    assert seen_place(rows, NOW) == T0 + 10
    assert seen_place(rows, NOW + 3_600_000 - FUTURE_SLACK_MS) == NOW + 3_600_000  # due
    assert seen_place(rows, 4_102_444_800_000) == 4_102_444_800_000
    assert seen_place(rows, T0 - FUTURE_SLACK_MS - 1) is None  # nothing placed by then
    assert seen_place(None, NOW) is None  # nothing read
    plain = list(rows)
    for now in (NOW, NOW + 3_600_000, 4_102_444_800_000, T0 - FUTURE_SLACK_MS - 1):
        assert seen_place(plain, now) == seen_place(rows, now)


def test_more_future_rows_than_a_walk_cannot_stop_the_marker() -> None:
    """Red team: more rows dated in the future than ``marker_for`` used to look at
    (1000) left the marker where it was for good: every message read since counted
    as unread again at each restart."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    far = 4_102_444_800_000
    flood = [mallory.join(far), *(mallory.say(far + i, "x") for i in range(1005))]
    old = b.say(T0 + 10, "read long ago")
    read = [b.say(T0 + 100 + i, f"read just now {i}") for i in range(3)]
    result, rel = _room([a.join(T0)], [b.join(T0 + 2), old, *read], flood)
    marker = marker_for(result.timeline, NOW)
    assert marker == _marker(read[-1])
    # after a restart, nothing of what was read counts again
    assert count_unread(result.timeline, marker, a.public, rel, NOW).count == 0


def test_where_rows_are_placed_agrees_with_display_order_in_every_ledger() -> None:
    """``Timeline.placed_by`` (a binary search) must give what walking display order
    gives: a row's place is the latest date up to it. A chain that goes back in time
    after a future row, in a ledger that keeps bodies and in one that does not, after a
    full audit and after an append."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    far = 4_102_444_800_000
    chains = [
        [a.join(T0), a.say(T0 + 30, "a"), a.say(T0 + 10, "a back in time")],
        [b.join(T0 + 2), b.say(T0 + 20, "b")],
        [
            mallory.join(T0 + 5),
            mallory.say(far, "2100"),
            mallory.say(T0 + 1, "after 2100"),
            mallory.say(T0 + 3, "after that"),
        ],
    ]
    later = [b.say(far + 5, "b after 2100"), b.say(T0 + 40, "b back again")]
    for keep in (True, False):
        led = RoomLedger(ROOM, keep_bodies=keep)
        for i, events in enumerate(chains):
            led.add_prepared(prepare_segment(*seg(events, f"c{i}"), ROOM))
        results = [led.audit()]
        appended = led.try_append(led.add_prepared(prepare_segment(*seg(later, "c1x"), ROOM)))
        assert appended is not None and led.result is not None
        results.append(led.result)
        for result in results:
            rows = result.timeline
            dates = [r.event.timestamp_ms for r in rows]
            for latest in sorted({*dates, T0 - 1, T0 + 15, far - 1, far + 10}):
                walked = next((i for i, d in enumerate(dates) if d > latest), len(dates))
                assert rows.placed_by(latest) == walked, (keep, latest)


def test_a_marker_a_late_predecessor_moves_into_the_future_still_counts_what_came() -> None:
    """Red team: Mallory signs a row dated 2100 and keeps it back, then a row chained after
    it dated now. Readers see the second one placed at its own date (its predecessor is
    missing) and it becomes their marker. She then uploads the 2100 row: the marker is now
    placed in 2100, after every message written since, which all sorted before it."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    join = mallory.join(T0 + 5)
    withheld = mallory.say(4_102_444_800_000, "from the year 2100")
    marked = mallory.say(T0 + 20, "the newest row, for now")
    hers = [a.join(T0), a.say(T0 + 1, "hi")]
    before, _ = _room(hers, [b.join(T0 + 2), b.say(T0 + 10, "seen")], [join], [marked])
    marker = marker_for(before.timeline, NOW)
    assert marker == _marker(marked)
    later = [b.say(NOW + 60_000 + i, f"while you were away {i}") for i in range(2)]
    bobs = [b.join(T0 + 2), b.say(T0 + 10, "seen"), *later]
    after, rel = _room(hers, bobs, [join], [marked], [withheld])
    rows = after.timeline
    assert rows[len(rows) - 1].event.event_id == marked.event_id  # placed after 2100 now
    count = count_unread(rows, marker, a.public, rel, NOW + 120_000)
    assert count == UnreadCount(2, later[0].event_id, found=False)  # by (timestamp, id)


def test_an_audit_that_moves_rows_leaves_an_older_audits_places_alone() -> None:
    """Red team: Mallory writes a row dated two hours ahead (held back, PROTOCOL.md
    section 9), then rows chained after it dated now, between Bob's. An hour later the
    first is shown and her later rows move after it. The older audit's rows read their
    places from the ledger's copies, which the new audit had moved: its "newest row"
    became an early one, and the new audit's arrivals (unread, notified) listed every
    message of Bob's that had been read already."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    hers = [mallory.join(T0 + 3), mallory.say(NOW + 2 * HOLD_AHEAD_MS, "from two hours ahead")]
    bobs = [b.join(T0 + 2)]
    for i in range(6):
        hers.append(mallory.say(NOW - 100 + 10 * i, f"hers {i}"))
        bobs.append(b.say(NOW - 95 + 10 * i, f"seen {i}"))
    segments = [seg([a.join(T0), a.say(T0 + 1, "hi")], "a"), seg(bobs, "b"), seg(hers, "m")]
    led = RoomLedger(ROOM, keep_bodies=False)
    for path, data in segments:
        led.add_prepared(prepare_segment(path, data, ROOM))
    old = led.audit(now_ms=NOW).timeline
    assert [f.kind for f in led.result.findings] == [Kind.DATED_AHEAD]  # type: ignore[union-attr]
    places = [old.placed_by(NOW + d) for d in range(-120, 0, 5)]
    assert places == sorted(places) and old.placed_by(NOW) == len(old)
    later = NOW + HOLD_AHEAD_MS  # an hour before her row's date: it is shown
    news = b.say(later - 5, "standup moved")
    led.add_prepared(prepare_segment(*seg([news], "b2"), ROOM))
    new = led.audit(now_ms=later).timeline
    assert [r.event.event_id for r in new][-9:-7] == [bobs[-1].event_id, news.event_id]
    assert [old.placed_by(NOW + d) for d in range(-120, 0, 5)] == places
    assert old.placed_by(NOW) == len(old)
    got = arrived(old, new, {}, later, T0)
    assert [r.event.event_id for r in got] == [news.event_id]


def test_a_held_row_shown_an_hour_before_its_date_is_not_news_yet() -> None:
    """Mallory's row dated two hours ahead is held back; her next row, chained after it
    and dated now, is the newest row read. An hour later the first is shown, placed an
    hour ahead, with the second after it: the audit's arrivals took it as news (counted,
    notified), though rows placed ahead are shown, not news yet, when they are appended."""
    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    hers = [mallory.join(T0 + 3), mallory.say(NOW + 2 * HOLD_AHEAD_MS, "from two hours ahead")]
    hers.append(mallory.say(NOW - 10, "the newest, for now"))
    segments = [seg([a.join(T0), a.say(T0 + 1, "hi"), b.join(T0 + 2)], "ab"), seg(hers, "m")]
    led = RoomLedger(ROOM)
    for path, data in segments:
        led.add_prepared(prepare_segment(path, data, ROOM))
    old = led.audit(now_ms=NOW).timeline
    later = NOW + HOLD_AHEAD_MS  # an hour before her first row's date: it is shown
    news = b.say(later - 5, "standup moved")
    led.add_prepared(prepare_segment(*seg([news], "b"), ROOM))
    new = led.audit(now_ms=later).timeline
    assert [r.event.body for r in new][-3:] == [
        "standup moved",
        "from two hours ahead",
        "the newest, for now",
    ]
    assert [r.event.body for r in arrived(old, new, {}, later, T0)] == ["standup moved"]


def test_unseen_messages_before_the_marker_count_too() -> None:
    """Bob's message sorted before the row Alice saw last (it arrived after it, while
    she looked elsewhere): the live count had it, and so does the count after a restart
    (``ReadMarker.unseen``). The line goes above it; one of them after the marker (or
    gone, or deleted, or her own) is not counted twice or at all."""
    a, b = alice(), bob()
    placed = b.say(T0 + 20, "written before hers, read after")
    seen = a.say(T0 + 30, "the newest she saw")
    later = b.say(T0 + 40, "after she looked")
    own = a.say(T0 + 25, "her own, from a twin key")
    result, rel = _room([a.join(T0), own, seen], [b.join(T0 + 1), placed, later])
    rows = result.timeline
    plain = count_unread(rows, _marker(seen), a.public, rel, NOW)
    assert plain == UnreadCount(1, later.event_id, True)
    unseen = (placed.event_id, later.event_id, own.event_id, f"{ROOM}::gone")
    marker = ReadMarker(seen.event_id, seen.timestamp_ms, unseen)
    assert count_unread(rows, marker, a.public, rel, NOW) == UnreadCount(2, placed.event_id, True)
    # the marker's row gone (a rewritten history): by its date, as for the rest
    lost = ReadMarker("gone", seen.timestamp_ms, unseen)
    assert count_unread(rows, lost, a.public, rel, NOW) == UnreadCount(2, placed.event_id, False)
    assert count_unread(rows, marker, a.public, rel, NOW, cap=1).capped


def test_placed_before_finds_what_a_walk_per_id_finds_in_one_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ids shown before the marker's row, as ``position_of`` for each finds them
    (each id's newest copy; ids not shown, asked twice, the marker itself or missing),
    from a real timeline and a plain list alike; on a timeline in one walk for all of
    them: up to 400 arrivals behind 50,000 rows dated ahead were 400 walks of the room
    on the GUI thread (2.5 s at 100,000 rows)."""
    a, b = alice(), bob()
    hers = [a.join(T0), *(a.say(T0 + 1 + 2 * i, f"a{i}") for i in range(30))]
    his = [b.join(T0 + 2), *(b.say(T0 + 2 + 2 * i, f"b{i}") for i in range(30))]
    rows = audit(seg(hers, "a"), seg(his, "b")).timeline
    ids = [r.event.event_id for r in rows]
    asked = [ids[40], ids[3], "gone", ids[59], ids[3], ids[20], ids[45]]

    def one_by_one(marker: str) -> list[str]:
        at = position_of(list(rows), marker)
        if at is None:
            return []
        return [e for e in asked if (w := position_of(list(rows), e)) is not None and w < at]

    walks: list[str] = []
    real_rows_by_id, real_position_of = Timeline.rows_by_id, Timeline.position_of

    def counted_rows_by_id(self: Timeline, wanted: Any, start: int = 0) -> Any:
        walks.append("rows_by_id")
        return real_rows_by_id(self, wanted, start)

    def counted_position_of(self: Timeline, event_id: str) -> int | None:
        walks.append("position_of")
        return real_position_of(self, event_id)

    monkeypatch.setattr(Timeline, "rows_by_id", counted_rows_by_id)
    monkeypatch.setattr(Timeline, "position_of", counted_position_of)
    for marker in (ids[41], ids[0], ids[-1], "gone", ids[20]):
        expected = one_by_one(marker)
        walks.clear()
        assert placed_before(rows, marker, asked) == expected
        assert walks == ["rows_by_id"]
        assert placed_before(list(rows), marker, asked) == expected
    assert one_by_one(ids[41]) == [ids[40], ids[3], ids[3], ids[20]]


def test_a_first_screen_that_lacked_a_segment_gets_it_as_history_not_news() -> None:
    """Red team rt75: a room seen for the first time is marked read as its first audit
    shows it, but that audit lacked a segment (its read left behind: hundreds of rooms
    opening at once, or a provider holding it on purpose). When the read came in, its
    old messages sorted after the anchor and counted as news: unread and notified. With
    ``first_seen``, what is placed before ``since_ms`` is history; what is placed from
    then on is news as ever."""
    a, b = alice(), bob()
    since = T0 + 1_000  # the session began: the room was first seen then
    first = [a.join(T0), a.say(T0 + 1, "the first screen")]
    late = [b.join(T0 + 2), b.say(T0 + 3, "old, read late")]
    old = audit(seg(first, "a")).timeline
    new = audit(seg(first, "a"), seg(late, "b")).timeline
    # as before: a room that had a marker gets a late delivery as news
    got = arrived(old, new, {}, NOW, since)
    assert [r.event.body for r in got] == [None, "old, read late"]  # Bob's join, his message
    assert arrived(old, new, {}, NOW, since, first_seen=True) == []
    # a message placed after the session began is news in such a room too
    fresh = b.say(since + 5, "written during the session")
    newer = audit(seg(first, "a"), seg([*late, fresh], "b")).timeline
    got = arrived(old, newer, {}, NOW, since, first_seen=True)
    assert [r.event.body for r in got] == ["written during the session"]


def test_a_row_that_arrived_far_above_the_newest_is_news_wherever_it_is_placed() -> None:
    """Red team rt79: a member's next message dated weeks back lands far above the newest
    row. Rows a re-audit hands on stop ``ARRIVED_ROWS`` above the anchor and before
    ``since_ms``, so it came silently, while with a few rows between (placed one by one)
    it was news. The engine says which rows arrived (``late``, found by
    ``Timeline.positions_of``): they are news there too, save in a room first seen this
    session (its first screen's missing segments are history, rt75)."""
    a, b = alice(), bob()
    since = NOW - 60_000  # the session began a minute ago
    mallory = [b.join(T0), b.say(T0 + 1, "budget draft")]
    talk = [a.join(T0 + 2), *(a.say(T0 + 10 + i, f"note {i}") for i in range(300))]
    old_ledger = RoomLedger(ROOM)
    for path, data in (seg(mallory, "b"), seg(talk, "a")):
        old_ledger.add_segment(path, data)
    old = old_ledger.audit().timeline
    backdated = b.say(T0 + 2, "I do NOT approve")  # after her last, weeks before the rest
    path, data = seg([backdated], "b2")
    copies = old_ledger.add_prepared(prepare_segment(path, data, ROOM))
    new = old_ledger.audit().timeline
    (at,) = new.positions_of(copies)
    assert new[at].event.body == "I do NOT approve" and len(new) - at > 300
    assert arrived(old, new, {}, NOW, since) == []  # no one said it arrived: history
    late = [(at, new[at])]
    got = arrived(old, new, {}, NOW, since, late=late)
    assert [r.event.body for r in got] == ["I do NOT approve"]
    assert arrived(old, new, {}, NOW, since, first_seen=True, late=late) == []
    # the rows placed one by one follow the same rule
    assert is_news_placed(new.place_at(at), NOW, since, True, False)
    assert not is_news_placed(new.place_at(at), NOW, since, False, False)
    assert not is_news_placed(new.place_at(at), NOW, since, True, True)
    assert is_news_placed(since, NOW, since, False, True)
    assert not is_news_placed(NOW + FUTURE_SLACK_MS + 1, NOW, since, True, False)


def test_positions_of_finds_copies_among_rows_placed_at_the_same_time() -> None:
    """``Timeline.positions_of`` finds each copy by its place and then among the rows
    placed with it (a row after a predecessor dated later is placed at that date)."""
    a, b = alice(), bob()
    ledger = RoomLedger(ROOM)
    shared = T0 + 50
    for path, data in (
        seg([a.join(T0), *(a.say(shared, f"same {i}") for i in range(5))], "a"),
        seg([b.join(T0 + 1), b.say(T0 + 100, "ahead")], "b"),
    ):
        ledger.add_segment(path, data)
    path, data = seg([b.say(1, "dated 1970, placed after 'ahead'")], "b2")
    copies = ledger.add_prepared(prepare_segment(path, data, ROOM))
    path, data = seg([a.say(shared, "same too")], "a2")
    copies += ledger.add_prepared(prepare_segment(path, data, ROOM))
    rows = ledger.audit().timeline
    got = rows.positions_of(copies)
    assert sorted(rows[i].event.body for i in got) == [
        "dated 1970, placed after 'ahead'",
        "same too",
    ]
    assert rows.place_at(got[-1]) == T0 + 100
    assert rows.positions_of([]) == []


class _TooMuchWork(Exception):
    pass


def test_positions_of_scans_a_block_of_tied_rows_once_not_once_per_copy() -> None:
    """Reviewer: after the binary search each copy walked row by row through the rows
    placed with it, so 2,000 arrivals among 20,000 rows of one date looked at millions of
    rows (seconds on the state thread). The copies are grouped by place and each block
    is scanned once: the lines run stay within a few per tied row."""
    a = alice()
    shared = T0 + 50
    ledger = RoomLedger(ROOM)
    ledger.add_segment(*seg([a.join(T0), *(a.say(shared, f"t{i}") for i in range(20_000))], "a"))
    path, data = seg([a.say(shared, f"late {i}") for i in range(2_000)], "a2")
    copies = ledger.add_prepared(prepare_segment(path, data, ROOM))
    rows = ledger.audit().timeline
    budget, count = 4 * 22_000, 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > budget:  # the walk per copy ran tens of millions: stop it early
                raise _TooMuchWork
        return tracer

    sys.settrace(tracer)
    try:
        got = rows.positions_of(copies)
    finally:
        sys.settrace(None)
    assert len(got) == 2_000
    assert {rows[i].event.body for i in got} == {f"late {i}" for i in range(2_000)}


def test_a_full_audits_arrivals_take_what_was_read_by_the_clock_of_that_read() -> None:
    """Review rev1: Eve's row dated 30 minutes ahead was shown, not read (``seen_place``
    of that audit, by the clock of its read, ends at Bob's row). Forty minutes later a
    full audit brings Bob's message written during the sleep: taken by the clock of the
    read, Eve's row was never read and is news now that it is due, as the count after a
    restart takes it; by the wake-up clock it was the newest row read, here alone."""
    a, b, eve = alice(), bob(), Device("eve@example.com", 8)
    minute = 60_000
    bobs = [b.join(T0 + 2), b.say(NOW - 10, "read")]
    hers = [eve.join(T0 + 3), eve.say(NOW + 30 * minute, "from 30 minutes ahead")]
    led = RoomLedger(ROOM)
    for path, data in [seg([a.join(T0), a.say(T0 + 1, "hi")], "a"), seg(bobs, "b"), seg(hers, "e")]:
        led.add_prepared(prepare_segment(path, data, ROOM))
    old = led.audit(now_ms=NOW).timeline
    assert seen_place(old, NOW) == NOW - 10
    later = NOW + 40 * minute
    led.add_prepared(prepare_segment(*seg([b.say(NOW + 5 * minute, "in the sleep")], "b2"), ROOM))
    new = led.audit(now_ms=later).timeline
    got = arrived(old, new, {}, later, T0, read_ms=NOW)
    assert [r.event.body for r in got] == ["in the sleep", "from 30 minutes ahead"]
