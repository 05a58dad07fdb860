"""Exporting a big room: time, output size and memory of both formats.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/export_bench.py [--events 100000]
          [--reactions 10000] [--edits 1000] [--replies 2000]

Builds the room ``relations_bench.make_room`` makes (N signed events by 20 senders:
plain messages, then reactions, edits and replies), stores it in a local folder, reads it
the way ``bucket-chat export`` does (this device's index, a ledger that keeps no bodies,
pages of bodies from the index) and exports it as HTML and as JSONL. Prints, per format:
wall time, the output's size, and the process's peak RSS during the export (Linux: the
peak is reset before each export through /proc/self/clear_refs) next to its RSS before.
No attachments: blobs cost what copying their bytes costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from relations_bench import ROOM, make_room, room_arguments  # type: ignore[import-not-found]

from bucket_chat_desktop.export.runner import export_room
from bucket_chat_desktop.export.snapshot import snapshot_of
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig
from bucket_chat_desktop.sync.session import engine_session


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def run(args: argparse.Namespace, folder: Path) -> None:
    store = folder / "store"
    storage = LocalStorage(store)
    t0 = time.perf_counter()
    segments = make_room(args.events, args.reactions, args.edits, args.replies)
    for path, data in segments:
        await storage.put_if_absent(path, data)
    del segments
    gc.collect()
    print(f"room: {args.events:,} events written in {time.perf_counter() - t0:.1f} s")
    config = SyncConfig(keep_bodies=False)
    async with engine_session(
        storage, outbox=False, config=config, data_dir=folder / "data"
    ) as engine:
        t0 = time.perf_counter()
        await engine.open_room(ROOM, background=False, focus=False)
        view = await engine.room_view(ROOM)
        assert view is not None and view.result is not None
        print(
            f"read and audited: {len(view.result.timeline):,} rows in "
            f"{time.perf_counter() - t0:.1f} s (this device's index filled)"
        )
        snap = snapshot_of(view, storage.describe())
        result = view.result

        async def page(start: int, stop: int) -> Any:
            return await engine.timeline_page(ROOM, result, start, stop)

        for fmt in ("html", "jsonl"):
            out = folder / f"room.{fmt}"
            gc.collect()
            before = _status("VmRSS")
            reset = _reset_peak()
            t0 = time.perf_counter()
            c0 = time.process_time()
            summary = await export_room(snap, page, None, fmt=fmt, path=out)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            peak = _status("VmHWM") if reset else 0
            size = out.stat().st_size
            peak_text = (
                f"peak RSS {peak / 1e6:.0f} MB (+{(peak - before) / 1e6:.0f} MB over the "
                f"{before / 1e6:.0f} MB before)"
                if peak
                else f"RSS before {before / 1e6:.0f} MB (peak not measurable here)"
            )
            print(
                f"{fmt:5}: {summary.events:,} {'lines' if fmt == 'jsonl' else 'rows shown'} "
                f"in {wall:.1f} s (CPU {cpu:.1f} s), {size / 1e6:.1f} MB "
                f"({size / max(1, summary.events):.0f} B each), {peak_text}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    room_arguments(ap)
    args = ap.parse_args()
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {impl}, {sys.platform}")
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
