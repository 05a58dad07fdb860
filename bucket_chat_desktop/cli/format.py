"""How the command line shows events, findings and audits to a person."""

from __future__ import annotations

from typing import Any

from .. import timestamps
from ..protocol.audit import Assessed, AuditResult, TrustState
from ..protocol.event import MEMBER, MESSAGE
from ..protocol.findings import Finding

BADGES = {
    TrustState.VERIFIED: "[verified]",
    TrustState.UNVERIFIED: "[UNVERIFIED]",
    TrustState.KEY_CHANGED: "[KEY CHANGED]",
    TrustState.INVALID: "[INVALID]",
}


def local_time(timestamp_ms: int) -> str:
    """Never raises: a time past the year 9999 (the protocol allows up to 2^53-1 ms) is
    shown as a label, not a crash of ``history`` or ``sync --follow``."""
    return timestamps.full(timestamp_ms)


def describe_event(item: Assessed) -> str:
    ev = item.event
    if ev.type == MESSAGE:
        text = ev.body or ""
    elif ev.type == MEMBER:
        membership = ev.content.get("membership")
        name = ev.content.get("displayname")
        who = f" as {name!r}" if isinstance(name, str) and name else ""
        text = f"* {membership}{who}"
        if "add_device_key" in ev.content:
            text += f" (introduces device key {str(ev.content['add_device_key'])[:12]}…)"
    else:
        text = f"* {ev.type}"
    return _printable(text)


def _printable(text: str) -> str:
    """Neutralise terminal control characters in text read from storage."""
    return "".join(
        c if c.isprintable() or c == "\n" else f"\\x{ord(c):02x}" if ord(c) < 256 else "?"
        for c in text
    ).replace("\n", "\n" + " " * 4)


def event_line(item: Assessed) -> str:
    ev = item.event
    return (
        f"{local_time(ev.timestamp_ms)}  {_printable(ev.sender_id)}  "
        f"{BADGES[item.state]}  {describe_event(item)}"
    )


def finding_line(f: Finding) -> str:
    head = f"  {f.severity.value.upper():6} {f.kind.value:22} {_printable(f.where())}"
    return f"{head}\n         {_printable(f.message)}"


def event_json(item: Assessed) -> dict[str, Any]:
    ev = item.event
    return {
        "event_id": ev.event_id,
        "timestamp_ms": ev.timestamp_ms,
        "sender_id": ev.sender_id,
        "sender_key": ev.sender_key,
        "type": ev.type,
        "content": dict(ev.content),
        "trust": item.state.value,
        "reason": item.reason,
        "path": item.path,
        "line": item.line,
    }


def counts_text(result: AuditResult) -> list[str]:
    return [f"  {state.value:12} {n:>8,}" for state, n in result.counts.items()]
