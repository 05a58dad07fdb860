"""A member's signed segments copied into a room of the same id in another storage
(red team rt73, F2).

Alice is in ``general`` on the company share (A, Carol's room) and in ``general`` on the
partner share (B, Bob's room). Mallory can read A and write B: she copies Alice's A
segments (her join, "hello carol, in A", "Approve the wire to account 123") into B's
``general``. Events name their room id, never their storage, so every signature holds.

What a reader of B is told is a ``fork`` of Alice's chain: two events start it (her
join in B and the copied join), and only those two rows are "chain forks here"
(PROTOCOL.md section 6). The copied messages after the copied root read verified, as
hers, in B — on her own device too, which never wrote them there. That is a known limit
of the protocol, left as it is (no change to what events sign): docs/SECURITY.md, "A room
id is only a name within a storage". The app now gives new rooms unique ids by default
(tests/gui/test_new_room_id.py), so two rooms rarely share an id by accident.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import Device

ROOM = "general"


def _copy_segments(src: Path, dst: Path, who: str) -> int:
    copied = 0
    for seg in sorted((src / "rooms" / ROOM / "logs").rglob(f"*_{who}-*.jsonl")):
        day = dst / "rooms" / ROOM / "logs" / seg.parent.name
        day.mkdir(parents=True, exist_ok=True)
        if not (day / seg.name).exists():
            shutil.copy2(seg, day / seg.name)
            copied += 1
    return copied


def _copied_into_b(device: Any, tmp_path: Path) -> tuple[Device, Device]:
    """Alice's device on B and Bob's, once Mallory copied Alice's A segments into B."""
    a, b = tmp_path / "company", tmp_path / "partner"
    a.mkdir()
    b.mkdir()
    carol: Device = device("carol", "carol@example.com", store_path=a)
    bob: Device = device("bob", "bob@example.com", store_path=b)
    alice_a: Device = device("alice", "alice@example.com", store_path=a)
    # the same device (same home, same key) on the other storage
    alice_b = Device(alice_a.home, b, alice_a.user_id)
    carol.given_user("create-room", "--room-id", ROOM, "--name", "General")
    bob.given_user("create-room", "--room-id", ROOM, "--name", "General")
    alice_b.given_user("send", "--room-id", ROOM, "hi bob, in B")
    alice_a.given_user("send", "--room-id", ROOM, "hello carol, in A")
    alice_a.given_user("send", "--room-id", ROOM, "Approve the wire to account 123")
    assert _copy_segments(a, b, "alice") == 2  # Mallory's copy: bytes as Alice wrote them
    return alice_b, bob


@pytest.mark.xfail(
    strict=True,
    reason="known limit: a room id is only a name within a storage; events sign their "
    "room id, not the storage, so a copy from a room of the same id elsewhere verifies "
    "(docs/SECURITY.md, 'A room id is only a name within a storage')",
)
def test_a_message_sent_in_one_storage_is_not_shown_verified_as_sent_in_the_other(
    device: Any, tmp_path: Path
) -> None:
    alice_b, _bob = _copied_into_b(device, tmp_path)
    rows = alice_b.json("history", "--room-id", ROOM)
    events = rows["events"] if isinstance(rows, dict) else rows
    wire = [e for e in events if "Approve the wire" in str(e.get("content", e))]
    assert wire, events
    # Alice's own device never sent it to this storage: it must not read as her verified
    # message here.
    assert wire[0].get("trust") != "verified", wire[0]


def test_the_copy_is_told_as_a_fork_of_the_senders_chain(device: Any, tmp_path: Path) -> None:
    """What SECURITY.md promises the reader of B: the two chains meet, a ``fork`` finding
    names the sender, the room is not clean, and both roots read "chain forks here"."""
    alice_b, bob = _copied_into_b(device, tmp_path)
    for reader in (alice_b, bob):
        checked = reader.run("verify", "--room-id", ROOM, check=False)
        said = checked.stdout
        assert checked.returncode == 1, (checked.returncode, said, checked.stderr)
        assert "fork" in said and "2 events by 'alice@example.com'" in said, said
        assert "start a chain" in said and "NOT CLEAN" in said, said
    rows = alice_b.json("history", "--room-id", ROOM)
    forked = [e for e in rows["events"] if "chain forks here" in (e.get("reason") or "")]
    assert [(e["sender_id"], e["content"]) for e in forked] == [
        ("alice@example.com", {"membership": "join"})
    ] * 2
    assert all(e["trust"] != "verified" for e in forked)
