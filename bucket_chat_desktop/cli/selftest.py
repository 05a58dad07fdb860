"""``test-crypto``, and ``test-storage`` and ``storage test`` (one storage self-check, the
app's): quick checks a user can run to trust the setup."""

from __future__ import annotations

import time
import uuid

from nacl.signing import SigningKey

from ..protocol.audit import RoomLedger, TrustState
from ..protocol.event import MESSAGE, Event, parse_event
from ..protocol.ids import room_prefix
from ..protocol.segment import encode_segment, path_for
from ..protocol.signing import SignatureChecker, build_event
from ..protocol.untrusted_text import terminal_safe
from ..storage.base import Storage
from ..sync.selfcheck import CheckResult, check_storage_use
from . import format as fmt
from .outcome import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK

CHECK_EXIT_STATUS = (
    "Exit status: 0 every step held; 1 the storage works with weaker guarantees: only the "
    "separate overwrite probe (the last write step) got through, or the bucket's "
    "notification queue does not answer (the app polls instead); 2 a step failed (its "
    "FAIL line says which and why), among them a write that got through over the test "
    "object: the storage cannot be used as it is."
)


def _check(label: str, ok: bool, detail: str = "") -> bool:
    shown = f" ({terminal_safe(detail)})" if detail else ""
    fmt.out(f"  {'ok  ' if ok else 'FAIL'} {label}{shown}")
    return ok


def crypto_selftest() -> int:
    fmt.out("Cryptography self-test (Ed25519 via libsodium, SHA-256):")
    key = SigningKey.generate()
    ts = time.time_ns() // 1_000_000
    ev = build_event(
        room_id="selftest",
        sender_id="selftest@localhost",
        event_type=MESSAGE,
        content={"body": "héllo ✓", "msgtype": "m.text"},
        timestamp_ms=ts,
        unique=str(uuid.uuid4()),
        prev_event_hash=None,
        signing_key=key,
    )
    checker = SignatureChecker()
    results = [_check("sign and verify an event", checker.check(ev)[0] is True)]
    forged = dict(ev.raw)
    forged["content"] = {"body": "h\u00e9llo ✗", "msgtype": "m.text"}
    parsed = parse_event(forged, "selftest")
    results.append(
        _check(
            "a modified event fails verification",
            isinstance(parsed, Event) and checker.check(parsed)[0] is False,
        )
    )
    other = SigningKey.generate()
    ev2 = build_event(
        room_id="selftest",
        sender_id="selftest@localhost",
        event_type=MESSAGE,
        content={"body": "second", "msgtype": "m.text"},
        timestamp_ms=ts + 1,
        unique=str(uuid.uuid4()),
        prev_event_hash=ev.hash,
        signing_key=key,
    )
    ledger = RoomLedger("selftest")
    ledger.add_segment(path_for([ev, ev2], "selftest-00000000"), encode_segment([ev, ev2]))
    result = ledger.audit()
    results.append(
        _check(
            "a two-event hash chain verifies",
            result.clean and all(a.state is TrustState.VERIFIED for a in result.timeline),
        )
    )
    ledger2 = RoomLedger("selftest")
    ledger2.add_segment(path_for([ev2], "selftest-00000000"), encode_segment([ev2]))
    results.append(_check("a missing predecessor is reported as a gap", not ledger2.audit().clean))
    results.append(
        _check("keys differ per device", bytes(other.verify_key) != bytes(key.verify_key))
    )
    fmt.out("All cryptography checks passed." if all(results) else "Cryptography self-test FAILED.")
    return 0 if all(results) else 1


async def storage_selftest(storage: Storage, room_id: str | None = None) -> int:
    """``storage test`` and ``test-storage``: the app's *Test connection* self-check
    (`sync.selfcheck`), step by step, and its verdict as the exit status (`check_status`).
    ``room_id``: also list that room."""
    fmt.out(f"Testing {terminal_safe(storage.describe())}:")
    if room_id is not None:
        room_prefix(room_id)
    result = await check_storage_use(storage, room_id=room_id)
    for step in result.steps:
        _check(step.label, step.ok, step.detail)
    if result.level == "ok":
        fmt.out("Storage works: create-only writes are enforced by the service.")
    elif result.level == "warning":
        fmt.out(f"WARNING: {terminal_safe(result.message)}")
    else:
        fmt.out(f"Storage test FAILED: {terminal_safe(result.message)}")
    return check_status(result)


def check_status(result: CheckResult) -> int:
    """The exit status of a storage self-check: ``EXIT_OK`` when every step held,
    ``EXIT_FINDINGS`` when the storage works with weaker guarantees (only the separate
    overwrite probe, ``probe_create_only``, got through, or the bucket's notification
    queue does not answer), ``EXIT_ERROR`` when a step failed (among them a write that
    got through over the test object: the storage cannot be used as it is)."""
    if result.level == "ok":
        return EXIT_OK
    return EXIT_FINDINGS if result.level == "warning" else EXIT_ERROR
