"""``bucket-chat export`` as a subprocess on a local folder: both formats, the JSONL read
back with its trust states, overwriting only with --force, clear errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.attachments import blob_path, file_content
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.relations import EDIT, REACTION
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "release"
PDF = b"%PDF-1.4 release notes"


def _mallory_writes(store: Path, target: str) -> None:
    """Another member (a key of their own) reacts, forges an edit of Alice's message
    and announces a file whose stored bytes were swapped."""

    async def go() -> None:
        storage = LocalStorage(store)
        w = RoomWriter(storage, ROOM, "mallory@example.com", SigningKey(b"\x07" * 32))
        sha = hashlib.sha256(PDF).hexdigest()
        await storage.put_if_absent(blob_path(ROOM, sha), b"%PDF-1.4 something else")
        await w.send(
            [
                Draft(REACTION, {"relates_to": target, "reaction": "🎉"}),
                Draft(
                    EDIT,
                    {"replaces": target, "new_content": {"body": "forged", "msgtype": "m.text"}},
                ),
                Draft(MESSAGE, file_content("notes.pdf", len(PDF), "application/pdf", sha)),
            ]
        )

    asyncio.run(go())


def test_export_both_formats_and_read_the_jsonl_back(
    device: Any, store: Path, tmp_path: Path
) -> None:
    alice = device("alice", "alice@example.com")
    alice.given_user(
        "create-room", "--room-id", ROOM, "--name", "Release <b>2.0</b>", "--displayname", "Alice"
    )
    alice.given_user("send", "--room-id", ROOM, "ship it </style><script>alert(1)</script>")
    first = alice.json("history", "--room-id", ROOM)["events"]
    target = next(e["event_id"] for e in first if e["type"] == "m.room.message")
    _mallory_writes(store, target)

    jsonl = tmp_path / "release.jsonl"
    proc = alice.run("export", "--room-id", ROOM, "--format", "jsonl", "-o", str(jsonl))
    assert "Exported" in proc.stdout and "audit: 1 finding(s)" in proc.stdout
    lines = [json.loads(line) for line in jsonl.read_text("ascii").splitlines()]
    header, rows = lines[0], lines[1:]
    assert header["verdict"] == "findings" and header["finding_kinds"] == {"relation-not-sender": 1}
    assert header["room_name"] == "Release <b>2.0</b>" and header["complete"] is True
    assert len(rows) == header["events"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_type.setdefault(row["event"]["type"], []).append(row)
        assert row["trust"]["state"] == "verified" and row["trust"]["reason"]
    [msg, _file] = by_type["m.room.message"][:1] + by_type["m.room.message"][1:]
    assert msg["event"]["event_id"] == target
    assert msg["relations"]["reactions"][0]["reaction"] == "🎉"
    assert "edits" not in msg["relations"]
    [forged] = by_type["m.room.edit"]
    assert forged["relation"] == {"kind": "edit", "target": target, "applied": False}
    assert by_type["m.room.reaction"][0]["relation"]["applied"] is True

    page = tmp_path / "release.html"
    proc = alice.run("export", "--room-id", ROOM, "--format", "html", "-o", str(page))
    assert "attachments: 0 copied" in proc.stdout
    # (more bytes stored than announced: read no further, nothing says which is wrong)
    assert "NOT COPIED: notes.pdf: the file in the storage and the signed message disagree" in (
        proc.stderr
    )
    text = page.read_text("utf-8")
    parser = HTMLParser()
    parser.feed(text)  # well-formed enough for a strict reader to get through
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "forged" not in text and "🎉" in text
    assert not (tmp_path / "release_files").exists()  # nothing was copied: no folder

    # Not overwritten without --force; then overwritten.
    proc = alice.run("export", "--room-id", ROOM, "--format", "html", "-o", str(page), check=False)
    assert proc.returncode == 2 and "exists" in proc.stderr and "--force" in proc.stderr
    alice.run("export", "--room-id", ROOM, "--format", "html", "-o", str(page), "--force")


def test_export_errors_are_one_clear_line(device: Any, store: Path, tmp_path: Path) -> None:
    alice = device("alice", "alice@example.com")
    proc = alice.run("export", "--room-id", "nope", "-o", str(tmp_path / "x.html"), check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    alice.given_user("create-room", "--room-id", ROOM, "--name", "R")
    missing = tmp_path / "no" / "x.html"
    proc = alice.run("export", "--room-id", ROOM, "-o", str(missing), check=False)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = alice.run("export", "--room-id", ROOM, "--format", "pdf", "-o", "x", check=False)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
