"""One full audit of a slim ledger (the app's) against a whole one (the command line's).

Run:  PYTHONPATH=<tree> .venv/bin/python benchmarks/audit_bench.py [--events 100000]
      [--store /tmp/bucket-chat-gui-bench-100000/store] [--runs 5]

Reads the first N events of the big room of ``gui_bench.py``'s cached store (prepare it
with ``gui_bench.py --prepare-only``) into a slim ledger (``keep_bodies=False``) and a
whole one, then times full audits of each, alternating (slim, whole, slim, whole...), in
this process's CPU time, and prints µs an event for each, their ratio per pair (both
see the same load: the figure to compare across trees on a shared machine), and the
peak of one slim audit's allocations (tracemalloc, bytes an event, measured apart: it
slows everything down). A digest of each ledger's verdicts (rows, invalid rows,
findings) is printed and must be the same for both, and the same before and after a
change of the audit.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import time
import tracemalloc
from pathlib import Path

from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, prepare_segment

CLOCK = time.process_time


def _segments(store: Path, events: int) -> list[tuple[str, bytes]]:
    room = store / "rooms" / "big"
    out: list[tuple[str, bytes]] = []
    n = 0
    for path in sorted((room / "logs").rglob("*.jsonl")):
        data = path.read_bytes()
        out.append((str(path.relative_to(store)), data))
        n += data.count(b"\n")
        if n >= events:
            break
    return out


def _digest(result: AuditResult) -> str:
    h = hashlib.sha256()
    for row in result.timeline:
        h.update(repr((row.event.event_id, row.state, row.reason, row.path, row.line)).encode())
    for row in result.invalid:
        h.update(repr((row.event.event_id, row.reason, row.path, row.line)).encode())
    for f in result.findings:
        h.update(repr(f).encode())
    return h.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--store", type=Path, default=Path("/tmp/bucket-chat-gui-bench-100000/store")
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    segments = _segments(args.store, args.events)
    slim = RoomLedger("big", keep_bodies=False)
    whole = RoomLedger("big")
    for path, data in segments:
        prepared = prepare_segment(path, data, "big", slim.checker)
        slim.add_prepared(prepared)
        whole.add_prepared(prepared)
    n = slim.event_count
    print(f"{n:,} events in {len(segments):,} segments")
    assert _digest(slim.audit()) == _digest(whole.audit())  # warm, and the same verdicts
    slim_us: list[float] = []
    whole_us: list[float] = []
    for _ in range(args.runs):
        for ledger, out in ((slim, slim_us), (whole, whole_us)):
            gc.collect()
            t = CLOCK()
            ledger.audit()
            out.append((CLOCK() - t) / n * 1e6)
    ratios = [s / w for s, w in zip(slim_us, whole_us, strict=True)]
    print(
        "slim audit: median {:.2f} µs an event (runs: {})".format(
            statistics.median(slim_us), ", ".join(f"{x:.2f}" for x in slim_us)
        )
    )
    print(
        "whole audit: median {:.2f} µs an event (runs: {})".format(
            statistics.median(whole_us), ", ".join(f"{x:.2f}" for x in whole_us)
        )
    )
    print(
        "slim / whole, per pair: median {:.2f} ({})".format(
            statistics.median(ratios), ", ".join(f"{x:.2f}" for x in ratios)
        )
    )
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = slim.audit()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"slim audit, allocations (tracemalloc): peak {(peak - base) / 2**20:.1f} MiB "
        f"({(peak - base) / n:.0f} bytes an event), held after {(after - base) / 2**20:.1f} MiB"
    )
    print(f"verdict digest: {_digest(result)}")


if __name__ == "__main__":
    main()
