"""What a flood of device introductions costs a device's send (PROTOCOL.md section 7).

Run:  .venv/bin/python benchmarks/introduction_flood.py [--claims 20000]

Anyone with write access can make thousands of keys claim alice's name, each saying it
added her laptop. Every send of the laptop in that room looks for introductions of itself
(``offered_introductions`` over the audited timeline, twice per send before). Measured
on the shared 2-core machine, 20,000 claims: the audit 0.12 s (once per change of the
room, signatures already checked); ``offered_introductions`` 1.97 s per call while it
kept the offers in a list (quadratic), 0.018 s with an ordered dict.
"""

from __future__ import annotations

import argparse
import time
import uuid

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import DEVICE_ADD_FIELD, RoomLedger, offered_introductions
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "flood"
USER = "alice@example.com"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", type=int, default=20_000)
    args = parser.parse_args()
    laptop = b64encode(bytes(SigningKey(b"\x03" * 32).verify_key))
    events = [
        build_event(
            room_id=ROOM,
            sender_id=USER,
            event_type=MEMBER,
            content={"membership": "join", DEVICE_ADD_FIELD: laptop},
            timestamp_ms=1_757_851_245_000 + i,
            unique=str(uuid.uuid4()),
            prev_event_hash=None,
            signing_key=SigningKey(i.to_bytes(4, "big") * 8),
        )
        for i in range(args.claims)
    ]
    ledger = RoomLedger(ROOM)
    ledger.add_segment(path_for(events, "flood"), encode_segment(events))
    start = time.perf_counter()
    result = ledger.audit()
    audited = time.perf_counter() - start
    shown = [(a.event, a.state) for a in result.timeline]
    start = time.perf_counter()
    offered = offered_introductions(shown, USER, laptop)
    looked = time.perf_counter() - start
    print(f"{args.claims:,} claims: audit {audited:.2f} s, offered_introductions {looked:.3f} s")
    assert len(offered) == args.claims


if __name__ == "__main__":
    main()
