"""How long a bucket listing holds the loop that awaits it (the window's, in the app).

Real components only: moto's S3 server started here on 127.0.0.1 (stopped by PID) and
the app's own ``S3Storage``. A folder of ``--keys`` objects (3,000: three listing pages,
a busy room's day) is listed ``--rounds`` times while a probe on the caller's loop
sleeps 5 ms at a time and records how late each wake-up is: the longest lateness is the
longest stall a window would show.

The caller's loop is a qasync loop over Qt, as in the app, and the GIL switch interval
is the app's. Two ways are measured in the same run:

- the app's: each request handed over to fsspec's I/O loop (``FsspecStorage._there``),
  and the cyclic collector run on the Qt thread by ``GuiThreadCollector`` (a full
  collection at most every 10 s);
- before: the SDK's coroutines awaited on the caller's loop (``io_loop`` pointed at it)
  and CPython's automatic collector, which stops every thread for a full collection of
  the heap (botocore's models make it ~50 ms here) whenever one is due.

    python benchmarks/loop_stall.py [--keys 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sync_bench import WORK, make_bucket, moto, s3_env

from bucket_chat_desktop.app import prefer_the_gui_thread
from bucket_chat_desktop.storage import cloud
from bucket_chat_desktop.storage.open import open_storage

TICK = 0.005
T = TypeVar("T")


async def _listings(spec: str, keys: int, rounds: int, folder: str) -> tuple[list[float], float]:
    """Each listing's longest stall of the caller's loop (ms), and the median listing (s)."""
    store = open_storage(spec)
    try:
        await asyncio.gather(
            *(store.put_if_absent(f"{folder}/seg-{i:05d}.jsonl", b"x") for i in range(keys))
        )
        loop = asyncio.get_running_loop()
        stalls: list[float] = []
        took: list[float] = []
        for _ in range(rounds):
            listing = asyncio.ensure_future(store.list_objects(folder))
            began = time.perf_counter()
            worst = 0.0
            while not listing.done():
                start = loop.time()
                await asyncio.sleep(TICK)
                worst = max(worst, loop.time() - start - TICK)
            took.append(time.perf_counter() - began)
            assert len(listing.result()) == keys, len(listing.result())
            stalls.append(worst * 1000)
        return stalls, statistics.median(took)
    finally:
        await store.close()


def _on_qt(app: Any, work: Coroutine[Any, Any, T]) -> T:
    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(work)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication

    from bucket_chat_desktop.gui.collector import GuiThreadCollector

    prefer_the_gui_thread()  # as the app does: the waiting loop gets the GIL back in 1 ms
    app = QCoreApplication(sys.argv[:1])
    WORK.mkdir(parents=True, exist_ok=True)
    with moto() as endpoint:
        os.environ.update(s3_env(endpoint))
        spec = make_bucket(endpoint, "stall")
        collector = GuiThreadCollector(app)
        collector.start()
        handed, handed_took = _on_qt(app, _listings(spec, args.keys, args.rounds, "handed"))
        collector.stop()
        real = cloud.io_loop
        cloud.io_loop = asyncio.get_running_loop  # type: ignore[assignment]
        try:
            inline, inline_took = _on_qt(app, _listings(spec, args.keys, args.rounds, "inline"))
        finally:
            cloud.io_loop = real  # type: ignore[assignment]
    print(f"listing {args.keys:,} keys on moto, {args.rounds} rounds (cores: {os.cpu_count()})")
    for name, stalls, took in (
        ("the app's (I/O loop)", handed, handed_took),
        ("before (caller's loop)", inline, inline_took),
    ):
        print(
            f"  {name:24} longest stall of the caller's loop: "
            f"median {statistics.median(stalls):6.1f} ms, max {max(stalls):6.1f} ms; "
            f"a listing takes {took * 1000:,.0f} ms"
        )


if __name__ == "__main__":
    main()
