"""How long a bucket listing holds the loop that awaits it (the window's, in the app).

Real components only: moto's S3 server started here on 127.0.0.1 (stopped by PID) and
the app's own ``S3Storage``. A folder of ``--keys`` objects (3,000: three listing pages,
a busy room's day) is listed ``--rounds`` times while a probe on the caller's loop
sleeps 5 ms at a time and records how late each wake-up is: the longest lateness is the
longest stall a window would show.

Two ways are measured in the same run: the app's (each request handed over to fsspec's
I/O loop, ``FsspecStorage._there``) and the old one (the SDK's coroutines awaited on the
caller's loop, obtained here by pointing ``io_loop`` at the caller's loop).

    python benchmarks/loop_stall.py [--keys 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sync_bench import WORK, make_bucket, moto, s3_env

from bucket_chat_desktop.storage import cloud
from bucket_chat_desktop.storage.open import open_storage

TICK = 0.005


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    with moto() as endpoint:
        os.environ.update(s3_env(endpoint))
        spec = make_bucket(endpoint, "stall")
        handed, handed_took = asyncio.run(_listings(spec, args.keys, args.rounds, "handed"))
        real = cloud.io_loop
        cloud.io_loop = asyncio.get_running_loop  # type: ignore[assignment]
        try:
            inline, inline_took = asyncio.run(_listings(spec, args.keys, args.rounds, "inline"))
        finally:
            cloud.io_loop = real  # type: ignore[assignment]
    print(f"listing {args.keys:,} keys on moto, {args.rounds} rounds (cores: {os.cpu_count()})")
    for name, stalls, took in (
        ("on the I/O loop (the app)", handed, handed_took),
        ("on the caller's loop (before)", inline, inline_took),
    ):
        print(
            f"  {name:30} longest stall of the caller's loop: "
            f"median {statistics.median(stalls):6.1f} ms, max {max(stalls):6.1f} ms; "
            f"a listing takes {took * 1000:,.0f} ms"
        )


if __name__ == "__main__":
    main()
