"""``bucket-chat search`` as the real command: it finds what this device read, newest
first, across rooms or in one; its JSON carries every field; hostile queries are text;
hostile bodies never reach the terminal raw and cannot pose as a match mark. (The rooms
searched are written in this process, ``Device.given``; the reading device's ``sync``
and every ``search`` run as subprocesses.)"""

from __future__ import annotations

from pathlib import Path

from .conftest import Device
from .test_hostile_text import _bad, planted  # noqa: F401  (the fixture is used by name)


def test_search_finds_what_this_device_read(device) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com")
    alice.given_user("create-room", "--room-id", "team", "--name", "Team")
    alice.given_user("create-room", "--room-id", "lunch", "--name", "Lunch")
    alice.given_user("send", "--room-id", "team", "The deployment is done")
    alice.given_user("send", "--room-id", "team", "会議は明日の十時です")
    alice.given_user("send", "--room-id", "lunch", "Deploying pizza at noon")
    before = bob.run("search", "deploy")
    assert "No messages found." in before.stdout
    assert "has read no room of this storage yet" in before.stderr
    bob.run("sync", "--room-id", "team")
    bob.run("sync", "--room-id", "lunch")

    out = bob.run("search", "deplo").stdout
    lines = [line for line in out.splitlines() if "alice@example.com" in line]
    assert len(lines) == 2
    assert "Lunch" in lines[0] and ">>Deplo<<ying pizza" in lines[0]  # newest first
    assert "Team" in lines[1] and "The >>deplo<<yment is done" in lines[1]
    assert "[UNVERIFIED]" in lines[0] or "[verified]" in lines[0]

    one = bob.json("search", "deplo", "--room-id", "team")
    assert [h["snippet"] for h in one["hits"]] == ["The deployment is done"]
    hit = one["hits"][0]
    assert hit["room_id"] == "team" and hit["sender_id"] == "alice@example.com"
    assert hit["marks"] == [[4, 9]] and hit["edited"] is False
    assert hit["event_id"] == hit["source_event_id"] and hit["trust"] in ("verified", "unverified")
    assert bob.json("search", "明日")["hits"][0]["snippet"] == "会議は明日の十時です"

    # Whatever is typed is searched as text: no query syntax error, ever.
    for query in ['"', "NEAR(a", "*", "-x", "a:b", "((", "AND OR NOT"]:
        proc = bob.run("search", "--", query)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr
    long = bob.run("search", "x" * 10_000)
    assert "shortened" in long.stderr
    bad = bob.run("search", "x", "--limit", "0", check=False)
    assert bad.returncode != 0 and "--limit" in bad.stderr


def test_search_output_is_sanitised(planted: Device) -> None:  # noqa: F811
    planted.given("history", "--room-id", "hostile")  # read: what search looks in
    proc = planted.run("search", "CLEAN")
    assert "every signature" in proc.stdout
    assert _bad(proc.stdout) == [] and _bad(proc.stderr) == []
    assert "\\x1b" in proc.stdout  # shown as an escape, not acted on
    assert ">>CLEAN<<" in proc.stdout
    doc = planted.json("search", "CLEAN")
    assert doc["hits"][0]["snippet"].startswith("\x1b]0;pwned")  # JSON keeps the text
    raw = planted.run("search", "CLEAN", "--json").stdout
    assert _bad(raw.replace("\n", "")) == []


def test_search_of_an_empty_index_is_not_an_error(tmp_path: Path, device) -> None:  # type: ignore[no-untyped-def]
    bob = device("bob", "bob@example.com")
    assert bob.json("search", "anything") == {
        "query": "anything",
        "hits": [],
        "more": False,
        "next": None,
        "not_searchable_yet": 0,
    }


def test_search_follows_edits_and_deletions(device, store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A room with an edit, an edit of it, a deletion and another member's forged edit
    (written by two clients in this process): the command finds the edited message by
    its latest text, never the deleted one, never by the forged text."""
    import asyncio

    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.relations import EDIT
    from bucket_chat_desktop.settings import Settings, StorageSettings
    from bucket_chat_desktop.sync.client import ChatClient

    async def write() -> None:
        entry = StorageSettings(str(store), "Share", [])
        alice = ChatClient(
            Settings("alice@example.com", "Alice", [entry]),
            "alice@example.com",
            SigningKey(b"\x0a" * 32),
            lambda _s, _e: None,
            data_dir=tmp_path / "alice-data",
        )
        other = StorageSettings(str(store), "Share", [])
        mallory = ChatClient(
            Settings("mallory@example.com", "M", [other]),
            "mallory@example.com",
            SigningKey(b"\x0b" * 32),
            lambda _s, _e: None,
            data_dir=tmp_path / "mallory-data",
        )
        await alice.attach(entry, start=False)
        await mallory.attach(other, start=False)
        try:
            ref = await alice.create_room(entry.id, "plans", "Plans")
            (kept,) = await alice.send_text(ref, "alpha original")
            (gone,) = await alice.send_text(ref, "alpha deleted later")
            (edit,) = await alice.edit_message(ref, kept.event_id, "alpha edited once")
            await alice.edit_message(ref, edit.event_id, "alpha edited twice")
            await alice.delete_event(ref, gone.event_id)
            assert await alice._storages[entry.id].engine.flush(10)
            mref = await mallory.join_room(other.id, "plans")
            forged = {"body": "alpha forged", "msgtype": "m.text"}  # her client refuses it;
            # her own code does not (the raw send)
            await mallory.send(mref, [(EDIT, {"replaces": kept.event_id, "new_content": forged})])
            assert await mallory._storages[other.id].engine.flush(10)
        finally:
            await alice.close()
            await mallory.close()

    asyncio.run(write())
    bob = device("bob", "bob@example.com")
    bob.run("sync", "--room-id", "plans")
    doc = bob.json("search", "alpha")
    assert [h["snippet"] for h in doc["hits"]] == ["alpha edited twice"]
    assert doc["hits"][0]["edited"] is True and doc["hits"][0]["superseded"] is False
    assert bob.json("search", "forged")["hits"] == []
    assert bob.json("search", "deleted")["hits"] == []
    (old,) = bob.json("search", "original")["hits"]
    assert old["superseded"] is True
    assert "earlier version" in bob.run("search", "original").stdout


def test_rooms_full_of_deleted_hits_do_not_bring_back_a_deleted_message(  # type: ignore[no-untyped-def]
    device, store: Path, tmp_path: Path
) -> None:
    """Red team (round 24). The command applies each room's relations to its hits by
    rebuilding them for the rooms a page holds, and searching again: for three rounds
    only. Mallory made three rooms, each with a page's worth (20) of newer messages
    holding the word Bob once wrote and deleted in another room, and deleted hers: each
    round hid one room's page and read on into the next room, and the fourth room's
    hits came back without its relations applied: Bob's deleted message, text and all.
    Now every room with a hit has its relations applied, however many rounds it takes."""
    import asyncio

    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.event import MESSAGE
    from bucket_chat_desktop.protocol.relations import REDACTION
    from bucket_chat_desktop.settings import Settings, StorageSettings
    from bucket_chat_desktop.sync.client import ChatClient

    def client(user: str, seed: int, entry: StorageSettings) -> ChatClient:
        return ChatClient(
            Settings(user, user[:3], [entry]),
            user,
            SigningKey(bytes([seed]) * 32),
            lambda _s, _e: None,
            data_dir=tmp_path / f"{user}-data",
        )

    async def write() -> None:
        bob_entry = StorageSettings(str(store), "Share", [])
        mallory_entry = StorageSettings(str(store), "Share", [])
        bob = client("bob@example.com", 0x0B, bob_entry)
        mallory = client("mallory@example.com", 0x0C, mallory_entry)
        await bob.attach(bob_entry, start=False)
        await mallory.attach(mallory_entry, start=False)
        try:
            ref = await bob.create_room(bob_entry.id, "ops", "Ops")
            (oops,) = await bob.send_text(ref, "the vault passphrase is hunter2")
            await bob.delete_event(ref, oops.event_id)
            assert await bob._storages[bob_entry.id].engine.flush(10)
            for room in ("c", "b", "a"):  # a newest
                mref = await mallory.create_room(mallory_entry.id, room, room.upper())
                said = {"body": "passphrase", "msgtype": "m.text"}
                sent = await mallory.send(mref, [(MESSAGE, said)] * 20)
                await mallory.send(mref, [(REDACTION, {"redacts": e.event_id}) for e in sent])
            assert await mallory._storages[mallory_entry.id].engine.flush(10)
        finally:
            await bob.close()
            await mallory.close()

    asyncio.run(write())
    carol = device("carol", "carol@example.com")
    for room in ("ops", "a", "b", "c"):
        carol.run("sync", "--room-id", room)
    doc = carol.json("search", "passphrase")
    assert doc["hits"] == []
    assert "hunter2" not in carol.run("search", "passphrase").stdout
