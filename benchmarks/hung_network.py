"""Hung-network figures (issue 11), each printed with its target.

Run:  .venv/bin/python benchmarks/hung_network.py [--backends s3,gs,az] [--sends 5]

Real components only: moto (S3), fake-gcs-server (GCS) and azurite (Azure) started here on
127.0.0.1 (stopped by PID), each frozen with SIGSTOP — connections stay open, nothing
answers — and thawed with SIGCONT. The storage URL has the patient defaults (timeout 30 s,
3 retries), as a user's would. Every figure is measured in this run, on this machine:

queued    wall time of a whole ``bucket-chat send`` process (start-up included) while the
          storage is frozen: it must return "queued" (exit 3) within 2 s.
history   ``bucket-chat history`` / ``rooms`` while frozen: from the index, within 2 s.
watchdog  an engine sends while the storage is frozen: time from the send until the
          engine reports "not answering" (the app's status line): within 10 s.
after     after the thaw, one ``bucket-chat sync``: every message stored exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORK = Path(tempfile.mkdtemp(prefix="bucket-chat-hung-bench-"))
ROOM = "team"


def _emulators() -> ModuleType:
    path = ROOT / "tests" / "integration" / "_emulators.py"
    spec = importlib.util.spec_from_file_location("_bucket_chat_emulators", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EMU = _emulators()


def start(kind: str) -> tuple[Any, str, dict[str, str], dict[str, str]]:
    """(emulator, storage URL, environment for the CLI, secrets for a Storage)."""
    folder = WORK / kind
    folder.mkdir()
    maker = {"s3": EMU.moto_emulator, "gs": EMU.gcs_emulator, "az": EMU.azurite_emulator}[kind]
    proc = maker(folder)
    proc.start()
    proc.wait_ready()
    bucket = f"bench-{kind}-{os.getpid()}"
    env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    if kind == "s3":
        admin, _ = EMU.s3_setup(proc.endpoint)
        EMU.s3_create_bucket(proc.endpoint, admin, bucket)
        url = f"s3://{bucket}/team?endpoint_url={proc.endpoint}&region={EMU.S3_REGION}"
        env = {
            "AWS_ACCESS_KEY_ID": admin.access_key_id,
            "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
        }
        secrets = {
            "access_key_id": admin.access_key_id,
            "secret_access_key": admin.secret_access_key,
        }
    elif kind == "gs":
        EMU.gcs_create_bucket(proc.endpoint, bucket)
        url = f"gs://{bucket}/team?endpoint_url={proc.endpoint}"
    else:
        EMU.az_create_container(proc.endpoint, bucket)
        url = (
            f"az://{bucket}/team?account_name={EMU.AZ_ACCOUNT}"
            f"&endpoint_url={proc.endpoint}/{EMU.AZ_ACCOUNT}"
        )
        env = {"AZURE_STORAGE_ACCOUNT_KEY": EMU.AZ_KEY}
        secrets = {"account_key": EMU.AZ_KEY}
    return proc, url + "&timeout=30&retries=3", env, secrets


def cli(home: Path, extra: dict[str, str], url: str, *args: str) -> tuple[int, float, str]:
    env = dict(os.environ)
    env.update(extra)
    env.update(
        BUCKET_CHAT_HOME=str(home),
        BUCKET_CHAT_KEY_STORE="file",
        BUCKET_CHAT_PASSPHRASE="bench",
        PYTHONPATH=str(ROOT),
    )
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bucket_chat_desktop.cli.main", "-s", url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, time.perf_counter() - t0, done.stderr.strip()


async def watchdog_figure(url: str, secrets: dict[str, str], process: Any) -> float:
    """Seconds from a send on a frozen storage until the engine says "not answering"."""
    from nacl.signing import SigningKey

    from bucket_chat_desktop.storage.open import open_location
    from bucket_chat_desktop.storage.url import parse_storage_url
    from bucket_chat_desktop.sync.engine import SyncEngine
    from bucket_chat_desktop.sync.events import EngineEvent, StorageStatus
    from bucket_chat_desktop.sync.outbox import Outbox

    seen: list[tuple[float, EngineEvent]] = []
    store = open_location(parse_storage_url(url), secrets)
    box = Outbox(WORK / f"watchdog-{time.time_ns()}.sqlite3")
    engine = SyncEngine(store, outbox=box, listener=lambda e: seen.append((time.monotonic(), e)))
    key = SigningKey(bytes([5]) * 32)
    try:
        await engine.start()
        await engine.send(ROOM, "wd@example.com", key, [("m.room.message", {"body": "warm"})])
        assert await engine.flush(timeout=30)
        process.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            await engine.send(ROOM, "wd@example.com", key, [("m.room.message", {"body": "x"})])
            while True:
                hits = [
                    t
                    for t, e in seen
                    if isinstance(e, StorageStatus) and e.message.startswith("not answering")
                ]
                if hits:
                    return hits[0] - t0
                if time.monotonic() - t0 > 60:
                    return float("inf")
                await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGCONT)
            await engine.flush(timeout=60)
    finally:
        await engine.close()
        box.close()
        await store.close()


def stored(url: str, secrets: dict[str, str]) -> Counter[str]:
    from bucket_chat_desktop.protocol.segment import decode_segment
    from bucket_chat_desktop.storage.open import open_location
    from bucket_chat_desktop.storage.url import parse_storage_url

    async def go() -> Counter[str]:
        store = open_location(parse_storage_url(url), secrets)
        ids: Counter[str] = Counter()
        try:
            for item in await store.list_objects(f"rooms/{ROOM}/logs/"):
                decoded = decode_segment(item.path, await store.get(item.path), ROOM)
                ids.update(loc.event.event_id for loc in decoded.events)
        finally:
            await store.close()
        return ids

    return asyncio.run(go())


def bench(kind: str, sends: int) -> None:
    proc, url, env, secrets = start(kind)
    home = WORK / f"{kind}-alice"
    try:
        user = ("--user-id", "alice@example.com")
        for args in (
            ("setup-keys", *user),
            ("create-room", "--room-id", ROOM, "--name", "Team", *user),
            ("send", "--room-id", ROOM, *user, "before"),
            ("history", "--room-id", ROOM),
        ):
            code, _, err = cli(home, env, url, *args)
            assert code == 0, (args, err)
        queued: list[float] = []
        codes: list[int] = []
        reads: dict[str, float] = {}
        assert proc.process is not None
        proc.process.send_signal(signal.SIGSTOP)
        try:
            for i in range(sends):
                code, took, _ = cli(home, env, url, "send", "--room-id", ROOM, *user, f"m{i}")
                codes.append(code)
                queued.append(took)
            for what in ("history", "rooms"):
                args = ("history", "--room-id", ROOM) if what == "history" else ("rooms",)
                code, took, err = cli(home, env, url, *args)
                assert code == 0 and "did not answer" in err, (what, code, err)
                reads[what] = took
        finally:
            proc.process.send_signal(signal.SIGCONT)
        code, took_sync, err = cli(home, env, url, "sync", "--room-id", ROOM)
        ids = stored(url, secrets)
        once = bool(ids) and max(ids.values()) == 1
        print(
            f"[{kind}] time-to-queued (whole send process, frozen storage, n={sends}): "
            f"median {statistics.median(queued):.2f} s, max {max(queued):.2f} s "
            f"(target < 2 s); exit codes {sorted(set(codes))} (target [3])"
        )
        print(
            f"[{kind}] history from the index {reads['history']:.2f} s, rooms "
            f"{reads['rooms']:.2f} s (target < 2 s each, marked stale)"
        )
        print(
            f"[{kind}] after the thaw: sync exit {code} in {took_sync:.2f} s; "
            f"{len(ids)} events stored, each exactly once: {once}"
        )
        waited = asyncio.run(watchdog_figure(url, secrets, proc.process))
        print(
            f"[{kind}] time-to-'not answering' (engine/app status): {waited:.2f} s (target < 10 s)"
        )
    finally:
        if proc.process is not None:
            proc.process.send_signal(signal.SIGCONT)
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="s3,gs,az")
    parser.add_argument("--sends", type=int, default=5)
    args = parser.parse_args()
    for kind in args.backends.split(","):
        bench(kind.strip(), args.sends)


if __name__ == "__main__":
    main()
