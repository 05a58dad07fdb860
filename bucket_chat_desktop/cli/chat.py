"""Interactive chat in a terminal: type to send, incoming messages appear as they arrive.

Runs a full sync engine: a local folder is watched, a bucket is polled adaptively, and
what you type goes through the outbox, so nothing is lost when the storage is away.
Incoming events are printed above the line being typed (readline keeps what was typed).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

from ..protocol.event import MESSAGE, has_lone_surrogate
from ..protocol.untrusted_text import terminal_safe
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
from .live import LiveOutput, LivePrinter, not_read, room_findings, room_title_of
from .outcome import EXIT_ERROR, EXIT_OK, EXIT_QUEUED, refusal, unsent, waiting_error

PROMPT = "> "
OPENING_LINES = 20  # messages of the room printed when the chat opens

readline: Any
try:  # readline lets us redraw the typed line under an incoming message (POSIX)
    import readline
except ImportError:  # pragma: no cover - Windows
    readline = None


class _Screen(LivePrinter):
    """The chat's terminal: ``LivePrinter``'s lines, printed above the line being typed
    (while ``typing``), through ``output``: every line the chat prints."""

    def __init__(
        self,
        interactive: bool,
        own_key: str,
        own_user: str = "",
        output: LiveOutput | None = None,
    ) -> None:
        super().__init__(self._say, own_key, own_user)
        self.output = LiveOutput(lambda: None) if output is None else output
        self.interactive = interactive
        self.ready = False  # the room's history is printed: arrivals print
        self.typing = False

    def _say(self, text: str) -> None:
        if self.interactive and readline is not None and self.typing:
            typed = readline.get_line_buffer()
            self.output.write(f"\r\x1b[K{text}\n{PROMPT}{typed}")
        else:
            self.output.line(text)


async def _read_on(client: ChatClient, ref: RoomRef) -> None:
    """The room read on in the background while its storage does not answer (its metadata
    read waits for the storage too, so it is never awaited in the chat's own path)."""
    await client.open_room(ref, wait=False)


async def run_chat(storage: Storage, room_id: str, identity: Any, displayname: str | None) -> int:
    interactive = sys.stdin.isatty()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | Exception | None] = asyncio.Queue()  # None: leave
    # What the chat prints has no reader any more (``| head``). Typing at a terminal, it
    # leaves as on /quit (behind what was typed already: the queue keeps their order).
    # Lines piped in are sent all the same, to the end of the input: the first failed
    # write came before the input was even read, and leaving then dropped every piped
    # line, unsent and unsaid, with exit 0 (red team rt89).
    output = LiveOutput(
        (lambda: loop.call_soon_threadsafe(lines.put_nowait, None)) if interactive else _stay
    )
    screen = _Screen(interactive, identity.public_key_b64, identity.user_id, output)

    def listener(event: EngineEvent) -> None:
        if isinstance(event, RoomLoaded | EventsAppended) and event.room_id == room_id:
            if not screen.ready:
                return  # the history is printed once the room is open
            items = event.result.timeline if isinstance(event, RoomLoaded) else event.items
            screen.arrived(
                items,
                event.result.timeline,
                event.relations,
                echo_own=False,
                roster=event.roster,
                read_ms=event.read_ms,  # weighed by when the engine read it, not now
            )
            screen.findings(room_findings(event))  # an append's: no metadata read
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
        # Someone watches this room live: it is the room on screen with the window in
        # front, as the app's focused window is (polled often, listed whole every 15
        # minutes: docs/SCHEDULING.md). Left unfocused, a terminal chat was served as a
        # window behind others: its room listed at most 30 pages, every 4 hours.
        client.set_window_focused(True)
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
        if room is None or room.failure:
            raise not_read(room_id, room)
        result = room.result
        # as ``history`` titles it: whose signature the name carries, and whether it is
        # the creator's (a member can rewrite metadata.json under the creator's id)
        title = room_title_of(room)
        screen.say(f"# {title} — type a message and press Enter; /quit or Ctrl-D to leave")
        if result is not None and room.relations is not None:
            screen.opening(result, room.relations, OPENING_LINES, room.roster)
        screen.findings(room_findings(room))
        if stale:
            screen.say(stale)
        screen.ready = screen.typing = True
        await client.flush(ref.storage_id, timeout=0)

        def read_stdin() -> None:
            while True:
                try:
                    line = input(PROMPT) if interactive else sys.stdin.readline()
                except (EOFError, KeyboardInterrupt):
                    line = ""
                except BrokenPipeError:  # input()'s prompt, into a pipe nobody reads
                    line = ""
                except Exception as exc:  # said, and the chat ends: a dead thread hung it
                    loop.call_soon_threadsafe(lines.put_nowait, exc)
                    return
                else:
                    if interactive:
                        line += "\n"  # input() strips it; "" alone means end of input
                if line == "":
                    loop.call_soon_threadsafe(lines.put_nowait, None)
                    return
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))

        threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
        # lines not sent for what they hold, and whether input failed: said on stderr, and
        # the chat ends with 2 (as ``send -`` does for such input), not 0
        line_no, refused, unreadable = 0, 0, False
        while True:
            text = await lines.get()
            if isinstance(text, Exception):
                fmt.out(
                    f"bucket-chat: standard input could not be read ({terminal_safe(str(text))});"
                    " leaving the chat",
                    file=sys.stderr,
                )
                unreadable = True
                break
            if text is None or text.strip() in ("/quit", "/exit"):
                break
            line_no += 1
            if not text.strip():
                continue
            if has_lone_surrogate(text):  # undecodable input bytes (surrogateescape)
                refused += 1
                said = f"line {line_no} holds bytes that are not valid UTF-8 text"
                if interactive:  # said where it was typed, and on stderr as it ends
                    _note(output, screen, f"Not sent: {said}.")
                else:
                    fmt.out(f"bucket-chat: not sent: {said}", file=sys.stderr)
                continue
            await client.send(ref, [(MESSAGE, {"body": text, "msgtype": "m.text"})])
        screen.typing = False  # leaving: no line is typed any more
        # typing at a terminal, it left when its output closed: what was typed meanwhile
        dropped = _left_unread(lines) if interactive and output.gone else 0
        if reading is not None:  # leaving: the room's read in the background is not needed
            await stop_tasks([reading])  # its end, not a Ctrl-C meanwhile, is absorbed
        error: str | None = None
        try:
            delivered = await client.within(
                ref.storage_id, client.flush(ref.storage_id, timeout=10)
            )
        except NoAnswerError as exc:
            delivered, error = False, str(exc)
        # as ``send`` says it, with its exit status: refused is not "next time"
        waiting = [] if delivered else await unsent(client, ref.storage_id)
        why = refusal(waiting)
        if why is not None:
            _note(
                output,
                screen,
                f"! some messages are still queued: the storage refused them ({why}); the "
                "next session (or 'bucket-chat sync', or the app) tries again, and fails the "
                "same way until what refused them is fixed",
            )
        elif waiting:
            _note(
                output,
                screen,
                f"! some messages are still queued ({waiting_error(waiting, error)}); they "
                "go out with the next session (or 'bucket-chat sync', or the app)",
            )
    if interactive:
        output.write("\n")
    if dropped:
        fmt.out(
            f"bucket-chat: {dropped} line(s) typed after the chat's output closed were not "
            "sent; send them again",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if refused and interactive:
        fmt.out(
            f"bucket-chat: {refused} line(s) were not sent: they held bytes that are not "
            "valid UTF-8 text",
            file=sys.stderr,
        )
    if refused or unreadable:
        return EXIT_ERROR
    return EXIT_QUEUED if waiting else EXIT_OK


def _stay() -> None:
    """A chat reading piped lines goes on when its output closes: it sends them all."""


def _note(output: LiveOutput, screen: _Screen, text: str) -> None:
    """``text`` said as the chat's own line; on standard error once the output's reader
    has gone: what was not sent is never said only to the null device."""
    if output.gone:
        fmt.out(f"bucket-chat: {text.removeprefix('! ')}", file=sys.stderr)
    else:
        screen.say(text)


def _left_unread(lines: asyncio.Queue[str | Exception | None]) -> int:
    """How many lines typed it leaves without sending, once it left because its output
    closed (the leave queued came before them). A ``/quit`` typed stops the count there:
    what follows it was meant not to be sent."""
    count = 0
    while not lines.empty():
        text = lines.get_nowait()
        if not isinstance(text, str) or text.strip() in ("/quit", "/exit"):
            break
        count += bool(text.strip())
    return count
