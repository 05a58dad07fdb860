"""Desktop-app figures: start to a usable window, room switching, a 100,000-event room
and a 1,000,000-event room.

Run:  .venv/bin/python benchmarks/gui_bench.py [--events N | --no-million]

Prepares (once, cached under /tmp/bucket-chat-gui-bench-<N>) a local store with a room of
N signed events in 1,000 segments plus five small rooms, and warms this device's index the
way the app does on first open (the 1,000,000-event room takes a few minutes once: run
with --prepare-only first if you like). Then, in fresh subprocesses (offscreen Qt):
1. start to usable window (warm): process start -> main window shown with the last room's
   newest messages painted (median of 5 runs);
2. switching rooms: selecting a room -> its timeline painted (median over 40 switches);
3. the big room, at 100,000 and at 1,000,000 events, warm: select -> first paint; resident
   memory once audited (the app's rooms keep no bodies in memory, its timeline holds what
   it shows); scrolling what is loaded from top to bottom by driving the scroll bar,
   reporting the longest frame: one step of the scroll bar, the layout it asks for and the
   one paint it posts (after loading older pages by scrolling up first).
4. switching during a back-fill: the big room is read from a cold index (this device's
   index holds only the small rooms) while the user keeps switching between the small
   rooms; each switch is timed from the click to the first paint of the target room's
   timeline with its rows in it (p50 and p100 over every switch made until the back-fill
   is done).
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
import time
import uuid
from pathlib import Path
from typing import Any

BENCH_ROOT = Path("/tmp/bucket-chat-gui-bench")
BENCH = BENCH_ROOT  # set per room size by _use(): each size has its own cached store
USER = "bench@example.com"
SMALL = [f"small-{k}" for k in range(5)]
PAUSE = 0.25  # seconds between two switches in measurement 4 (a quick reader)


def _use(events: int) -> None:
    """Cache each room size apart (/tmp/bucket-chat-gui-bench-<events>): preparing a
    1,000,000-event room takes a long while and must survive a run at another size."""
    global BENCH
    BENCH = BENCH_ROOT.with_name(f"{BENCH_ROOT.name}-{events}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        BUCKET_CHAT_HOME=str(BENCH / "home"),
        BUCKET_CHAT_KEY_STORE="file",
        BUCKET_CHAT_PASSPHRASE="bench passphrase",
    )
    return env


# -- preparation (runs in a child with the bench environment) ----------------------------


def _write_room(root: Path, rid: str, name: str, n: int, per: int) -> None:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.ids import client_id_for
    from bucket_chat_desktop.protocol.metadata import build_metadata
    from bucket_chat_desktop.protocol.segment import encode_segment, path_for
    from bucket_chat_desktop.protocol.signing import build_event

    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(10)]
    (root / "rooms" / rid).mkdir(parents=True, exist_ok=True)
    (root / "rooms" / rid / "metadata.json").write_bytes(
        build_metadata(
            room_id=rid,
            name=name,
            created_at="2025-01-01T00:00:00.000Z",
            creator_id="u0@example.com",
            signing_key=keys[0],
        )
    )
    heads: list[str | None] = [None] * 10
    buf: list[list[Any]] = [[] for _ in range(10)]
    t = 1_760_000_000_000

    def flush(s: int) -> None:
        cid = client_id_for(f"u{s}@example.com", bytes(keys[s].verify_key))
        path = root / path_for(buf[s], cid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_segment(buf[s]))
        buf[s] = []

    for i in range(n):
        s = i % 10
        t += 60_000 if i % 1000 == 0 else 37
        first = heads[s] is None
        phrase = (
            "a **bold** claim and a [link](https://example.com) "
            if i % 7 == 0
            else "plain words about the project, nothing special "
        )
        content = (
            {"membership": "join", "displayname": f"User {s}"}
            if first
            else {"body": f"message {i}: " + phrase * (1 + i % 3), "msgtype": "m.text"}
        )
        ev = build_event(
            room_id=rid,
            sender_id=f"u{s}@example.com",
            event_type="m.room.member" if first else "m.room.message",
            content=content,
            timestamp_ms=t,
            unique=str(uuid.UUID(int=i, version=4)),
            prev_event_hash=heads[s],
            signing_key=keys[s],
        )
        heads[s] = ev.hash
        buf[s].append(ev)
        if len(buf[s]) == per:
            flush(s)
    for s in range(10):
        if buf[s]:
            flush(s)


def _prepare_child(events: int, phase: str) -> None:
    from bucket_chat_desktop import settings as settings_store
    from bucket_chat_desktop.keys import load_or_create_identity, open_key_store
    from bucket_chat_desktop.storage import open_storage
    from bucket_chat_desktop.sync.engine import SyncConfig
    from bucket_chat_desktop.sync.session import engine_session

    root = BENCH / "store"
    if phase == "store":
        load_or_create_identity(open_key_store(user_id=USER), USER, create=True)
        _write_room(root, "big", "Big history", events, max(1, events // 1000))
        for rid in SMALL:
            _write_room(root, rid, f"Small room {rid[-1]}", 300, 10)
        return
    st = settings_store.Settings(
        user_id=USER,
        displayname="Bench",
        storages=[settings_store.StorageSettings(str(root), "Bench store", ["big", *SMALL])],
    )
    st.last_room = st.storages[0].id + "/small-0"
    settings_store.save(st)

    async def warm(rooms: list[str]) -> None:
        # Rooms as the app keeps them (no bodies in memory): a million-event room fits.
        config = SyncConfig(keep_bodies=False)
        async with engine_session(open_storage(str(root)), outbox=False, config=config) as engine:
            for rid in rooms:
                await engine.open_room(rid, background=False)

    for extra in ("", "-wal", "-shm"):  # warmed again from nothing (see prepare)
        Path(f"{_index_file()}{extra}").unlink(missing_ok=True)
    asyncio.run(warm(SMALL))
    # This device's index as it is before the big room was ever read: measurement 4
    # starts from it, so the big room back-fills from nothing while the user switches.
    shutil.copyfile(_index_file(), BENCH / "index-without-big.sqlite3")
    (BENCH / "index-path").write_text(str(_index_file()))
    asyncio.run(warm(["big"]))


def _index_file() -> Path:
    from bucket_chat_desktop import paths
    from bucket_chat_desktop.index import index_path_for
    from bucket_chat_desktop.storage import open_storage

    return index_path_for(paths.data_dir(), open_storage(str(BENCH / "store")).identity)


def prepare(events: int) -> None:
    """Sign the rooms once (cached), then warm this device's index once (cached apart:
    delete ``ready-index`` and ``home/data`` to warm again after an index change)."""
    for phase, what in (("store", "signed the rooms"), ("index", "warmed the index")):
        marker = BENCH / f"ready-{phase}"
        # An index warmed before measurement 4 existed lacks its starting copy: warm again.
        if marker.exists() and (phase != "index" or (BENCH / "index-path").exists()):
            continue
        if phase == "store":
            shutil.rmtree(BENCH, ignore_errors=True)
            (BENCH / "home").mkdir(parents=True)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--prepare-child", phase, "--events", str(events)],
            env=_env(),
            check=True,
        )
        print(f"{events:,}-event room: {what} in {time.perf_counter() - t0:.0f} s")
        marker.touch()


# -- measurement (runs in a fresh child per run) -----------------------------------------


def _measure_child(t0: float, mode: str, pages: int) -> None:
    import qasync
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from bucket_chat_desktop import settings as settings_store
    from bucket_chat_desktop.app import prefer_the_gui_thread
    from bucket_chat_desktop.gui import theme
    from bucket_chat_desktop.gui.collector import GuiThreadCollector

    prefer_the_gui_thread()  # as the app does at start
    app = QApplication(sys.argv[:1])
    GuiThreadCollector(app).start()  # as the app does: collections on the GUI thread
    st = settings_store.load()
    theme.apply(app, st.theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    class Painted(QObject):
        at: float | None = None
        count = 0  # paints seen

        def eventFilter(self, obj: Any, ev: Any) -> bool:
            if ev.type() == QEvent.Type.Paint:
                self.count += 1
                if self.at is None:
                    self.at = time.perf_counter()
            return False

    class RowsPainted(QObject):
        """The first paint of the timeline with rows in it (an empty room is not shown)."""

        at: float | None = None

        def __init__(self, view: Any) -> None:
            super().__init__()
            self.view = view

        def eventFilter(self, obj: Any, ev: Any) -> bool:
            model = self.view.model()
            if (
                ev.type() == QEvent.Type.Paint
                and self.at is None
                and model is not None
                and model.rowCount() > 0
            ):
                self.at = time.perf_counter()
            return False

    def rss_mb(field: str = "VmRSS:") -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        return 0.0

    async def until(cond: Any, limit: float = 30.0) -> None:
        end = time.perf_counter() + limit
        while not cond() and time.perf_counter() < end:
            await asyncio.sleep(0.002)

    async def switch_during_backfill(
        c: Any, w: Any, rows_painted: Any, out: dict[str, float]
    ) -> None:
        """Switch between the small rooms (a quick reader: a switch every ``PAUSE``) for as
        long as the big room back-fills from the cold index; time click -> the target
        room's rows painted. The big room's back-fill started with the app (the client
        opens every room; the big one before the small ones that follow it)."""
        keys = [k for k in c.rooms.room_keys() if "small" in k]
        big = next(k for k in c.rooms.room_keys() if k.endswith("/big"))
        engine = c.client._storages[big.split("/", 1)[0]].engine

        def backfilling() -> bool:
            room = engine.rooms.get("big")
            return room is None or room.backfill is None or not room.backfill.done()

        def target_painted() -> bool:
            model = w.timeline.model()
            return rows_painted.at is not None and model is not None and model.rowCount() > 0

        async def switch(i: int) -> float:
            key = keys[(i * 2 + 1) % len(keys)]
            if key == c.current:
                key = keys[(i * 2 + 2) % len(keys)]
            rows_painted.at = None
            t = time.perf_counter()
            c.select_room(key)
            await until(target_painted, 60)
            took = (rows_painted.at or time.perf_counter()) - t
            await asyncio.sleep(PAUSE)
            return took

        switches: list[float] = []
        at: list[float] = []
        started = time.perf_counter()
        while backfilling() and time.perf_counter() - started < 600:
            at.append(time.perf_counter() - started)
            switches.append(await switch(len(switches)))
        out["backfill_s"] = time.perf_counter() - started
        out["backfill_switches"] = len(switches)
        ordered = sorted(switches)
        out["backfill_switch_p50"] = statistics.median(ordered) if ordered else 0.0
        out["backfill_switch_p95"] = ordered[int(len(ordered) * 0.95)] if ordered else 0.0
        out["backfill_switch_p100"] = ordered[-1] if ordered else 0.0
        out["backfill_slowest_at"] = at[switches.index(ordered[-1])] if ordered else 0.0
        # The same switches with nothing in the background: what this machine gives now.
        await asyncio.sleep(1.0)
        quiet = sorted([await switch(i) for i in range(30)])
        out["quiet_switch_p50"] = statistics.median(quiet)
        out["quiet_switch_p100"] = quiet[-1]
        audited = c.result(big)
        out["backfill_events"] = len(audited.timeline) if audited is not None else 0

    async def main() -> tuple[dict[str, float], Any]:
        from bucket_chat_desktop.gui.controller import Controller
        from bucket_chat_desktop.gui.main_window import MainWindow
        from bucket_chat_desktop.gui.startup import load_identity

        ident = await load_identity(st)
        assert ident is not None
        c = Controller(st, ident)
        w = MainWindow(c)
        w.resize(1100, 720)
        painted = Painted()
        w.timeline.viewport().installEventFilter(painted)
        rows_painted = RowsPainted(w.timeline)
        w.timeline.viewport().installEventFilter(rows_painted)
        w.show()
        c.start()
        out: dict[str, float] = {}

        def shown() -> bool:
            model = w.timeline.model()
            return painted.at is not None and model is not None and model.rowCount() > 0

        await until(shown)
        out["start_to_window"] = (painted.at or 0) - t0
        if mode == "start":
            return out, c
        if mode == "backfill":
            await switch_during_backfill(c, w, rows_painted, out)
            return out, c
        await asyncio.sleep(1.0)
        keys = [k for k in c.rooms.room_keys() if "small" in k]
        big = next(k for k in c.rooms.room_keys() if k.endswith("/big"))
        switches = []
        for i in range(40 if mode == "full" else 0):
            key = keys[(i * 2 + 1) % len(keys)]
            painted.at = None
            t = time.perf_counter()
            c.select_room(key)
            await until(lambda: painted.at is not None)
            switches.append((painted.at or t) - t)
        out["switch_median"] = statistics.median(switches) if switches else 0.0
        out["switch_max"] = max(switches, default=0.0)
        if c.current == big:
            # The last run left the big room as the one reopened at start: selecting it
            # again would paint nothing and measure whatever repaints next.
            c.select_room(keys[0])
            painted.at = None
            await until(lambda: painted.at is not None)
            await asyncio.sleep(0.5)
        painted.at = None
        t = time.perf_counter()
        c.select_room(big)
        await until(shown)
        out["big_first_paint"] = (painted.at or t) - t

        def audited() -> bool:
            result = c.result(big)
            return result is not None and len(result.timeline) > 0.9 * int(os.environ["EVENTS"])

        await until(audited, 300)
        await asyncio.sleep(0.5)
        out["big_loaded"] = time.perf_counter() - t
        out["rss_mb"] = rss_mb()
        out["peak_mb"] = rss_mb("VmHWM:")  # the process's peak so far: the audit's
        bar = w.timeline.verticalScrollBar()
        model = w.timeline.model()
        for _ in range(pages):
            # Older pages come from the engine's worker: wait for each (fetched ahead,
            # usually already there).
            before = model.rowCount()
            bar.setValue(bar.minimum())
            await until(lambda b=before: model.rowCount() > b, 10)
        out["rows_held"] = getattr(model, "held", model.rowCount())
        out["rows_loaded"] = model.rowCount()
        frames = []
        paints = 0
        step = max(1, bar.pageStep() // 2)
        value = bar.minimum()
        while value < bar.maximum():
            value = min(bar.maximum(), value + step)
            before = painted.count
            t = time.perf_counter()
            bar.setValue(value)
            # What the scroll posted: its layout requests and the viewport's update, which
            # paints it (not the loop's tasks). A frame is that one paint: a repaint() after
            # it, as this measured until 2026-12-07, painted every frame twice.
            app.sendPostedEvents()
            if painted.count == before:  # nothing was posted: paint it here
                w.timeline.viewport().repaint()
            frames.append(time.perf_counter() - t)
            paints += painted.count - before
            # Then the loop, outside the frame: processEvents() here would run asyncio
            # callbacks inside this task (qasync refuses: "Cannot enter into task"),
            # which stalled the pages the million-event room fetched meanwhile.
            await asyncio.sleep(0)
        out["scroll_frames"] = len(frames)
        out["scroll_paints"] = paints
        out["scroll_max_frame"] = max(frames, default=0.0)
        out["scroll_p95_frame"] = sorted(frames)[int(len(frames) * 0.95)] if frames else 0.0
        out["rss_after_scroll_mb"] = rss_mb()
        return out, c

    async def measured() -> dict[str, float]:
        # Shut down as the app does: a poll left running when the loop closes logs
        # "no running event loop" on its way out.
        result, controller = await main()
        await controller.shutdown()
        return result

    with loop:
        result = loop.run_until_complete(measured())
    print(json.dumps(result), flush=True)


def child(mode: str, events: int, pages: int = 0) -> dict[str, float]:
    env = _env()
    env["EVENTS"] = str(events)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure-child",
            mode,
            str(t0),
            str(pages),
            "--events",
            str(events),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    line = [x for x in proc.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="room size; the default also measures a 1,000,000-event room",
    )
    parser.add_argument("--no-million", action="store_true", help="skip the 1,000,000 room")
    parser.add_argument("--pages", type=int, default=10, help="older pages to load first")
    parser.add_argument("--prepare-only", action="store_true", help="prepare, measure nothing")
    parser.add_argument(
        "--switch-only", action="store_true", help="only measure 4 (switching during back-fill)"
    )
    parser.add_argument("--prepare-child", help=argparse.SUPPRESS)
    parser.add_argument("--measure-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _use(args.events)
    if args.prepare_child:
        _prepare_child(args.events, args.prepare_child)
        return
    if args.measure_child:
        mode, t0, pages = args.measure_child
        _measure_child(float(t0), mode, int(pages))
        return
    sizes = [args.events] if args.events != 100_000 or args.no_million else [100_000, 1_000_000]
    for events in sizes:
        _use(events)
        prepare(events)
    if args.prepare_only:
        return
    if args.switch_only:
        _use(sizes[0])
        switch_during_backfill(sizes[0])
        return
    _use(sizes[0])
    child("start", sizes[0])  # warm the OS file cache
    starts = [child("start", sizes[0])["start_to_window"] for _ in range(5)]
    runs = ", ".join(f"{s * 1000:.0f}" for s in starts)
    print(
        f"start to usable window (warm): median {statistics.median(starts) * 1000:.0f} ms "
        f"(runs: {runs}); target <= 1500 ms"
    )
    for n, events in enumerate(sizes):
        _use(events)
        r = child("full" if n == 0 else "big", events, args.pages)
        if n == 0:
            print(
                f"room switch: median {r['switch_median'] * 1000:.1f} ms, "
                f"max {r['switch_max'] * 1000:.1f} ms; target <= 100 ms"
            )
        rss_target = 300 if events <= 100_000 else 400
        print(
            f"{events:,}-event room (warm): first paint {r['big_first_paint'] * 1000:.0f} ms "
            f"(target <= 300 ms); fully audited after {r['big_loaded']:.1f} s; "
            f"RSS {r['rss_mb']:.0f} MB (target <= {rss_target} MB), "
            f"peak {r['peak_mb']:.0f} MB"
        )
        print(
            f"  scrolling {r['rows_loaded']:,.0f} loaded rows top to bottom "
            f"({r['rows_held']:,.0f} held by the model): "
            f"{r['scroll_frames']:.0f} frames ({r['scroll_paints']:.0f} paints), "
            f"longest {r['scroll_max_frame'] * 1000:.1f} ms, "
            f"p95 {r['scroll_p95_frame'] * 1000:.1f} ms (target: none over 50 ms); "
            f"RSS after {r['rss_after_scroll_mb']:.0f} MB"
        )
    if sizes[0] <= 100_000:  # a million-event back-fill takes minutes: on request only
        _use(sizes[0])
        switch_during_backfill(sizes[0])


def switch_during_backfill(events: int) -> None:
    """Measurement 4, from this device's index as it was before the big room was read
    (restored afterwards, so the other measurements stay warm)."""
    index = Path((BENCH / "index-path").read_text())
    warm = BENCH / "index-warm.sqlite3"
    shutil.copyfile(index, warm)
    try:
        for extra in ("-wal", "-shm"):
            Path(f"{index}{extra}").unlink(missing_ok=True)
        shutil.copyfile(BENCH / "index-without-big.sqlite3", index)
        load = os.getloadavg()[0]
        r = child("backfill", events)
    finally:
        for extra in ("-wal", "-shm"):
            Path(f"{index}{extra}").unlink(missing_ok=True)
        shutil.copyfile(warm, index)
    print(
        f"room switch while the {events:,}-event room back-fills from a cold index "
        f"({r['backfill_s']:.1f} s, {r['backfill_events']:,.0f} events shown at the end): "
        f"{r['backfill_switches']:.0f} switches, p50 {r['backfill_switch_p50'] * 1000:.1f} ms, "
        f"p95 {r['backfill_switch_p95'] * 1000:.1f} ms, "
        f"p100 {r['backfill_switch_p100'] * 1000:.1f} ms "
        f"(at {r['backfill_slowest_at']:.1f} s); target p100 <= 100 ms "
        f"(load average {load:.2f} at the start)"
    )
    print(
        f"  the same switches right after, nothing in the background: "
        f"p50 {r['quiet_switch_p50'] * 1000:.1f} ms, p100 {r['quiet_switch_p100'] * 1000:.1f} ms; "
        f"during/after p50 ratio {r['backfill_switch_p50'] / r['quiet_switch_p50']:.2f}"
    )


if __name__ == "__main__":
    main()
