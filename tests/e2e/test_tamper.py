"""Every kind of tampering with a room folder is caught by ``bucket-chat verify``.

A clean room is written by the command's own ``main`` (in this process, ``Device.given``),
checked clean by the real command, copied, tampered with in one way, and audited by the
real command; the audit must exit 1 and name the right finding (and the right file and
line).
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bucket_chat_desktop.keys import open_key_store
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from .conftest import Device, kinds, segments

ROOM = "audited"


@pytest.fixture(scope="module")
def clean_room(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A room with alice and bob, 3 segments each after their joins; returns (store, homes)."""
    base = tmp_path_factory.mktemp("clean")
    store = base / "store"
    store.mkdir()
    alice = Device(base / "alice", store, "alice@example.com")
    bob = Device(base / "bob", store, "bob@example.com")
    for dev in (alice, bob):
        dev.home.mkdir()
        dev.setup_keys()
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Audited")
    for i in range(3):
        alice.given_user("send", "--room-id", ROOM, f"alice says {i}")
        bob.given_user("send", "--room-id", ROOM, f"bob says {i}")
    doc = alice.json("verify", "--room-id", ROOM)
    assert doc["clean"] and doc["counts"]["verified"] == 8
    return store, base


def _copy(clean_room: tuple[Path, Path], tmp_path: Path) -> Device:
    store, base = clean_room
    target = tmp_path / "store"
    shutil.copytree(store, target)
    return Device(base / "alice", target, "alice@example.com")


def _seg(dev: Device, who: str, index: int) -> Path:
    """The index-th segment written by ``who`` (in time order)."""
    mine = [p for p in segments(dev.store, ROOM) if f"_{who}-" in p.name]
    return sorted(mine, key=lambda p: int(p.name.split("_")[1]))[index]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _audit(dev: Device) -> dict:  # type: ignore[type-arg]
    proc = dev.run("verify", "--room-id", ROOM, "--json", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _finding(doc: dict, kind: str) -> dict:  # type: ignore[type-arg]
    return next(f for f in doc["findings"] if f["kind"] == kind)


def _edit_line(path: Path, index: int, change: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    lines = _lines(path)
    event = json.loads(lines[index])
    change(event)
    lines[index] = json.dumps(event, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))


def test_modified_message_is_invalid_and_breaks_the_chain(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    seg = _seg(dev, "bob", 1)
    _edit_line(seg, 0, lambda e: e["content"].update(body="bob says: send money"))
    doc = _audit(dev)
    bad = _finding(doc, "invalid-signature")
    assert bad["path"].endswith(seg.name) and bad["line"] == 1
    assert "gap" in kinds(doc)  # bob's next event names the original, now missing, hash
    assert doc["counts"]["invalid"] == 1
    history = dev.json("history", "--room-id", ROOM)["events"]
    assert "bob says: send money" not in [e["content"].get("body") for e in history]


def test_deleted_segment_is_a_gap(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    _seg(dev, "alice", 2).unlink()
    doc = _audit(dev)
    assert kinds(doc) == {"gap"}
    assert _finding(doc, "gap")["path"].endswith(_seg(dev, "alice", 2).name)


def test_deleted_newest_segment_is_caught_once_someone_witnessed_it(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Dropping a device's newest segment leaves an intact, shorter chain. Once another
    member read it and wrote after (its events witness what it read), it is a finding."""
    store, base = clean_room
    dev = _copy(clean_room, tmp_path)
    newest = _seg(dev, "alice", -1)
    # bob reads the room (his device caches it), then writes: his event witnesses alice's
    bob = Device(base / "bob", dev.store, "bob@example.com")
    bob.given("history", "--room-id", ROOM)
    bob.given_user("send", "--room-id", ROOM, "seen all of it")
    newest.unlink()
    doc = _audit(dev)
    assert kinds(doc) == {"truncated-chain"}
    finding = _finding(doc, "truncated-chain")
    assert finding["path"].endswith(_seg(dev, "bob", -1).name)
    assert "alice@example.com" in finding["message"]
    # without a witness after it, the same deletion is not detectable (PROTOCOL.md 6.1)
    quiet = _copy(clean_room, tmp_path / "quiet")
    _seg(quiet, "alice", -1).unlink()
    assert quiet.json("verify", "--room-id", ROOM)["clean"]
    del store


def test_forged_event_with_someone_elses_key_is_invalid(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    seg = _seg(dev, "alice", 1)
    alice_key = json.loads(_lines(seg)[0])["sender_key"]
    forged = json.loads(_lines(seg)[0])
    forged["event_id"] = f"{ROOM}::2030-01-01T00:00:00.000Z::{uuid.uuid4()}"
    forged["content"] = {"body": "I resign", "msgtype": "m.text"}
    forged["sender_key"] = alice_key
    forged["signature"] = base64.b64encode(b"\x01" * 64).decode()
    target = seg.parent / "messages_1893456000000_1893456000000_alice-forged.jsonl"
    target.write_text(json.dumps(forged) + "\n")
    doc = _audit(dev)
    assert "invalid-signature" in kinds(doc)
    assert _finding(doc, "invalid-signature")["path"].endswith(target.name)


def test_replayed_event_id_with_other_content(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    seg = _seg(dev, "bob", 0)
    copy = seg.parent / seg.name.replace("_bob-", "_bobcopy-")
    shutil.copy(seg, copy)
    clean = dev.run("verify", "--room-id", ROOM, "--json")  # identical copy: de-duplicated
    assert json.loads(clean.stdout)["clean"]
    _edit_line(copy, 0, lambda e: e["content"].update(displayname="Mallory"))
    doc = _audit(dev)
    assert {"replay", "invalid-signature"} <= kinds(doc)


def test_fork_in_one_devices_chain(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    store = open_key_store(
        "file",
        key_dir=dev.home / "data" / "keys",
        passphrase_provider=lambda _user, _creating: dev.env()["BUCKET_CHAT_PASSPHRASE"],
    )
    key = store.load("alice@example.com")
    assert key is not None
    first = json.loads(_lines(_seg(dev, "alice", 1))[0])  # alice's first message
    ev = build_event(
        room_id=ROOM,
        sender_id="alice@example.com",
        event_type=MESSAGE,
        content={"body": "an alternative history", "msgtype": "m.text"},
        timestamp_ms=first["timestamp_ms"] + 1,
        unique=str(uuid.uuid4()),
        prev_event_hash=first["prev_event_hash"],  # the same predecessor: a fork
        signing_key=key,
    )
    path = path_for([ev], client_id_for("alice@example.com", bytes(key.verify_key)), 7)
    (dev.store / path).write_bytes(encode_segment([ev]))
    doc = _audit(dev)
    assert kinds(doc) == {"fork"}
    history = dev.json("history", "--room-id", ROOM)["events"]
    forked = [e for e in history if e["trust"] == "unverified"]
    assert len(forked) == 2 and all("fork" in e["reason"] for e in forked)


def test_segment_name_lies_about_its_timestamps(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    seg = _seg(dev, "bob", 2)
    _, start, end, rest = seg.name.split("_", 3)
    seg.rename(seg.parent / f"messages_{int(start) - 86_400_000}_{end}_{rest}")
    doc = _audit(dev)
    assert kinds(doc) == {"segment-name-mismatch"}


def test_segment_moved_into_another_room(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    other = dev.store / "rooms" / "other" / "logs" / "2020-01-01"
    other.mkdir(parents=True)
    seg = _seg(dev, "alice", 1)
    shutil.move(seg, other / seg.name)
    doc = _audit(dev)  # the room it left now has a gap
    assert kinds(doc) == {"gap"}
    proc = dev.run("verify", "--room-id", "other", "--json", check=False)
    moved = json.loads(proc.stdout)
    assert proc.returncode == 1 and "wrong-room" in kinds(moved)


def test_truncated_garbage_and_hostile_lines(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    seg = _seg(dev, "alice", 0)  # alice's join
    folder = seg.parent
    good = _lines(_seg(dev, "bob", 0))[0]
    (folder / "messages_1_2_garbage.jsonl").write_bytes(
        b"this is not json\n\xff\xfe not utf-8\n"
        + b'{"timestamp_ms": 1.5}\n'
        + b"[" * 10_000
        + b"]" * 10_000
        + b"\n"
        + good[: len(good) // 2]
    )
    doc = _audit(dev)
    found = {(f["kind"], f["line"]) for f in doc["findings"] if f["path"].endswith("garbage.jsonl")}
    assert found == {
        ("bad-json", 1),
        ("bad-encoding", 2),
        ("float-not-allowed", 3),
        ("too-deep", 4),
        ("truncated", 5),
    }
    assert doc["counts"]["verified"] == 8  # the good events are all kept


def test_tampered_metadata(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    meta = dev.store / "rooms" / ROOM / "metadata.json"
    doc = json.loads(meta.read_text())
    doc["name"] = "Renamed by the bucket owner"
    meta.write_text(json.dumps(doc))
    assert "metadata-invalid" in kinds(_audit(dev))


def test_verify_text_output_names_file_and_line(clean_room, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = _copy(clean_room, tmp_path)
    seg = _seg(dev, "bob", 1)
    _edit_line(seg, 0, lambda e: e.update(timestamp_ms=e["timestamp_ms"] + 1))
    proc = dev.run("verify", "--room-id", ROOM, check=False)
    assert proc.returncode == 1
    assert f"{seg.name}:1" in proc.stdout and "NOT CLEAN" in proc.stdout
