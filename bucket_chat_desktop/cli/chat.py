"""Interactive chat in a terminal: type to send, incoming messages appear as they arrive.

Incoming events are printed above the line being typed (readline keeps what was typed).
A local folder is watched with watchdog, with a periodic re-scan as a safety net;
other stores are polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

from ..protocol.audit import TrustState
from ..storage.base import Storage, StorageError
from ..storage.local import LocalStorage
from ..sync.reader import open_room, refresh_room
from ..sync.writer import Draft, RoomWriter
from . import format as fmt
from .lock import device_lock

RESCAN_SECONDS = 5.0
POLL_SECONDS = 2.0
PROMPT = "> "

readline: Any
try:  # readline lets us redraw the typed line under an incoming message (POSIX)
    import readline
except ImportError:  # pragma: no cover - Windows
    readline = None


def _print_above_prompt(text: str, interactive: bool) -> None:
    if interactive and readline is not None:
        typed = readline.get_line_buffer()
        sys.stdout.write(f"\r\x1b[K{text}\n{PROMPT}{typed}")
    else:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _watch(storage: Storage, room_id: str, wake: asyncio.Event) -> Any:
    """Start a watchdog observer on the room's folder; returns it (or None)."""
    if not isinstance(storage, LocalStorage):
        return None
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:  # pragma: no cover
        return None
    loop = asyncio.get_running_loop()
    folder = storage.root / "rooms" / room_id / "logs"
    folder.mkdir(parents=True, exist_ok=True)

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            name = str(getattr(event, "dest_path", "") or event.src_path)
            if event.event_type in ("created", "moved", "closed") and name.endswith(".jsonl"):
                loop.call_soon_threadsafe(wake.set)

    observer = Observer()
    observer.schedule(Handler(), str(folder), recursive=True)
    observer.daemon = True
    observer.start()
    return observer


async def run_chat(storage: Storage, writer: RoomWriter) -> int:
    room_id = writer.room_id
    interactive = sys.stdin.isatty()
    view = await open_room(storage, room_id)
    result = view.ledger.audit()
    shown: set[str] = set()
    title = view.metadata.name if view.metadata and view.metadata.name else room_id
    print(f"# {title} — type a message and press Enter; /quit or Ctrl-D to leave")
    for item in result.timeline[-20:]:
        print(fmt.event_line(item))
    shown.update(a.event.event_id for a in result.timeline)
    reported = len(result.errors)
    if reported:
        print(
            f"! this room has {reported} finding(s): run 'bucket-chat verify --room-id {room_id}'"
        )

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    wake = asyncio.Event()

    def read_stdin() -> None:
        while True:
            try:
                line = input(PROMPT) if interactive else sys.stdin.readline()
            except (EOFError, KeyboardInterrupt):
                line = ""
            else:
                if interactive:
                    line += "\n"  # input() strips it; "" alone means end of input
            if line == "":
                loop.call_soon_threadsafe(lines.put_nowait, None)
                return
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))

    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
    observer = _watch(storage, room_id, wake)
    period = RESCAN_SECONDS if observer else POLL_SECONDS

    async def refresh_loop() -> None:
        nonlocal reported
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), period)
            wake.clear()
            try:
                new = await refresh_room(storage, view)
            except StorageError as exc:
                _print_above_prompt(f"! cannot read the room: {exc}", interactive)
                continue
            if not new:
                continue
            audit = view.ledger.audit()
            for item in audit.timeline:
                if item.event.event_id not in shown:
                    shown.add(item.event.event_id)
                    if (
                        item.event.sender_key != writer.key_text
                        or item.state is not TrustState.VERIFIED
                    ):
                        _print_above_prompt(fmt.event_line(item), interactive)
            if len(audit.errors) > reported:
                for f in audit.errors[reported:]:
                    _print_above_prompt(f"! {f.kind.value}: {f.message} ({f.where()})", interactive)
                reported = len(audit.errors)

    refresher = asyncio.create_task(refresh_loop())
    try:
        while True:
            line = await lines.get()
            if line is None or line.strip() in ("/quit", "/exit"):
                break
            if not line.strip():
                continue
            try:
                with device_lock(writer.client_id, room_id):
                    await writer.send([Draft.text(line)])
            except StorageError as exc:
                _print_above_prompt(f"! not sent: {exc}", interactive)
                continue
            wake.set()
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        if observer is not None:
            observer.stop()
            await asyncio.to_thread(observer.join, 5)
    if interactive:
        print()
    return 0
