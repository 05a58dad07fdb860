"""``bucket-chat outbox``: the messages this device's outbox keeps unsent for a storage,
typed in the app but not signed yet (``Outbox.hold``), listed, and let go one at a time.

Such a message waits for the app to learn where this device's chain continues in its
room; one that can never go out (the key that was to sign it replaced on this device,
too large to sign) would wait for ever, shown "not sent" at every start of the app.
``discard`` lets it go, only while it is still kept unsigned: one signed meanwhile (by
the app or a command's ``send``, which signs the older kept messages of its room first)
is queued, and a signed message is never discarded (the next one links to it).

Nothing else has the text of what is discarded, so it is written out first, exactly as
typed (not cut, not escaped), and the message is discarded only once that write has
succeeded: to ``--to FILE``, to standard output when that is a file, or to a terminal
when the text has nothing that would act on one. A pipe is refused: what reads it may
keep less than all of it (``| head -1`` keeps one line), and the write cannot tell.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import stat
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..osfiles import sync_output, write_atomic
from ..protocol.attachments import message_text
from ..protocol.canonical import b64decode_exact
from ..protocol.event import MESSAGE, Event
from ..protocol.ids import InvalidRoomIdError, check_room_id, key_tag
from ..protocol.untrusted_text import terminal_safe
from ..storage import Storage
from ..sync.client import ChatClient
from ..sync.outbox import Discard, HeldSend, PendingMessage
from . import format as fmt
from .outcome import EXIT_ERROR, EXIT_OK

PREVIEW = 80  # characters of a kept message's text on its line in ``list``


def add_outbox_parser(subparsers: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``outbox list`` and ``outbox discard`` to the ``bucket-chat`` commands;
    ``common`` adds the options every command takes (``-s``)."""
    text = "messages typed in the app and kept unsent on this device: list them, discard one"
    parser = subparsers.add_parser("outbox", help=text, description=text)
    common(parser)
    actions = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    lst = actions.add_parser(
        "list",
        help="show the messages kept unsent (not signed yet) in this device's outbox",
        description="The messages the app keeps unsent in this device's outbox of the "
        "storage, not signed yet, oldest first, each with the ID 'outbox discard' takes; "
        "and how many signed messages wait to be delivered (those cannot be discarded).",
    )
    lst.add_argument("--room-id", help="only those of this room")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    common(lst)
    discard = actions.add_parser(
        "discard",
        help="let one message kept unsent go for good (its exact text is written out first)",
        description="Remove the message kept unsent under ID (outbox list) from this "
        "device's outbox, for good: it was never sent, so nothing else has it. Its exact "
        "text is written first, to --to FILE, or to standard output when that is a file "
        "(> FILE) or a terminal that can show it; when it cannot be written whole (a pipe, "
        "a full disk), nothing is discarded (exit 2, said). Only while it is still "
        "unsigned: one signed meanwhile (by the app, or a command's send) is not discarded "
        "(exit 2, said).",
    )
    discard.add_argument("id", type=int, metavar="ID", help="the message's ID in 'outbox list'")
    discard.add_argument(
        "--to",
        type=Path,
        metavar="FILE",
        help="write its text to FILE (a new file), exactly as typed, before discarding it",
    )
    discard.add_argument("--room-id", help="refuse unless it is a message of this room")
    common(discard)


def _room(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_room_id(value)
    except InvalidRoomIdError as exc:
        raise OutboxUsageError(str(exc)) from exc


class OutboxUsageError(ValueError):
    """A room id that is no room id: one line, exit 2 (``main``)."""


def _text(hold: HeldSend) -> str:
    """What the kept message says: its messages' texts (``message_text``), one a line;
    an event of another kind (a reaction, an edit) by its type."""
    said = [
        message_text(draft[1]) if draft[0] == MESSAGE else f"({draft[0]} event)"
        for draft in hold.drafts
    ]
    return "\n".join(said)


def _key(sender_key: str) -> str:
    raw = b64decode_exact(sender_key, 32)
    return key_tag(raw) if raw is not None else "?"


def _typed(created: float) -> str:
    return dt.datetime.fromtimestamp(created).astimezone().strftime("%Y-%m-%d %H:%M")


async def cmd_outbox(args: argparse.Namespace, storage: Storage) -> int:
    room_id = _room(args.room_id)
    async with ChatClient.session(storage, index=False) as client:
        sid = client.session_storage
        if args.outbox_command == "discard":
            return await _discard(client, sid, args.id, room_id, storage, args.to)
        kept = [h for h in await client.held(sid) if room_id in (None, h.room_id)]
        waiting = [p for p in await client.pending(sid) if room_id in (None, p.room_id)]
    if args.json:
        doc = {
            "kept": [
                {
                    "id": h.seq,
                    "room_id": h.room_id,
                    "user_id": h.user_id,
                    "sender_key": h.sender_key,
                    "typed": dt.datetime.fromtimestamp(h.created, dt.UTC).isoformat(),
                    "text": _text(h),
                }
                for h in kept
            ],
            # signed, waiting to be delivered (``sync``): never discarded
            "signed_waiting": len(waiting),
        }
        print(fmt.json_text(doc))
        return EXIT_OK
    where = terminal_safe(storage.describe())
    if not kept:
        fmt.out(f"No message is kept unsent in this device's outbox of {where}.")
    else:
        fmt.out(f"Kept unsent (not signed yet) in this device's outbox of {where}:")
    for h in kept:
        first = terminal_safe(_text(h).split("\n", 1)[0], limit=PREVIEW)
        fmt.out(
            f"  {h.seq:>4}  room {terminal_safe(h.room_id)!r}  as {terminal_safe(h.user_id)}  "
            f"key {_key(h.sender_key)}  typed {_typed(h.created)}  {first}"
        )
    if kept:
        fmt.out(
            "'bucket-chat outbox discard ID [--to FILE]' lets one go for good, once its "
            "exact text is written out; the app sends the others once it has read their "
            "room, unless their key is no longer this device's."
        )
    if waiting:
        fmt.out(
            f"{len(waiting):,} signed message(s) wait to be delivered ('bucket-chat sync' "
            "or the app delivers them); a signed message cannot be discarded."
        )
    return EXIT_OK


async def _discard(
    client: ChatClient,
    sid: str,
    seq: int,
    room_id: str | None,
    storage: Storage,
    to: Path | None,
) -> int:
    """Write the kept message's exact text out (``_write_text``), then discard it; when
    the write fails, nothing is discarded (review rev1: the text was deleted first, then
    printed cut at 20,000 characters and escaped, and a pipe's reader could drop it)."""
    kept = {h.seq: h for h in await client.held(sid)}
    hold = kept.get(seq)
    if hold is not None and room_id is not None and hold.room_id != room_id:
        return _refused(
            f"not discarded: message {seq} is kept for room {terminal_safe(hold.room_id)!r}, "
            f"not {terminal_safe(room_id)!r}"
        )
    written = ""
    if hold is not None:
        try:
            written = _write_text(_text(hold), to)
        except TextNotWrittenError as exc:
            return _refused(f"not discarded: message {seq} is still kept; {exc}")
        room_id = hold.room_id  # the message that was written, nothing else
    answer = await client.discard_kept(sid, seq, room_id)
    if answer.outcome is Discard.DISCARDED and answer.hold is not None:
        gone = answer.hold
        where = (
            # the log could not be emptied: said, never "gone" (``HeldDiscard.in_log``)
            "a copy of its text stays in the outbox's log file on this device until the "
            "app and the command line have both closed the outbox (another Bucket Chat "
            "program was reading it)"
            if answer.in_log
            else "it is gone from this device"
        )
        if hold is None:
            # Kept by the app between the look and the discard (an ID not given yet):
            # its text is written all the same, after the fact.
            try:
                written = _write_text(_text(gone), to)
            except TextNotWrittenError as exc:
                written = f"could not be written ({exc})"
        fmt.out(
            f"Discarded message {seq}, kept unsent for room {terminal_safe(gone.room_id)!r}; "
            f"{where}. Its text {written}.",
            file=sys.stderr,
        )
        return EXIT_OK
    if answer.outcome is Discard.SIGNED:
        return _refused(
            f"not discarded: message {seq} was signed meanwhile by another send of this "
            f"device (the app, or a command's send) and "
            f"{_signed_as(answer.signed, await client.pending(sid))}; a signed message "
            "cannot be discarded"
        )
    return _refused(
        f"no message {seq} is kept unsent in this device's outbox of "
        f"{terminal_safe(storage.describe())}; 'bucket-chat outbox list' shows those that are"
    )


def _signed_as(signed: Sequence[Event], waiting: Iterable[PendingMessage]) -> str:
    """What became of a kept message another send signed (review rev1: the note of what
    it was signed as outlives its delivery by hours, and "is queued" was said of one
    long stored): queued while any of its events waits in the outbox, else sent."""
    last = terminal_safe(signed[-1].event_id) if signed else "an event"
    ids = {ev.event_id for ev in signed}
    if any(p.event_id in ids and p.state != "sent" for p in waiting):
        return f"is queued to be sent as {last}"
    return f"was sent already, as {last}"


class TextNotWrittenError(Exception):
    """The kept text could not be written whole: the message must not be discarded."""


def _write_text(text: str, to: Path | None) -> str:
    """Write ``text`` exactly (UTF-8; a lone surrogate an old version kept as such, as
    ``surrogatepass`` writes it) to ``to``, a new file, or to standard output: a file
    there is synced to disk, a terminal is given it only when no character of it would
    act on the terminal (``_shows_whole``), a pipe is refused (its reader may keep less
    than all of it, and the write cannot tell). Returns how the closing line says where
    it went; raises ``TextNotWrittenError`` (nothing discarded) when it was not."""
    data = text.encode("utf-8", "surrogatepass")
    if to is not None:
        try:
            write_atomic(to, data, overwrite=False)
        except FileExistsError as exc:
            raise TextNotWrittenError(
                f"its text was not written: {terminal_safe(to)} exists already (--to "
                "writes a new file)"
            ) from exc
        except OSError as exc:
            raise TextNotWrittenError(
                f"its text could not be written to {terminal_safe(to)}: "
                f"{terminal_safe(exc.strerror or exc)}"
            ) from exc
        return f"was written to {terminal_safe(to)}"
    try:
        fd: int | None = sys.stdout.fileno()
    except (OSError, ValueError):
        fd = None  # a stream that is no file (a test's capture): written as to a file
    mode = os.fstat(fd).st_mode if fd is not None else 0
    tty = fd is not None and os.isatty(fd)
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise TextNotWrittenError(
            "its text was not written: standard output is a pipe, and what reads it may "
            "keep less than all of it (| head keeps its first lines); write it to a file "
            "with --to FILE (or > FILE)"
        )
    if tty and not _shows_whole(text):
        raise TextNotWrittenError(
            "its text was not shown: it has characters a terminal would act on or not "
            "show, so it cannot be shown exactly here; write it to a file with --to FILE "
            "(or > FILE)"
        )
    if tty and not text.endswith("\n"):
        data += b"\n"  # the prompt after it on a line of its own
    stream = sys.stdout
    try:
        stream.flush()
        if isinstance(stream, io.TextIOWrapper):
            stream.buffer.write(data)
            stream.buffer.flush()
        else:
            stream.write(data.decode("utf-8", "surrogatepass"))
            stream.flush()
        if fd is not None and stat.S_ISREG(mode):
            sync_output(fd)
    except OSError as exc:
        fmt.silence_stdout()  # what is left in its buffer must not fail again at exit
        raise TextNotWrittenError(
            f"its text could not be written to standard output: "
            f"{terminal_safe(exc.strerror or exc)}"
        ) from exc
    return "is above" if tty else "was written to standard output"


def _shows_whole(text: str) -> bool:
    """Whether a terminal shows ``text`` as it is: lines and tabs, and no character
    ``terminal_safe`` would escape (controls, escapes, bidi, invisible letters)."""
    return all(
        ch in "\n\t" or unicodedata.category(ch) == "Zs" or terminal_safe(ch) == ch for ch in text
    )


def _refused(said: str) -> int:
    """Nothing was discarded: one line on stderr, exit 2."""
    fmt.out(f"bucket-chat: {said}", file=sys.stderr)
    return EXIT_ERROR
