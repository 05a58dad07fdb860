"""docs/PROTOCOL.md stays in step with the code and the vectors it documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bucket_chat_desktop.protocol.event import MAX_DEPTH, MAX_ID_BYTES, MAX_LINE_BYTES
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.metadata import MAX_METADATA_BYTES
from bucket_chat_desktop.protocol.segment import MAX_SEGMENT_BYTES

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "PROTOCOL.md").read_text("utf-8")
VECTORS = ROOT / "tests" / "vectors"


def test_every_finding_kind_is_in_the_table_with_its_severity() -> None:
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (ERROR|NOTICE) \|", DOC, re.MULTILINE))
    assert set(rows) == {k.value for k in Kind}
    for kind in Kind:
        assert rows[kind.value] == Finding(kind, "").severity.value.upper(), kind


def test_limits_match_the_code() -> None:
    assert f"{MAX_LINE_BYTES:,} bytes" in DOC
    assert f"{MAX_SEGMENT_BYTES:,} bytes" in DOC
    assert f"{MAX_METADATA_BYTES:,} bytes" in DOC
    assert f"depth ≤ {MAX_DEPTH}" in DOC
    assert f"1–{MAX_ID_BYTES} bytes of UTF-8" in DOC


def test_every_vector_file_and_device_is_documented() -> None:
    for path in sorted((VECTORS / "broken").glob("*.json")):
        assert f"`{path.stem}`" in DOC, path.stem
    for name in ("events.json", "chain.json", "reference.json"):
        assert f"`{name}`" in DOC
    devices = json.loads((VECTORS / "events.json").read_text("utf-8"))["devices"]
    for device in devices:
        seed = device["seed_hex"][:2]
        assert f"`{seed}` × 32 | `{device['client_id']}`" in DOC, device["name"]
