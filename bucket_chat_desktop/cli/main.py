"""``bucket-chat``: a scriptable client for Bucket Chat rooms.

Exit status: 0 success (for ``verify``: the room is clean), 1 the room has findings (for
``test-storage`` and ``storage test``: the storage works with weaker guarantees: only the
separate overwrite probe got through, or its notification queue does not answer), 2 a
usage, key or storage problem (one line on stderr; for ``test-storage`` and ``storage
test``: a step of the check failed, named in its FAIL line, as a write that got through
over the test object does; for ``chat``: a line piped or typed in was not sent for the
bytes it holds, or its input could not be read, said on stderr; for ``outbox discard``:
nothing was discarded, the message not kept or signed meanwhile, or its text not written
whole first, said), 3 a message (sent, or
typed into ``chat``) is safely queued in the outbox but could not be delivered yet, 4
(``sync``) the storage did not answer in time: what is shown is this device's copy, and
the outbox keeps what it could not deliver. Output whose reader has gone (``| head``) ends a command
quietly, with 0 (``chat`` typed into at a terminal: as on ``/quit``; a line typed after
it is not sent, said on stderr, with 2). ``chat`` whose input is piped sends it to its
end first, and says on stderr what it could not send or deliver.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from typing import Any, TextIO

from .. import paths
from ..export import ExportError
from ..keys import KeysError, load_or_create_identity, open_key_store
from ..keys.passphrase import claim_env_passphrase
from ..protocol import relation_drafts as drafting
from ..protocol.audit import AuditResult, TrustState
from ..protocol.event import MEMBER, MESSAGE, Event, has_lone_surrogate
from ..protocol.findings import NOT_READ, Kind, Severity
from ..protocol.ids import InvalidRoomIdError, check_room_id, room_option
from ..protocol.metadata import check_signer
from ..protocol.relations import Relations
from ..protocol.room_names import NamedRoom, name_lookalikes
from ..protocol.room_state import others_as_note
from ..protocol.untrusted_text import RoomIds, display_name_safe, terminal_safe
from ..storage import Storage, StorageError, open_storage
from ..sync.client import ChatClient, RoomRef
from ..sync.events import EventsAppended, RoomLoaded
from ..sync.room_objects import RoomSummary
from ..sync.room_state import RoomView
from ..sync.rooms import join_content
from ..sync.stopping import stop_tasks
from ..sync.watched import (
    DEADLINE_ENV,
    INTERACTIVE_DEADLINE,
    NoAnswerError,
    clock_text,
    interactive_deadline,
)
from ..sync.writer import RoomError
from . import devices, key_use, related
from . import format as fmt
from .export_cmd import add_export_parser, run_export
from .live import (
    LiveOutput,
    LivePrinter,
    finding_key,
    metadata_unusable,
    not_read,
    room_findings,
    room_title_of,
)
from .outbox_cmd import OutboxUsageError, add_outbox_parser, cmd_outbox
from .outcome import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_QUEUED,
    refusal,
    unsent,
    waiting_error,
)
from .selftest import CHECK_EXIT_STATUS
from .storage_cmd import add_storage_parser, cmd_storage

SEND_TIMEOUT = 30.0
VERIFY_NO_ANSWER = 10.0  # verify reads everything fresh: it fails (exit 2) after this long
MAX_BATCH = 1000


class UsageError(Exception):
    pass


class _SafeFormatter(logging.Formatter):
    """Log lines quote object names and error text from storage: escaped like all
    other output before they reach the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), multiline=True)


def _storage_arg(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument(
        "-s",
        "--storage",
        metavar="PATH_OR_URL",
        default=None if top else argparse.SUPPRESS,
        help="folder (or bucket URL) holding the rooms; default: %(default)s"
        if top
        else argparse.SUPPRESS,
    )


def _version() -> str:
    from .. import __version__  # read from the installed metadata only when asked (~30 ms)

    return f"bucket-chat {__version__}"


class _VersionAction(argparse.Action):
    """``--version``: argparse's own action wants the text when the parser is built, which
    made every command read the package metadata; this one reads it when used."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kw: Any) -> None:
        fmt.out(_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bucket-chat",
        description="Serverless, tamper-evident chat over a shared folder or bucket.",
    )
    _storage_arg(parser, top=True)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        _storage_arg(p, top=False)
        return p

    def room(p: argparse.ArgumentParser) -> None:
        p.add_argument("--room-id", required=True, help="the room's id")

    def user(p: argparse.ArgumentParser) -> None:
        p.add_argument("--user-id", required=True, help="who you are, e.g. alice@example.com")

    command("version", "print the version")
    command("test-crypto", "self-test signing, verification and hashing")
    p = command("test-storage", "check that the storage works, as the app's Test connection does")
    p.epilog = CHECK_EXIT_STATUS
    room(p)
    p = command("setup-keys", "create this device's signing key for a user")
    user(p)
    p.add_argument("--force", action="store_true", help="replace an existing key (dangerous)")
    p = command("show-key", "print this device's public key and fingerprint")
    user(p)
    p = command("create-room", "create a room (you sign its metadata)")
    room(p)
    p.add_argument("--name", required=True, help="the room's display name")
    user(p)
    p.add_argument("--displayname", help="your display name in the room")
    command("rooms", "list the rooms in the storage")
    p = command("send", "send one message (for scripts)")
    room(p)
    user(p)
    p.add_argument("--displayname", help="your display name, used when you first join")
    p.add_argument("text", nargs="+", help="the message; '-' reads it from standard input")
    p.add_argument(
        "--each-line",
        action="store_true",
        help="send every non-empty line as its own message (in one segment)",
    )
    p.add_argument(
        "--reply-to",
        metavar="EVENT_ID",
        help="answer this message of the room (history --json shows event ids)",
    )
    p = command(
        "react",
        "react to a message with an emoji or a short word (counted once per person and text)",
    )
    room(p)
    user(p)
    p.add_argument("event_id", metavar="EVENT_ID", help="the message to react to")
    p.add_argument("reaction", metavar="TEXT", help="e.g. 👍 (1 to 64 characters)")
    p.add_argument("--remove", action="store_true", help="take back your reaction with TEXT")
    p = command("edit", "replace the text of one of your messages (the original stays stored)")
    room(p)
    user(p)
    p.add_argument("event_id", metavar="EVENT_ID", help="your message")
    p.add_argument("text", nargs="+", help="the new text; '-' reads it from standard input")
    p = command(
        "delete",
        "delete one of your messages or reactions: clients that follow the protocol hide "
        "it, but copies remain in the storage (write-once) and wherever it was copied",
    )
    room(p)
    user(p)
    p.add_argument("event_id", metavar="EVENT_ID", help="your message or reaction")
    p.add_argument("--reason", help="why (shown instead of the message)")
    p = command("history", "print the room's messages with their trust state")
    room(p)
    p.add_argument("--limit", type=int, default=None, help="only the newest N events")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command(
        "search",
        "find messages this device has read (its index of the storage), newest first",
    )
    p.add_argument("query", nargs="+", help='words to find (all of them); "a phrase" in quotes')
    p.add_argument("--room-id", help="only in this room")
    p.add_argument("--limit", type=int, default=20, help="at most N messages (default 20)")
    p.add_argument(
        "--before",
        type=int,
        metavar="KEY",
        help="the next older messages: the key the page before ended with",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("members", "list the room's members, their display names and devices")
    room(p)
    p.add_argument("--all", action="store_true", help="also those who left or were removed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("verify", "audit the room: signatures, chains, keys; exit 0 only when clean")
    room(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("add-device", "let another device of yours sign in this room")
    room(p)
    user(p)
    p.add_argument("--key", required=True, help="the other device's public key (show-key)")
    p.add_argument("--device-name", help="a name for that device")
    p = command(
        "accept-device",
        "on a new device: accept the introduction by your other device (run add-device there "
        "first); needed only if this device wrote in the room before it was introduced",
    )
    room(p)
    user(p)
    p.add_argument("--key", required=True, help="the introducing device's public key")
    p = command("sync", "fetch and verify the room's new messages, deliver the outbox")
    p.epilog = (
        "Exit status: 0 read and delivered; 2 usage, key or storage error; 3 read, but "
        "the outbox could not deliver everything yet (it stays queued); 4 the storage did "
        f"not answer within the interactive deadline ({INTERACTIVE_DEADLINE:g} s for one "
        f"request, or {DEADLINE_ENV}): the counts are this device's copy, and what "
        "is queued stays in the outbox for the next sync."
    )
    room(p)
    p.add_argument("--follow", action="store_true", help="keep running and print new messages")
    p = command("chat", "chat interactively; incoming messages appear as they arrive")
    room(p)
    user(p)
    p.add_argument("--displayname", help="your display name, used when you first join")
    add_export_parser(command)
    add_storage_parser(sub, lambda p: _storage_arg(p, top=False))
    add_outbox_parser(sub, lambda p: _storage_arg(p, top=False))
    return parser


# -- helpers ------------------------------------------------------------------------------


def _storage(args: argparse.Namespace) -> Storage:
    spec = args.storage or os.environ.get("BUCKET_CHAT_STORAGE") or str(paths.default_store_dir())
    return open_storage(spec)


def _room_id(args: argparse.Namespace) -> str:
    try:
        return check_room_id(args.room_id)
    except InvalidRoomIdError as exc:
        raise UsageError(str(exc)) from exc


def _identity(user_id: str, *, create: bool = False) -> Any:
    store = open_key_store(user_id=user_id)
    identity, created = load_or_create_identity(store, user_id, create=create)
    return identity, created, store


async def _room_found(
    client: ChatClient, room_id: str, seconds: float, *, fresh: bool = False
) -> bool:
    """Whether the room exists. A room this device knows (index, outbox) is not checked
    again; otherwise the storage is asked, giving up after ``seconds`` without an answer
    (``StorageError``: the check could not be made, so nothing was done). ``fresh``: the
    command reads the storage only (``verify``), whatever this device kept."""
    ref = client.room(room_id)
    if await client.knows_room(ref):
        return True
    try:
        return await client.within(ref.storage_id, client.room_exists(ref), seconds)
    except NoAnswerError as exc:
        # ``verify`` keeps no copy open: "this device has no copy" was said right after
        # ``history`` had shown this device's copy (red team rt52)
        then = (
            "nothing was verified (verify reads the storage, never this device's copy)"
            if fresh
            else "this device has no copy of it, so nothing was done"
        )
        raise StorageError(f"cannot check that room {room_id!r} exists: {exc}; {then}") from exc


async def _require_room(
    storage: Storage, room_id: str, *, client: ChatClient, seconds: float, fresh: bool = False
) -> None:
    """The room must exist (``_room_found``)."""
    if not await _room_found(client, room_id, seconds, fresh=fresh):
        raise _no_such_room(storage, room_id)


def _no_such_room(storage: Storage, room_id: str) -> RoomError:
    return RoomError(
        f"room {room_id!r} does not exist in {storage.describe()}: "
        f"create it with 'bucket-chat create-room {room_option(room_id)} --name ...'"
    )


def _clock(wall: float | None) -> str:
    if wall is None:
        return "never completely"
    stamp = dt.datetime.fromtimestamp(wall).astimezone()
    return stamp.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _stale_note(why: BaseException | str, last_read: float | None) -> str:
    return (
        f"the storage did not answer ({terminal_safe(str(why))}); showing what this device "
        f"verified, last read {_clock(last_read)}"
    )


def _print_findings(result: AuditResult, out: Any) -> None:
    if result.findings:
        fmt.out(f"Findings ({len(result.findings)}):", file=out)
        for f in result.findings:
            fmt.out(fmt.finding_line(f), file=out)


# -- commands -----------------------------------------------------------------------------


async def cmd_test_crypto(args: argparse.Namespace) -> int:
    from .selftest import crypto_selftest

    return crypto_selftest()


async def cmd_test_storage(args: argparse.Namespace) -> int:
    from .selftest import storage_selftest

    return await storage_selftest(_storage(args), _room_id(args))


async def cmd_setup_keys(args: argparse.Namespace) -> int:
    """Create this device's key. ``--force`` replaces one only if it wrote in no room this
    device knows, and keeps a backup of it (red team rt72: replacing a key that wrote made
    every reader show all its user's messages key-changed, for good; ``key_use``)."""
    from ..keys import Identity

    store = open_key_store(user_id=args.user_id)
    existing = store.load(args.user_id)
    if existing is not None and not args.force:
        identity, _, _ = _identity(args.user_id)
        fmt.out(f"A key for {args.user_id} already exists on this device ({store.name}).")
        fmt.out(f"  public key:  {identity.public_key_b64}")
        fmt.out(f"  fingerprint: {identity.fingerprint}")
        fmt.out(
            "Keep it: it is what the rooms know you by. --force replaces it only if it "
            "has written in no room this device knows (it keeps a backup of the old key); "
            "for another key, set up another device and introduce it (add-device)."
        )
        return EXIT_OK
    backup: tuple[Any, str] | None = None
    if existing is not None:
        old = Identity(args.user_id, existing)
        _refuse_replacing_a_key_that_wrote(old)
        backup = key_use.keep_backup(store, old, paths.data_dir() / "keys")
        store.delete(args.user_id)
    identity, _, _ = _identity(args.user_id, create=True)
    fmt.out(f"Created a signing key for {args.user_id}, stored in {store.name}.")
    fmt.out(f"  public key:  {identity.public_key_b64}")
    fmt.out(f"  fingerprint: {identity.fingerprint}")
    _tell_kept_for_other_keys(args.user_id, identity.public_key_b64)
    if backup is not None:
        path, opens = backup
        fmt.out(
            f"The old key was kept in {path} (it opens with {opens}): it wrote in no room "
            "this device knows. If it wrote elsewhere (another device, a storage not used "
            "here), readers there will take the new key for someone else writing as you: "
            "import that backup on a device and introduce the new key from it (add-device)."
        )
    return EXIT_OK


def _refuse_replacing_a_key_that_wrote(old: Any) -> None:
    """``UsageError`` when ``old`` wrote in a room this device knows, or has messages
    kept by the app for it to sign (``key_use.kept_sends``: the new key could not sign
    them, and nothing would ever send or show them: red team rt92), or when that cannot
    be told: nothing is changed then."""
    try:
        used = key_use.rooms_written_by(paths.data_dir(), old.public_key_b64)
        kept = key_use.kept_sends(paths.data_dir(), old.public_key_b64)
    except key_use.KeyUseUnknown as exc:
        raise UsageError(
            f"not replacing the key of {old.user_id}: cannot tell where it wrote ({exc}). "
            "Nothing was changed"
        ) from exc
    if not used and not kept:
        return
    said = f"not replacing the key of {old.user_id}: "
    them = "it" if sum(count for _, _, count in kept) == 1 else "them"
    if kept:
        said += (
            f"{_kept_count(kept)} typed in the app {_waits(kept)} on this device, not sent "
            f"yet, for this key to sign ({_kept_where(kept)}). Only this key can sign "
            f"{them}, and this device's outbox is the only copy: open the app and let it "
            f"send {them} (it does once the room is read; the room must be in its list)"
            + ("" if used else ", then run this again")
        )
    if used:
        listed = ", ".join(
            f"{room!r}" + (f" in {terminal_safe(url)}" if url else "") for url, room in used[:5]
        )
        more = f" and {len(used) - 5} more" if len(used) > 5 else ""
        said += ("; and " if kept else "") + (
            f"it wrote in {len(used)} room(s) this device knows ({terminal_safe(listed)}"
            f"{more}). Readers would take a new key nobody introduced for someone else "
            "writing as you and show all your messages there, old and new, as KEY CHANGED; "
            "once this key is deleted nothing can introduce the new one. Keep this key. To "
            "sign with another key, make it as another device (another machine, or "
            "BUCKET_CHAT_HOME=<another folder>: setup-keys there), introduce it from here "
            "in each room with 'bucket-chat add-device --room-id R --key <its key>' and "
            "accept it there (accept-device)"
        )
    raise UsageError(said + ". Nothing was changed")


def _kept_count(kept: list[tuple[str, str, int]]) -> str:
    n = sum(count for _, _, count in kept)
    return f"{n:,} message{'' if n == 1 else 's'}"


def _waits(kept: list[tuple[str, str, int]]) -> str:
    return "waits" if sum(count for _, _, count in kept) == 1 else "wait"


def _kept_where(kept: list[tuple[str, str, int]]) -> str:
    """How many of ``key_use.kept_sends`` are in which room (the first five rooms)."""
    listed = ", ".join(
        f"{count:,} in room {room!r}" + (f" in {url}" if url else "")
        for url, room, count in kept[:5]
    )
    more = f" and {len(kept) - 5} more room(s)" if len(kept) > 5 else ""
    return terminal_safe(listed) + more


def _tell_kept_for_other_keys(user_id: str, key_text: str) -> None:
    """Say which messages typed in the app as ``user_id`` wait for a key that is no longer
    this device's (replaced, or lost with its key store before ``setup-keys`` made
    ``key_text``): the new key cannot sign them; the app shows them with their text."""
    try:
        kept = key_use.kept_for_other_keys(paths.data_dir(), user_id, key_text)
    except key_use.KeyUseUnknown as exc:
        fmt.out(
            f"bucket-chat: could not check this device's outboxes for messages kept unsent: {exc}",
            file=sys.stderr,
        )
        return
    if kept:
        fmt.out(
            f"bucket-chat: {_kept_count(kept)} typed in the app as {terminal_safe(user_id)} "
            f"{_waits(kept)} on this device, not sent, for a key it no longer has "
            f"({_kept_where(kept)}): "
            "the new key cannot sign them. The app shows each in its room as not sent, with "
            "its text, so that you can send it again or discard it ('bucket-chat outbox "
            "list' lists them, 'outbox discard ID' lets one go); restoring the old key on "
            "this device sends those kept as they are.",
            file=sys.stderr,
        )


async def cmd_show_key(args: argparse.Namespace) -> int:
    identity, _, store = _identity(args.user_id)
    fmt.out(f"user:        {identity.user_id}")
    fmt.out(f"public key:  {identity.public_key_b64}")
    fmt.out(f"fingerprint: {identity.fingerprint}")
    fmt.out(f"stored in:   {store.name}")
    return EXIT_OK


async def cmd_create_room(args: argparse.Namespace) -> int:
    storage = _storage(args)
    room_id = _room_id(args)
    identity, _, _ = _identity(args.user_id)

    async def create(client: ChatClient, ref: RoomRef) -> list[Event]:
        await _create_room(client, ref, args.name)
        fmt.out(
            f"Created room {room_id!r} ({terminal_safe(args.name, limit=fmt.TITLE_LIMIT)}) "
            f"in {terminal_safe(storage.describe())}."
        )
        return []

    return await _send_and_deliver(
        storage, room_id, identity, [], args.displayname, quiet=True, queue=create
    )


async def _create_room(client: ChatClient, ref: RoomRef, name: str) -> None:
    """Create the room (``ChatClient.create_room``: the one way every room is made, the
    app's and the wizard's too), giving up once one request has waited the interactive
    deadline without an answer: a person waits for it. A request already sent may still
    arrive (a metadata file, this device's join in the outbox); the error says where to
    look rather than that nothing was done."""
    try:
        await client.within(
            ref.storage_id, client.create_room(ref.storage_id, ref.room_id, name, show=False)
        )
    except NoAnswerError as exc:
        raise StorageError(
            f"cannot create room {ref.room_id!r}: {exc}; a request already sent may still "
            "arrive: 'bucket-chat rooms' shows whether the room was made"
        ) from exc


async def _send_and_deliver(
    storage: Storage,
    room_id: str,
    identity: Any,
    drafts: list[tuple[str, dict[str, Any]]],
    displayname: str | None,
    *,
    quiet: bool = False,
    check_room: bool = False,
    queue: Callable[[ChatClient, RoomRef], Awaitable[list[Event]]] | None = None,
) -> int:
    """Commit to the outbox first (no network access when this device knows the room and
    its own chain head), then deliver it with anything queued before — giving up as soon
    as one request has waited ``INTERACTIVE_DEADLINE`` seconds without an answer: the
    message is safe in the outbox and exit 3 says so. The index is opened (read only
    here) so the events can witness what this device has read."""
    async with ChatClient.session(storage, displayname=displayname) as client:
        ref = client.room(room_id)
        if check_room:
            await _require_room(storage, room_id, client=client, seconds=interactive_deadline())
        if callable(identity):
            identity = identity()
        if identity is not None:
            await client.sign_as(identity.user_id, identity.signing_key)
        if queue is not None:  # what to commit is more than drafts (a new room: sync.rooms)
            events = await queue(client, ref)
        else:
            events = await client.send(ref, drafts)
        along = [e for e in client.held_signed(ref.storage_id) if e.type == MESSAGE]
        if along:
            fmt.out(
                f"bucket-chat: also sent {len(along)} message(s) kept by the app for this "
                "room, before this one (the order they were typed in).",
                file=sys.stderr,
            )
        error: str | None = None
        try:
            delivered = await client.within(
                ref.storage_id, client.flush(ref.storage_id, timeout=SEND_TIMEOUT)
            )
        except NoAnswerError as exc:
            delivered, error = False, str(exc)
        waiting = [] if delivered else await unsent(client, ref.storage_id)
        why = refusal(waiting)
        if why is not None:
            # Refused, not unanswered: "will be delivered by the next sync" was not so
            # (red team rt57: a file planted where a day's folder must be)
            fmt.out(
                f"bucket-chat: not delivered: the storage refused it ({why})."
                f" {len(waiting)} event(s) wait in the outbox; 'bucket-chat sync' (or the "
                "app) tries again, and fails the same way until what refused it is fixed.",
                file=sys.stderr,
            )
            return EXIT_QUEUED
        if waiting:
            fmt.out(
                f"bucket-chat: queued, not delivered yet ({waiting_error(waiting, error)})."
                f" {len(waiting)} event(s) wait in the outbox and will be delivered by the "
                "next 'bucket-chat sync' (or any command that sends) on this storage, or by "
                "the app.",
                file=sys.stderr,
            )
            return EXIT_QUEUED
    if not quiet:
        sent = [e for e in events if e.type == MESSAGE] or events
        what = sent[-1].event_id if len(sent) == 1 else f"{len(sent)} events"
        fmt.out(f"Sent {what}")
    return EXIT_OK


async def cmd_rooms(args: argparse.Namespace) -> int:
    """The storage's rooms (``ChatClient.storage_rooms``, as the app's join dialog lists
    them); if it does not answer within ``INTERACTIVE_DEADLINE``, the rooms this device's
    index knows, with a note saying so. A storage that refuses is an error (exit 2).
    Every room the listing gave is printed: one whose metadata got no answer in time
    with the name this device's index last recorded, if any, and why its name was not
    read, and a note on stderr (exit 0, as for the index's rooms: red team rt95, one
    stalled room printed no room at all). The rooms share the deadline: once a read
    got no answer and none has been answered since, the rest are printed so unasked
    (review rev1: a storage silent after the listing took ≈ 1.2 s for every 8 rooms)."""
    storage = _storage(args)
    async with ChatClient.session(storage, outbox=False) as client:
        found = await client.storage_rooms(client.session_storage, limit=None, activity=False)
    if found.from_cache and not found.no_answer:
        raise StorageError(f"cannot list the rooms: {found.error}")
    unread = [] if found.from_cache else [r for r in found.rooms if _name_unread(r)]
    if found.from_cache:
        fmt.out(f"bucket-chat: {_stale_note(found.error, found.last_read)}", file=sys.stderr)
    elif not found.rooms:
        fmt.out(f"No rooms in {terminal_safe(storage.describe())}.")
    elif unread:
        rooms = f"{len(unread)} room{'s' if len(unread) != 1 else ''}"
        fmt.out(
            f"bucket-chat: the storage did not answer in time for the name of {rooms} "
            f"({terminal_safe(unread[0].problem, limit=fmt.TITLE_LIMIT)}); they are listed "
            "with the name this device last read, if any. Run 'bucket-chat rooms' again "
            "to read them.",
            file=sys.stderr,
        )
    # names that look like another room's name or id, as the app's join dialog marks them
    looks = name_lookalikes(
        NamedRoom(r.room_id, r.room_id, display_name_safe(r.name) if r.name else "")
        for r in found.rooms
    )
    for room in found.rooms:
        mark = fmt.LOOKALIKE_NAME_MARK if room.room_id in looks else ""
        if found.from_cache:  # a name the index recorded, unchecked like every other
            label = terminal_safe(room.name, limit=fmt.TITLE_LIMIT) if room.name else ""
            label += f" {mark}" if mark else ""
        elif _name_unread(room):  # no answer for its metadata: the index's name, if any
            no_answer = "name not read now: no answer in time"
            label = f"({no_answer})"
            if room.name:
                known = terminal_safe(room.name, limit=fmt.TITLE_LIMIT)
                known += f" {mark}" if mark else ""
                label = f"{known} (as this device last read it; {no_answer})"
        else:
            label = (
                fmt.room_title(room.metadata, room.room_id, mark=mark)
                if room.metadata
                else "(no metadata)"
            )
            # A borrowed or unreadable metadata file: as the join dialog says. Metadata that
            # was used says what is wrong with its signature in its title already.
            if room.problem and room.metadata is None:
                why = terminal_safe(room.problem, limit=fmt.TITLE_LIMIT)
                label += f"; its metadata could not be used: {why}"
        fmt.out(f"{terminal_safe(room.room_id):32} {label}".rstrip())
    if looks:
        fmt.out(f"\nNames marked {fmt.LOOKALIKE_NAME_MARK} may pass for another room:")
        for room in found.rooms:
            if room.room_id in looks:
                fmt.out(f"  {terminal_safe(room.room_id)}: {terminal_safe(looks[room.room_id])}")
    return EXIT_OK


def _name_unread(room: RoomSummary) -> bool:
    """Whether the room's metadata was not read for a passing reason (no answer): not
    one whose metadata is missing while its activity's listing got no answer."""
    return not room.name_read


def _message_texts(args: argparse.Namespace) -> list[str]:
    if args.text == ["-"]:
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text
    else:
        text = " ".join(args.text)
    texts = [t for t in text.splitlines() if t.strip()] if args.each_line else [text]
    if not texts or not all(t.strip() for t in texts):
        raise UsageError("refusing to send an empty message")
    if len(texts) > MAX_BATCH:
        raise UsageError(f"at most {MAX_BATCH} messages at once")
    if any(has_lone_surrogate(t) for t in texts):  # surrogateescape of undecodable bytes
        raise UsageError("the message holds bytes that are not valid UTF-8 text; nothing sent")
    return texts


async def cmd_send(args: argparse.Namespace) -> int:
    storage = _storage(args)
    room_id = _room_id(args)
    texts = _message_texts(args)
    if args.reply_to is not None:
        parent = _target_id(args.reply_to, room_id)

        def reply(target: drafting.Target, identity: Any) -> drafting.Plan:
            return drafting.reply(target, texts)

        return await _relate(args, parent, reply, displayname=args.displayname, say="Sent")
    drafts = [(MESSAGE, {"body": t, "msgtype": "m.text"}) for t in texts]
    return await _send_and_deliver(
        storage,
        room_id,
        lambda: _identity(args.user_id)[0],  # loaded once the room is known to exist
        drafts,
        args.displayname,
        check_room=True,
    )


# -- relations (PROTOCOL.md section 18) -------------------------------------------------------


def _target_id(event_id: str, room_id: str) -> str:
    """Refused before anything is read: a relation only points into its own room."""
    if not event_id.startswith(room_id + "::") or len(event_id) <= len(room_id) + 2:
        raise UsageError(
            f"{event_id!r} is not an event of room {room_id!r} (its event ids start with "
            f"'{room_id}::'; 'bucket-chat history {room_option(room_id)} --json' lists them)"
        )
    return event_id


async def _read_room(
    client: ChatClient, ref: RoomRef, what: str
) -> tuple[RoomView, AuditResult, Relations]:
    """Read what is new in the room (through this device's index) and verify it. When the
    storage does not answer, the room as this device last read it decides (what is sent
    waits in the outbox); ``what`` says what the copy was needed for when there is none."""
    room_id = ref.room_id
    try:
        await client.within(ref.storage_id, client.open_room(ref, wait=True))
        view = await client.room_view(ref)
    except NoAnswerError as exc:
        view = await client.cached_room(ref)
        if view is None or view.result is None:
            raise StorageError(
                f"{exc}; this device has no copy of room {room_id!r} {what}, so nothing was done"
            ) from exc
        fmt.out(f"bucket-chat: {_stale_note(exc, await client.last_read(ref))}", file=sys.stderr)
    return _read_whole(view, room_id)


async def _read_target(client: ChatClient, ref: RoomRef, event_id: str) -> drafting.Target:
    """Read the room (``_read_room``) and find ``event_id`` in it."""
    room_id = ref.room_id
    view, result, rel = await _read_room(client, ref, f"to find {event_id!r} in")
    try:
        shown = await client.event_by_id(ref, result, event_id)  # as the app finds it
    except drafting.Refused as exc:  # an id shown more than once: names no one row
        raise UsageError(str(exc)) from exc
    if shown is None:
        note = " (part of the room could not be read)" if view.partial else ""
        raise UsageError(f"no event {event_id!r} in room {room_id!r}{note}; nothing was sent")
    if not isinstance(shown.event, Event):
        raise UsageError(f"this device cannot read {event_id!r} now; nothing was sent")
    return drafting.Target.of(event_id, shown.event, rel, result)


async def _relate(
    args: argparse.Namespace,
    target_id: str,
    plan_for: Callable[[drafting.Target, Any], drafting.Plan],
    unchanged: Callable[[drafting.Unchanged], str] | None = None,
    *,
    displayname: str | None = None,
    say: str,
) -> int:
    """Find the target, let ``plan_for`` refuse (``relation_drafts.Refused``) or say what
    to send (nothing: already so, worded by ``unchanged``), then send through the outbox
    like every other command."""
    storage = _storage(args)
    room_id = _room_id(args)
    sent: list[Event] = []
    noop: list[str] = []
    notes: list[str] = []

    async def queue(client: ChatClient, ref: RoomRef) -> list[Event]:
        identity = _identity(args.user_id)[0]
        await client.sign_as(identity.user_id, identity.signing_key)
        target = await _read_target(client, ref, target_id)
        try:
            plan = plan_for(target, identity)
        except drafting.Refused as exc:
            raise UsageError(str(exc)) from exc
        note = drafting.disputed_note(target, identity.user_id)
        if note is not None:
            notes.append(note)
        if plan.unchanged is not None:
            fmt.out(
                unchanged(plan.unchanged) if unchanged else f"Nothing sent: {plan.unchanged.value}."
            )
            noop.append(target_id)
            return []
        events = await client.send(ref, list(plan.drafts))
        sent.extend(events)
        return events

    status = await _send_and_deliver(
        storage, room_id, None, [], displayname, quiet=True, check_room=True, queue=queue
    )
    if status == EXIT_OK and not noop:
        mine = [e for e in sent if e.type != MEMBER] or sent
        what = mine[-1].event_id if len(mine) == 1 else f"{len(mine)} events"
        fmt.out(f"{say} {what}")
    for note in notes:
        fmt.out(f"bucket-chat: note: {terminal_safe(note)}", file=sys.stderr)
    return status


async def cmd_react(args: argparse.Namespace) -> int:
    room_id = _room_id(args)
    target_id = _target_id(args.event_id, room_id)
    try:
        key = drafting.reaction_text(args.reaction)  # refused before anything is read
    except drafting.Refused as exc:
        raise UsageError(str(exc)) from exc
    shown = related.key_text(key)
    where = terminal_safe(target_id)

    def plan(target: drafting.Target, identity: Any) -> drafting.Plan:
        return drafting.react(target, identity.user_id, key, remove=args.remove)

    def unchanged(why: drafting.Unchanged) -> str:
        if why is drafting.Unchanged.NO_REACTION:
            return f"You have no {shown} reaction on {where}; nothing to remove."
        return f"You already reacted {shown} to {where}; nothing sent."

    say = f"Removed your {shown} reaction:" if args.remove else f"Reacted {shown}:"
    return await _relate(args, target_id, plan, unchanged, say=say)


async def cmd_edit(args: argparse.Namespace) -> int:
    room_id = _room_id(args)
    target_id = _target_id(args.event_id, room_id)
    args.each_line = False
    (text,) = _message_texts(args)

    def plan(target: drafting.Target, identity: Any) -> drafting.Plan:
        return drafting.edit(target, identity.user_id, identity.public_key_b64, text)

    def unchanged(why: drafting.Unchanged) -> str:
        return f"{terminal_safe(target_id)} already says that; nothing sent."

    return await _relate(args, target_id, plan, unchanged, say="Edited with")


async def cmd_delete(args: argparse.Namespace) -> int:
    room_id = _room_id(args)
    target_id = _target_id(args.event_id, room_id)

    def plan(target: drafting.Target, identity: Any) -> drafting.Plan:
        return drafting.delete(target, identity.user_id, identity.public_key_b64, args.reason)

    def unchanged(why: drafting.Unchanged) -> str:
        return f"{terminal_safe(target_id)} is deleted already; nothing sent."

    status = await _relate(args, target_id, plan, unchanged, say="Deleted with")
    if status == EXIT_OK:
        fmt.out(
            "Clients that follow the protocol now hide it; copies remain in the storage "
            "(it is write-once) and wherever the room was copied or exported."
        )
    return status


async def cmd_add_device(args: argparse.Namespace) -> int:
    """A join naming the new device's key (PROTOCOL.md section 7), only for a key that can
    be a new device of this user (``devices.add_device_refusal``, on the room as read)."""
    from ..protocol.audit import DEVICE_ADD_FIELD
    from ..protocol.event import valid_key_text

    storage = _storage(args)
    room_id = _room_id(args)
    if valid_key_text(args.key) is None:
        raise UsageError("--key must be the other device's public key (base64 of 32 bytes)")
    content = join_content(None)
    content[DEVICE_ADD_FIELD] = args.key
    if args.device_name:
        content["device_name"] = args.device_name
    who: list[Any] = []

    def identity() -> Any:  # asked for once the room is known to exist
        who.append(_identity(args.user_id)[0])
        return who[0]

    async def introduce(client: ChatClient, ref: RoomRef) -> list[Event]:
        own = who[0]
        own_key = own.public_key_b64
        if args.key == own_key:  # red team rt72: a restored backup, "introduced" as new
            raise UsageError(devices.shared_key_text(own.user_id))
        _, result, _ = await _read_room(client, ref, "to check that key against")
        shown = [(a.event, a.state) for a in result.timeline]
        why = devices.add_device_refusal(shown, own.user_id, own_key, args.key, room_id)
        if why is not None:
            raise UsageError(why)
        # Where this device's chain continues, as every send finds it (deadline-bound),
        # and only from a device that joined: the introduction continues its chain.
        return await client.send(ref, [(MEMBER, content)], require_joined=True)

    status = await _send_and_deliver(
        storage, room_id, identity, [], None, quiet=True, check_room=True, queue=introduce
    )
    if status == EXIT_OK:
        fmt.out(f"Introduced device key {args.key[:12]}… for {args.user_id} in {room_id!r}.")
    return status


async def cmd_accept_device(args: argparse.Namespace) -> int:
    """A join naming the introducing key (PROTOCOL.md section 7): the second signature an
    introduction needs. The person vouches for that key by running this; it is signed
    only when the room, as this device read and verified it, holds that key's statement
    for this user naming this device's key (``devices.accept_device_check``)."""
    from ..protocol.audit import DEVICE_ACCEPT_FIELD
    from ..protocol.event import valid_key_text

    storage = _storage(args)
    room_id = _room_id(args)
    if valid_key_text(args.key) is None:
        raise UsageError("--key must be the introducing device's public key (base64 of 32 bytes)")
    content = join_content(None)
    content[DEVICE_ACCEPT_FIELD] = args.key
    who: list[Any] = []
    done: list[bool] = []

    def identity() -> Any:  # asked for once the room is known to exist (within the deadline)
        own = _identity(args.user_id)[0]
        if args.key == own.public_key_b64:
            raise UsageError("--key is this device's own key: name the device that introduced it")
        who.append(own)
        return own

    async def accept(client: ChatClient, ref: RoomRef) -> list[Event]:
        own = who[0]
        own_key = own.public_key_b64
        _, result, _ = await _read_room(client, ref, "to find the introduction in")
        shown = [(a.event, a.state) for a in result.timeline]
        verdict = devices.accept_device_check(shown, own.user_id, own_key, args.key, room_id)
        if isinstance(verdict, str):
            raise UsageError(verdict)
        if verdict is devices.Accept.DONE:
            done.append(True)
            fmt.out(
                f"This device already accepted the introduction by device key "
                f"{args.key[:12]}… in {room_id!r}; nothing sent."
            )
            return []
        return await client.send(ref, [(MEMBER, content)])

    status = await _send_and_deliver(
        storage, room_id, identity, [], None, quiet=True, check_room=True, queue=accept
    )
    if status == EXIT_OK and not done:
        fmt.out(f"Accepted the introduction by device key {args.key[:12]}… in {room_id!r}.")
    return status


async def cmd_sync(args: argparse.Namespace) -> int:
    """Read the room through this device's index (only what is new is downloaded) and
    deliver the storage's outbox. Each step gives up once one request has waited the
    interactive deadline without an answer (a slow storage that answers is never cut
    off): a frozen service would otherwise keep a script waiting, without a word, for the
    storage's own timeouts and retries (90 s with the defaults; for ever for one that
    holds the connection open). Then the counts are this device's copy and the exit
    status is 4 (``_sync_unanswered``); what is queued stays in the outbox."""
    storage = _storage(args)
    room_id = _room_id(args)
    loop = asyncio.get_running_loop()
    output_gone = asyncio.Event()  # --follow: what it prints has no reader any more
    output = LiveOutput(lambda: loop.call_soon_threadsafe(output_gone.set))
    printer = LivePrinter(output.line)
    final = [False]  # whether the last audit was of the whole history
    opened = [False]

    def show(view: Any, items: Any = None, read_ms: int | None = None) -> None:
        # An audit made while older history still loads accepts keys provisionally
        # (PROTOCOL.md section 16): a backdated impostor would print as [verified] and a
        # printed line is never taken back. Only the verdicts of the whole history print,
        # as ``history`` prints them (a deleted message never with its text).
        if not final[0] or not args.follow or view.relations is None:
            return
        if not opened[0]:
            opened[0] = True
            printer.opening(view.result, view.relations, None, view.roster, read_ms)
            # what the count printed once the read is done says; said from then on
            printer.reported.update(map(finding_key, room_findings(view)))
            return
        new = view.result.timeline if items is None else items
        printer.arrived(
            new,
            view.result.timeline,
            view.relations,
            echo_own=True,
            roster=view.roster,
            read_ms=read_ms,
        )
        printer.findings(room_findings(view))  # each new finding, once

    def listener(event: Any) -> None:
        if isinstance(event, RoomLoaded | EventsAppended) and event.room_id == room_id:
            if isinstance(event, RoomLoaded):
                final[0] = event.complete
            items = event.items if isinstance(event, EventsAppended) else None
            show(event, items, event.read_ms)  # weighed by when the engine read it

    seconds = interactive_deadline()
    reading: list[asyncio.Task[None]] = []  # --follow: the room read on in the background
    async with ChatClient.session(storage, start=args.follow, listener=listener) as client:
        # Following, someone watches the room live: on screen with the window in front,
        # as ``chat`` (not a window behind others: its room listed at most 30 pages).
        client.set_window_focused(args.follow)
        ref = client.room(room_id)
        sid = ref.storage_id
        try:
            if not await client.knows_room(ref) and not await client.within(
                sid, client.room_exists(ref), seconds
            ):
                raise _no_such_room(storage, room_id)
            before = await client.timeline_length(ref)
            await client.within(sid, client.open_room(ref, wait=True), seconds)
        except NoAnswerError as exc:
            cached = await client.cached_room(ref)
            code = await _sync_unanswered(client, ref, exc, seconds, cached, storage.describe())
            if not args.follow:
                return code
            if cached is not None and cached.result is not None:
                final[0] = cached.complete and not cached.partial  # final verdicts print
                show(cached)
                final[0] = False  # then those of the storage's own read, once whole
            # Read on in the background (its metadata read waits for the storage too):
            # new messages print once the storage answers.
            reading.append(asyncio.create_task(client.open_room(ref, wait=False)))
        else:
            delivered, unanswered = await _deliver_outbox(client, sid, seconds)
            view = await client.room_view(ref)  # with what was delivered (read as sent)
            if unanswered is not None:
                fmt.out(
                    f"bucket-chat: queued, not delivered yet ({terminal_safe(str(unanswered))})."
                    f" {len(await unsent(client, sid))} event(s) wait in the outbox for the "
                    "next 'bucket-chat sync' (or any command that sends, or the app).",
                    file=sys.stderr,
                )
            view, result, _ = _read_whole(view, ref.room_id)
            total = len(result.timeline)
            fmt.out(
                f"{room_id}: {total:,} events ({max(0, total - before):,} new), "
                f"{_errors_counted(view)} finding(s)"
                + ("" if delivered else "; the outbox could not deliver everything yet"),
                flush=True,
            )
            if not args.follow:
                return EXIT_OK if delivered else EXIT_QUEUED
        fmt.out("Following; Ctrl-C to stop.", flush=True)
        try:  # until Ctrl-C, or until what it prints has no reader (``| head``)
            await output_gone.wait()
            return EXIT_OK
        finally:  # the background read stops before the client closes under it
            await stop_tasks(reading)


def _errors_counted(view: RoomView) -> int:
    """The findings ``sync`` counts, as ``history`` and ``verify`` count them (the
    metadata's too, and only errors), whether the storage answered or this device's copy
    is shown: a copy counted otherwise said "0 finding(s)" of a room whose metadata a
    member had rewritten, which ``history`` of the same copy said was wrong (red team
    rt84)."""
    return sum(1 for f in room_findings(view) if f.severity is Severity.ERROR)


async def _deliver_outbox(
    client: ChatClient, storage_id: str, seconds: float
) -> tuple[bool, NoAnswerError | None]:
    """``sync``'s delivery of the storage's outbox: given up after one round the storage
    refused (``give_up_offline``) or once one request has waited ``seconds`` without an
    answer (the error is handed back, unless nothing was left to deliver). True when
    nothing is left queued."""
    try:
        flush = client.flush(storage_id, SEND_TIMEOUT, give_up_offline=True)
        return await client.within(storage_id, flush, seconds), None
    except NoAnswerError as exc:
        if not await unsent(client, storage_id):  # given up with nothing to deliver
            return True, None
        return False, exc


async def _sync_unanswered(
    client: ChatClient,
    ref: RoomRef,
    exc: NoAnswerError,
    seconds: float,
    cached: RoomView | None,
    where: str,
) -> int:
    """``sync`` when the storage did not answer in time: the outbox is then tried under
    the same deadline: a second wait, given up once one of its requests has waited
    ``seconds`` unanswered (worth it: a storage whose reads hang may still take writes,
    and then what is queued goes out); the room's counts are this device's copy
    (``cached``, None when it has none), on stdout like a fresh read's; one line on
    stderr names the storage, since when it has not answered, and what stays queued.
    Returns ``EXIT_NO_ANSWER``."""
    sid = ref.storage_id
    delivered, _ = await _deliver_outbox(client, sid, seconds)
    waiting = 0 if delivered else len(await unsent(client, sid))
    queued = (
        f"; {waiting} event(s) stay queued in the outbox for the next 'bucket-chat sync' "
        "(or any command that sends, or the app)"
        if waiting
        else ""
    )
    room_id = terminal_safe(ref.room_id)
    if cached is not None and cached.result is not None:
        last = await client.last_read(ref)
        total = len(cached.result.timeline)
        fmt.out(
            f"{room_id}: {total:,} events as this device verified them "
            f"(last read {_clock(last)}), {_errors_counted(cached)} finding(s)"
            + ("" if delivered else "; the outbox could not deliver everything yet"),
            flush=True,
        )
        copy = f"the counts are this device's copy, last read {_clock(last)}"
    else:
        copy = f"this device has no copy of room {ref.room_id!r} to show"
    fmt.out(
        f"bucket-chat: {terminal_safe(where)} has not answered since {clock_text(exc.since)}"
        f" (sync gives up after {seconds:g} s without an answer); {copy}{queued}.",
        file=sys.stderr,
    )
    return EXIT_NO_ANSWER


async def _audited(
    args: argparse.Namespace, *, cached: bool
) -> tuple[Any, AuditResult, str | None, frozenset[tuple[str, str]]]:
    """The room read from storage: with ``cached``, through this device's index (only new
    segments are downloaded) and, when the storage does not answer within
    ``INTERACTIVE_DEADLINE``, as the index knows it (the third value says so); without,
    every segment is downloaded and checked again, and a storage that does not answer
    within ``VERIFY_NO_ANSWER`` fails the command: nothing unchecked is called clean.
    The fourth value: the (user id, key) pairs this device writes as (its index's)."""
    storage = _storage(args)
    room_id = _room_id(args)
    stale: str | None = None
    async with ChatClient.session(storage, index=cached, outbox=False) as client:
        ref = client.room(room_id)
        own = await client.own_keys(ref.storage_id)
        seconds = interactive_deadline() if cached else VERIFY_NO_ANSWER
        await _require_room(storage, room_id, client=client, seconds=seconds, fresh=not cached)
        try:
            await client.within(ref.storage_id, client.open_room(ref, wait=True), seconds)
            room = await client.room_view(ref)
        except NoAnswerError as exc:
            # Only now is the index's copy rebuilt apart (the read above begins with it):
            # once per command, and only when the storage did not answer.
            snapshot = await client.cached_room(ref) if cached else None
            if snapshot is None:
                what = "has no copy of the room to show" if cached else "verified nothing"
                raise StorageError(f"{exc}; this device {what}") from exc
            room, stale = snapshot, _stale_note(exc, await client.last_read(ref))
    room, read, _ = _read_whole(room, room_id)
    # The metadata's findings first; a new result: the engine's is never changed.
    # Relation findings (forged edits or deletions, cross-room or malformed relations,
    # PROTOCOL.md section 18) count like every other finding.
    return room, replace(read, findings=room_findings(room)), stale, own


def _read_whole(view: RoomView | None, room_id: str) -> tuple[RoomView, AuditResult, Relations]:
    """``view`` and its audit and relations once the room was read, else a message: a
    read that failed in a way no storage error names (the log says how) ends the command
    with status 1, never with a traceback."""
    if view is None or view.result is None or view.relations is None or view.failure:
        raise not_read(room_id, view)
    return view, view.result, view.relations


async def cmd_history(args: argparse.Namespace) -> int:
    view, result, stale, own = await _audited(args, cached=True)
    if stale is not None:
        fmt.out(f"bucket-chat: {stale}", file=sys.stderr)
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    # Relation events (reactions, edits, deletions) are not shown as events of their
    # own: they change the events they point at. --limit counts the shown events.
    everything, rel = result.timeline, view.relations
    # Positions, not rows: a row is made when it is printed (a room may hold a million).
    shown = array("q", related.shown_positions(rel, len(everything), args.limit))
    ids = RoomIds()
    ids.update(a.event.sender_id for a in everything)  # first seen in the whole room
    room_claims = view.roster.names.claims if view.roster is not None else {}
    claims = fmt.KeyClaims(room_claims, tuple(own))
    if args.json:
        doc = {
            "room_id": view.room_id,
            "events": [
                {**fmt.event_json(a, ids, claims), **related.relations_json(a, everything, rel)}
                for a in (everything[p] for p in shown)
            ],
            "findings": [f.as_dict() for f in result.findings],
        }
        _print_json(doc, stale)
        return EXIT_OK
    _print_title(view, result)
    senders: dict[str, None] = {}
    for p in shown:
        item = everything[p]
        senders.update(dict.fromkeys(related.named_senders(item, everything, rel)))
        fmt.out(related.event_lines(item, everything, rel, ids, claims))
    notes = fmt.id_notes(senders, ids)
    if notes:
        fmt.out(f"\nIds marked {fmt.LOOKALIKE_MARK} may imitate someone else:")
        for line in notes:
            fmt.out(line)
    _say_others_as_you(view, own)
    held = result.held
    if held:
        fmt.out(
            f"\n{held} event(s) dated more than an hour ahead of this device's clock are "
            f"held back until then; 'bucket-chat verify {room_option(view.room_id)}' lists them.",
            file=sys.stderr,
        )
    errors = result.errors
    # Seen by comparing with what this device read before: ``verify`` reads the storage
    # afresh, with no such copy, and would call the room clean. Said here, each.
    vanished = [f for f in errors if f.kind is Kind.SEGMENT_VANISHED]
    if vanished:
        fmt.out(
            f"\nThe storage no longer holds {len(vanished)} segment(s) as this device read "
            "and checked them (segment-vanished; the events read then are shown above, and "
            "no verdict is final until it does again; 'verify' reads the storage afresh "
            "and cannot see this):",
            file=sys.stderr,
        )
        for f in vanished:
            fmt.out(f"  {terminal_safe(f.where())}: {terminal_safe(f.message)}", file=sys.stderr)
    _say_why_unverified(result, sys.stderr, "show as [UNVERIFIED]")
    if len(errors) > len(vanished):
        fmt.out(
            f"\nThis room has {len(errors) - len(vanished)} "
            f"{'other ' if vanished else ''}finding(s); "
            f"run 'bucket-chat verify {room_option(view.room_id)}' for the audit.",
            file=sys.stderr,
        )
    return EXIT_OK


def _say_others_as_you(
    view: RoomView, own: Iterable[tuple[str, str]], *, where: str | None = None
) -> None:
    """Tell the user when keys nobody trusts here wrote under an id this device writes
    as (``Roster.others_as``; as the app's banner does); ``where`` says where the keys
    are listed (by default: the ``members`` command)."""
    roster = view.roster
    if roster is None:
        return
    keys: dict[str, set[str]] = {}
    for user_id, key in own:
        keys.setdefault(user_id, set()).add(key)
    for user_id, mine in sorted(keys.items()):
        others = [d for d in roster.others_as(user_id, next(iter(mine))) if d.key not in mine]
        if others:
            headline, meaning = others_as_note(user_id, len(others))
            if where is None:
                command = terminal_safe(f"bucket-chat members {room_option(view.room_id)}")
                where = f"'{command}' lists the keys."
            fmt.out(f"\n{terminal_safe(headline)} {meaning} {where}", file=sys.stderr)


async def cmd_search(args: argparse.Namespace) -> int:
    """This device's index of the storage, searched without any network access: what
    ``sync``, ``history`` or the app read before. Matches are marked in bold on a
    terminal, between ``>>`` and ``<<`` in a pipe."""
    storage = _storage(args)
    room_id = _room_id(args) if args.room_id is not None else None
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit must be between 1 and 1000")
    if args.before is not None and not 0 < args.before < 1 << 63:
        raise UsageError("--before takes the key a page ended with (a positive number)")
    query = " ".join(args.query)
    async with ChatClient.session(storage, outbox=False) as client:
        sid = client.session_storage
        known = await client.cached_rooms(sid)
        # what sync and history read is made searchable first
        page = await client.search_read(
            sid, query, room_id=room_id, limit=args.limit, before=args.before
        )
    if page.error:
        raise StorageError(f"cannot search this device's copy: {page.error}")
    if page.query_cut:
        fmt.out("bucket-chat: the query was too long and was shortened", file=sys.stderr)
    if args.json:
        doc = {
            "query": query,
            "hits": [fmt.search_json(h, page.senders.get(h.room_id)) for h in page.hits],
            "more": page.more,
            # --before this for the next older page (null: nothing older)
            "next": page.next_before,
            # segments read whose text is not searchable yet (another program held the
            # index while this one caught up): a later search finds what they hold
            "not_searchable_yet": page.backlog,
        }
        print(fmt.json_text(doc))
        return EXIT_OK
    if not known:
        fmt.out(
            "bucket-chat: this device has read no room of this storage yet; run "
            "'bucket-chat sync --room-id ROOM' first",
            file=sys.stderr,
        )
    names = {r.room_id: r.name or r.room_id for r in known}
    mark = ("\x1b[1;4m", "\x1b[22;24m") if sys.stdout.isatty() else (">>", "<<")
    for hit in page.hits:
        label = names.get(hit.room_id, hit.room_id)
        fmt.out(fmt.search_line(hit, mark, label, page.senders.get(hit.room_id)))
    if not page.hits and page.more:
        # every match read was hidden (deleted, an edit that does not apply), and the
        # search stopped reading: a member can write that many newer ones on purpose
        fmt.out(
            "No messages shown: the newest matches are deleted messages or edits that do "
            "not apply; older messages may match (a larger --limit reads further; "
            f"--before {page.next_before} reads on from here)."
        )
    elif not page.hits:
        fmt.out("No messages found.")
    elif page.more:
        fmt.out(
            f"(only the newest {len(page.hits)}; --limit shows more, "
            f"--before {page.next_before} the next older ones)"
        )
    if page.backlog:
        fmt.out(
            f"bucket-chat: {page.backlog:,} segment(s) this device read are not searchable "
            "yet (the app was using the index meanwhile): search again in a moment",
            file=sys.stderr,
        )
    notes = fmt.search_id_notes(page.hits, page.senders, names)
    if notes:  # as history lists them, per room (an id imitates another of its room)
        fmt.out(f"\nIds marked {fmt.LOOKALIKE_MARK} may imitate someone else:")
        for line in notes:
            fmt.out(line)
    return EXIT_OK


def _print_title(view: Any, result: AuditResult) -> None:
    title = room_title_of(view) if view.metadata or metadata_unusable(view) else view.room_id
    fmt.out(f"# {title}")


def _print_json(doc: dict[str, Any], stale: str | None) -> None:
    """A command's JSON document; ``stale`` says the storage did not answer (from the index)."""
    if stale is not None:
        doc["stale"] = stale
    print(fmt.json_text(doc))


async def cmd_members(args: argparse.Namespace) -> int:
    view, result, stale, own = await _audited(args, cached=True)
    if stale is not None:
        fmt.out(f"bucket-chat: {stale}", file=sys.stderr)
    members = view.roster.members(everyone=args.all)  # made by the engine with the audit
    if args.json:
        doc: dict[str, Any] = {
            "room_id": view.room_id,
            "members": [fmt.member_json(m) for m in members],
        }
        _print_json(doc, stale)
        return EXIT_OK
    _print_title(view, result)
    for member in members:
        for line in fmt.member_lines(member):
            fmt.out(line)
    unread = [f for f in result.findings if f.kind in NOT_READ]
    if not members:
        # a room whose logs could not be read is not a room nobody joined
        fmt.out("No member could be read yet." if unread else "Nobody has joined yet.")
    notes = fmt.member_notes(members)
    if notes:
        fmt.out(f"\nIds marked {fmt.LOOKALIKE_MARK} may imitate someone else:")
        for line in notes:
            fmt.out(line)
    for f in unread:  # why the list may be short
        fmt.out(fmt.finding_said(f))
    _say_others_as_you(view, own, where="The keys are listed above, under your id.")
    if result.errors:
        fmt.out(
            f"\nThis room has {len(result.errors)} finding(s); "
            f"run 'bucket-chat verify {terminal_safe(room_option(view.room_id))}' for the audit."
        )
    return EXIT_OK


def _say_why_unverified(result: AuditResult, file: TextIO, shown: str) -> None:
    """Why rows with good signatures say unverified while part of the room cannot be read:
    nobody's key is trusted on first use then (PROTOCOL.md section 16). Only ``--json``
    said it (a row's reason), and ``verify`` not at all: its owner saw their own messages
    counted unverified with no word why."""
    unread_kinds = sorted({f.kind.value for f in result.errors if f.kind in NOT_READ})
    if unread_kinds and result.counts[TrustState.UNVERIFIED]:
        fmt.out(
            f"\nPart of this room cannot be read ({', '.join(unread_kinds)}): while it cannot, "
            f"nobody's key is trusted on first use, and rows with good signatures {shown}.",
            file=file,
        )


async def cmd_verify(args: argparse.Namespace) -> int:
    view, result, *_ = await _audited(args, cached=False)
    status = EXIT_OK if result.clean else EXIT_FINDINGS
    if args.json:
        doc = {
            "room_id": view.room_id,
            "clean": result.clean,
            "segments": result.segments,
            "metadata": {
                "name": view.metadata.name if view.metadata else None,
                "signed": bool(view.metadata and view.metadata.signed),
                "signer": (
                    check_signer(view.metadata, result.authorized)[0].value
                    if view.metadata
                    else None
                ),
                "creator_id": view.metadata.creator_id if view.metadata else None,
            },
            "counts": {k.value: v for k, v in result.counts.items()},
            "findings": [f.as_dict() for f in result.findings],
        }
        print(fmt.json_text(doc))
        return status
    title = room_title_of(view)
    total = len(result.timeline) + len(result.invalid)
    fmt.out(f"Room {view.room_id}: {title}")
    fmt.out(f"{total:,} events in {result.segments:,} segments")
    for line in fmt.counts_text(result):
        fmt.out(line)
    _print_findings(result, sys.stdout)
    _say_why_unverified(result, sys.stdout, "are counted unverified")
    ids = RoomIds()
    ids.update(a.event.sender_id for a in result.timeline)
    notes = fmt.id_notes((a.event.sender_id for a in result.timeline), ids)
    if notes:
        fmt.out(f"Ids that may imitate someone else ({len(notes)}):")
        for line in notes:
            fmt.out(line)
    if result.clean:
        notices = len(result.findings)
        extra = f" ({notices} notice(s))" if notices else ""
        fmt.out(f"CLEAN: every signature and chain checks out{extra}.")
    else:
        fmt.out(f"NOT CLEAN: {len(result.errors)} finding(s) need attention.")
    return status


async def cmd_chat(args: argparse.Namespace) -> int:
    """Chat; a first-time user gets a key and, for a room nobody created yet, the room."""
    from .chat import run_chat

    storage = _storage(args)
    room_id = _room_id(args)
    identity, created, store = _identity(args.user_id, create=True)
    if created:
        fmt.out(f"Created a signing key for {identity.user_id} ({store.name}).")
        fmt.out(f"  fingerprint: {identity.display_fingerprint}")
    signer = (identity.user_id, identity.signing_key)
    async with ChatClient.session(storage, identity=signer, displayname=args.displayname) as client:
        created = not await _room_found(client, room_id, interactive_deadline())
        if created:  # the join goes out as the chat starts
            await _create_room(client, client.room(room_id), room_id)
    if created:
        fmt.out(f"Created room {room_id!r} in {terminal_safe(storage.describe())}.")
    return await run_chat(storage, room_id, identity, args.displayname)


async def cmd_export(args: argparse.Namespace) -> int:
    return await run_export(args, _storage(args), _room_id(args))


async def cmd_outbox_of(args: argparse.Namespace) -> int:
    return await cmd_outbox(args, _storage(args))


async def cmd_version(args: argparse.Namespace) -> int:
    fmt.out(_version())
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "version": cmd_version,
    "test-crypto": cmd_test_crypto,
    "test-storage": cmd_test_storage,
    "setup-keys": cmd_setup_keys,
    "show-key": cmd_show_key,
    "create-room": cmd_create_room,
    "rooms": cmd_rooms,
    "send": cmd_send,
    "history": cmd_history,
    "search": cmd_search,
    "members": cmd_members,
    "verify": cmd_verify,
    "react": cmd_react,
    "edit": cmd_edit,
    "delete": cmd_delete,
    "add-device": cmd_add_device,
    "accept-device": cmd_accept_device,
    "chat": cmd_chat,
    "sync": cmd_sync,
    "storage": cmd_storage,
    "export": cmd_export,
    "outbox": cmd_outbox_of,
}


def use_utf8_output() -> None:
    """On Windows, write stdout and stderr as UTF-8.

    There a pipe or file gets the ANSI code page (cp1252 and the like) unless Python runs
    in UTF-8 mode, so ``bucket-chat history | more`` would stop at the first emoji or CJK
    character with UnicodeEncodeError. A console is unaffected (Python writes UTF-16 to
    it); elsewhere the locale's encoding is kept."""
    if sys.platform != "win32":
        return
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and str(getattr(stream, "encoding", "")).lower() != "utf-8":
            reconfigure(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    claim_env_passphrase()  # out of the environment before anything can inherit it
    use_utf8_output()
    fmt.harden_streams()  # after: a new encoding would reset the error handler to strict
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except (UsageError, OutboxUsageError, KeysError, StorageError, RoomError, ExportError) as exc:
        fmt.out(f"bucket-chat: {terminal_safe(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of a pipe has what it wanted (``| head``)
        fmt.silence_stdout()  # or Python's flush at exit fails on it once more
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
