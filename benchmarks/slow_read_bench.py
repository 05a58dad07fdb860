"""A slow or hostile service sending one 1 MiB segment at a given pace, through
``StallProxy`` in front of a real emulator: how long a person waits for it
(``answer_within`` at the interactive deadline, as ``history`` and opening a room do), and,
read in the background (polling, a back-fill, an attachment's download), whether the status
line says "not answering" meanwhile (the watchdog's ``STALL_AFTER``).

    .venv/bin/python benchmarks/slow_read_bench.py [--kind s3|gs|az]

Prints, per pace and way of reading: the outcome (read whole / given up / the read's own
failure), the time, and the longest time the watchdog saw the request unanswered (8 s or
more: "not answering"). The storage has the defaults ``timeout=30&retries=3``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from pathlib import Path

from hung_network import start

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from bucket_chat_desktop.storage.base import StorageError  # noqa: E402
from bucket_chat_desktop.storage.open import open_location  # noqa: E402
from bucket_chat_desktop.storage.url import parse_storage_url  # noqa: E402
from bucket_chat_desktop.sync.watched import (  # noqa: E402
    STALL_AFTER,
    NoAnswerError,
    WatchedStorage,
    answer_within,
    interactive_deadline,
)

STALL = importlib.import_module("_stall_proxy")  # the tests' proxy (tests/integration)
SIZE = 1024 * 1024
PACES = [  # (what, bytes a step, seconds between steps)
    ("a link at 320 KiB/s", 32 * 1024, 0.1),
    ("a link at 80 KiB/s", 16 * 1024, 0.2),
    ("a service sending 16 KiB a second", 16 * 1024, 1.0),
    ("a service trickling a byte every 0.25 s", 1, 0.25),
]


async def one(
    url: str, secrets: dict[str, str], proxy: object, keep: int, every: float, person: bool
) -> str:
    store = WatchedStorage(open_location(parse_storage_url(url), secrets))
    path = "rooms/bench/logs/2026-01-05/slow.jsonl"
    longest = 0.0

    async def watch() -> None:
        nonlocal longest
        while True:
            await asyncio.sleep(0.1)
            oldest = store.oldest_unanswered()
            if oldest is not None:
                longest = max(longest, time.monotonic() - oldest[0])

    await store.open()
    watcher = asyncio.ensure_future(watch())
    proxy.stall(r"slow\.jsonl", STALL.PACED, keep=keep, every=every)  # type: ignore[attr-defined]
    began = time.monotonic()
    try:
        read = store.get(path, max_bytes=SIZE)
        if person:
            await answer_within(store, read, interactive_deadline())
        else:
            await read
        outcome = "read whole"
    except NoAnswerError:
        outcome = "given up (no answer within the deadline)"
    except StorageError as exc:
        outcome = f"the read failed: {str(exc)[:60]}"
    finally:
        took = time.monotonic() - began
        watcher.cancel()
        proxy.release()  # type: ignore[attr-defined]
        await store.close()
    shown = "not answering" if longest >= STALL_AFTER else "answering"
    return f"{outcome} after {took:.1f} s; watchdog: {shown} (longest silence {longest:.1f} s)"


async def bench(kind: str) -> None:
    process, url, _env, secrets = start(kind)
    try:
        direct = open_location(parse_storage_url(url), secrets)
        await direct.put_if_absent(
            "rooms/bench/logs/2026-01-05/slow.jsonl", bytes(range(256)) * (SIZE // 256)
        )
        await direct.close()
        port = int(process.endpoint.rsplit(":", 1)[1])
        proxy = STALL.StallProxy(port).start()
        try:
            proxied = url.replace(process.endpoint, proxy.endpoint)
            print(f"{kind}: one 1 MiB segment, interactive deadline {interactive_deadline():g} s")
            for person in (True, False):
                print("  a person waits:" if person else "  in the background:")
                for what, keep, every in PACES:
                    got = await one(proxied, secrets, proxy, keep, every, person)
                    print(f"    {what:42} {got}")
        finally:
            proxy.close()
    finally:
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("s3", "gs", "az"), default="s3")
    asyncio.run(bench(parser.parse_args().kind))


if __name__ == "__main__":
    main()
