"""Where the engine's process spends its CPU during a cold sync (Linux).

Run:  .venv/bin/python benchmarks/cold_split.py [--events 100000] [--storage PATH]

Reads the room `sync_bench.py cold` builds (or the folder given) once, cold, through a
real engine with its index, and prints CPU per event of each thread of the engine's
process, sampled from /proc every 50 ms (no profiler: its overhead distorts a per-event
split), of the worker processes together, and of each full audit and timeline rewrite
(`RoomLedger.audit`, `Index.save_audit`, timed in place). docs/design/hot-paths.md reads
these figures. Threads: MainThread is the loop; bc-ledger the state thread; Thread-N the
process pool's manager (it collects the workers' results); QueueFeederThread sends them
work; asyncio_N read files for the local storage; bc-verify verifies small reads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ThreadSampler:
    """The CPU seconds each thread of this process used, by thread name, sampled until
    stopped (a thread that ends keeps its last sample)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            names = {str(t.native_id): t.name for t in threading.enumerate()}
            for tid in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{tid}/stat") as fh:
                        text = fh.read()
                except OSError:
                    continue
                fields = text[text.rindex(")") + 2 :].split()
                cpu = (int(fields[11]) + int(fields[12])) / TICK
                name = names.get(tid) or self.seen.get(tid, ("?", 0.0))[0]
                self.seen[tid] = (name, cpu)
            self._stop.wait(0.05)

    def by_name(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, cpu in self.seen.values():
            key = name.split("_")[0] if name.startswith(("asyncio_", "bc-")) else name
            out[key] = out.get(key, 0.0) + cpu
        return out


def timed_jobs() -> list[tuple[str, int, float]]:
    """Time every full audit and timeline rewrite in place (thread CPU)."""
    from bucket_chat_desktop.index import db
    from bucket_chat_desktop.protocol import audit

    jobs: list[tuple[str, int, float]] = []
    audit_of = audit.RoomLedger.audit
    save_of = db.Index.save_audit

    def timed_audit(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return audit_of(self, *args, **kwargs)
        finally:
            jobs.append(("audit", self.event_count, time.thread_time() - t0))

    def timed_save(self: Any, room_id: str, result: Any, **kwargs: Any) -> None:
        t0 = time.thread_time()
        try:
            save_of(self, room_id, result, **kwargs)
        finally:
            jobs.append(("timeline rewrite", len(result.timeline), time.thread_time() - t0))

    audit.RoomLedger.audit = timed_audit  # type: ignore[method-assign]
    db.Index.save_audit = timed_save  # type: ignore[method-assign]
    return jobs


async def cold(spec: str) -> tuple[float, int]:
    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.session import engine_session

    home = Path(tempfile.mkdtemp(prefix="cold-split-"))
    storage = open_storage(spec)
    try:
        async with engine_session(storage, outbox=False, data_dir=home) as engine:
            t0 = time.perf_counter()
            room = await engine.open_room("big", background=False)
            took = time.perf_counter() - t0
    finally:
        await storage.close()
        shutil.rmtree(home, ignore_errors=True)
    assert room.result is not None and room.result.clean
    return took, len(room.result.timeline)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--storage", help="a folder holding room 'big' (default: built)")
    args = parser.parse_args()
    if args.storage:
        spec = args.storage
    else:
        from sync_bench import cached_room

        spec = str(cached_room(args.events))
    jobs = timed_jobs()
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with ThreadSampler() as sampler:
        took, n = asyncio.run(cold(spec))
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)

    def us(seconds: float) -> str:
        return f"{seconds / n * 1e6:5.1f} us"

    engine = me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime
    workers = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
    print(
        f"cold sync: {n:,} events in {took:.1f} s = {n / took:,.0f} events/s; CPU per event: "
        f"{us(engine)} in the engine's process, {us(workers)} in its worker processes "
        f"(load average {os.getloadavg()[0]:.2f})"
    )
    for name, cpu in sorted(sampler.by_name().items(), key=lambda kv: -kv[1]):
        if name != "sampler":
            print(f"  {name:20s} {us(cpu)}")
    for what, events, cpu in jobs:
        print(f"  {what} of {events:,} events: {cpu * 1e3:.0f} ms = {us(cpu)} per event read")


if __name__ == "__main__":
    main()
