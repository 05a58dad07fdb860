"""The issue's "done when": people on several devices chat through one folder."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from .conftest import EXE, Device, kinds

ROOM = "team-room"


def _public_key(dev: Device) -> str:
    out = dev.user("show-key").stdout
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("public key"))


def test_two_users_three_devices_exchange_1000_messages(device) -> None:  # type: ignore[no-untyped-def]
    alice_laptop = device("alice-laptop", "alice@example.com")
    alice_phone = device("alice-phone", "alice@example.com")
    bob = device("bob-desktop", "bob@example.com")

    alice_laptop.user("create-room", "--room-id", ROOM, "--name", "Team room")
    # Alice's laptop introduces her phone's key, so the phone's messages are not "key changed".
    alice_laptop.user("add-device", "--room-id", ROOM, "--key", _public_key(alice_phone))
    # Her phone cannot tell her laptop from anyone who copied the phone's public key into
    # a statement: she compares the laptop's key and accepts on the phone.
    accepted = alice_phone.user(
        "accept-device", "--room-id", ROOM, "--key", _public_key(alice_laptop)
    )
    assert "Accepted the introduction" in accepted.stdout

    sent: list[tuple[str, str]] = []
    devices = [alice_laptop, bob, alice_phone]
    # Four rounds of the three devices taking turns (each turn one `send --each-line`: a
    # command start costs more than its messages, and the suite's time is counted); each
    # turn continues its device's chain after the others wrote.
    total, rounds, per_turn = 1000, 4, 84
    n = 0
    for r in range(rounds):
        for dev in devices:
            batch = [f"{dev.home.name} round {r} message {i}" for i in range(per_turn)]
            batch = batch[: max(0, total - n)]
            if not batch:
                continue
            dev.user("send", "--room-id", ROOM, "--each-line", "-", input="\n".join(batch) + "\n")
            sent.extend((dev.user_id, text) for text in batch)
            n += len(batch)
    assert n == total

    doc = bob.json("history", "--room-id", ROOM)
    messages = [e for e in doc["events"] if e["type"] == "m.room.message"]
    assert [(e["sender_id"], e["content"]["body"]) for e in messages] == sent
    assert all(e["trust"] == "verified" for e in doc["events"])
    times = [e["timestamp_ms"] for e in doc["events"]]
    assert times == sorted(times)
    assert doc["findings"] == []

    audit = subprocess.run(
        [EXE, "-s", str(bob.store), "verify", "--room-id", ROOM],
        env=bob.env(),
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "CLEAN" in audit.stdout
    # history --limit keeps the newest events
    last = bob.json("history", "--room-id", ROOM, "--limit", "5")["events"]
    assert [e["content"].get("body") for e in last] == [t for _, t in sent[-5:]]


def test_a_second_device_without_introduction_is_a_conflict(device) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Team")
    alice.given_user("send", "--room-id", ROOM, "first")
    intruder = device("new-laptop", "alice@example.com")
    intruder.given_user("send", "--room-id", ROOM, "it is me, alice, honestly")
    doc = alice.json("verify", "--room-id", ROOM, check=False)
    # Two keys claim alice and neither introduced the other: nobody is trusted
    assert kinds(doc) == {"key-conflict"}
    assert doc["counts"]["key-changed"] == 4 and doc["counts"]["verified"] == 0
    assert doc["metadata"]["signer"] == "unconfirmed"
    # On alice's own device her key is hers (pinned as the app pins it): the other key is
    # the one that changed, and her own messages stay verified; ``verify`` above reads as
    # a device that pinned nothing.
    history = alice.json("history", "--room-id", ROOM)["events"]
    trust = {e["content"].get("body"): e["trust"] for e in history if e["content"].get("body")}
    assert trust == {"first": "verified", "it is me, alice, honestly": "key-changed"}


def test_a_device_introduced_after_it_wrote_accepts_when_its_owner_says_so(device) -> None:  # type: ignore[no-untyped-def]
    """The laptop wrote before the phone introduced it: a conflict. Its owner then accepts
    the phone's introduction on the laptop: its later messages are verified, the earlier
    ones stay key-changed (they came before the statement)."""
    phone = device("phone", "alice@example.com")
    laptop = device("laptop", "alice@example.com")
    bob = device("bob", "bob@example.com")
    phone.user("create-room", "--room-id", ROOM, "--name", "Team")
    laptop.user("send", "--room-id", ROOM, "too early")
    assert kinds(bob.json("verify", "--room-id", ROOM, check=False)) == {"key-conflict"}
    phone.user("add-device", "--room-id", ROOM, "--key", _public_key(laptop))
    # Not accepted by itself: an impostor could have written that statement as well
    laptop.user("send", "--room-id", ROOM, "still not introduced")
    assert kinds(bob.json("verify", "--room-id", ROOM, check=False)) == {"key-conflict"}
    out = laptop.user("accept-device", "--room-id", ROOM, "--key", _public_key(phone)).stdout
    assert "Accepted the introduction" in out
    laptop.user("send", "--room-id", ROOM, "now introduced")
    doc = bob.json("verify", "--room-id", ROOM, check=False)
    assert kinds(doc) == {"key-changed"}
    events = bob.json("history", "--room-id", ROOM)["events"]
    trust = {e["content"].get("body"): e["trust"] for e in events}
    assert trust["too early"] == "key-changed" and trust["now introduced"] == "verified"
    # once accepted, the statement counts from its place in the history on
    assert trust["still not introduced"] == "verified"
    accept = [e for e in events if e["content"].get("introduced_by")]
    assert accept and accept[0]["content"]["introduced_by"] == _public_key(phone)


def test_chat_shows_incoming_messages_live(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Team")
    chat = subprocess.Popen(
        [EXE, "-s", str(store), "chat", "--room-id", ROOM, "--user-id", bob.user_id],
        env=bob.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        assert chat.stdout is not None and chat.stdin is not None
        header = chat.stdout.readline()
        assert "Team" in header
        while "join" not in chat.stdout.readline():
            pass  # the history so far: alice's join
        alice.given_user("send", "--room-id", ROOM, "are you there, bob?")
        deadline = time.monotonic() + 20
        seen = ""
        while "are you there, bob?" not in seen and time.monotonic() < deadline:
            seen += chat.stdout.readline()
        assert "are you there, bob?" in seen and "[verified]" in seen
        chat.stdin.write("yes, typing in chat\n/quit\n")
        chat.stdin.flush()
        assert chat.wait(timeout=20) == 0
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.wait()
    bodies = [e["content"].get("body") for e in alice.json("history", "--room-id", ROOM)["events"]]
    assert bodies[-1] == "yes, typing in chat"


def test_json_history_is_machine_readable(device) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Team")
    alice.given_user("send", "--room-id", ROOM, "naïve café ✓ \u202e")
    doc = alice.json("history", "--room-id", ROOM)
    assert doc["events"][-1]["content"]["body"] == "naïve café ✓ \u202e"
    text = alice.run("history", "--room-id", ROOM).stdout
    assert "naïve café ✓" in text
    assert json.dumps(doc)  # round-trips


def test_setup_keys_is_a_command_too(device) -> None:  # type: ignore[no-untyped-def]
    """The other tests make their devices' keys in the test's process (``make_key``);
    here the command makes it, at the app's own cost, and the device writes with it."""
    carol = device("carol", "carol@example.com", setup=False)
    made = carol.user("setup-keys").stdout
    assert made.startswith("Created a signing key for carol@example.com")
    shown = carol.user("show-key").stdout
    assert _public_key(carol) in made and "stored in:   encrypted key file" in shown
    again = carol.user("setup-keys").stdout  # kept, not replaced
    assert "already exists" in again and _public_key(carol) in again
    carol.user("create-room", "--room-id", "keys", "--name", "Keys")
    carol.user("send", "--room-id", "keys", "signed with the command's key")
    doc = carol.json("verify", "--room-id", "keys")
    assert doc["clean"] and doc["counts"]["verified"] == 2
