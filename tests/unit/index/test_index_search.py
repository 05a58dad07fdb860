"""Full-text search in the index: what is indexed (messages, edits under their target,
nothing else), partial words in any script, hostile queries, hostile cached rows, the
order and paging of results, trust states, and the migration of an index made before
search existed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from chains import ROOM, T0, indexed, segment, signed_chain
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.index.db import _MIGRATIONS, SCHEMA_VERSION
from bucket_chat_desktop.index.search import (
    QUERY_LIMIT,
    TERM_LIMIT,
    build_query,
    make_snippet,
    search_text,
)
from bucket_chat_desktop.protocol.audit import RoomLedger, TrustState
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event, parse_line
from bucket_chat_desktop.protocol.segment import path_for
from bucket_chat_desktop.protocol.signing import build_event


def _store(index: Index, events: list[Event], seed: int, user: str, *, audit: bool = True):
    path, data = segment(events, seed, user)
    rows = indexed(path, events)
    index.add_segment(ROOM, path, len(data), None, rows, [])
    _catch_up(index)
    if audit:
        ledger = RoomLedger(ROOM)
        ledger.add_segment(path, data)
        index.save_audit(ROOM, ledger.audit({}), history_complete=True, history_partial=False)
    return path


def _catch_up(index: Index) -> None:
    while index.index_text():
        pass


def _msg(body: object) -> tuple[str, dict[str, Any]]:
    return (MESSAGE, {"body": body, "msgtype": "m.text"})


@pytest.fixture
def index() -> Any:
    idx = Index.open(None)
    yield idx
    idx.close()


def _bodies(page: Any) -> list[str]:
    return [h.snippet.text for h in page.hits]


def test_messages_are_found_by_partial_words_newest_first(index: Index) -> None:
    events = signed_chain(
        1,
        "alice@example.com",
        [_msg("The deployment went fine"), _msg("lunch?"), _msg("Deploying again tomorrow")],
    )
    _store(index, events, 1, "alice@example.com")
    page = index.search("deplo")
    assert _bodies(page) == ["Deploying again tomorrow", "The deployment went fine"]
    first = page.hits[0]
    assert first.event_id == first.source_id == events[3].event_id
    assert first.sender_id == "alice@example.com" and first.room_id == ROOM
    assert first.timestamp_ms == events[3].timestamp_ms
    assert first.trust is TrustState.VERIFIED  # as the audit said
    assert first.snippet.marks == ((0, 5),)
    assert first.snippet.parts()[0] == ("Deplo", True)
    assert not first.edited and not page.more


def test_cjk_and_case_folding_outside_ascii(index: Index) -> None:
    events = signed_chain(
        1, "alice@example.com", [_msg("明日の会議は東京で行います"), _msg("ÉCOLE fermée")]
    )
    _store(index, events, 1, "alice@example.com")
    assert _bodies(index.search("会議は")) == ["明日の会議は東京で行います"]
    assert _bodies(index.search("東京")) == ["明日の会議は東京で行います"]  # 2 chars: LIKE
    assert _bodies(index.search("école")) == ["ÉCOLE fermée"]


def test_every_term_must_match_and_phrases_keep_their_order(index: Index) -> None:
    events = signed_chain(
        1, "alice@example.com", [_msg("red green blue"), _msg("green red"), _msg("red")]
    )
    _store(index, events, 1, "alice@example.com")
    assert _bodies(index.search("red green")) == ["green red", "red green blue"]
    assert _bodies(index.search('"red green"')) == ["red green blue"]
    assert _bodies(index.search("re gr")) == ["green red", "red green blue"]  # short: LIKE


def test_only_message_text_is_indexed_and_edits_find_their_target(index: Index) -> None:
    alice = "alice@example.com"
    base = signed_chain(1, alice, [_msg("original wording")])
    target = base[1].event_id
    more = signed_chain(
        1,
        alice,
        [
            ("m.room.edit", {"replaces": target, "new_content": {"body": "improved wording"}}),
            ("m.room.reaction", {"relates_to": target, "reaction": "wording"}),
            ("m.room.redaction", {"redacts": target, "reason": "wording"}),
            ("m.room.typing", {"body": "wording"}),
            (MEMBER, {"membership": "join", "displayname": "wording"}),
            ("m.room.edit", {"replaces": target, "new_content": {"body": 5}}),
            ("m.room.edit", {"replaces": ["x"], "new_content": {"body": "wording list"}}),
        ],
        ts=T0 + 60_000,
    )
    _store(index, base, 1, alice)
    _store(index, more, 1, alice, audit=False)
    page = index.search("wording")
    assert [(h.event_id, h.snippet.text) for h in page.hits] == [
        (target, "improved wording"),
        (target, "original wording"),
    ]
    edit = page.hits[0]
    assert edit.edited and edit.source_id == more[1].event_id
    assert edit.trust is None  # not audited yet: said so, never shown as verified
    assert index.search("improved").hits[0].event_id == target


def test_an_edit_naming_itself_finds_nothing(index: Index) -> None:
    """An edit whose ``replaces`` is its own id is never applied (no message has that id):
    filed under its own id, its text was found as a verified message of its own that no
    timeline shows (red team rt40). Rows indexed so before are dropped when found."""
    from bucket_chat_desktop.protocol.ids import make_event_id

    mallory = "mallory@example.com"
    key = SigningKey(bytes([9]) * 32)
    (join,) = signed_chain(9, mallory, [])
    ts, unique = T0 + 5_000, "00000000-0000-4000-8000-00000000beef"
    self_id = make_event_id(ROOM, ts, unique)
    edit = build_event(
        room_id=ROOM,
        sender_id=mallory,
        event_type="m.room.edit",
        content={"replaces": self_id, "new_content": {"body": "ghost text", "msgtype": "m.text"}},
        timestamp_ms=ts,
        unique=unique,
        prev_event_hash=join.hash,
        signing_key=key,
    )
    assert edit.event_id == self_id
    assert search_text(edit) is None
    path = _store(index, [join, edit], 9, mallory)
    assert index.search("ghost").hits == ()
    # a row the index filed under the edit's own id before (an older version): not a hit
    index._db.execute(
        "INSERT INTO search_docs (room_id, path, line, event_id, source_id, body) "
        "VALUES (?, ?, 2, ?, ?, 'ghost text')",
        (ROOM, path, self_id, self_id),
    )
    assert index.search("ghost").hits == ()


def test_room_filter_and_paging(index: Index) -> None:
    alice = "alice@example.com"
    events = signed_chain(1, alice, [_msg(f"note number {i}") for i in range(30)])
    _store(index, events, 1, alice)
    page = index.search("note", limit=10)
    assert page.more and len(page.hits) == 10
    assert page.hits[0].snippet.text == "note number 29"
    rest = index.search("note", limit=100, before=page.hits[-1].key)
    assert [h.snippet.text for h in rest.hits] == [f"note number {i}" for i in range(19, -1, -1)]
    assert not rest.more
    assert index.search("note", room_id="another-room").hits == ()
    assert len(index.search("note", room_id=ROOM, limit=5).hits) == 5
    # Short terms page the same way.
    short = index.search("r 1", limit=3)
    expected = ["note number 21", "note number 19", "note number 18"]
    assert [h.snippet.text for h in short.hits] == expected


def test_same_millisecond_messages_all_kept_and_replacing_a_segment_replaces_its_text(
    index: Index,
) -> None:
    alice = "alice@example.com"
    events = signed_chain(1, alice, [_msg("same time alpha")])
    clash = signed_chain(2, "bob@example.com", [_msg("same time beta")])
    # Both messages at one millisecond: both are indexed (the next free key is taken).
    path_a = _store(index, events, 1, alice)
    _store(index, clash, 2, "bob@example.com", audit=False)
    assert len(index.search("same time").hits) == 2
    # The segment read again (a changed file): its rows and its text are replaced.
    index.add_segment(ROOM, path_a, 1, None, [], [])
    assert _bodies(index.search("same time")) == ["same time beta"]


HOSTILE_QUERIES = [
    '"',
    '""',
    '"unbalanced',
    "NEAR(a b)",
    "a NEAR b",
    "alpha AND",
    "OR",
    "NOT x",
    "*",
    "al*",
    "-alpha",
    "body:alpha",
    "^alpha",
    "((alpha",
    "alpha)",
    "{col}: x",
    "a",
    "ab",
    "%",
    "_",
    "\\",
    "'; DROP TABLE events; --",
    "\x00alpha",
    "\ud800alpha",
    "\x1b[31malpha",
    "‮alpha",
    " \t\n ",
    "",
    "x" * 10_000,
    " ".join(["alpha"] * 5000),
    " ".join(f"w{i}" for i in range(2000)),
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=range(len(HOSTILE_QUERIES)))
def test_hostile_queries_never_raise_or_hang(index: Index, query: str) -> None:
    alice = "alice@example.com"
    _store(
        index, signed_chain(1, alice, [_msg("alpha beta NEAR(a b) 100% body:alpha *")]), 1, alice
    )
    page = index.search(query)
    # ended by itself: a query that ran long is cut by the search's own deadline, and
    # its page says "the search took too long"
    assert page.error is None
    for hit in page.hits:
        assert hit.snippet.text.startswith("alpha")


def test_operator_characters_are_searched_as_text(index: Index) -> None:
    alice = "alice@example.com"
    _store(index, signed_chain(1, alice, [_msg("alpha 100% done"), _msg("NEAR(a b) x")]), 1, alice)
    assert _bodies(index.search("100%")) == ["alpha 100% done"]
    assert _bodies(index.search("%")) == ["alpha 100% done"]
    assert _bodies(index.search("NEAR(a")) == ["NEAR(a b) x"]
    assert _bodies(index.search('"alpha 100"')) == ["alpha 100% done"]


def test_query_limits() -> None:
    q = build_query("x" * 10_000)
    assert q.cut and len(q.terms[0]) == QUERY_LIMIT
    many = build_query(" ".join(f"word{i}" for i in range(100)))
    assert many.cut and len(many.terms) == TERM_LIMIT
    assert build_query("Hello hello HELLO").terms == ("Hello",)
    assert build_query(None).empty
    q2 = build_query('say "hi there" a_b')
    assert q2.terms == ("say", "hi there", "a_b")
    assert q2.match == '"say" AND "hi there" AND "a_b"'
    assert build_query('ab "c"').likes == ("%ab%", "%c%")
    assert build_query("50%").likes == ()
    assert build_query("5%").likes == ("%5\\%%",)


def test_snippets_cut_around_the_first_match_and_mark_every_match() -> None:
    body = "word " * 100 + "needle in the middle, and another Needle" + " tail" * 100
    snip = make_snippet(body, ("needle",))
    assert snip.cut_before and snip.cut_after
    assert snip.text.startswith("word ") and len(snip.text) <= 200
    assert [snip.text[a:b] for a, b in snip.marks] == ["needle", "Needle"]
    none = make_snippet("nothing here", ("zzz",))
    assert (
        none.text == "nothing here"
        and none.marks == ()
        and none.parts() == (("nothing here", False),)
    )
    hostile = make_snippet("\x1b[2J\u202eevil needle", ("needle",))
    assert hostile.parts()[-1] == ("needle", True)


def test_damaged_rows_are_left_out(index: Index) -> None:
    alice = "alice@example.com"
    events = signed_chain(1, alice, [_msg("genuine text one"), _msg("genuine text two")])
    _store(index, events, 1, alice)
    db = index._db
    # Another program edits the cache: a document's text no longer matches its event,
    # and another event's line is replaced by garbage.
    db.execute("UPDATE search_docs SET body = 'genuine text forged' WHERE body LIKE '%one'")
    db.execute("INSERT INTO search_fts (search_fts) VALUES ('rebuild')")
    db.execute("UPDATE events SET raw = 'not json' WHERE line = 3")
    db.commit()
    assert index.search("genuine").hits == ()
    db.execute("UPDATE search_docs SET room_id = 5")
    db.commit()
    assert index.search("genuine").hits == ()


def test_forged_signature_is_never_a_hit(index: Index) -> None:
    alice = "alice@example.com"
    events = signed_chain(1, alice, [_msg("forged words")])
    path = path_for(events, "x")
    rows = indexed(path, events, False, "bad")
    index.add_segment(ROOM, path, 1, None, rows, [])
    _catch_up(index)
    assert index.search("forged").hits == ()


def test_copies_of_a_shown_event_id_that_are_not_shown_are_never_hits(index: Index) -> None:
    # A replay (PROTOCOL.md section 6): the audit shows the first good copy of an event id
    # per signing key. The text of a forged copy (bad signature) was found under the shown
    # copy's verdict ("verified"), though nobody's timeline shows it; another key's signed
    # copy is shown too, and found as itself: its own place and verdict.
    alice, bob = "alice@example.com", "bob@example.com"
    genuine = signed_chain(1, alice, [_msg("genuine words")])
    x = genuine[1]
    forged = parse_line(x.line().replace(b"genuine", b"planted"), ROOM)
    assert isinstance(forged, Event)
    bob_join = signed_chain(2, bob, [])[0]
    other = build_event(
        room_id=ROOM,
        sender_id=bob,
        event_type=MESSAGE,
        content={"body": "claimed words", "msgtype": "m.text"},
        timestamp_ms=x.timestamp_ms,
        unique=x.event_id.rsplit("::", 1)[1],
        prev_event_hash=bob_join.hash,
        signing_key=SigningKey(bytes([2]) * 32),
    )
    assert forged.event_id == other.event_id == x.event_id
    ledger = RoomLedger(ROOM)
    a_path, a_data = segment(genuine, 1, alice)
    b_path, b_data = segment([bob_join, other], 2, bob)
    f_path = a_path.replace("alice-34750f98", "zz")
    again = a_path.replace("alice-34750f98", "alice-34750f98-r1")
    for path, data, rows in (
        (a_path, a_data, indexed(a_path, genuine)),
        (b_path, b_data, indexed(b_path, [bob_join, other])),
        (f_path, forged.line(), indexed(f_path, [forged], False, "bad signature")),
        (again, a_data, indexed(again, genuine)),  # the same segment stored twice
    ):
        index.add_segment(ROOM, path, len(data), None, rows, [])
        ledger.add_segment(path, data)
    _catch_up(index)
    result = ledger.audit({})
    # of identical copies, the first in (path, line) order is shown (PROTOCOL.md 6.1)
    shown = min(a_path, again)
    assert [r.path for r in result.timeline if r.event.event_id == x.event_id] == [shown, b_path]
    index.save_audit(ROOM, result, history_complete=True, history_partial=False)
    assert [(h.trust, h.path) for h in index.search("genuine").hits] == [
        (TrustState.VERIFIED, shown)
    ]
    assert index.search("planted").hits == ()
    assert [(h.trust, h.path, h.sender_id) for h in index.search("claimed").hits] == [
        (TrustState.VERIFIED, b_path, bob)
    ]


def test_a_forged_line_in_the_place_of_a_verified_one_is_never_a_hit(index: Index) -> None:
    # The segment is rewritten in the storage and read again: its line now holds another
    # text under the same event id, and its signature fails. Until the room's next audit
    # is saved, the last one lists that place and id as "verified": the forged text was
    # found under that verdict.
    alice = "alice@example.com"
    genuine = signed_chain(1, alice, [_msg("pay the invoice to ACME")])
    path = _store(index, genuine, 1, alice)
    assert [h.trust for h in index.search("invoice").hits] == [TrustState.VERIFIED]
    forged = parse_line(genuine[1].line().replace(b"ACME", b"EVIL"), ROOM)
    assert isinstance(forged, Event) and forged.event_id == genuine[1].event_id
    rows = [*indexed(path, [genuine[0]]), indexed(path, genuine, False, "bad signature")[1]]
    rows[1] = rows[1]._replace(raw=forged.line().decode().rstrip("\n"))
    index.add_segment(ROOM, path, 1, None, rows, [])
    _catch_up(index)
    assert index.search("invoice").hits == ()


def test_a_line_rewritten_with_a_good_signature_is_never_found_under_the_saved_verdict(
    index: Index,
) -> None:
    # The segment is rewritten in the storage and read again: its line now holds another
    # text under the same event id, signed well by another key. Until the room's next
    # audit is saved, the last one lists that place and id as "verified": the new text
    # was found under that verdict, though no check ever judged it.
    alice = "alice@example.com"
    genuine = signed_chain(1, alice, [_msg("pay the invoice to ACME")])
    path = _store(index, genuine, 1, alice)
    x = genuine[1]
    swapped = build_event(
        room_id=ROOM,
        sender_id=alice,
        event_type=MESSAGE,
        content={"body": "pay the invoice to EVIL", "msgtype": "m.text"},
        timestamp_ms=x.timestamp_ms,
        unique=x.event_id.rsplit("::", 1)[1],
        prev_event_hash=x.prev_event_hash,
        signing_key=SigningKey(bytes([2]) * 32),
    )
    assert swapped.event_id == x.event_id and swapped.hash != x.hash
    rows = indexed(path, [genuine[0], swapped])  # both signatures good
    index.add_segment(ROOM, path, 1, None, rows, [])
    _catch_up(index)
    (hit,) = index.search("invoice").hits
    assert hit.snippet.text == "pay the invoice to EVIL"
    assert hit.trust is None  # not checked yet, never the saved "verified"
    assert "changed" in hit.trust_reason and "last check" in hit.trust_reason


def test_hits_saved_without_an_event_hash_are_not_checked_yet(tmp_path: Path) -> None:
    """A cache from before the timeline kept event hashes (version 3) is migrated: its
    saved verdicts name a place, not an event, so a hit there is "not checked yet" until
    the room's next audit is saved."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for step in (1, 2, 3):
        conn.executescript(_MIGRATIONS[step])
    conn.execute("PRAGMA user_version = 3")
    alice = "alice@example.com"
    events = signed_chain(1, alice, [_msg("old message text")])
    for n, e in enumerate(events, start=1):
        conn.execute(
            "INSERT INTO events VALUES (?, 'p', ?, ?, ?, ?, 1, '')",
            (ROOM, n, e.event_id, e.timestamp_ms, e.line().decode().rstrip("\n")),
        )
        conn.execute(
            "INSERT INTO timeline VALUES (?, ?, ?, 'p', ?, 'verified', 'signature good')",
            (ROOM, n - 1, e.event_id, n),
        )
    conn.execute("INSERT INTO segments VALUES (?, 'p', 1, NULL, 0)", (ROOM,))
    conn.execute("INSERT INTO search_pending VALUES (?, 'p')", (ROOM,))
    conn.commit()
    conn.close()
    index = Index.open(path)
    try:
        _catch_up(index)
        (hit,) = index.search("message").hits
        assert hit.trust is None and "not checked yet" in hit.trust_reason
    finally:
        index.close()


def test_a_line_signed_by_one_member_under_anothers_name_is_never_a_hit(
    index: Index, tmp_path: Path
) -> None:
    # Bob's key signs a message that claims to be from alice (sender-mismatch, PROTOCOL.md
    # section 7): its signature checks, but the audit shows it nowhere. Search found its
    # text under alice's name ("not checked yet"), also after the room was read whole,
    # and after the index was opened again.
    alice, bob = "alice@example.com", "bob@example.com"
    genuine = signed_chain(1, alice, [_msg("hello all")])
    bob_join = signed_chain(2, bob, [])[0]
    claim = build_event(
        room_id=ROOM,
        sender_id=alice,
        event_type=MESSAGE,
        content={"body": "alice says: wire the money", "msgtype": "m.text"},
        timestamp_ms=T0 + 5000,
        unique="00000000-0000-4000-8000-00000000beef",
        prev_event_hash=bob_join.hash,
        signing_key=SigningKey(bytes([2]) * 32),
    )
    ledger = RoomLedger(ROOM)
    db = Index.open(tmp_path / "index.sqlite")
    for events, seed, user in ((genuine, 1, alice), ([bob_join, claim], 2, bob)):
        path, data = segment(events, seed, user)
        db.add_segment(ROOM, path, len(data), None, indexed(path, events), [])
        ledger.add_segment(path, data)
    _catch_up(db)
    result = ledger.audit({})
    assert [a.event.event_id for a in result.invalid] == [claim.event_id]
    db.save_audit(ROOM, result, history_complete=True, history_partial=False)
    assert db.search("money").hits == ()
    assert [h.sender_id for h in db.search("hello").hits] == [alice]
    db.close()
    again = Index.open(tmp_path / "index.sqlite")
    try:
        assert again.search("money").hits == ()
    finally:
        again.close()


def test_a_broken_search_table_gives_an_error_not_an_exception(index: Index) -> None:
    index._db.execute("DROP TABLE search_fts")
    page = index.search("anything")
    assert page.hits == () and page.error and "cannot be searched" in page.error


def test_a_slow_search_gives_up(index: Index) -> None:
    alice = "alice@example.com"
    _store(index, signed_chain(1, alice, [_msg("a b")]), 1, alice)
    index._db.executemany(
        "INSERT INTO search_docs (room_id, path, line, event_id, source_id, body) "
        "VALUES ('r', 'p', ?, 'e', 'e', 'text')",
        [(i,) for i in range(20_000)],
    )
    page = index.search("zz", deadline=-1.0)  # nothing matches: every row is looked at
    assert page.error == "the search took too long" and page.hits == ()


def test_an_index_from_before_search_is_migrated(tmp_path: Path) -> None:
    """A version 1 database with cached events gains the search tables in one step; its
    segments then wait for their text to be indexed (damaged rows left out)."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(_MIGRATIONS[1])
    conn.execute("PRAGMA user_version = 1")
    alice = "alice@example.com"
    events = signed_chain(1, alice, [_msg("old message text"), _msg("older message text")])
    for n, e in enumerate(events, start=1):
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ROOM, "p", n, e.event_id, e.timestamp_ms, e.line().decode().rstrip("\n"), 1, ""),
        )
    conn.execute("INSERT INTO segments VALUES (?, 'p', 1, NULL, 0)", (ROOM,))
    conn.execute("INSERT INTO events VALUES (?, 'p', 9, 'x', 1, 'garbage', 1, '')", (ROOM,))
    conn.execute("INSERT INTO events VALUES (5, 'p', 10, 'x', 1, 'garbage', 1, '')")
    conn.commit()
    conn.close()
    index = Index.open(path)
    try:
        assert index.text_backlog() == 1  # the old segment waits for its text to be indexed
        page = index.search("message text")
        assert page.hits == () and page.backlog == 1
        _catch_up(index)
        assert index.text_backlog() == 0
        assert _bodies(index.search("message text")) == ["older message text", "old message text"]
        assert index._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        index.close()


def test_text_is_searchable_once_indexed_and_the_backlog_says_so(index: Index) -> None:
    alice = "alice@example.com"
    events = signed_chain(1, alice, [_msg("pending words")])
    path = path_for(events, "x")
    rows = indexed(path, events)
    index.add_segment(ROOM, path, 1, None, rows, [])
    assert index.text_pending
    page = index.search("pending")
    assert page.hits == () and page.backlog == 1
    assert index.index_text() == 1
    assert index.index_text() == 0 and not index.text_pending
    page = index.search("pending")
    assert _bodies(page) == ["pending words"] and page.backlog == 0
    # Many segments: one batch does whole segments up to about its event budget.
    for i in range(5):
        more = signed_chain(
            1, alice, [_msg(f"batch {i} {j}") for j in range(10)], ts=T0 + i * 10**6
        )
        p = path_for(more, f"b{i}")
        index.add_segment(
            ROOM,
            p,
            1,
            None,
            indexed(p, more),
            [],
        )
    assert index.index_text(max_events=15) == 2  # 11 events each: the second passes 15
    assert index.text_backlog() == 3


def test_hostile_rows_waiting_for_indexing_are_dropped_not_looped_over(index: Index) -> None:
    """Another program put rows the app never writes into the list of segments waiting
    for their text: each is looked at once and dropped; nothing loops or raises."""
    db = index._db
    db.execute("DROP TABLE search_pending")
    db.execute("CREATE TABLE search_pending (room_id, path)")
    db.executemany(
        "INSERT INTO search_pending VALUES (?, ?)",
        [(None, None), (5, b"x"), (ROOM, None), ("r", "no such segment")],
    )
    db.commit()
    rounds = 0
    while index.index_text():
        rounds += 1
        assert rounds < 5
    assert index.text_backlog() == 0


def test_text_changed_behind_the_search_index_never_stops_caching(
    index: Index, caplog: pytest.LogCaptureFixture
) -> None:
    """Another program changed the stored text without telling the FTS index: removing
    that text (a segment read again) makes SQLite call the file malformed. The index is
    rebuilt from the stored text and the segment is cached all the same."""
    alice = "alice@example.com"
    path = _store(index, signed_chain(1, alice, [_msg("original words here")]), 1, alice)
    index._db.execute("UPDATE search_docs SET body = 'something else entirely'")
    index._db.commit()
    events = signed_chain(1, alice, [_msg("rewritten words here")])
    rows = indexed(path, events)
    index.add_segment(ROOM, path, 1, None, rows, [])  # no exception
    assert "search index is damaged" in caplog.text
    _catch_up(index)
    assert _bodies(index.search("words")) == ["rewritten words here"]
    index._db.execute("INSERT INTO search_fts (search_fts) VALUES ('integrity-check')")


def test_a_segment_of_huge_bodies_is_indexed_a_piece_at_a_time(index: Index) -> None:
    """Red team rt61: one segment of 64 bodies of 250,000 random characters (16 MB) was
    one ``index_text`` call of 6-11 s on the engine's state thread, and a send waited
    behind it. A call now reads at most ``max_bytes`` of stored lines past its first
    and goes on from there the next time; every body is found in the end, those before
    a cut and after it, and a segment cached again meanwhile is indexed from its start."""
    import random

    alice = "alice@example.com"
    rnd = random.Random(61)

    def noise(n: int) -> str:
        return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))

    bodies = [f"word{i:02d}x {noise(20_000)}" for i in range(12)]
    events = signed_chain(1, alice, [_msg(b) for b in bodies])
    path = path_for(events, "big")
    index.add_segment(ROOM, path, 1, None, indexed(path, events), [])
    read: list[int] = []
    calls = 0
    while True:
        before = index._db.execute("SELECT COUNT(*) FROM search_docs").fetchone()[0]
        if not index.index_text(max_bytes=50_000):
            break
        calls += 1
        read.append(index._db.execute("SELECT COUNT(*) FROM search_docs").fetchone()[0] - before)
        assert calls < 50
    # about 20 KB a line: 50,000 bytes is three lines a call (the third passes it)
    assert calls >= 4 and max(read) <= 3, read
    assert index.text_backlog() == 0 and not index.text_pending
    for i in (0, 3, 11):
        assert len(index.search(f"word{i:02d}x").hits) == 1, i

    # cut off half way, then the segment is cached again with other text: from line 0
    others = signed_chain(1, alice, [_msg(f"other{i:02d}y {noise(20_000)}") for i in range(6)])
    path2 = path_for(others, "again")
    index.add_segment(ROOM, path2, 1, None, indexed(path2, others), [])
    assert index.index_text(max_bytes=50_000)
    assert index.text_pending and index.text_backlog() == 1
    changed = signed_chain(2, alice, [_msg(f"new{i:02d}z words") for i in range(6)])
    index.add_segment(ROOM, path2, 1, None, indexed(path2, changed), [])
    _catch_up(index)
    assert [len(index.search(f"new{i:02d}z").hits) for i in range(6)] == [1] * 6
    assert index.search("other00y").hits == ()


def _two_programs(tmp_path: Path) -> tuple[Index, Index, str]:
    """One index file opened twice (the app, and ``bucket-chat search``), holding one
    segment of 40 bodies of 30,000 random characters (about 1.2 MB: five pieces)."""
    import random

    rnd = random.Random(62)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    bodies = [f"word{i:03d}q {''.join(rnd.choices(alphabet, k=30_000))}" for i in range(40)]
    events = signed_chain(1, "alice@example.com", [_msg(b) for b in bodies])
    path = path_for(events, "big")
    app, cli = Index.open(tmp_path / "index.sqlite3"), Index.open(tmp_path / "index.sqlite3")
    app.add_segment(ROOM, path, 1, None, indexed(path, events), [])
    assert app.index_text() == 1  # the first piece; the cursor names the next line
    return app, cli, path


def test_two_programs_indexing_one_segment_in_pieces_index_each_piece_once(
    tmp_path: Path,
) -> None:
    """Red team rt62: the resume cursor was read before the transaction that wrote the
    piece it names; the app indexing that piece in between made both insert it, and its
    messages were found twice for good. The cursor and the rows are read under the write
    lock now: the other program waits, then goes on from where this one stopped."""
    import threading

    app, cli, path = _two_programs(tmp_path)
    try:
        real = cli._text_resume
        other: list[threading.Thread] = []

        def cursor_read_while_the_app_starts_its_job() -> Any:
            found = real()
            if not other:
                other.append(threading.Thread(target=app.index_text, daemon=True))
                other[0].start()
                other[0].join(0.5)
                assert other[0].is_alive()  # it waits for this job's transaction
            return found

        cli._text_resume = cursor_read_while_the_app_starts_its_job  # type: ignore[method-assign]
        assert cli.index_text() == 1
        cli._text_resume = real  # type: ignore[method-assign]
        other[0].join(30)
        assert not other[0].is_alive()
        while app.index_text():
            pass
        count, lines = app._db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT line) FROM search_docs WHERE path = ?", (path,)
        ).fetchone()
        assert (count, lines) == (40, 40)
        assert [len(app.search(f"word{i:03d}q").hits) for i in range(40)] == [1] * 40
    finally:
        app.close()
        cli.close()


def test_a_write_by_the_other_program_during_a_piece_never_stops_indexing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt62: a resumed piece read its rows before writing anything, and a commit
    by the other program meanwhile made its first write fail at once ("database is
    locked": a stale snapshot is not waited for), taken for a damaged file: indexing
    stopped, the rest of the segment unsearchable. The write lock is taken first now;
    the other program's write waits for the piece."""
    import threading

    from bucket_chat_desktop.index import db as dbmod

    app, cli, _path = _two_programs(tmp_path)
    try:
        real = dbmod._reenter
        writer: list[threading.Thread] = []

        def reenter(*args: Any) -> Any:
            if not writer:  # the app writes something meanwhile (a cursor)
                writer.append(threading.Thread(target=app.set_cursor, args=("x", "1")))
                writer[0].start()
                writer[0].join(0.3)
            return real(*args)

        monkeypatch.setattr(dbmod, "_reenter", reenter)
        while cli.index_text():  # as ``SyncEngine.catch_up_text`` does
            pass
        writer[0].join(30)
        assert cli.text_backlog() == 0 and app.cursor("x") == "1"
        assert [len(cli.search(f"word{i:03d}q").hits) for i in range(40)] == [1] * 40
    finally:
        app.close()
        cli.close()
