"""Two users reply, react, edit and delete in one room through the installed command,
then three readers (each user's device after a restart, and a fresh device) must see the
same result. Shared by the local-folder test here and the S3 emulator test
(``tests/integration/test_cli_relations_cloud.py``)."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Device

ROOM = "lunch"
ALICE, BOB = "alice@example.com", "bob@example.com"


def sent(proc: Any) -> str:
    """The event id a sending command printed (last word of its first line)."""
    first: str = proc.stdout.splitlines()[0]
    return first.split()[-1]


def seen(reader: Device) -> tuple[list[dict[str, Any]], str]:
    """What ``reader`` sees of a room without findings: each shown event's relations
    (comparable across devices), and the text history."""
    doc = json.loads(reader.run("history", "--room-id", ROOM, "--json").stdout)
    assert doc["findings"] == [], doc["findings"]
    text = reader.run("history", "--room-id", ROOM).stdout
    return project(doc), text


def project(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """What ``history --json`` says of each shown event, comparable across devices."""
    return [
        {
            "event_id": e["event_id"],
            "type": e["type"],
            "sender_id": e["sender_id"],
            "body": e["body"],
            "original_body": e["original_body"],
            "trust": e["shown_trust"],
            "reply_to": e["reply_to"],
            "thread_root": e["thread_root"],
            "thread_replies": e["thread_replies"],
            "edited": e["edited"] and e["edited"]["body"],
            "edits": e["edited"] and [x["event_id"] for x in e["edited"]["edits"]],
            "redacted": e["redacted"] and (e["redacted"]["event_id"], e["redacted"]["reason"]),
            "reactions": {
                c["key"]: sorted((s["sender_id"], s["state"]) for s in c["senders"])
                for c in e["reactions"]
            },
        }
        for e in doc["events"]
    ]


def two_users_relate(alice: Device, bob: Device, fresh: Device) -> None:
    alice.user("create-room", "--room-id", ROOM, "--name", "Lunch")
    lunch = sent(alice.user("send", "--room-id", ROOM, "lunch at noon?"))
    yes = sent(bob.user("send", "--room-id", ROOM, "--reply-to", lunch, "yes, the usual place"))
    see = sent(alice.user("send", "--room-id", ROOM, "--reply-to", yes, "see you there"))
    bob.user("react", "--room-id", ROOM, lunch, "👍")
    alice.user("react", "--room-id", ROOM, lunch, "👍")
    alice.user("react", "--room-id", ROOM, lunch, "🎉")
    bob.user("react", "--room-id", ROOM, yes, "😀")
    bob.user("react", "--room-id", ROOM, "--remove", yes, "😀")
    edit = sent(alice.user("edit", "--room-id", ROOM, lunch, "lunch at 12:30?"))
    oops = sent(bob.user("send", "--room-id", ROOM, "the password is hunter2"))
    deleted = bob.user("delete", "--room-id", ROOM, oops, "--reason", "wrong room")
    assert "copies remain in the storage" in deleted.stdout
    # A refusal through the real command: bob cannot edit alice's message.
    refused = bob.user("edit", "--room-id", ROOM, lunch, "lunch is cancelled", check=False)
    assert refused.returncode == 2 and "not yours" in refused.stderr, refused

    views = [seen(reader) for reader in (alice, bob, fresh)]
    shown, text = views[0]
    for other, other_text in views[1:]:
        assert other == shown
        assert other_text == text
    messages = {e["event_id"]: e for e in shown if e["type"] == "m.room.message"}
    assert list(messages) == [lunch, yes, see, oops]
    assert messages[lunch]["body"] == "lunch at 12:30?"
    assert messages[lunch]["edits"] == [edit]
    assert messages[lunch]["reactions"] == {
        "👍": [(ALICE, "verified"), (BOB, "verified")],
        "🎉": [(ALICE, "verified")],
    }
    assert messages[lunch]["thread_replies"] == 2
    assert messages[yes]["reply_to"] == lunch and messages[yes]["reactions"] == {}
    assert messages[see]["reply_to"] == yes and messages[see]["thread_root"] == lunch
    assert messages[oops]["body"] is None
    assert messages[oops]["redacted"][1] == "wrong room"
    assert {e["trust"] for e in shown} == {"verified"}
    assert "lunch at 12:30? (edited)" in text
    assert "> bob@example.com: yes, the usual place" in text
    assert "👍 2  🎉 1" in text and "[2 replies in thread]" in text
    assert "(message deleted by bob@example.com; reason: wrong room)" in text
    assert "hunter2" not in text
    verdict = fresh.run("verify", "--room-id", ROOM)
    assert "CLEAN" in verdict.stdout, verdict.stdout
