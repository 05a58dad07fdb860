"""``bucket-chat search`` as the real command: it finds what this device read, newest
first, across rooms or in one; its JSON carries every field; hostile queries are text;
hostile bodies never reach the terminal raw and cannot pose as a match mark."""

from __future__ import annotations

from pathlib import Path

from .conftest import Device
from .test_hostile_text import _bad, planted  # noqa: F401  (the fixture is used by name)


def test_search_finds_what_this_device_read(device) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com")
    alice.user("create-room", "--room-id", "team", "--name", "Team")
    alice.user("create-room", "--room-id", "lunch", "--name", "Lunch")
    alice.user("send", "--room-id", "team", "The deployment is done")
    alice.user("send", "--room-id", "team", "会議は明日の十時です")
    alice.user("send", "--room-id", "lunch", "Deploying pizza at noon")
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
    planted.run("history", "--room-id", "hostile")
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
    assert bob.json("search", "anything") == {"query": "anything", "hits": [], "more": False}
