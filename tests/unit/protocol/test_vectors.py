"""The signed test vectors in tests/vectors/: stable, and met exactly by this implementation."""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.canonical import canonical_bytes, event_hash
from bucket_chat_desktop.protocol.event import Event, parse_line
from bucket_chat_desktop.protocol.ids import client_id_for, parse_segment_path
from bucket_chat_desktop.protocol.metadata import check_signer, parse_metadata
from bucket_chat_desktop.protocol.relations import Relations
from bucket_chat_desktop.protocol.relations import build as build_relations
from bucket_chat_desktop.protocol.signing import SignatureChecker, build_event

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _json(name: str) -> Any:
    return json.loads((VECTORS / name).read_text("utf-8"))


def _room_files() -> list[str]:
    broken = sorted(p.relative_to(VECTORS).as_posix() for p in (VECTORS / "broken").glob("*.json"))
    return ["chain.json", "reference.json", "relations.json", *broken]


# -- (a) the vectors are stable ----------------------------------------------------------


def test_regenerating_gives_byte_identical_files() -> None:
    files = _load_generator().build()
    on_disk = {
        p.relative_to(VECTORS).as_posix(): p.read_bytes()
        for p in VECTORS.rglob("*.json")
        if "__pycache__" not in p.parts
    }
    assert sorted(files) == sorted(on_disk), "run: python tests/vectors/make_vectors.py"
    for name, data in files.items():
        assert on_disk[name] == data, f"{name} changed; regenerate and review the diff"


def test_generator_does_not_use_the_implementation() -> None:
    # The vectors are only a check if they are written by independent code.
    tree = ast.parse((VECTORS / "make_vectors.py").read_text("utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported
    assert not {m for m in imported if m.split(".")[0] == "bucket_chat_desktop"}


def test_broken_cases_cover_the_required_variants() -> None:
    names = {Path(n).stem for n in _room_files()}
    required = {
        "bad-signature",
        "modified-body",
        "gap",
        "fork",
        "replay-both-valid",
        "replay-forged",
        "wrong-room",
        "float",
        "key-changed",
        "sender-mismatch",
        "truncated",
        "name-lies",
        "relation-not-sender",
        "relation-impostor-edit",
        "relation-cross-room",
        "relation-invalid-content",
        "relation-invalid-target",
        "relation-unverified",
    }
    assert required <= names


# -- (b) single events -------------------------------------------------------------------

EVENTS = _json("events.json")["events"]


@pytest.mark.parametrize("vector", EVENTS, ids=[v["name"] for v in EVENTS])
def test_event_vector(vector: dict[str, Any]) -> None:
    key = SigningKey(bytes.fromhex(vector["seed_hex"]))
    assert base64.b64encode(bytes(key.verify_key)).decode() == vector["public_key"]
    assert (
        client_id_for(vector["event"]["sender_id"], bytes(key.verify_key)) == (vector["client_id"])
    )

    parsed = parse_line(vector["line"].encode("ascii"), vector["room_id"])
    assert isinstance(parsed, Event), parsed
    assert parsed.canonical == vector["canonical"].encode("ascii")
    assert parsed.hash == vector["hash"]
    assert parsed.signature == vector["signature"]
    assert dict(parsed.raw) == vector["event"]
    assert parsed.line() == vector["line"].encode("ascii")
    assert SignatureChecker().check(parsed) == (True, "Ed25519 signature good")

    assert canonical_bytes(vector["event"]) == vector["canonical"].encode("ascii")
    assert event_hash(vector["event"]) == vector["hash"]


@pytest.mark.parametrize(
    "vector",
    [v for v in EVENTS if set(v["event"]) == set(EVENTS[0]["event"])],
    ids=lambda v: v["name"],
)
def test_build_event_reproduces_vector(vector: dict[str, Any]) -> None:
    ev = vector["event"]
    room, _, unique = ev["event_id"].split("::")
    built = build_event(
        room_id=room,
        sender_id=ev["sender_id"],
        event_type=ev["type"],
        content=ev["content"],
        timestamp_ms=ev["timestamp_ms"],
        unique=unique,
        prev_event_hash=ev["prev_event_hash"],
        signing_key=SigningKey(bytes.fromhex(vector["seed_hex"])),
        parent_event_id=ev["parent_event_id"],
    )
    assert dict(built.raw) == ev
    assert built.line() == vector["line"].encode("ascii")
    assert built.hash == vector["hash"]


# -- (b) rooms: findings, trust states, display order ------------------------------------


def _segment_bytes(segment: dict[str, Any]) -> bytes:
    if "data_base64" in segment:
        return base64.b64decode(segment["data_base64"])
    return str(segment["data"]).encode("utf-8")


def run_room_vector(case: dict[str, Any]) -> dict[str, Any]:
    """What this implementation concludes, in the vectors' own format."""
    room = case["room_id"]
    findings = []
    meta = None
    if "metadata" in case:
        meta, meta_findings = parse_metadata(
            case["metadata"]["data"].encode("utf-8"), room, case["metadata"]["path"]
        )
        findings += meta_findings
        signed = None if meta is None else meta.signed
        assert signed == case["metadata"]["signed"]
    ledger = RoomLedger(room)
    for segment in case["segments"]:
        name = parse_segment_path(segment["path"])
        assert name is not None and name.room_id == room, segment["path"]
        ledger.add_segment(segment["path"], _segment_bytes(segment))
    result = ledger.audit(case["pinned"])
    findings += result.findings
    relations = build_relations(room, result.timeline)
    findings += relations.findings  # section 18's findings are reported with the rest
    if meta is not None:
        findings += check_signer(meta, result.authorized)[1]

    def row(a: Any) -> dict[str, Any]:
        return {
            "event_id": a.event.event_id,
            "state": a.state.value,
            "path": a.path,
            "line": a.line,
        }

    return {
        "findings": sorted(
            (
                {"kind": f.kind.value, "severity": f.severity.value, "path": f.path, "line": f.line}
                for f in findings
            ),
            key=lambda f: (f["path"], f["line"] or 0, f["kind"]),
        ),
        "timeline": [row(a) for a in result.timeline],
        "invalid": [row(a) for a in result.invalid],
        "relations": relations_json(
            relations, [(a.event.event_id, a.state.value) for a in result.timeline]
        ),
    }


def relations_json(rel: Relations, timeline: list[tuple[str, str]]) -> dict[str, Any]:
    """``Relations`` in the vectors' ``expect.relations`` format (without names)."""
    position = {event_id: i for i, (event_id, _) in enumerate(timeline)}
    state = dict(timeline)

    def ref(event_id: str) -> dict[str, Any]:
        return {"event_id": event_id}

    targets = []
    for event_id in sorted(rel.aggregates, key=position.__getitem__):
        agg = rel.aggregates[event_id]
        red = agg.redacted
        targets.append(
            {
                "event_id": event_id,
                "state": agg.state(state[event_id]),
                "body": agg.latest.body if agg.latest else None,
                "edits": [
                    {"event_id": e.event_id, "state": e.state, "body": e.body, "msgtype": e.msgtype}
                    for e in agg.edits
                ],
                "redacted": None
                if red is None
                else {"event_id": red.event_id, "state": red.state, "reason": red.reason},
                "reactions": [
                    {
                        "key": chip.key,
                        "count": chip.count,
                        "state": chip.state,
                        "reactors": [
                            {
                                "sender_id": r.sender_id,
                                "state": r.state,
                                "events": [ref(i) for i in r.event_ids],
                            }
                            for r in chip.reactors
                        ],
                    }
                    for chip in agg.reactions
                ],
                "thread": [ref(i) for i in agg.thread],
            }
        )
    return {
        "targets": targets,
        "hidden": [ref(timeline[p][0]) for p in rel.hidden],
        "waiting": rel.waiting,
    }


def _without_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_names(v) for k, v in value.items() if k != "name"}
    if isinstance(value, list):
        return [_without_names(v) for v in value]
    return value


@pytest.mark.parametrize("name", _room_files())
def test_room_vector(name: str) -> None:
    case = _json(name)
    got = run_room_vector(case)
    want = case["expect"]
    strip = [{k: v for k, v in r.items() if k != "name"} for r in want["timeline"]]
    assert got["findings"] == want["findings"]
    assert got["timeline"] == strip
    assert got["invalid"] == [{k: v for k, v in r.items() if k != "name"} for r in want["invalid"]]
    assert got["relations"] == _without_names(want["relations"])


def test_chain_vector_is_clean_and_fully_verified() -> None:
    case = _json("chain.json")
    assert case["expect"]["findings"] == []
    assert {r["state"] for r in case["expect"]["timeline"]} == {"verified"}
    # the clock-skew event is shown after its chain predecessor despite its timestamp
    order = [r["name"] for r in case["expect"]["timeline"]]
    assert order.index("a4") == order.index("a3") + 1


def test_reference_vector_has_no_errors() -> None:
    case = _json("reference.json")
    assert {f["severity"] for f in case["expect"]["findings"]} == {"notice"}
    assert {r["state"] for r in case["expect"]["timeline"]} == {"unverified"}


def test_relations_vector_is_clean_and_covers_section_18() -> None:
    case = _json("relations.json")
    want = case["expect"]
    assert want["findings"] == []
    assert {r["state"] for r in want["timeline"]} == {"verified"}
    rel = want["relations"]
    targets = {t["name"]: t for t in rel["targets"]}
    lunch = targets["a2"]
    assert [e["name"] for e in lunch["edits"]] == ["a6", "c3"]  # c3 edits the edit a6
    assert lunch["body"] == "Lunch at 13:00?"
    assert [t["name"] for t in lunch["thread"]] == ["b2", "c2"]
    [thumbs] = lunch["reactions"]
    assert thumbs["count"] == 2 and [len(r["events"]) for r in thumbs["reactors"]] == [2, 1]
    [accent] = targets["b2"]["reactions"]  # written e + U+0301 and U+00E9: one chip
    assert accent["key"] == "\u00e9" and accent["count"] == 2
    gone = targets["b6"]
    assert gone["redacted"]["name"] == "b8" and gone["edits"] == [] and gone["reactions"] == []
    assert targets["a8"]["redacted"]["name"] == "a9"  # a reaction taken back
    assert rel["waiting"] == 2
    assert "b10" in [h["name"] for h in rel["hidden"]]  # typing: hidden, no finding


def test_relation_findings_are_reported_where_the_relation_is() -> None:
    # Relation findings sit in expect.findings with the others, at the relation's line.
    for name in [n for n in _room_files() if "relation-" in n]:
        want = _json(name)["expect"]
        kinds = {f["kind"] for f in want["findings"]}
        relation_kinds = {"relation-invalid", "relation-cross-room", "relation-not-sender"}
        assert bool(kinds & relation_kinds) != name.endswith("relation-unverified.json"), name
        case = _json(name)
        hidden = {h["event_id"] for h in want["relations"]["hidden"]}
        at = {(r["path"], r["line"]): r["event_id"] for r in want["timeline"]}
        lines = {s["path"]: _segment_bytes(s).splitlines() for s in case["segments"]}
        for f in want["findings"]:
            if f["kind"].startswith("relation-"):
                assert f["severity"] == "error" and (f["path"], f["line"]) in at, (name, f)
                # a reply stays shown; every other relation is hidden
                ev = json.loads(lines[f["path"]][f["line"] - 1])
                assert ev["event_id"] == at[(f["path"], f["line"])]
                assert (ev["event_id"] in hidden) == (ev["parent_event_id"] is None), (name, f)
