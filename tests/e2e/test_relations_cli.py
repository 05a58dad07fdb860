"""Replies, reactions, edits and deletions through the installed ``bucket-chat`` on a
local folder (the S3 run of the same flow: tests/integration/test_cli_relations_cloud.py),
and forged relations planted as raw lines: ``verify`` reports them, ``history`` does not
change. (The rooms forged relations are planted in are written in this process,
``Device.given``; what reads them runs as the installed command.)"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.keys import open_key_store
from bucket_chat_desktop.protocol.event import Event, parse_line
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, REDACTION
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event, public_key_text

from .conftest import Device, kinds
from .relations_flow import ALICE, BOB, ROOM, project, seen, sent, two_users_relate

PASSPHRASE = "correct horse battery staple"
_uuids = itertools.count(1)


def test_two_users_relate_on_a_local_folder(device) -> None:  # type: ignore[no-untyped-def]
    two_users_relate(
        device("alice", ALICE), device("bob", BOB), device("fresh", "nobody@example.com")
    )


def _key_of(dev: Device, monkeypatch: pytest.MonkeyPatch) -> SigningKey:
    """The device's own signing key, read from its key file as the command reads it."""
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(dev.home))
    store = open_key_store("file", passphrase_provider=lambda user, creating: PASSPHRASE)
    key = store.load(dev.user_id)
    assert key is not None
    return key


def _tip(store: Path, key_text: str) -> Event:
    """The newest event of one device's chain in the room (nothing names it as prev)."""
    events = [
        ev
        for path in (store / "rooms" / ROOM / "logs").rglob("*.jsonl")
        for line in path.read_bytes().splitlines(keepends=True)
        if isinstance(ev := parse_line(line, ROOM), Event) and ev.sender_key == key_text
    ]
    prevs = {e.prev_event_hash for e in events}
    (tip,) = [e for e in events if e.hash not in prevs]
    return tip


def _plant(store: Path, key: SigningKey, sender_id: str, drafts: list[Any]) -> None:
    """Events signed with a member's real key, chained after their newest, written as one
    segment straight into the storage (as a member with write access could)."""
    tip = _tip(store, public_key_text(key))
    out = _chain(key, ROOM, sender_id, drafts, tip.timestamp_ms, tip.hash)
    path = store / path_for(out, "planted", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(out))


def test_forged_relations_are_reported_and_change_nothing(
    device, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = device("alice", ALICE), device("bob", BOB)
    reader = device("reader", "reader@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Lunch")
    lunch = sent(alice.given_user("send", "--room-id", ROOM, "lunch at noon?"))
    sent(bob.given_user("send", "--room-id", ROOM, "hi"))
    thumb = sent(alice.given_user("react", "--room-id", ROOM, lunch, "👍"))
    before, text_before = seen(reader)

    elsewhere = lunch.replace(f"{ROOM}::", "other-room::", 1)
    unread = lunch[:-4] + "beef"  # an id of this room nobody has read (yet)
    _plant(
        store,
        _key_of(bob, monkeypatch),
        BOB,
        [
            (EDIT, {"replaces": lunch, "new_content": {"body": "lunch cancelled"}}),
            (REDACTION, {"redacts": lunch, "reason": "bob says so"}),
            (REACTION, {"relates_to": elsewhere, "reaction": "👍"}),
            (REACTION, {"relates_to": lunch, "reaction": "\x1b[2J"}),
            (REACTION, {"reaction": "🎉"}),
            ("m.room.message", {"body": "about that", "msgtype": "m.text"}, unread),
            ("m.room.message", {"body": "nice thumb", "msgtype": "m.text"}, thumb),
        ],
    )

    audit = reader.run("verify", "--room-id", ROOM, "--json", check=False)
    assert audit.returncode == 1, audit
    doc = json.loads(audit.stdout)
    assert not doc["clean"]
    assert {"relation-not-sender", "relation-cross-room", "relation-invalid"} <= kinds(doc)
    forged = [f for f in doc["findings"] if f["kind"].startswith("relation-")]
    assert len(forged) == 6, forged
    text = reader.run("verify", "--room-id", ROOM, check=False)
    assert text.returncode == 1 and "relation-not-sender" in text.stdout
    assert "NOT CLEAN" in text.stdout

    synced = reader.run("sync", "--room-id", ROOM)
    assert ", 6 finding(s)" in synced.stdout, synced.stdout
    chat = alice.user("chat", "--room-id", ROOM, input="/quit\n")
    assert "! relation-not-sender: an edit by 'bob@example.com'" in chat.stdout, chat.stdout
    assert "! relation-cross-room" in chat.stdout

    for who in (reader, alice):  # a fresh reader and one that read the room before
        history = json.loads(who.run("history", "--room-id", ROOM, "--json").stdout)
        shown = {e["event_id"]: e for e in history["events"]}
        assert shown[lunch]["body"] == "lunch at noon?"
        assert shown[lunch]["edited"] is None and shown[lunch]["redacted"] is None
        assert [c["key"] for c in shown[lunch]["reactions"]] == ["👍"]
        assert shown[lunch]["reactions"][0]["count"] == 1
        assert {f["kind"] for f in history["findings"]} >= {"relation-not-sender"}
        # The planted reply is a message of bob's: its parent is not read, it waits.
        reply = next(e for e in history["events"] if e["original_body"] == "about that")
        assert reply["reply_to"] == unread and reply["thread_root"] is None
        # A reply to a reaction is shown, but quotes nothing and starts no thread.
        odd = next(e for e in history["events"] if e["original_body"] == "nice thumb")
        assert odd["reply_to"] is None and odd["thread_root"] is None
        assert shown[lunch]["thread_replies"] == 0
        out = who.run("history", "--room-id", ROOM)
        assert "lunch cancelled" not in out.stdout and "message deleted" not in out.stdout
        assert "> (message not loaded)" in out.stdout
        assert "[verified]  nice thumb" in out.stdout
        assert "finding(s)" in out.stderr
    # Everything shown before is shown the same; only the planted replies are new (newest).
    after = json.loads(reader.run("history", "--room-id", ROOM, "--json").stdout)
    assert project(after)[: len(before)] == before
    assert len(after["events"]) == len(before) + 2
    text_after = reader.run("history", "--room-id", ROOM).stdout.splitlines()
    assert text_after[: len(text_before.splitlines())] == text_before.splitlines()


def _chain(
    key: SigningKey, room: str, sender_id: str, drafts: list[Any], ts: int, prev: str | None
) -> list[Event]:
    """``drafts`` ((type, content[, parent]) each) signed by ``key`` as ``sender_id``,
    one second apart after ``ts``, chained after ``prev``."""
    out: list[Event] = []
    for event_type, content, *parent in drafts:
        ts += 1000
        n = next(_uuids)
        ev = build_event(
            room_id=room,
            sender_id=sender_id,
            event_type=event_type,
            content=content,
            timestamp_ms=ts,
            unique=f"{n:08x}-0000-4000-8000-{n:012x}",
            prev_event_hash=prev,
            signing_key=key,
            parent_event_id=parent[0] if parent else None,
        )
        out.append(ev)
        prev = ev.hash
    return out


def test_a_key_trusted_in_one_room_does_not_speak_for_its_id_in_another(
    device, store: Path
) -> None:  # type: ignore[no-untyped-def]
    """Red team: a member wrote as alice@… with a key of their own in a room of their own,
    where alice never wrote; a reader who read that room first trusted that key as alice
    (trust on first use) — for the whole storage. In the room where the real alice
    writes, that key's edit of her message was applied ("pay MALLORY $5000") and her own
    key was the one "changed". Trust on first use is now a room's: there, two keys
    nobody introduced claim alice, a key-conflict, and the forged edit changes nothing."""
    alice = device("alice", ALICE)
    reader = device("reader", "reader@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Payments")
    pay = sent(alice.given_user("send", "--room-id", ROOM, "pay bob $500"))
    mallory = SigningKey(b"\x4d" * 32)
    t0 = 1_780_000_000_000
    own_room = _chain(
        mallory,
        "drinks",
        ALICE,
        [
            ("m.room.member", {"membership": "join", "displayname": "Alice"}),
            ("m.room.message", {"body": "drinks at six?", "msgtype": "m.text"}),
        ],
        t0,
        None,
    )
    forged = _chain(
        mallory,
        ROOM,
        ALICE,
        [
            ("m.room.member", {"membership": "join", "displayname": "Alice"}),
            (EDIT, {"replaces": pay, "new_content": {"body": "pay MALLORY $5000"}}),
        ],
        t0,
        None,
    )
    for events in (own_room, forged):
        path = store / path_for(events, "mallory", 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_segment(events))

    drinks = json.loads(reader.run("history", "--room-id", "drinks", "--json").stdout)
    assert {e["trust"] for e in drinks["events"]} == {"verified"}  # first use, in that room
    for _ in range(2):  # the first read, and one from the cache
        history = json.loads(reader.run("history", "--room-id", ROOM, "--json").stdout)
        shown = {e["event_id"]: e for e in history["events"]}
        assert shown[pay]["body"] == "pay bob $500" and shown[pay]["edited"] is None
        assert "key-conflict" in {f["kind"] for f in history["findings"]}
        assert "MALLORY" not in json.dumps(history["events"])
    out = reader.run("history", "--room-id", ROOM).stdout
    assert "pay bob $500" in out and "MALLORY" not in out
