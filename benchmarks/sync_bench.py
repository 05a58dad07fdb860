"""Sync-engine figures (the cloud-sync issue), each printed with its target.

Run:  .venv/bin/python benchmarks/sync_bench.py [cold|first|latency|requests|writers|all]
          [--events 100000] [--backends local,s3]

Real components only: a local folder, and moto's S3 server started here on 127.0.0.1 (and
stopped by PID). Every figure is measured in this run, on this machine:

cold      Cold sync of an N-event room in 1,000 segments (empty index, everything fetched,
          verified in the engine's worker processes and indexed), on each backend: events/s
          against the raw PyNaCl verify rate of all cores (one process per core, messages
          of about the events' size) measured just before and just after, with the load
          average; and CPU per event (engine process, worker processes) against one raw
          verification, which a busy machine distorts much less.
first     First look from S3 with an empty index: time until the newest 50 events are
          verified and shown. Then a warm open from the index (new process): time until
          the newest rows are available; resident memory after the full load.
latency   Send-to-receive between two engines in two processes: local folder (watchdog)
          and S3 while active (polling). p50 / p95.
requests  Requests an idle client makes per hour on S3 with 1 room and with 50 rooms, and
          what an active conversation costs (one message every 10 s). Time is compressed
          60x (all engine periods divided by 60: one real minute is a simulated hour; idle
          runs 5 simulated hours by default so the 4-hourly background listings of every
          room are included): the poller's arithmetic is the same, only faster.
writers   Ten writer processes x 200 messages into one room concurrently: every message
          delivered once, every chain intact; wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, Level, ObjectInfo, Storage  # noqa: E402

WORK = Path(tempfile.gettempdir()) / "bucket-chat-sync-bench"
REGION = "eu-west-1"


# -- infrastructure ------------------------------------------------------------------------


@contextmanager
def moto() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1; yields its endpoint; stopped by PID."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    log = open(WORK / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    MOTO_PIDS.append(proc.pid)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        MOTO_PIDS.remove(proc.pid)


MOTO_PIDS: list[int] = []  # the emulator running now (its CPU is shown beside ours)


def _proc_cpu(pid: int) -> float:
    """CPU seconds a running process has used so far (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "BENCH_S3_ENDPOINT": endpoint,
    }


def make_bucket(endpoint: str, name: str) -> str:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    ).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return f"s3://{name}/chat?endpoint_url={endpoint}&region={REGION}"


class CountingStorage(Storage):
    """Counts the requests a store makes: a listing or a download is one request (per
    1,000 names for a listing), a create-only write one (plus one read on a collision)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url
        self.counts: dict[str, int] = {"list": 0, "get": 0, "put": 0}

    def total(self) -> int:
        return sum(self.counts.values())

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        self.counts["put"] += 1
        return await self.inner.put_if_absent(path, data)

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        self.counts["get"] += 1
        return await self.inner.get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        items = await self.inner.list_objects(prefix)
        self.counts["list"] += max(1, (len(items) + 999) // 1000)
        return items

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        items = await self.inner.list_after(prefix, after)
        self.counts["list"] += max(1, (len(items) + 999) // 1000)
        return items

    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        items, more = await self.inner.list_first(prefix, after, most)
        self.counts["list"] += max(1, (len(items) + 999) // 1000)
        return items, more

    async def list_dirs(self, prefix: str) -> list[str]:
        self.counts["list"] += 1
        return await self.inner.list_dirs(prefix)

    async def list_level(self, prefix: str) -> Level:
        level = await self.inner.list_level(prefix)
        names = len(level.folders) + len(level.objects) + level.more
        self.counts["list"] += max(1, (names + 999) // 1000)
        return level

    async def list_level_first(self, prefix: str, most: int) -> Level:
        level = await self.inner.list_level_first(prefix, most)
        names = len(level.folders) + len(level.objects) + level.more
        self.counts["list"] += max(1, (names + 999) // 1000)
        return level

    async def exists(self, path: str) -> bool:
        self.counts["get"] += 1
        return await self.inner.exists(path)

    async def close(self) -> None:
        await self.inner.close()


# -- the room ------------------------------------------------------------------------------


def build_room(folder: Path, events: int, room: str = "big") -> None:
    """N events by 10 senders in 1,000 segments, written into ``folder``."""
    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.ids import client_id_for
    from bucket_chat_desktop.protocol.metadata import build_metadata
    from bucket_chat_desktop.protocol.segment import encode_segment, path_for
    from bucket_chat_desktop.protocol.signing import build_event

    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(10)]
    per = max(1, events // 1000)
    (folder / "rooms" / room).mkdir(parents=True, exist_ok=True)
    (folder / "rooms" / room / "metadata.json").write_bytes(
        build_metadata(
            room_id=room,
            name="Bench",
            created_at="2025-01-01T00:00:00.000Z",
            creator_id="u0@x",
            signing_key=keys[0],
        )
    )
    heads: list[str | None] = [None] * 10
    buf: list[list[Any]] = [[] for _ in range(10)]
    t = 1_760_000_000_000
    for i in range(events):
        s = i % 10
        t += 3_600_000 if i % 5000 == 0 else 37  # spans many date folders
        first = heads[s] is None
        ev = build_event(
            room_id=room,
            sender_id=f"u{s}@x",
            event_type="m.room.member" if first else "m.room.message",
            content={"membership": "join"}
            if first
            else {"body": f"message {i} with some ordinary words in it", "msgtype": "m.text"},
            timestamp_ms=t,
            unique=str(uuid.UUID(int=i, version=4)),
            prev_event_hash=heads[s],
            signing_key=keys[s],
        )
        heads[s] = ev.hash
        buf[s].append(ev)
        if len(buf[s]) == per:
            path = folder / path_for(buf[s], client_id_for(f"u{s}@x", bytes(keys[s].verify_key)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_segment(buf[s]))
            buf[s] = []


def cached_room(events: int) -> Path:
    folder = WORK / f"room-{events}"
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        build_room(folder, events)
        (folder / "done").touch()
        print(f"(built the {events:,}-event room in {time.perf_counter() - t0:.0f} s)")
    return folder


async def upload_room(folder: Path, storage: Storage) -> None:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "done"]
    sem = asyncio.Semaphore(32)

    async def one(p: Path) -> None:
        async with sem:
            await storage.put_if_absent(p.relative_to(folder).as_posix(), p.read_bytes())

    await asyncio.gather(*(one(p) for p in files))


async def _upload(folder: Path, spec: str) -> None:
    from bucket_chat_desktop.storage import open_storage

    storage = open_storage(spec)
    await upload_room(folder, storage)
    await storage.close()


def _raw_verify(n: int) -> tuple[float, float]:
    """(verifications per second of wall time, CPU seconds per verification)."""
    from nacl.signing import SigningKey

    key = SigningKey(b"\x01" * 32)
    signed = [key.sign(f"message {i} ".encode() * 12) for i in range(500)]
    vk = key.verify_key
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        vk.verify(signed[i % 500])
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n


def raw_verify_cpu(n: int = 20_000) -> tuple[float, float]:
    """The raw PyNaCl verify rate of all cores (one process per core), and the CPU time
    one verification took (the mean over the cores)."""
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_raw_verify, [500] * cores))  # start the workers
        got = list(pool.map(_raw_verify, [n] * cores))
    return sum(rate for rate, _ in got), sum(cpu for _, cpu in got) / cores


# -- 1. cold sync --------------------------------------------------------------------------


async def _cold(spec: str) -> tuple[float, int, float]:
    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.session import engine_session

    home = Path(tempfile.mkdtemp(dir=WORK))
    storage = open_storage(spec)
    async with engine_session(storage, outbox=False, data_dir=home) as engine:
        t0 = time.perf_counter()
        room = await engine.open_room("big", background=False)
        took = time.perf_counter() - t0
    await storage.close()
    assert room.result is not None and room.result.clean
    shutil.rmtree(home, ignore_errors=True)
    return took, len(room.result.timeline), _rss_mb()


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its children that ended (the engine's worker
    processes, once it closed)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def bench_cold(events: int, backends: list[str]) -> None:
    """Each backend's cold sync between two raw measurements (the machine is shared: the
    ratio uses their mean, and both are printed with the load average). CPU per event,
    the engine's process and its worker processes apart, is the load-proof view: the
    raw rate of all cores is the cost of one verification on one core times ``cores``."""
    folder = cached_room(events)
    cores = os.cpu_count() or 1
    for backend in backends:
        load = os.getloadavg()[0]
        before, cpu_before = raw_verify_cpu()
        emulator = 0.0
        if backend == "local":
            cpu0 = _cpu()
            took, n, _ = asyncio.run(_cold(str(folder)))
            cpu1 = _cpu()
        else:
            with moto() as endpoint:
                os.environ.update(s3_env(endpoint))
                spec = make_bucket(endpoint, f"cold-{uuid.uuid4().hex[:8]}")
                asyncio.run(_upload(folder, spec))
                cpu0, moto0 = _cpu(), _proc_cpu(MOTO_PIDS[-1])
                took, n, _ = asyncio.run(_cold(spec))
                cpu1, emulator = _cpu(), _proc_cpu(MOTO_PIDS[-1]) - moto0
        after, cpu_after = raw_verify_cpu()
        raw = (before + after) / 2
        one = (cpu_before + cpu_after) / 2 * 1e6
        rate = n / took
        main_us = (cpu1[0] - cpu0[0]) / n * 1e6
        workers_us = (cpu1[1] - cpu0[1]) / n * 1e6
        print(
            f"cold sync ({backend}): {n:,} events in {took:.1f} s = {rate:,.0f} events/s = "
            f"{rate / raw * 100:.0f} % of raw PyNaCl verify x {cores} cores "
            f"({raw:,.0f}/s: {before:,.0f} before, {after:,.0f} after; target >= 70 %); "
            f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
        )
        emulator_us = emulator / n * 1e6
        print(
            f"  CPU per event: {main_us:.0f} us in the engine's process + {workers_us:.0f} us "
            f"in its worker processes = {main_us + workers_us:.0f} us"
            + (f" (+ {emulator_us:.0f} us in the S3 emulator)" if emulator else "")
            + f"; one raw verification takes {one:.0f} us of CPU "
            f"= {one / (main_us + workers_us) * 100:.0f} % of the engine's CPU per event; "
            f"{one / (main_us + workers_us + emulator_us) * 100:.0f} % with everything this "
            "machine did for the sync: the most the wall-clock ratio can reach here"
        )
        if max(load, os.getloadavg()[0]) > 1.0:
            print(
                "  (the machine is busy: a run of several processes gets a larger share of "
                "it than the raw measurement's, so only the CPU ratio compares across runs)"
            )


# -- 2. first look and warm open -------------------------------------------------------------


def _first_look_child(spec: str, home: str) -> None:
    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.events import RoomLoaded, WarmTimeline
    from bucket_chat_desktop.sync.session import engine_session

    async def run() -> dict[str, float]:
        out: dict[str, float] = {}
        t0 = time.perf_counter()

        def listener(event: Any) -> None:
            if isinstance(event, WarmTimeline) and "warm" not in out and len(event.rows) >= 50:
                out["warm"] = time.perf_counter() - t0
            if (
                isinstance(event, RoomLoaded)
                and "first50" not in out
                and len(event.result.timeline) >= 50
            ):
                out["first50"] = time.perf_counter() - t0

        storage = open_storage(spec)
        async with engine_session(
            storage, outbox=False, data_dir=Path(home), listener=listener
        ) as engine:
            await engine.open_room("big", background=False)
            out["complete"] = time.perf_counter() - t0
        out["rss_mb"] = _rss_mb()
        await storage.close()
        return out

    print(json.dumps(asyncio.run(run())))


def _child(args: list[str], env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bench_first(events: int) -> None:
    folder = cached_room(events)
    with moto() as endpoint:
        env = s3_env(endpoint)
        os.environ.update(env)
        spec = make_bucket(endpoint, f"first-{uuid.uuid4().hex[:8]}")
        asyncio.run(_upload(folder, spec))
        home = tempfile.mkdtemp(dir=WORK)
        cold = _child(["--child-first", spec, home], env)
        warm = _child(["--child-first", spec, home], env)
    print(
        f"first look from S3, empty index: newest 50 verified after {cold['first50'] * 1000:.0f} ms"
        f" (target <= 2000 ms); whole {events:,}-event history after {cold['complete']:.1f} s"
    )
    print(
        f"warm open from the index: newest rows after {warm['warm'] * 1000:.0f} ms "
        f"(target <= 200 ms); RSS after full load {warm['rss_mb']:.0f} MB "
        f"(cold process: {cold['rss_mb']:.0f} MB)"
    )


# -- 3. latency ----------------------------------------------------------------------------


def _latency_child(role: str, spec: str, count: str, period: str, home: str) -> None:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.engine import SyncConfig
    from bucket_chat_desktop.sync.events import EventsAppended, RoomLoaded
    from bucket_chat_desktop.sync.session import engine_session

    n, every = int(count), float(period)

    async def run() -> list[float]:
        storage = open_storage(spec)
        seen: dict[str, float] = {}
        got = asyncio.Event()

        def listener(event: Any) -> None:
            if isinstance(event, EventsAppended | RoomLoaded):
                items = event.items if isinstance(event, EventsAppended) else event.result.timeline
                for a in items:
                    body = a.event.content.get("body", "")
                    if isinstance(body, str) and body.startswith("t=") and body not in seen:
                        seen[body] = time.time()
                if len(seen) >= n:
                    got.set()

        config = SyncConfig(active_interval=0.5)
        async with engine_session(
            storage, start=True, listener=listener, config=config, data_dir=Path(home)
        ) as engine:
            await engine.open_room("chat", background=False)
            if role == "send":
                key = SigningKey.generate()
                await asyncio.sleep(2.0)
                for _ in range(n):
                    await engine.send(
                        "chat",
                        "sender@x",
                        key,
                        [("m.room.message", {"body": f"t={time.time()!r}", "msgtype": "m.text"})],
                    )
                    await asyncio.sleep(every)
                await engine.flush(30)
                return []
            print("ready", flush=True)
            with suppress(TimeoutError):
                await asyncio.wait_for(got.wait(), 60 + n * every * 2)
        await storage.close()
        return [seen[b] - float(b[2:]) for b in seen]

    print(json.dumps({"lat": asyncio.run(run())}))


def _latency(spec: str, env: dict[str, str], n: int, period: float) -> list[float]:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.writer import RoomWriter

    async def create() -> None:
        s = open_storage(spec)
        await RoomWriter(s, "chat", "owner@x", SigningKey.generate()).create_room("Chat", "now")
        await s.close()

    asyncio.run(create())
    full_env = {**os.environ, **env}
    receiver = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child-latency",
            "recv",
            spec,
            str(n),
            str(period),
            tempfile.mkdtemp(dir=WORK),
        ],
        env=full_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    receiver.stdout.readline()  # "ready"
    sender = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-latency",
            "send",
            spec,
            str(n),
            str(period),
            tempfile.mkdtemp(dir=WORK),
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if sender.returncode:
        raise SystemExit(sender.stderr[-2000:])
    out, _ = receiver.communicate(timeout=600)
    lat: list[float] = json.loads(out.strip().splitlines()[-1])["lat"]
    return lat


def bench_latency() -> None:
    def show(label: str, lat: list[float], target: float, n: int) -> None:
        lat = sorted(lat)
        p50 = statistics.median(lat) * 1000
        p95 = lat[int(len(lat) * 0.95)] * 1000
        print(
            f"send-to-receive, {label}: p50 {p50:.0f} ms, p95 {p95:.0f} ms over {len(lat)}/{n} "
            f"messages (target p50 <= {target:.0f} ms)"
        )

    folder = WORK / f"latency-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    show("local folder", _latency(str(folder), {}, 40, 0.5), 100, 40)
    with moto() as endpoint:
        env = s3_env(endpoint)
        os.environ.update(env)
        spec = make_bucket(endpoint, f"lat-{uuid.uuid4().hex[:8]}")
        show("S3 emulator, active", _latency(spec, env, 30, 2.0), 1500, 30)


# -- 4. requests per hour --------------------------------------------------------------------


async def _requests(
    spec: str, rooms: int, active: bool, scale: float, seconds: float
) -> dict[str, int]:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
    from bucket_chat_desktop.sync.outbox import Outbox
    from bucket_chat_desktop.sync.writer import RoomWriter

    base = open_storage(spec)
    me, them = SigningKey.generate(), SigningKey.generate()
    for i in range(rooms):
        await RoomWriter(base, f"room-{i}", "me@x", me).create_room(f"Room {i}", "now")
    config = SyncConfig(
        active_interval=1.0 / scale,
        idle_interval=45.0 / scale,
        active_window=60.0 / scale,
        focused_safety=15 * 60.0 / scale,
        background_safety=4 * 3600.0 / scale,
        batch_window=0.1 / scale,
    )
    home = Path(tempfile.mkdtemp(dir=WORK))
    counting = CountingStorage(base)
    engine = SyncEngine(counting, outbox=Outbox(home / "me.sqlite3"), config=config)
    for i in range(rooms):
        await engine.open_room(f"room-{i}", background=False, focus=(i == 0))
    peer_storage = open_storage(spec)
    peer = SyncEngine(peer_storage, outbox=Outbox(home / "peer.sqlite3"), config=config)
    await peer.start()
    await engine.start()
    await asyncio.sleep(3 * 45.0 / scale)  # settle into the idle rhythm
    for k in counting.counts:
        counting.counts[k] = 0
    t0 = time.monotonic()
    turn = 0
    while time.monotonic() - t0 < seconds:
        if active:  # a conversation in the focused room: they write, we answer
            who, key, eng = ("them@x", them, peer) if turn % 2 == 0 else ("me@x", me, engine)
            body = {"body": f"message {turn}", "msgtype": "m.text"}
            await eng.send("room-0", who, key, [("m.room.message", body)])
            turn += 1
        await asyncio.sleep(10.0 / scale)
    await engine.close()
    await peer.close()
    await peer_storage.close()
    await base.close()
    return dict(counting.counts)


def bench_requests(hours: float) -> None:
    scale = 60.0
    seconds = hours * 3600.0 / scale
    with moto() as endpoint:
        os.environ.update(s3_env(endpoint))
        for rooms, active in ((1, False), (50, False), (1, True)):
            spec = make_bucket(endpoint, f"req-{rooms}-{uuid.uuid4().hex[:6]}")
            span = seconds if not active else 60.0
            counts = asyncio.run(_requests(spec, rooms, active, scale, span))
            total = round(sum(counts.values()) / (span * scale / 3600.0))
            counts = {k: round(v / (span * scale / 3600.0)) for k, v in counts.items()}
            if active:
                print(
                    f"active conversation (a message every 10 s, half of them ours): "
                    f"{total} requests per hour ({counts})"
                )
            else:
                print(
                    f"idle, {rooms} room(s): {total} requests per hour ({counts}); "
                    f"target <= 150 (a naive 2-second poller: {1800 * rooms:,})"
                )


# -- 5. ten writers ----------------------------------------------------------------------------


def _writer_child(spec: str, index: str, count: str, home: str) -> None:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.session import engine_session

    async def run() -> None:
        storage = open_storage(spec)
        key = SigningKey.generate()
        async with engine_session(storage, index=False, start=True, data_dir=Path(home)) as e:
            for i in range(int(count)):
                await e.send(
                    "crowd",
                    f"writer{index}@x",
                    key,
                    [("m.room.message", {"body": f"w{index}-{i}", "msgtype": "m.text"})],
                )
                if i % 20 == 19:
                    await asyncio.sleep(0.01)
            assert await e.flush(120)
        await storage.close()

    asyncio.run(run())


def bench_writers(backends: list[str]) -> None:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.audit import TrustState
    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.session import engine_session
    from bucket_chat_desktop.sync.writer import RoomWriter

    def run(spec: str, env: dict[str, str]) -> None:
        async def create() -> None:
            s = open_storage(spec)
            await RoomWriter(s, "crowd", "owner@x", SigningKey.generate()).create_room(
                "Crowd", "now"
            )
            await s.close()

        asyncio.run(create())
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--child-writer",
                    spec,
                    str(i),
                    "200",
                    tempfile.mkdtemp(dir=WORK),
                ],
                env={**os.environ, **env},
            )
            for i in range(10)
        ]
        codes = [p.wait(timeout=900) for p in procs]
        wall = time.perf_counter() - t0

        async def read() -> Any:
            s = open_storage(spec)
            async with engine_session(s, index=False, outbox=False, data_dir=WORK) as e:
                room = await e.open_room("crowd", background=False)
            await s.close()
            return room.result

        result = asyncio.run(read())
        bodies = [a.event.body for a in result.timeline if a.event.type == "m.room.message"]
        expected = {f"w{i}-{j}" for i in range(10) for j in range(200)}
        print(
            f"10 writers x 200 ({spec.split('?')[0]}): exit codes {set(codes)}, wall {wall:.1f} s, "
            f"{len(bodies)} messages, {len(set(bodies))} distinct, all delivered: "
            f"{set(bodies) == expected}, duplicates: {len(bodies) - len(set(bodies))}, "
            f"audit clean: {result.clean}, all verified: "
            f"{all(a.state is TrustState.VERIFIED for a in result.timeline)}"
        )

    for backend in backends:
        if backend == "local":
            folder = WORK / f"writers-{uuid.uuid4().hex[:8]}"
            folder.mkdir(parents=True)
            run(str(folder), {})
        else:
            with moto() as endpoint:
                env = s3_env(endpoint)
                os.environ.update(env)
                run(make_bucket(endpoint, f"writers-{uuid.uuid4().hex[:8]}"), env)


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("--child-"):
        which, args = sys.argv[1], sys.argv[2:]
        {
            "--child-first": _first_look_child,
            "--child-latency": _latency_child,
            "--child-writer": _writer_child,
        }[which](*args)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["cold", "first", "latency", "requests", "writers", "all"],
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument(
        "--hours", type=float, default=5.0, help="simulated idle hours (60x faster than real)"
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    backends = args.backends.split(",")
    steps: dict[str, Callable[[], None]] = {
        "cold": lambda: bench_cold(args.events, backends),
        "first": lambda: bench_first(args.events),
        "latency": bench_latency,
        "requests": lambda: bench_requests(args.hours),
        "writers": lambda: bench_writers(backends),
    }
    for name, step in steps.items():
        if args.what in (name, "all"):
            step()


if __name__ == "__main__":
    main()
