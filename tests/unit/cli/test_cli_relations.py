"""``send --reply-to``, ``react``, ``edit`` and ``delete`` run in-process: what they send,
what ``history`` then shows, and every refusal (exit 2, one line, nothing written)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_run import Result, run_main
from nacl.signing import SigningKey

from bucket_chat_desktop.cli.format import describe_event
from bucket_chat_desktop.cli.related import chip_text, chips_line
from bucket_chat_desktop.protocol import relations
from bucket_chat_desktop.protocol.audit import Assessed, TrustState
from bucket_chat_desktop.protocol.ids import segment_path
from bucket_chat_desktop.protocol.relations import ReactionChip, Reactor
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync import client_storages
from bucket_chat_desktop.sync.watched import NoAnswerError

PASSPHRASE = "correct horse battery staple"
ALICE, BOB = "alice@example.com", "bob@example.com"
ROOM = "rel-room"


Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "shared"


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """``cli(user, *args)``: ``bucket-chat -s <store> *args --user-id <user>`` on that
    user's own device, or on ``device=`` (``user`` None: a device of nobody, no --user-id)."""

    def call(user: str | None, *args: str, device: str | None = None) -> Result:
        name = device or user or "reader"
        monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "devices" / name))
        argv = ["-s", str(store), *args] + (["--user-id", user] if user else [])
        return run_main(capsys, argv)

    return call


def every_file(folder: Path) -> list[str]:
    return sorted(
        Path(d, n).relative_to(folder).as_posix() for d, _, ns in os.walk(folder) for n in ns
    )


def history(cli: Cli, *extra: str) -> dict[str, Any]:
    r = cli(None, "history", "--room-id", ROOM, "--json", *extra)
    assert r.code == 0, r
    doc: dict[str, Any] = json.loads(r.out)
    return doc


def by_body(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["original_body"]: e for e in doc["events"] if e["original_body"] is not None}


@pytest.fixture
def room(cli: Cli) -> dict[str, str]:
    """Alice's room: her message "hi all", Bob's "hello alice"; their event ids."""
    for user in (ALICE, BOB):
        assert cli(user, "setup-keys").code == 0
    assert cli(ALICE, "create-room", "--room-id", ROOM, "--name", "Rel").code == 0
    ids = {
        "alice": cli(ALICE, "send", "--room-id", ROOM, "hi all").sent,
        "bob": cli(BOB, "send", "--room-id", ROOM, "hello alice").sent,
    }
    events = history(cli)["events"]
    ids["join"] = next(e["event_id"] for e in events if e["type"] != "m.room.message")
    return ids


def refused(r: Result, *needles: str) -> None:
    assert r.code == 2, r
    assert "Traceback" not in r.err + r.out, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bucket-chat: "), r
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, r)


# -- what is sent and shown --------------------------------------------------------------------


def test_reply_react_edit_delete_show_in_history(cli: Cli, room: dict[str, str]) -> None:
    reply = cli(BOB, "send", "--room-id", ROOM, "--reply-to", room["alice"], "agreed").sent
    assert cli(BOB, "react", "--room-id", ROOM, room["alice"], "👍").code == 0
    assert cli(ALICE, "react", "--room-id", ROOM, room["alice"], "👍").code == 0
    assert cli(ALICE, "react", "--room-id", ROOM, room["alice"], "🎉").code == 0
    r = cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "hi everyone")
    assert r.code == 0 and r.out.startswith("Edited with "), r
    r = cli(BOB, "delete", "--room-id", ROOM, room["bob"], "--reason", "wrong room")
    assert r.code == 0 and "copies remain in the storage" in r.out, r

    doc = history(cli)
    assert [e["type"] for e in doc["events"]].count("m.room.reaction") == 0  # not rows
    events = by_body(doc)
    alice = events["hi all"]
    assert alice["body"] == "hi everyone"
    assert alice["edited"]["body"] == "hi everyone"
    assert [e["state"] for e in alice["edited"]["edits"]] == ["verified"]
    assert {c["key"]: c["count"] for c in alice["reactions"]} == {"👍": 2, "🎉": 1}
    thumbs = next(c for c in alice["reactions"] if c["key"] == "👍")
    assert {s["sender_id"] for s in thumbs["senders"]} == {ALICE, BOB}
    assert alice["thread_replies"] == 1
    agreed = events["agreed"]
    assert agreed["event_id"] == reply
    assert agreed["reply_to"] == room["alice"] and agreed["thread_root"] == room["alice"]
    bob = events["hello alice"]
    assert bob["body"] is None and bob["original_body"] == "hello alice"
    assert bob["redacted"]["reason"] == "wrong room"
    assert bob["redacted"]["state"] == "verified"
    assert doc["findings"] == []

    text = cli(None, "history", "--room-id", ROOM).out
    assert "hi everyone (edited)" in text and "hi all" not in text
    # the reply quotes the latest text, and says it is an edit's (round 24: the text
    # answered may have been another)
    assert "> alice@example.com (edited): hi everyone" in text
    assert "👍 2  🎉 1" in text and "[1 reply in thread]" in text
    assert "(message deleted by bob@example.com; reason: wrong room)" in text
    assert "hello alice" not in text  # a deleted message's text is never printed
    assert "m.room.reaction" not in text and "m.room.edit" not in text

    # --limit counts shown events: relation events are not events of their own.
    doc = history(cli, "--limit", "2")
    assert [e["original_body"] for e in doc["events"]] == ["hello alice", "agreed"]


def test_a_reply_to_a_deleted_parent_says_so(cli: Cli, room: dict[str, str]) -> None:
    assert cli(BOB, "send", "--room-id", ROOM, "--reply-to", room["bob"], "(see above)").code == 0
    assert cli(BOB, "delete", "--room-id", ROOM, room["bob"]).code == 0
    text = cli(None, "history", "--room-id", ROOM).out
    assert "> (deleted message)" in text
    assert "(message deleted by bob@example.com)" in text


def test_a_quote_of_a_question_edited_after_its_answer_says_edited(
    cli: Cli, room: dict[str, str]
) -> None:
    """Red team (round 24): Alice asks, Bob says yes, Alice changes her question. Bob's
    "yes" quoted the new question as if he had answered it; the quote now says the text
    it shows is an edit's."""
    ask = cli(ALICE, "send", "--room-id", ROOM, "may I take 500 from the budget?").sent
    assert cli(BOB, "send", "--room-id", ROOM, "--reply-to", ask, "yes, go ahead").code == 0
    assert cli(ALICE, "edit", "--room-id", ROOM, ask, "may I take 5000 from the budget?").code == 0
    text = cli(None, "history", "--room-id", ROOM).out
    assert "> alice@example.com (edited): may I take 5000 from the budget?" in text
    assert "> alice@example.com: may I take 5000" not in text


def test_a_search_whose_newest_matches_are_all_hidden_does_not_say_nothing_matches(
    cli: Cli, room: dict[str, str]
) -> None:
    """Red team (round 24): a search reads a few pages to make up for hidden hits
    (deleted messages, edits that do not apply); a member who wrote that many newer
    matches and deleted them made it end with none shown, and it said "No messages
    found." of a word an older message holds. Now it says older messages may match."""
    assert cli(BOB, "send", "--room-id", ROOM, "invoice 42 is paid").code == 0
    for _ in range(5):
        sent = cli(ALICE, "send", "--room-id", ROOM, "invoice").sent
        assert cli(ALICE, "delete", "--room-id", ROOM, sent).code == 0
    assert cli(None, "history", "--room-id", ROOM).code == 0  # read here: searchable
    r = cli(None, "search", "invoice", "--limit", "1")
    assert r.code == 0, r
    assert "No messages found." not in r.out
    assert "older messages may match" in r.out and "--limit" in r.out
    found = cli(None, "search", "invoice", "--limit", "10").out
    assert ">>invoice<< 42 is paid" in found  # a larger page reads past them
    # --before reads on from where the page stopped, page after page, at --limit 1
    key = re.search(r"--before ([0-9]+) reads on from here", r.out)
    assert key is not None, r.out
    on = cli(None, "search", "invoice", "--limit", "1", "--before", key.group(1))
    assert on.code == 0 and ">>invoice<< 42 is paid" in on.out, on
    doc = json.loads(cli(None, "search", "invoice", "--limit", "1", "--json").out)
    seen = []
    while doc["more"]:
        assert isinstance(doc["next"], int)
        seen += [h["snippet"] for h in doc["hits"]]
        page = cli(
            None, "search", "invoice", "--limit", "1", "--json", "--before", str(doc["next"])
        )
        doc = json.loads(page.out)
    seen += [h["snippet"] for h in doc["hits"]]
    assert seen == ["invoice 42 is paid"] and doc["next"] is None
    bad = cli(None, "search", "invoice", "--before", "-3")
    assert bad.code != 0 and "--before" in bad.err


def test_search_says_when_another_device_used_a_found_messages_id(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Red team rt47: a member signed a message of their own under the id of one alice
    deleted. Her deletion no longer applies (PROTOCOL.md 18.1), and ``history`` says so
    of the row; ``search`` showed her deleted text as her verified words, with no note."""
    from bucket_chat_desktop.protocol.segment import encode_segment, path_for

    secret = cli(ALICE, "send", "--room-id", ROOM, "the token is abc123").sent
    assert cli(ALICE, "delete", "--room-id", ROOM, secret).code == 0
    found = cli(None, "search", "abc123")
    assert found.code == 0 and "No messages found." in found.out, found
    mallory = SigningKey(b"\x4d" * 32)
    ts = next(e["timestamp_ms"] for e in history(cli)["events"] if e["event_id"] == secret)
    copy = build_event(
        room_id=ROOM,
        sender_id="mallory@example.com",
        event_type="m.room.message",
        content={"body": "mine", "msgtype": "m.text"},
        timestamp_ms=ts,
        unique=secret.rsplit("::", 1)[1],
        prev_event_hash=None,
        signing_key=mallory,
    )
    assert copy.event_id == secret
    path = store / path_for([copy], "mallory")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment([copy]))
    assert (
        "another device signed a message under this id"
        in cli(None, "history", "--room-id", ROOM).out
    )
    found = cli(None, "search", "abc123")
    assert found.code == 0, found
    (line,) = [x for x in found.out.splitlines() if "abc123" in x]
    assert "[verified]" in line and "another device signed a message under this id" in line
    doc = json.loads(cli(None, "search", "abc123", "--json").out)
    assert [h["repeated_id"] for h in doc["hits"]] == [True]


def test_search_marks_a_sender_id_that_looks_like_another_of_its_room_as_history_does(
    cli: Cli, room: dict[str, str]
) -> None:
    """Red team rt54: "aIice@example.com" (a capital I for the small l: ASCII only, so
    suspect only beside alice's id) writes in alice's room. ``history`` compares the
    room's senders and marks it; ``search`` marked only ids suspect on their own, and
    printed the impostor's "new bank account" as a plain verified message of (what reads
    as) alice. It now marks it as ``history`` does, lists why after the results, and
    per room: in a room where nobody else looks like it, the same id is not marked."""
    impostor = "aIice@example.com"
    assert cli(impostor, "setup-keys").code == 0
    r = cli(impostor, "send", "--room-id", ROOM, "new bank account for the invoice: 1234")
    assert r.code == 0, r
    assert cli(impostor, "create-room", "--room-id", "own", "--name", "Own").code == 0
    assert cli(impostor, "send", "--room-id", "own", "bank holiday on monday").code == 0
    assert cli(ALICE, "send", "--room-id", ROOM, "which bank?").code == 0
    hist = cli(None, "history", "--room-id", ROOM)
    assert any(
        line.startswith(f"{impostor} [!LOOK-ALIKE ID]") or f"  {impostor} [!LOOK-ALIKE ID]" in line
        for line in hist.out.splitlines()
        if "bank account" in line
    ), hist.out
    assert cli(None, "history", "--room-id", "own").code == 0
    found = cli(None, "search", "bank")
    assert found.code == 0, found
    lines = found.out.splitlines()
    [fake] = [x for x in lines if "bank<< account" in x]
    assert f"{impostor} [!LOOK-ALIKE ID]" in fake, found.out
    [real] = [x for x in lines if "which >>bank<<" in x]  # two plain ids: both marked
    assert f"{ALICE} [!LOOK-ALIKE ID]" in real, found.out
    [own] = [x for x in lines if ">>bank<< holiday" in x]
    assert impostor in own and "[!LOOK-ALIKE ID]" not in own, found.out
    notes = found.out.split("Ids marked [!LOOK-ALIKE ID] may imitate someone else:\n", 1)
    assert len(notes) == 2, found.out
    assert notes[1].splitlines()[0] == "  in Rel:", notes[1]
    assert f"    {impostor}: " in notes[1] and "alice@example.com" in notes[1], notes[1]
    assert "in Own" not in notes[1]


def test_history_and_search_json_say_why_a_sender_id_may_imitate_another(
    cli: Cli, room: dict[str, str]
) -> None:
    """The text output marks "aIice@" beside "alice@" ``[!LOOK-ALIKE ID]`` and says why;
    ``--json`` (what scripts and bots read) said nothing of it, in ``history`` nor in
    ``search``. Each event and hit carries ``sender_id_warning``: the same reason, judged
    among the senders of its own room (null where nobody there looks like it)."""
    impostor = "aIice@example.com"
    assert cli(impostor, "setup-keys").code == 0
    assert cli(impostor, "send", "--room-id", ROOM, "new iban for the invoice").code == 0
    assert cli(impostor, "create-room", "--room-id", "own", "--name", "Own").code == 0
    assert cli(impostor, "send", "--room-id", "own", "iban of the club").code == 0
    assert cli(ALICE, "send", "--room-id", ROOM, "which iban?").code == 0
    hist = cli(None, "history", "--room-id", ROOM, "--json")
    assert hist.code == 0, hist
    by_body = {
        e["body"]: e for e in json.loads(hist.out)["events"] if e["type"] == "m.room.message"
    }
    fake = by_body["new iban for the invoice"]["sender_id_warning"]
    assert fake and "alice@example.com" in fake, by_body
    assert by_body["which iban?"]["sender_id_warning"], by_body  # two plain ids: both
    own = cli(None, "history", "--room-id", "own", "--json")
    assert own.code == 0, own
    [mine] = [e for e in json.loads(own.out)["events"] if e["type"] == "m.room.message"]
    assert mine["sender_id_warning"] is None, mine
    found = cli(None, "search", "iban", "--json")
    assert found.code == 0, found
    hits = {h["snippet"]: h for h in json.loads(found.out)["hits"]}
    [fake_hit] = [h for s, h in hits.items() if "invoice" in s]
    assert fake_hit["sender_id_warning"] == fake, hits
    [own_hit] = [h for s, h in hits.items() if "club" in s]
    assert own_hit["sender_id"] == impostor and own_hit["sender_id_warning"] is None, hits


def test_a_search_hit_whose_verdict_was_taken_on_trial_is_not_final() -> None:
    """A search reads the verdicts this device saved; the first audit of a room is saved
    before its older history is read (its first screen). A key taken on trial there
    (perhaps an impostor's whom older history shows) is not "[verified]"."""
    from bucket_chat_desktop.cli.format import NOT_FINAL_BADGE, search_line
    from bucket_chat_desktop.index.search import SearchHit, Snippet
    from bucket_chat_desktop.protocol.audit import PINNED_REASON, PROVISIONAL_REASON

    def line(reason: str) -> str:
        hit = SearchHit(
            ROOM,
            f"{ROOM}::2026-01-01T00:00:00.000Z::m",
            f"{ROOM}::2026-01-01T00:00:00.000Z::m",
            BOB,
            1,
            TrustState.VERIFIED,
            reason,
            Snippet("wire it to XX00", ((0, 4),), False, False),
            "p",
            1,
            1,
        )
        return search_line(hit, ("", ""), ROOM)

    assert NOT_FINAL_BADGE in line(PROVISIONAL_REASON) and "[verified]" not in line(
        PROVISIONAL_REASON
    )
    assert "[verified]" in line(PINNED_REASON)


def test_removing_a_reaction_and_doing_what_is_done_already(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    target = room["bob"]
    assert cli(ALICE, "react", "--room-id", ROOM, target, "👍").code == 0
    before = every_file(store)
    r = cli(ALICE, "react", "--room-id", ROOM, target, " 👍 ")  # the same text, counted once
    assert r.code == 0 and "already reacted" in r.out, r
    assert every_file(store) == before
    r = cli(ALICE, "react", "--room-id", ROOM, "--remove", target, "👍")
    assert r.code == 0 and r.out.startswith("Removed your 👍 reaction"), r
    assert by_body(history(cli))["hello alice"]["reactions"] == []
    before = every_file(store)
    r = cli(ALICE, "react", "--room-id", ROOM, "--remove", target, "👍")
    assert r.code == 0 and "nothing to remove" in r.out, r
    r = cli(BOB, "edit", "--room-id", ROOM, target, "hello alice")
    assert r.code == 0 and "already says that" in r.out, r
    assert every_file(store) == before
    assert cli(BOB, "delete", "--room-id", ROOM, target).code == 0
    r = cli(BOB, "delete", "--room-id", ROOM, target)
    assert r.code == 0 and "deleted already" in r.out, r


def test_an_edit_keeps_the_messages_msgtype_and_reads_stdin(
    cli: Cli, room: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("line one\nline two\n"))
    assert cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "-").code == 0
    alice = by_body(history(cli))["hi all"]
    assert alice["edited"]["body"] == "line one\nline two"
    assert alice["edited"]["msgtype"] == "m.text"
    text = cli(None, "history", "--room-id", ROOM).out
    assert "line one\n    line two (edited)" in text


def test_text_from_storage_is_escaped_in_quotes_edits_and_reasons(
    cli: Cli, room: dict[str, str]
) -> None:
    evil = "\x1b[2Jclear\u202eevil\x07\nsecond line"
    target = cli(ALICE, "send", "--room-id", ROOM, evil).sent
    reply = cli(BOB, "send", "--room-id", ROOM, "--reply-to", target, "re").sent
    assert cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "\x1b[31mred").code == 0
    r = cli(BOB, "delete", "--room-id", ROOM, reply, "--reason", "\x1b]0;pwned\x07 x")
    assert r.code == 0, r
    out = cli(None, "history", "--room-id", ROOM).out
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out, (raw, out)
    # A deleted reply still quotes its parent (the quote is the parent's text, escaped).
    assert "> alice@example.com: \\x1b[2Jclear\\u202eevil\\x07\n" in out
    assert "\\x1b[31mred (edited)" in out
    assert "reason: \\x1b]0;pwned\\x07 x)" in out


def test_a_chip_with_an_unverified_reactor_says_so() -> None:
    chip = ReactionChip(
        "👍",
        (Reactor(ALICE, "verified", ("a",)), Reactor(BOB, "unverified", ("b",))),
    )
    assert chip_text(chip) == "👍 2 [1 UNVERIFIED]"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # a ZWJ sequence is kept whole
    assert chip_text(ReactionChip(family, (Reactor(ALICE, "verified", ("a",)),))) == family + " 1"


def test_a_chip_with_a_reactor_on_trial_says_it_is_not_final() -> None:
    """A reactor verified only on trial while older history loads is counted apart, as
    the app marks it ("Not final yet"): never printed as a final verified one."""
    chip = ReactionChip(
        "👍",
        (
            Reactor(ALICE, "verified", ("a",)),
            Reactor(BOB, "verified", ("b",), provisional=True),
            Reactor("carol@example.com", "unverified", ("c",)),
        ),
    )
    assert chip_text(chip) == "👍 3 [1 UNVERIFIED] [1 NOT FINAL YET]"


def _row(
    n: int, sender: str, seed: int, kind: str, content: dict[str, Any], reason: str = ""
) -> Assessed:
    """A verified row (``reason``: why; ``PROVISIONAL_REASON`` for a key on trial)."""
    ev = build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=kind,
        content=content,
        timestamp_ms=1_700_000_000_000 + n,
        unique=f"u{n}",
        prev_event_hash=None,
        signing_key=SigningKey(bytes([seed]) * 32),
    )
    return Assessed(ev, TrustState.VERIFIED, reason, "p", n)


def test_history_json_says_which_reactors_are_verified_only_on_trial() -> None:
    """Red team rt92: ``history`` shows verdicts taken on trial when the storage does not
    answer and this device's copy is of a read that had not reached the oldest history.
    The text says ``[1 NOT FINAL YET]``; ``--json`` gave a reactor whose key nobody
    introduced yet, under Alice's id, as ``"state": "verified"``, exactly as Bob's final
    one: a script counting verified votes counted an impostor's as Alice's. Each sender,
    and the chip, now say ``provisional``; a final reactor, verified or not, does not."""
    from bucket_chat_desktop.cli.related import relations_json
    from bucket_chat_desktop.protocol.audit import PROVISIONAL_REASON

    target = _row(0, BOB, 2, "m.room.message", {"body": "lunch at 1?", "msgtype": "m.text"})
    thumbs = {"relates_to": target.event.event_id, "reaction": "👍"}
    party = {"relates_to": target.event.event_id, "reaction": "🎉"}
    rows = [
        target,
        _row(1, BOB, 2, "m.room.reaction", thumbs),
        _row(2, ALICE, 66, "m.room.reaction", thumbs, PROVISIONAL_REASON),
        _row(3, BOB, 2, "m.room.reaction", party),
    ]
    rows.append(
        Assessed(
            _row(4, "carol@example.com", 3, "m.room.reaction", party).event,
            TrustState.UNVERIFIED,
            "no key published",
            "p",
            4,
        )
    )
    rel = relations.build(ROOM, rows)
    thumbs_chip, party_chip = rel.of(target.event.event_id).reactions  # type: ignore[union-attr]
    assert chip_text(thumbs_chip) == "👍 2 [1 NOT FINAL YET]"  # the text history's words
    doc = relations_json(target, rows, rel)
    on_trial, other = doc["reactions"]
    senders = {s["sender_id"]: s for s in on_trial["senders"]}
    assert senders[ALICE]["state"] == senders[BOB]["state"] == "verified"
    assert senders[ALICE]["provisional"] is True and senders[BOB]["provisional"] is False
    assert on_trial["state"] == "verified" and on_trial["provisional"] is True
    # a chip of final verdicts, one of them not verified: nothing on trial
    assert chip_text(party_chip) == "🎉 2 [1 UNVERIFIED]"
    assert other["state"] == "unverified" and other["provisional"] is False
    assert [s["provisional"] for s in other["senders"]] == [False, False]


def test_chips_that_look_alike_are_told_apart_by_their_code_points() -> None:
    """Red team: one member reacted "👍", "👍" + U+FE0F and "👍" + a joiner: three chips
    counted apart that all print as "👍 1" (and "ok" with a Cyrillic "о"). Chips that
    look alike are followed by their code points; a chip that looks like no other (a
    heart with its selector, a ZWJ family) prints as it is."""
    one = (Reactor(BOB, "verified", ("b",)),)
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    keys = ["👍", "👍\ufe0f", "👍\u200d", "❤\ufe0f", family, "ok", "\u043ek"]
    line = chips_line([ReactionChip(k, one) for k in keys])
    assert line == (
        "👍 1 [U+1F44D]  👍\ufe0f 1 [U+1F44D U+FE0F]  👍\u200d 1 [U+1F44D U+200D]  "
        f"❤\ufe0f 1  {family} 1  ok 1 [U+006F U+006B]  \u043ek 1 [U+043E U+006B]"
    )


def test_sync_follow_and_chat_say_what_a_relation_event_asks() -> None:
    def line(event_type: str, content: dict[str, Any]) -> str:
        ev = build_event(
            room_id=ROOM,
            sender_id=BOB,
            event_type=event_type,
            content=content,
            timestamp_ms=1,
            unique="u1",
            prev_event_hash=None,
            signing_key=SigningKey(b"\x01" * 32),
        )
        return describe_event(Assessed(ev, TrustState.VERIFIED, "", "p", 1))

    target = f"{ROOM}::2026-01-01T00:00:00.000Z::x"
    assert line("m.room.reaction", {"relates_to": target, "reaction": "👍"}) == (
        f"* reaction 👍 to {target}"
    )
    assert line("m.room.reaction", {"relates_to": target, "reaction": "\x1b[2J"}) == (
        f"* reaction \\x1b[2J to {target}"
    )
    assert line("m.room.edit", {"replaces": target, "new_content": {}}) == f"* edit of {target}"
    assert line("m.room.redaction", {"redacts": target}) == f"* deletion of {target}"
    assert line("m.room.redaction", {}) == "* m.room.redaction"


# -- refusals ------------------------------------------------------------------------------


UNUSABLE_REACTIONS = ["", "   ", "a\nb", "x" * 65, "\x1b[31mred", "bad\u202e"]


@pytest.mark.parametrize("text", UNUSABLE_REACTIONS, ids=repr)
def test_an_unusable_reaction_text_is_refused(
    cli: Cli, room: dict[str, str], store: Path, text: str
) -> None:
    before = every_file(store)
    refused(cli(BOB, "react", "--room-id", ROOM, room["alice"], text), "1 to 64 characters")
    assert every_file(store) == before


@pytest.mark.parametrize("command", ["react", "edit", "delete", "reply"])
def test_an_event_of_another_room_or_not_found_is_refused(
    cli: Cli, room: dict[str, str], store: Path, command: str
) -> None:
    args = {
        "react": ["react", "--room-id", ROOM, "{id}", "👍"],
        "edit": ["edit", "--room-id", ROOM, "{id}", "new text"],
        "delete": ["delete", "--room-id", ROOM, "{id}"],
        "reply": ["send", "--room-id", ROOM, "--reply-to", "{id}", "re"],
    }[command]
    before = every_file(store)
    other = room["alice"].replace(ROOM, "other-room", 1)
    missing = room["alice"][:-4] + "0000"
    for event_id, needle in [(other, "is not an event of room"), (missing, "no event")]:
        r = cli(ALICE, *[a.replace("{id}", event_id) for a in args])
        refused(r, needle)
    assert every_file(store) == before


def test_editing_or_deleting_someone_elses_message_is_refused(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    before = every_file(store)
    refused(cli(BOB, "edit", "--room-id", ROOM, room["alice"], "pwned"), "not yours")
    refused(cli(BOB, "delete", "--room-id", ROOM, room["alice"]), "not yours")
    reaction = cli(ALICE, "react", "--room-id", ROOM, room["bob"], "👍").sent
    after = every_file(store)
    refused(cli(BOB, "delete", "--room-id", ROOM, reaction), "not yours")
    assert every_file(store) == after and len(after) > len(before)
    # Its sender may: deleting a reaction takes it back (as react --remove does).
    assert cli(ALICE, "delete", "--room-id", ROOM, reaction).code == 0
    assert by_body(history(cli))["hello alice"]["reactions"] == []


def test_editing_from_a_device_not_verified_for_the_sender_is_refused(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    # Alice's phone was never introduced: every reader would ignore its edit.
    assert cli(ALICE, "setup-keys", device="alice-phone").code == 0
    before = every_file(store)
    r = cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "x", device="alice-phone")
    refused(r, "not verified for", "add-device")
    refused(cli(ALICE, "delete", "--room-id", ROOM, room["alice"], device="alice-phone"), "not")
    assert every_file(store) == before


def introduce_phone(cli: Cli) -> None:
    """Alice's phone, introduced by her first device and accepting it (both sides
    signed): ``alice-phone`` speaks for her in the room."""

    def public_key(device: str) -> str:
        out = cli(ALICE, "show-key", device=device).out
        return next(x.split()[-1] for x in out.splitlines() if x.startswith("public key"))

    assert cli(ALICE, "setup-keys", device="alice-phone").code == 0
    phone, first = public_key("alice-phone"), public_key(ALICE)
    assert cli(ALICE, "add-device", "--room-id", ROOM, "--key", phone).code == 0
    r = cli(ALICE, "accept-device", "--room-id", ROOM, "--key", first, device="alice-phone")
    assert r.code == 0, r


def test_a_device_introduced_both_ways_edits_and_every_reader_applies_it(
    cli: Cli, room: dict[str, str]
) -> None:
    """The other side of the refusal above: once the phone is introduced (a statement by
    the first device, accepted on the phone), its edit goes out, and a reader who never
    pinned anything applies it. The phone's own key, pinned on the phone, is not enough
    by itself (every other reader would ignore the edit)."""

    introduce_phone(cli)
    r = cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "from the phone", device="alice-phone")
    assert r.code == 0, r
    alice = by_body(history(cli))["hi all"]
    assert alice["edited"]["body"] == "from the phone", alice
    assert [e["state"] for e in alice["edited"]["edits"]] == ["verified"], alice
    # On the phone itself, which pinned its own key: the device that introduced it is
    # alice's too (red team rt44: it was "key changed" there, and its edits ignored).
    r = cli(None, "history", "--room-id", ROOM, "--json", device="alice-phone")
    on_phone = by_body(json.loads(r.out))
    assert on_phone["hi all"]["trust"] == "verified", on_phone["hi all"]
    assert on_phone["hi all"]["edited"]["body"] == "from the phone"


def test_acting_from_another_device_while_the_id_is_disputed_says_who_will_see_it(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """A key nobody introduced claims alice too, so for a reader who pinned nothing none
    of alice's keys speaks for her. Her introduced phone's edit was reported done with
    no word of that (red team rt44). Refusing it (the first fix) let any member stop her
    editing from a second device in the room for good with one event, though readers who
    confirmed her key apply the edit (red team rt45): it goes, with a note saying who
    sees it."""
    import asyncio

    from bucket_chat_desktop.storage.local import LocalStorage
    from bucket_chat_desktop.sync.writer import Draft, RoomWriter

    impostor = RoomWriter(LocalStorage(store), ROOM, ALICE, SigningKey(bytes([66]) * 32))
    path, _ = asyncio.run(impostor.send([Draft.text("I am alice too")]))
    old = os.stat(store / path).st_mtime - 60  # not "still being written"
    os.utime(store / path, (old, old))

    introduce_phone(cli)
    r = cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "from the phone", device="alice-phone")
    assert r.code == 0 and r.out.startswith("Edited with"), r
    assert "note: keys of more than one device claim 'alice@example.com'" in r.err, r
    assert "trusts neither your messages nor this" in r.err, r
    # alice's first device (her key pinned, the phone's introduction accepted) applies it
    r = cli(None, "history", "--room-id", ROOM, "--json", device=ALICE)
    mine = by_body(json.loads(r.out))["hi all"]
    assert mine["trust"] == "verified" and mine["edited"]["body"] == "from the phone", mine
    # a reader who pinned nothing (a new device) trusts neither the message nor the edit
    r = cli(None, "history", "--room-id", ROOM, "--json", device="new-reader")
    other = by_body(json.loads(r.out))["hi all"]
    assert other["trust"] == "key-changed" and other["edited"] is None, other


def test_editing_a_non_message_is_refused(cli: Cli, room: dict[str, str], store: Path) -> None:
    reaction = cli(ALICE, "react", "--room-id", ROOM, room["bob"], "👍").sent
    before = every_file(store)
    refused(cli(ALICE, "edit", "--room-id", ROOM, reaction, "x"), "not a message")
    refused(cli(ALICE, "edit", "--room-id", ROOM, room["join"], "x"), "not a message")
    refused(cli(ALICE, "react", "--room-id", ROOM, reaction, "🎉"), "not a message")
    refused(cli(ALICE, "send", "--room-id", ROOM, "--reply-to", reaction, "x"), "not a message")
    refused(cli(ALICE, "delete", "--room-id", ROOM, room["join"]), "cannot be deleted")
    assert every_file(store) == before


def test_acting_on_a_deleted_message_is_refused(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    assert cli(ALICE, "delete", "--room-id", ROOM, room["alice"]).code == 0
    before = every_file(store)
    refused(cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "x"), "was deleted")
    refused(cli(BOB, "react", "--room-id", ROOM, room["alice"], "👍"), "was deleted")
    refused(cli(BOB, "send", "--room-id", ROOM, "--reply-to", room["alice"], "x"), "was deleted")
    assert every_file(store) == before


def test_an_empty_edit_is_refused(cli: Cli, room: dict[str, str]) -> None:
    refused(cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "  "), "empty message")


def test_when_the_storage_does_not_answer_the_cached_room_decides_and_the_outbox_keeps_it(
    cli: Cli, room: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(storage: Any, step: Any, seconds: Any = None, **kw: Any) -> Any:
        step.close()  # never run: the storage is away
        raise NoAnswerError("no answer from the storage within 1.2 s", since=0.0)

    assert cli(None, "history", "--room-id", ROOM, device=ALICE).code == 0  # read by alice
    with monkeypatch.context() as away:
        # every deadline-bound step of the CLI runs through ChatClient.within
        away.setattr(client_storages, "answer_within", silent)
        r = cli(ALICE, "react", "--room-id", ROOM, room["bob"], "👍")
        assert r.code == 3, r  # queued in the outbox
        assert "did not answer" in r.err and "queued, not delivered yet" in r.err, r
        # What this device has not read cannot be checked: refused, nothing queued.
        r = cli(BOB, "react", "--room-id", ROOM, room["alice"], "👍", device="bob-new")
        refused(r, "no copy of", "nothing was done")
    assert cli(None, "sync", "--room-id", ROOM, device=ALICE).code == 0  # the outbox delivers
    chips = by_body(history(cli))["hello alice"]["reactions"]
    assert [(c["key"], c["count"]) for c in chips] == [("👍", 1)]


# -- red team: planted lines -------------------------------------------------------------------


def plant(store: Path, events: list[dict[str, Any]], client: str = "mallory") -> None:
    """Unsigned lines a writer with access to the folder adds, under ids it chose."""
    start, end = events[0]["timestamp_ms"], events[-1]["timestamp_ms"]
    path = store / segment_path(ROOM, start, end, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in events))


def planted(n: int, event_type: str, content: dict[str, Any], parent: str | None = None) -> Any:
    return {
        "event_id": f"{ROOM}::2026-12-01T00:00:00.000Z::m{n}",
        "room_id": ROOM,
        "timestamp_ms": 1_796_083_200_000 + n,
        "sender_id": "mallory@example.com",
        "type": event_type,
        "parent_event_id": parent,
        "prev_event_hash": None,
        "signature": "",
        "content": content,
    }


def test_a_reply_to_itself_a_reply_loop_and_a_chip_flood_in_history(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """A reply naming itself quotes nothing and is reported; two replies naming each
    other are each in the other's thread, never their own; 300 distinct reaction texts
    under one message print 20 chips and a count, not one endless line."""
    mid = f"{ROOM}::2026-12-01T00:00:00.000Z::m"
    text = {"body": "loop", "msgtype": "m.text"}
    events = [
        planted(1, "m.room.message", {"body": "me", "msgtype": "m.text"}, parent=f"{mid}1"),
        planted(2, "m.room.message", text, parent=f"{mid}3"),
        planted(3, "m.room.message", text, parent=f"{mid}2"),
    ]
    events += [
        planted(10 + i, "m.room.reaction", {"relates_to": room["alice"], "reaction": f"r{i}"})
        for i in range(300)
    ]
    plant(store, events)
    doc = history(cli)
    shown = {e["event_id"]: e for e in doc["events"]}
    assert shown[f"{mid}1"]["reply_to"] is None and shown[f"{mid}1"]["thread_root"] is None
    assert shown[f"{mid}1"]["thread_replies"] == 0
    assert shown[f"{mid}2"]["thread_root"] == f"{mid}3"
    assert shown[f"{mid}3"]["thread_root"] == f"{mid}2"
    assert len(shown[room["alice"]]["reactions"]) == 300
    out = cli(None, "history", "--room-id", ROOM).out
    lines = out.splitlines()
    chips = next(line for line in lines if "r0 1" in line)
    assert "r19 1" in chips and "r20 1" not in chips and "… and 280 more reactions" in chips
    assert "> mallory@example.com: me" not in out  # the self-reply quotes nothing
    verify = cli(None, "verify", "--room-id", ROOM)
    assert "a reply to itself" in verify.out, verify


def test_chat_prints_no_typing_notices(capsys: pytest.CaptureFixture[str]) -> None:
    """Red team: a thousand typing notices (read and ignored, PROTOCOL.md 18.6) printed
    a thousand "* m.room.typing" lines in ``chat``; the message after them still prints."""
    from bucket_chat_desktop.cli.chat import _Screen

    def item(n: int, event_type: str, content: dict[str, Any]) -> Assessed:
        ev = build_event(
            room_id=ROOM,
            sender_id=BOB,
            event_type=event_type,
            content=content,
            timestamp_ms=1 + n,
            unique=f"u{n}",
            prev_event_hash=None,
            signing_key=SigningKey(b"\x01" * 32),
        )
        return Assessed(ev, TrustState.VERIFIED, "", "p", n)

    screen = _Screen(interactive=False, own_key="")
    typing = [item(n, "m.room.typing", {"typing": True}) for n in range(1000)]
    rows = [*typing, item(1000, "m.room.message", {"body": "hi", "msgtype": "m.text"})]
    screen.arrived(rows, rows, relations.build(ROOM, rows), echo_own=False)
    out = capsys.readouterr().out
    assert "typing" not in out and out.count("\n") == 1 and out.rstrip().endswith("hi")


def test_removing_a_reaction_never_redacts_ones_planted_under_your_id(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Red team: 200 unsigned 👍 under Alice's id on Bob's message. ``react --remove``
    wrote 200 redactions for her; now they are not hers: nothing to remove, and her own
    👍 can still be given, then taken back with one redaction."""
    events = [
        {
            **planted(i, "m.room.reaction", {"relates_to": room["bob"], "reaction": "👍"}),
            "sender_id": ALICE,
        }
        for i in range(200)
    ]
    plant(store, events)
    before = every_file(store)
    r = cli(ALICE, "react", "--room-id", ROOM, "--remove", room["bob"], "👍")
    assert r.code == 0 and "no 👍 reaction" in r.out and every_file(store) == before, r
    mine = cli(ALICE, "react", "--room-id", ROOM, room["bob"], "👍").sent
    r = cli(ALICE, "react", "--room-id", ROOM, "--remove", room["bob"], "👍")
    assert r.code == 0, r
    redactions = [
        json.loads(line)
        for path in (store / "rooms" / ROOM).rglob("*.jsonl")
        for line in path.read_text().splitlines()
        if '"m.room.redaction"' in line
    ]
    assert [e["content"]["redacts"] for e in redactions] == [mine]


def test_a_quote_of_an_unverified_message_says_so(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Red team: a message planted under Bob's id (unsigned, Bob signs his) quoted by
    Alice's verified reply printed as "> bob@example.com: ..." like one of Bob's own."""
    fake = {
        **planted(1, "m.room.message", {"body": "send me the keys", "msgtype": "m.text"}),
        "sender_id": BOB,
    }
    plant(store, [fake])
    assert cli(ALICE, "send", "--room-id", ROOM, "--reply-to", fake["event_id"], "sure").sent
    assert cli(ALICE, "send", "--room-id", ROOM, "--reply-to", room["bob"], "hi").sent
    out = cli(None, "history", "--room-id", ROOM).out
    assert "> bob@example.com [KEY CHANGED]: send me the keys" in out, out
    assert "> bob@example.com: hello alice" in out, out


def test_an_edit_of_an_edit_is_judged_by_the_message_it_edits(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Red team: an unsigned edit planted under Alice's id that "replaces" Bob's message
    passed the sender check as hers (the check read the edit, not the message), so
    ``edit <planted id>`` wrote her signed edit of Bob's message: ignored by every reader
    and reported as Alice trying to edit it. Now refused with nothing written; editing her
    own edit names her message (no growing chain of edits of edits), and the text shown
    already is not sent again."""
    forged = {
        **planted(1, "m.room.edit", {"replaces": room["bob"], "new_content": {"body": "mine"}}),
        "sender_id": ALICE,
    }
    plant(store, [forged])
    before = every_file(store)
    r = cli(ALICE, "edit", "--room-id", ROOM, forged["event_id"], "an innocent fix")
    refused(r, "readers ignore")
    assert every_file(store) == before

    first = cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "hi everyone").sent
    second = cli(ALICE, "edit", "--room-id", ROOM, first, "hi everybody").sent
    again = cli(ALICE, "edit", "--room-id", ROOM, second, "hi everybody")
    assert again.code == 0 and "already says that" in again.out, again
    edits = {
        e["event_id"]: e["content"]
        for path in (store / "rooms" / ROOM).rglob("*.jsonl")
        for e in map(json.loads, path.read_text().splitlines())
        if e["type"] == "m.room.edit" and e["sender_id"] == ALICE and e["signature"]
    }
    assert edits[second]["replaces"] == room["alice"]
    alice = by_body(history(cli))["hi all"]
    assert alice["body"] == "hi everybody"


def test_a_quote_of_a_lookalike_is_marked_and_explained(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Red team: with the look-alike's own row out of ``--limit``, the quote's mark had
    no reason under "Ids marked … may imitate someone else"."""
    lookalike = "b\u043eb@example.com"
    fake = {**planted(1, "m.room.message", {"body": "new bank details"}), "sender_id": lookalike}
    plant(store, [fake])
    assert cli(ALICE, "send", "--room-id", ROOM, "--reply-to", fake["event_id"], "ok").sent
    out = cli(None, "history", "--room-id", ROOM, "--limit", "1").out
    assert f"> {lookalike} [!LOOK-ALIKE ID] [UNVERIFIED]: new bank details" in out, out
    assert f"  {lookalike}: This id may imitate another" in out, out


def test_an_id_signed_by_two_devices_shows_both_and_takes_nothing(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Red team: Mallory signs a message of her own under Bob's event id, in a segment
    that sorts first. Only the first copy by path was shown: Bob's message vanished from
    ``history``. Now both print (``--json`` tells them apart by path and line), a reply
    to the id quotes neither, and reacting to it or answering it is refused."""
    key = SigningKey(bytes([9]) * 32)
    taken = next(e for e in history(cli)["events"] if e["event_id"] == room["bob"])

    def signed(kind: str, content: dict[str, Any], ts: int, unique: str, **kw: Any) -> Any:
        return build_event(
            room_id=ROOM,
            sender_id="mallory@example.com",
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=unique,
            signing_key=key,
            **kw,
        )

    join = signed("m.room.member", {"membership": "join"}, 1_000, "j", prev_event_hash=None)
    copy = signed(
        "m.room.message",
        {"body": "bob never said this", "msgtype": "m.text"},
        taken["timestamp_ms"],
        room["bob"].rsplit("::", 1)[1],
        prev_event_hash=join.hash,
        parent_event_id=None,
    )
    answer = signed(
        "m.room.message",
        {"body": "as he said", "msgtype": "m.text"},
        taken["timestamp_ms"] + 5,
        "q",
        prev_event_hash=copy.hash,
        parent_event_id=room["bob"],
    )
    plant(store, [dict(e.raw) for e in (join, copy, answer)], client="a-mallory")
    doc = history(cli)
    copies = [e for e in doc["events"] if e["event_id"] == room["bob"]]
    assert sorted(e["original_body"] for e in copies) == ["bob never said this", "hello alice"]
    assert len({(e["path"], e["line"]) for e in copies}) == 2
    assert [f["kind"] for f in doc["findings"]].count("replay") == 1
    assert "gap" not in [f["kind"] for f in doc["findings"]]
    out = cli(None, "history", "--room-id", ROOM).out
    assert "hello alice" in out and "bob never said this" in out, out
    assert "> (the quoted message is ambiguous: two devices used its id)" in out, out
    # each copy says its edits and deletion no longer apply (a replay undoes them)
    assert out.count("edits, a deletion and reactions of it are not shown") == 2, out
    for args in (("react", room["bob"], "👍"), ("send", "--reply-to", room["bob"], "?")):
        before = every_file(store)
        r = cli(ALICE, args[0], "--room-id", ROOM, *args[1:])
        refused(r, "shown more than once")
        assert every_file(store) == before  # nothing written


def test_chat_prints_each_copy_of_an_id_signed_twice(capsys: pytest.CaptureFixture[str]) -> None:
    """``chat`` skipped a row whose event id it had printed: the second device's copy of
    one id (PROTOCOL.md section 6 step 1) never printed."""
    from bucket_chat_desktop.cli.chat import _Screen

    def item(seed: int, body: str, path: str) -> Assessed:
        ev = build_event(
            room_id=ROOM,
            sender_id=f"user{seed}@example.com",
            event_type="m.room.message",
            content={"body": body, "msgtype": "m.text"},
            timestamp_ms=5,
            unique="same",
            prev_event_hash=None,
            signing_key=SigningKey(bytes([seed]) * 32),
        )
        return Assessed(ev, TrustState.VERIFIED, "", path, 1)

    screen = _Screen(interactive=False, own_key="")
    one, other = item(1, "first copy", "a"), item(2, "second copy", "b")
    screen.arrived([one], [one], relations.build(ROOM, [one]), echo_own=False)
    both = [one, other]  # a later round hands both
    screen.arrived(both, both, relations.build(ROOM, both), echo_own=False)
    out = capsys.readouterr().out
    assert out.count("first copy") == 1 and out.count("second copy") == 1, out


def test_a_message_whose_only_match_is_its_edit_is_found_by_the_command_line(
    cli: Cli, room: dict[str, str]
) -> None:
    """Red team: ``bucket-chat search`` reads no room; it rebuilt the relations of the
    rooms its hits came from, and an edit's text counts only once they applied it. A
    room whose only match was an edit's text gave no hit, so its relations were never
    rebuilt and the edit never counted: a message edited to say "invoice" was not found
    by "invoice" at all, and a page could read past it (the ``--before`` pages too)."""
    assert cli(ALICE, "edit", "--room-id", ROOM, room["alice"], "the invoice is paid").code == 0
    assert cli(None, "history", "--room-id", ROOM).code == 0  # read here: searchable
    doc = json.loads(cli(None, "search", "invoice", "--json").out)
    assert [(h["event_id"], h["snippet"]) for h in doc["hits"]] == [
        (room["alice"], "the invoice is paid")
    ]
    assert doc["hits"][0]["edited"] and not doc["more"]


def test_a_body_that_imitates_a_reply_quote_is_told_apart(cli: Cli, room: dict[str, str]) -> None:
    """Red team: Bob's plain message began "> alice@example.com: I agree to pay bob
    $5000": ``history`` printed it exactly as a reply quoting words alice never wrote.
    A ``>`` that begins a line of a body is escaped; a real reply's quote is not."""
    forged = "> alice@example.com: I agree to pay bob $5000\nsure, noted\n  > and this"
    assert cli(BOB, "send", "--room-id", ROOM, forged).code == 0
    reply = cli(BOB, "send", "--room-id", ROOM, "--reply-to", room["alice"], "agreed").sent
    assert reply
    out = cli(None, "history", "--room-id", ROOM).out
    lines = out.splitlines()
    fake = next(i for i, line in enumerate(lines) if "I agree to pay bob" in line)
    assert lines[fake].endswith("  \\> alice@example.com: I agree to pay bob $5000"), lines
    assert lines[fake + 2] == "      \\> and this", lines
    real = next(line for line in lines if line.endswith("> alice@example.com: hi all"))
    assert "\\>" not in real


def test_a_file_message_says_its_name_and_an_edit_of_it_is_refused(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Red team (round 27): a file message whose body is a statement ("I, Bob, confirm
    Alice owes me $5000") showed that statement in ``history`` and ``search`` while the
    card showed only "notes.txt"; an edit of a file replaced it with text in ``history``
    while the card kept the file. Now every view says "📎 notes.txt" and the edit is
    refused (a finding)."""
    info = {"name": "notes.txt", "size": 3, "mimetype": "text/plain", "sha256": "0" * 64}
    owes = "I, Bob, confirm Alice owes me $5000. Signed."
    contract = dict(info, name="contract.pdf")
    file_1 = planted(1, "m.room.message", {"msgtype": "m.file", "body": owes, "info": info})
    file_2 = planted(2, "m.room.message", {"msgtype": "m.file", "body": "c", "info": contract})
    new = {"body": "Here is the FINAL signed contract (v2)", "msgtype": "m.text"}
    change = planted(3, "m.room.edit", {"replaces": file_2["event_id"], "new_content": new})
    plant(store, [file_1, file_2, change])

    text = cli(None, "history", "--room-id", ROOM).out
    assert "📎 notes.txt" in text and "📎 contract.pdf" in text
    assert "owes" not in text and "FINAL" not in text and "(edited)" not in text
    doc = history(cli)
    shown = {e["event_id"]: e for e in doc["events"]}
    assert shown[file_1["event_id"]]["body"] == "📎 notes.txt"
    assert shown[file_2["event_id"]]["body"] == "📎 contract.pdf"
    assert shown[file_2["event_id"]]["edited"] is None
    refused_edit = [f for f in doc["findings"] if f["event_id"] == change["event_id"]]
    assert [f["kind"] for f in refused_edit] == ["relation-invalid"]
    assert "file" in refused_edit[0]["message"]

    assert "No messages found." in cli(None, "search", "owes").out
    found = cli(None, "search", "notes").out
    assert ">>notes<<.txt" in found and "owes" not in found


def test_search_says_when_what_it_read_is_not_searchable_yet(
    cli: Cli, room: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``search`` makes what this device read searchable first; when it cannot (the app
    holds the index past the wait: ``Index.index_text`` indexes nothing, as here), it
    says how much is left instead of a plain "No messages found." (red team rt62)."""
    from bucket_chat_desktop.index import Index

    monkeypatch.setattr(Index, "index_text", lambda self, *args, **kw: 0)
    found = cli(None, "search", "hello")
    assert found.code == 0, found
    assert "not searchable yet" in found.err and "search again in a moment" in found.err
    doc = json.loads(cli(None, "search", "hello", "--json").out)
    assert doc["hits"] == [] and doc["not_searchable_yet"] >= 1


def _public_key(cli: Cli, user: str) -> str:
    shown = cli(user, "show-key")
    assert shown.code == 0, shown
    return next(line.split()[-1] for line in shown.out.splitlines() if "public key" in line)


def _statement(cli: Cli, store: Path, user: str, named: str) -> None:
    """A statement by ``user``'s device (its key, its outbox) naming ``named``, sent
    through the client with no check."""
    from bucket_chat_desktop.keys import open_key_store
    from bucket_chat_desktop.protocol.event import MEMBER
    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.client import ChatClient

    assert cli(user, "show-key").code == 0  # BUCKET_CHAT_HOME: that user's device
    key = open_key_store(user_id=user).load(user)
    assert key is not None

    async def write() -> None:
        storage = open_storage(str(store))
        async with ChatClient.session(storage, identity=(user, key)) as client:
            ref = client.room(ROOM)
            content = {"membership": "join", "add_device_key": named}
            await client.send(ref, [(MEMBER, content)])
            assert await client.flush(ref.storage_id, timeout=30)

    asyncio.run(write())


def test_a_statement_naming_anothers_key_is_said_so_in_history_chat_and_json(
    cli: Cli, room: dict[str, str], store: Path
) -> None:
    """Mallory's statement naming Alice's own key, or Bob's (public anywhere), printed
    "* added a device (key …)" in ``history`` and its ``--json`` said nothing, while the
    app's timeline and Members say "names your key as theirs" (red team rt64). The
    command line now says what the app says: to Alice, "names your key as theirs"; of
    Bob's key, which writes as Bob here, "names bob@example.com's key as theirs"."""
    mallory = "mallory@example.com"
    assert cli(mallory, "setup-keys").code == 0
    assert cli(mallory, "send", "--room-id", ROOM, "hi").code == 0
    alice_key, bob_key = _public_key(cli, ALICE), _public_key(cli, BOB)
    # ``add-device`` refuses a key that writes as someone else (red team rt72): Mallory
    # writes her statements with a client of her own, as an attacker would.
    for named in (alice_key, bob_key):
        _statement(cli, store, mallory, named)
    # Alice's own device reads the room (its key is hers): her key is named as "yours".
    text = cli(None, "history", "--room-id", ROOM, device=ALICE)
    assert text.code == 0, text
    lines = [line for line in text.out.splitlines() if mallory in line and "key" in line]
    said = "\n".join(lines)
    assert f"names your key as theirs (key {alice_key[:12]}…)" in said, text.out
    assert f"names bob@example.com's key as theirs (key {bob_key[:12]}…)" in said, text.out
    assert "added a device" not in said, text.out
    doc = json.loads(cli(None, "history", "--room-id", ROOM, "--json", device=ALICE).out)
    claims = {
        e["content"].get("add_device_key"): e["statement_claim"]
        for e in doc["events"]
        if e["sender_id"] == mallory and e["type"] != "m.room.message"
    }
    assert claims[alice_key] == "names your key as theirs", claims
    assert claims[bob_key] == "names bob@example.com's key as theirs", claims
    # A reader that holds neither key: Bob's is still Bob's; Alice's is not "yours".
    other = cli(None, "history", "--room-id", ROOM)
    assert f"names bob@example.com's key as theirs (key {bob_key[:12]}…)" in other.out
    assert "names your key" not in other.out
    plain = [e for e in doc["events"] if e["type"] == "m.room.message"]
    assert all(e["statement_claim"] is None for e in plain)
