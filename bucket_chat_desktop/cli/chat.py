"""Interactive chat in a terminal: type to send, incoming messages appear as they arrive.

Runs a full sync engine: a local folder is watched, a bucket is polled adaptively, and
what you type goes through the outbox, so nothing is lost when the storage is away.
Incoming events are printed above the line being typed (readline keeps what was typed).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterable
from typing import Any

from ..protocol.audit import Assessed, AuditResult
from ..protocol.event import MESSAGE, has_lone_surrogate
from ..protocol.relations import TYPING, Relations
from ..protocol.untrusted_text import RoomIds, display_name_safe, terminal_safe
from ..storage.base import Storage, StorageError
from ..sync.client import ChatClient, RoomRef
from ..sync.events import (
    ChangeFeedStatus,
    EngineEvent,
    EventsAppended,
    OutboxChanged,
    RoomLoaded,
    StorageStatus,
)
from ..sync.stopping import stop_tasks
from ..sync.watched import NoAnswerError, interactive_deadline
from . import format as fmt

PROMPT = "> "

readline: Any
try:  # readline lets us redraw the typed line under an incoming message (POSIX)
    import readline
except ImportError:  # pragma: no cover - Windows
    readline = None


class _Screen:
    def __init__(self, interactive: bool, own_key: str) -> None:
        self.interactive = interactive
        self.own_key = own_key
        # (event id, path, line): an id signed by two devices is two rows (section 6)
        self.shown: set[tuple[str, str, int]] = set()
        self.reported = 0
        self.ready = False
        self.ids = RoomIds()
        self.related: set[tuple[str, str | None]] = set()

    def say(self, text: str) -> None:
        if self.interactive and readline is not None and self.ready:
            typed = readline.get_line_buffer()
            sys.stdout.write(f"\r\x1b[K{text}\n{PROMPT}{typed}")
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def events(self, items: Iterable[Assessed], *, echo_own: bool) -> None:
        for item in items:
            self.ids.add(item.event.sender_id)
            copy = (item.event.event_id, item.path, item.line)
            if copy in self.shown:
                continue
            self.shown.add(copy)
            if item.event.type == TYPING:  # read and ignored (PROTOCOL.md 18.6), not printed
                continue
            if echo_own or item.event.sender_key != self.own_key:
                self.say(fmt.event_line(item, self.ids))

    def findings(self, result: AuditResult) -> None:
        errors = result.errors
        for f in errors[self.reported :]:
            self.say(f"! {f.kind.value}: {terminal_safe(f.message)} ({terminal_safe(f.where())})")
        self.reported = max(self.reported, len(errors))

    def relation_findings(self, rel: Relations | None) -> None:
        """Forged or malformed relations (PROTOCOL.md section 18), each said once."""
        for f in rel.findings if rel is not None else ():
            seen = (f.kind.value, f.event_id)
            if seen not in self.related:
                self.related.add(seen)
                self.say(
                    f"! {f.kind.value}: {terminal_safe(f.message)} ({terminal_safe(f.where())})"
                )


async def _read_on(client: ChatClient, ref: RoomRef) -> None:
    """The room read on in the background while its storage does not answer (its metadata
    read waits for the storage too, so it is never awaited in the chat's own path)."""
    await client.open_room(ref, wait=False)


async def run_chat(storage: Storage, room_id: str, identity: Any, displayname: str | None) -> int:
    interactive = sys.stdin.isatty()
    screen = _Screen(interactive, identity.public_key_b64)

    def listener(event: EngineEvent) -> None:
        if isinstance(event, RoomLoaded | EventsAppended) and event.room_id == room_id:
            if not screen.ready:
                return  # the history is printed once the room is open
            items = event.result.timeline if isinstance(event, RoomLoaded) else event.items
            screen.events(items, echo_own=False)
            screen.findings(event.result)
            screen.relation_findings(event.relations)
        elif isinstance(event, OutboxChanged) and event.state == "failed":
            screen.say(f"! not sent yet: {terminal_safe(event.error)} (will retry)")
        elif isinstance(event, StorageStatus):
            screen.say(
                "* storage reachable again"
                if event.online
                else f"! offline: {terminal_safe(event.message)}"
            )
        elif isinstance(event, ChangeFeedStatus):
            mark = "*" if event.active else "!"
            screen.say(f"{mark} {terminal_safe(event.message)}")

    signer = (identity.user_id, identity.signing_key)
    async with ChatClient.session(
        storage, identity=signer, displayname=displayname, start=True, listener=listener
    ) as client:
        ref = client.room(room_id)
        stale = ""
        reading: asyncio.Task[None] | None = None
        try:
            await client.within(
                ref.storage_id, client.open_room(ref, wait=True), interactive_deadline()
            )
            room = await client.room_view(ref)  # a frozen view, never the engine's state
        except NoAnswerError as exc:
            # A frozen service: chat on with what this device verified before; what is
            # typed is queued, and the room goes on being read in the background (new
            # messages print once the storage answers).
            room = await client.cached_room(ref)
            if room is None:
                raise StorageError(
                    f"{exc}; this device has no copy of room {room_id!r} to show"
                ) from exc
            stale = (
                f"! the storage does not answer ({terminal_safe(str(exc))}): this is what "
                "this device verified before; what you send is queued until it answers"
            )
            reading = asyncio.create_task(_read_on(client, ref))
        assert room is not None
        name = display_name_safe(room.metadata.name, fmt.TITLE_LIMIT) if room.metadata else ""
        title = terminal_safe(name or room_id)
        print(f"# {title} — type a message and press Enter; /quit or Ctrl-D to leave")
        result = room.result
        if result is not None:
            screen.ids.update(a.event.sender_id for a in result.timeline)
            screen.events(result.timeline[-20:], echo_own=True)
            screen.shown.update((a.event.event_id, a.path, a.line) for a in result.timeline)
            screen.findings(result)
            screen.relation_findings(room.relations)
        if stale:
            screen.say(stale)
        screen.ready = True
        await client.flush(ref.storage_id, timeout=0)

        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

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
        while True:
            text = await lines.get()
            if text is None or text.strip() in ("/quit", "/exit"):
                break
            if not text.strip():
                continue
            if has_lone_surrogate(text):  # undecodable input bytes (surrogateescape)
                print("Not sent: the line holds bytes that are not valid UTF-8 text.")
                continue
            await client.send(ref, [(MESSAGE, {"body": text, "msgtype": "m.text"})])
        if reading is not None:  # leaving: the room's read in the background is not needed
            await stop_tasks([reading])  # its end, not a Ctrl-C meanwhile, is absorbed
        try:
            delivered = await client.within(
                ref.storage_id, client.flush(ref.storage_id, timeout=10)
            )
        except NoAnswerError:
            delivered = False
        if not delivered:
            print("! some messages are still queued; they go out with the next session")
    if interactive:
        print()
    return 0
