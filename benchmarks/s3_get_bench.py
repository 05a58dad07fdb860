"""CPU one S3 read costs the reading process: ``S3Storage.get`` of a cold-sync segment.

Run:  .venv/bin/python benchmarks/s3_get_bench.py [--gets 500] [--rounds 3] [--trees A,B]

moto's S3 server on 127.0.0.1 (stopped by PID) holds one segment of the room
``sync_bench.py cold`` reads (100 events, ~50 KB); a child process per round reads it
``--gets`` times, 16 at a time, and prints its CPU per read with the load average. CPU
per read is what a shared machine distorts least. ``--trees``: source trees to alternate
(a branch point and a branch), the default this one. moto's server closes every
connection after its answer (S3 does not): each read here also pays a TCP connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "rooms/big/segment.jsonl"


def child(tree: str, spec: str, gets: int) -> None:
    sys.path.insert(0, tree)
    from bucket_chat_desktop.storage import open_storage

    async def run() -> float:
        storage = open_storage(spec)
        for _ in range(20):  # connections, imports, the client's set-up
            await storage.get(KEY)
        limit = asyncio.Semaphore(16)

        async def one() -> None:
            async with limit:
                await storage.get(KEY)

        c0 = time.process_time()
        await asyncio.gather(*(one() for _ in range(gets)))
        used = time.process_time() - c0
        await storage.close()
        return used / gets

    per_get = asyncio.run(run())
    print(
        f"{tree}: {per_get * 1e6:,.0f} us of CPU per read (load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gets", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trees", default=str(ROOT))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sync_bench

    sync_bench.WORK.mkdir(parents=True, exist_ok=True)
    segment = next(sync_bench.cached_room(100_000).rglob("*.jsonl")).read_bytes()
    with sync_bench.moto() as endpoint:
        os.environ.update(sync_bench.s3_env(endpoint))
        spec = sync_bench.make_bucket(endpoint, f"get-{uuid.uuid4().hex[:8]}")

        async def upload() -> None:
            from bucket_chat_desktop.storage import open_storage

            storage = open_storage(spec)
            await storage.put_if_absent(KEY, segment)
            await storage.close()

        asyncio.run(upload())
        print(f"one segment of {len(segment):,} bytes, {args.gets} reads a round")
        for _ in range(args.rounds):
            for tree in args.trees.split(","):
                subprocess.run(
                    [sys.executable, __file__, "--child", tree, spec, str(args.gets)],
                    env=os.environ,
                    check=True,
                )


if __name__ == "__main__":
    main()
