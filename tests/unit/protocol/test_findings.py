"""Finding kinds, their severities and how a finding names its place."""

from __future__ import annotations

from bucket_chat_desktop.protocol.findings import Finding, Kind, Severity

NOTICES = {
    "unexpected-object",
    "missing-join",
    "dated-ahead",
    "dated-before-witness",
    "metadata-unsigned",
    "metadata-missing",
    "empty-segment",
}


def test_the_kinds_are_the_documented_ones() -> None:
    assert {k.value for k in Kind} == {
        "line-too-long",
        "bad-encoding",
        "bad-json",
        "too-deep",
        "too-dense",
        "float-not-allowed",
        "bad-schema",
        "wrong-room",
        "truncated",
        "segment-name-mismatch",
        "segment-too-large",
        "segment-abandoned",
        "segment-unreadable",
        "segment-vanished",
        "blob-mismatch",
        "relation-invalid",
        "relation-cross-room",
        "relation-not-sender",
        "unexpected-object",
        "empty-segment",
        "invalid-signature",
        "sender-mismatch",
        "gap",
        "fork",
        "replay",
        "key-changed",
        "key-conflict",
        "impersonation",
        "truncated-chain",
        "unread",
        "read-stopped",
        "metadata-signer-unknown",
        "metadata-changed",
        "missing-join",
        "dated-ahead",
        "dated-before-witness",
        "metadata-missing",
        "metadata-unsigned",
        "metadata-invalid",
    }


def test_severity_of_every_kind() -> None:
    for kind in Kind:
        expected = Severity.NOTICE if kind.value in NOTICES else Severity.ERROR
        assert Finding(kind, "m").severity is expected, kind


def test_where() -> None:
    assert Finding(Kind.GAP, "m").where() == "room"
    assert Finding(Kind.GAP, "m", "p").where() == "p"
    assert Finding(Kind.GAP, "m", "p", 3).where() == "p:3"


def test_as_dict() -> None:
    f = Finding(Kind.FORK, "two children", "rooms/r/x.jsonl", 2, "r::t::u")
    assert f.as_dict() == {
        "kind": "fork",
        "severity": "error",
        "message": "two children",
        "path": "rooms/r/x.jsonl",
        "line": 2,
        "event_id": "r::t::u",
    }
