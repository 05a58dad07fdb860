"""The storage interface the sync engine and the CLI talk to.

Paths are relative POSIX object names such as ``rooms/r/logs/2025-01-01/messages_…jsonl``.
Objects are written once and never modified: ``put_if_absent`` is the only write.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from .feed import ChangeFeed

log = logging.getLogger("bucket_chat.storage")

PROBE_PREFIX = ".bucket-chat-probe/"
"""Where self-tests write; the only objects ``remove_probe`` ever deletes."""


class StorageError(Exception):
    """A storage failure, with a one-line message a user can act on.

    ``transient`` says whether retrying later can succeed without the user doing anything
    (network down, throttled, disk full being cleaned up) — the outbox retries those and
    reports the others.
    """

    transient = False


class StorageNotFoundError(StorageError):
    """The object (or the bucket/container/folder) does not exist."""


class StorageFullError(StorageError):
    transient = True


class StorageOfflineError(StorageError):
    """The service cannot be reached (DNS, connection refused, timeout)."""

    transient = True


class StorageThrottledError(StorageError):
    transient = True


class WriteNotConfirmedError(StorageError):
    """The service answered a write as done, with what says it did not store these
    bytes (an S3 ETag that is the MD5 of other bytes). Not taken as written: tried
    again later, when the object is found (and its bytes compared) or written again."""

    transient = True


def confirm_write(named: str | None, ours: str) -> None:
    """Raise ``WriteNotConfirmedError`` when a write's answer names a checksum of other
    bytes than were sent (``named``; None: it names none, nothing to compare). Both in
    one spelling: lower-case hex on S3, base64 on GCS and Azure."""
    if named is not None and named != ours:
        raise WriteNotConfirmedError(
            f"the service answered the write with the checksum of other bytes ({named[:48]!r}, "
            f"not {ours}): not taken as written, it is tried again (a broken or hostile "
            "service?)"
        )


class StorageAuthError(StorageError):
    """Credentials are missing, wrong or expired."""


class StoragePermissionError(StorageError):
    """The credentials work but may not do this (read, list or write)."""


class AlreadyExistsError(StorageError):
    """A create-only write met an existing object with other contents; ``compared``
    False: with an object it could not compare with its own bytes (not read: a folder,
    a FIFO, refused), which may hold the same ones. Never for a name with nothing there
    (``TakenButMissingError``)."""

    def __init__(self, message: str, *, compared: bool = True) -> None:
        super().__init__(message)
        self.compared = compared


class TakenButMissingError(StorageError):
    """A create-only write was answered "already exists", and the object then read as
    not there, on each of the write's tries (``taken_but_missing``): the storage
    contradicts itself (a broken or hostile service; on a folder, something deleting
    what is written). Nothing holds the name that this device can see, so it is no
    "already exists" (red team rt95: a single false GCS 412 or Azure 409 ended an
    attachment for good, "held by an object … does not exist", and refused a room as
    "already exists" that was not there): passing, a later try may store it."""

    transient = True


TAKEN_BUT_MISSING_TRIES = 3
"""Create-only writes tried in all on a folder when each finds the name taken and then
nothing there (a cloud storage: its ``retries``, as the SDK tries any passing failure,
and at least two)."""


def taken_but_missing(shown: str, tries: int) -> TakenButMissingError:
    """The error for ``shown`` (the object as a person reads it) after ``tries`` writes
    each answered "already exists" with nothing there to read."""
    return TakenButMissingError(
        f"cannot write {shown}: the storage says an object of that name already exists, "
        f"but shows no object there (asked {tries} times; a broken or hostile service?); "
        "nothing was stored, try again later"
    )


class UnreadableObjectError(StorageError):
    """This object can never be read as it is: retrying cannot help.

    Raised by ``get`` for an object larger than the caller's cap and, on a local folder,
    for anything that is not a regular file inside the storage (a FIFO, a device, a
    symbolic link). Callers report it as a finding about ``path`` and move on.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ObjectTooLargeError(UnreadableObjectError):
    """The object is larger than the reader agreed to read (it was not read whole)."""

    def __init__(self, message: str, *, path: str, limit: int) -> None:
        super().__init__(message, path=path)
        self.limit = limit


class NotRegularFileError(UnreadableObjectError):
    """A local object (or a folder on its way) is a FIFO, device, socket or link.

    ``kind`` names what it is (``"FIFO"``, ``"symbolic link"``, …).
    """

    def __init__(self, message: str, *, path: str, kind: str) -> None:
        super().__init__(message, path=path)
        self.kind = kind


DEFAULT_MAX_READ = 64 * 1024 * 1024
"""What ``get`` reads at most when the caller names no cap (the segment size limit)."""

READ_PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar(
    "bucket_chat_read_progress", default=None
)
"""Who wants to know that bytes of an answer arrive while a ``get`` runs (set by
``sync.watched.WatchedStorage`` around each request): a long download that keeps
receiving is an answering storage, not a silent one."""


READ_RATE_FLOOR: ContextVar[int | None] = ContextVar("bucket_chat_read_rate_floor", default=None)
"""The least rate (bytes a second) a cloud ``get`` must keep once the service's own time
is used up, when its caller shows the read's progress and lets a person cancel it (an
attachment's download: ``sync.blobs.download``). None: ``cloud.MIN_READ_RATE``, which
keeps a service that trickles from holding the app's own reads (segments, metadata)."""


def tell_received(size: int) -> None:
    """A cloud ``get`` received ``size`` more bytes of its object (on the event loop)."""
    hook = READ_PROGRESS.get()
    if hook is not None:
        hook(size)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object. ``special`` is set (``"FIFO"``, ``"symbolic link"``, …) for a
    local entry that is not a regular file: it is listed so that callers can report it,
    and ``get`` refuses it.

    ``content_tag`` is what the service says of the object's bytes, as ``scheme:value``:
    ``s3-etag:`` (S3's ETag: set by each upload, kept by metadata-only updates), ``md5:``
    (GCS's ``md5Hash``, Azure's ``Content-MD5``) or ``crc32c:`` (GCS objects without an
    MD5). Two tags of one scheme that differ mean other bytes; tags of two schemes say
    nothing. None where the service gives none (a folder; an Azure blob uploaded in
    blocks without an MD5). Not an HTTP ETag on GCS and Azure: those change when only
    an object's metadata does."""

    path: str
    size: int
    content_tag: str | None = None
    special: str | None = None


MAX_TAG = 96  # characters of a content tag's value (an MD5 in base64 is 24, an ETag ~40)


def content_tag(scheme: str, value: object) -> str | None:
    """``scheme:value`` for ``ObjectInfo.content_tag``, or None when the service's value
    is not a short printable ASCII string (a listing is read from a storage that may be
    hostile; the tag is compared, kept in memory and in the index, never shown)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TAG:
        return None
    if not value.isascii() or not value.isprintable():
        return None
    return f"{scheme}:{value}"


# An S3 ETag known to be the MD5 of the bytes read (``tag_of_bytes``), as ``s3-md5:MD5``.
S3_MD5 = "s3-md5"
ALSO = "@"  # kept tag ``CHECKSUM@LISTED``: the listed tag found to be of the same bytes


def tag_of_bytes(listed: str | None, data: bytes) -> str | None:
    """The content tag to keep for ``data`` read from an object listed with ``listed``:
    this device's own checksum of the bytes read, in the form the service's listing
    gives it where it can be (``md5:`` on GCS and Azure, ``s3-md5:`` for an S3 ETag that
    is the MD5 of the bytes), followed by ``@`` and the listed tag where that is another
    (an S3 ETag of a multipart upload or a KMS-encrypted object, a GCS CRC32C, a hand-set
    Azure Content-MD5, a listing of bytes rewritten before the read): that value is
    taken for these bytes, another one has them read again (``bytes_match``). None where
    the listing gives none (a folder, an Azure blob committed from blocks): nothing
    tells that a later listing is of the same bytes."""
    if listed is None:
        return None
    scheme, _, value = listed.partition(":")
    s3 = scheme in ("s3-etag", S3_MD5)
    ours = md5_tag(data, S3_MD5 if s3 else "md5")
    same = value == ours.partition(":")[2] if s3 else listed == ours
    return ours if same else f"{ours}{ALSO}{listed}"


def md5_tag(data: bytes, scheme: str = "md5") -> str:
    """The bytes' MD5 as a content tag: ``md5:`` and base64, as GCS and Azure list it, or
    ``s3-md5:`` and hex, as S3 lists it for an object put in one request."""
    digest = hashlib.md5(data, usedforsecurity=False)
    if scheme == S3_MD5:
        return f"{S3_MD5}:{digest.hexdigest()}"
    return f"md5:{base64.b64encode(digest.digest()).decode('ascii')}"


def bytes_decide(kept: str | None) -> bool:
    """Whether a kept content tag holds a checksum of the bytes this device read: then
    a listing that does not show it (another value, none, another scheme) is settled by
    reading the object again (``bytes_match``), not taken for a rewrite (a metadata
    update can clear or replace an Azure Content-MD5; a GCS compose gives a CRC32C only;
    an S3 copy in place that encrypts with KMS, or an upload of the same bytes in parts,
    gives another ETag; a provider can list anything)."""
    return kept is not None and kept.partition(":")[0] in ("md5", S3_MD5)


def bytes_match(kept: str, data: bytes) -> bool:
    """Whether ``data`` are the bytes a kept tag (``bytes_decide``) was computed from."""
    ours = kept.partition(ALSO)[0]
    return ours == md5_tag(data, ours.partition(":")[0])


def confirmed(kept: str, listed: str | None) -> str:
    """The tag to keep once the bytes read again matched ``kept`` while the listing
    showed ``listed``: the checksum with that listed tag (``CHECKSUM@LISTED``), which is
    taken for the same bytes from then on (not read again at every pass; another one
    is read again). None listed is recorded as nothing: a blob whose Content-MD5 was
    cleared is read again at each pass, or a rewrite from blocks would go unseen."""
    if not listed or not bytes_decide(kept):
        return kept
    return f"{kept.partition(ALSO)[0]}{ALSO}{listed}"


def same_content(then: str | None, now: str | None) -> bool | None:
    """Whether two content tags (``ObjectInfo.content_tag``) say the bytes are the same:
    None when they cannot say (either is missing, or they are of different schemes; also
    a value cached before tags had schemes). A kept ``s3-md5:`` is compared with the
    listing's ``s3-etag:``; a kept ``CHECKSUM@LISTED`` is the same as ``LISTED`` too."""
    if not then or not now:
        return None
    then, _, also = then.partition(ALSO) if bytes_decide(then) else (then, "", "")
    if also and now == also:
        return True
    a, sep_a, x = then.partition(":")
    b, sep_b, y = now.partition(":")
    if a == S3_MD5 and b == "s3-etag":
        return x == y
    if not (sep_a and sep_b) or a != b:
        return None
    return x == y


def check_object_path(path: str) -> str:
    """Refuse object names that could escape the store or confuse a file system."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise StorageError(f"refusing unsafe object path {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"refusing unsafe object path {path!r}")
    return path


@dataclass(frozen=True, slots=True)
class Level:
    """What one listing of a folder's level gives (``Storage.list_level``): the names of
    the folders right below it and of the objects right in it. A room's ``logs/`` holds
    day folders only: an object in it is no segment's (PROTOCOL.md section 2.2)."""

    folders: list[str]
    # The objects' names as text a finding can hold: bytes of a name that are not UTF-8
    # (a Linux folder), or a name no object path can be (a backslash), escaped. At most
    # ``LEVEL_OBJECTS_NAMED``; ``more`` counts the rest.
    objects: list[str]
    more: int = 0
    # A listing asked to stop early (``Storage.list_level_first``) that stopped with
    # more names to come: the level holds more than these (and ``more``) show.
    cut: bool = False


LEVEL_OBJECTS_NAMED = 1_000
"""Objects of one level a listing names (``Level``); past it, they are only counted: a
member's 250,000 objects right in a room's ``logs/`` are no 250,000 names in memory."""


def utf8_text(name: str) -> bool:
    """Whether ``name`` is text that can be stored and printed as it is: no lone
    surrogate (bytes of a file name that are not UTF-8, as ``os`` hands them back, or a
    service's JSON escape)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_object_name(name: str) -> str:
    r"""``name`` as text that can be stored and printed, one for each name: bytes that are
    not UTF-8 (a Linux folder's name, as ``os`` hands it: lone surrogates) as ``\xff``,
    other lone surrogates (a service's JSON escape) as ``\udcff``, and a backslash as
    two, so that a file literally named ``junk\xff`` is never shown as the same object
    as one whose name holds the byte 0xff (two objects, one notice, flapping at every
    round). A name with none of these is itself. One-to-one for names as ``os`` gives
    them; a cloud listing refuses names with lone surrogates before they get here."""
    escaped = name.replace("\\", "\\\\")
    try:
        raw = escaped.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name's byte became
        return escaped.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def level_of(folders: Iterable[str], objects: Iterable[str]) -> Level:
    """A ``Level`` of the names a listing gave: folders a path can name, sorted; every
    other name (an object, a folder no path can name) shown as an object, sorted, at
    most ``LEVEL_OBJECTS_NAMED`` of them. Names beginning with "." are left out (temp
    files, OS and sync-tool litter)."""
    usable: list[str] = []
    other: set[str] = set()
    for name in folders:
        if not name.startswith("."):
            if usable_folder_name(name):
                usable.append(name)
            else:
                other.add(shown_object_name(name))
    other.update(shown_object_name(n) for n in objects if not n.startswith("."))
    named = sorted(other)
    return Level(
        sorted(set(usable)), named[:LEVEL_OBJECTS_NAMED], max(0, len(named) - LEVEL_OBJECTS_NAMED)
    )


def level_first(level: Level, most: int) -> Level:
    """The first ``most`` names of ``level`` in name order (a folder's name sorting as
    it does with its "/"), ``cut`` when it held more (``Storage.list_level_first``).
    Objects counted only (``more``) sort after those named."""
    most = max(most, 0)
    if len(level.folders) + len(level.objects) + level.more <= most:
        return level
    names = sorted([*(f"{f}/" for f in level.folders), *level.objects])
    first = names[:most]
    folders = [n[:-1] for n in first if n.endswith("/")]
    objects = [n for n in first if not n.endswith("/")]
    more = max(0, most - len(first))  # of the objects only counted
    return Level(folders, objects, more, cut=True)


def usable_folder_name(name: str) -> bool:
    """Whether a folder name a listing gave (``Storage.list_dirs``) can be part of an
    object path (``check_object_path``). One that cannot (a backslash in it: S3 and GCS
    take any key, a Linux folder any name) is no folder of this app's: listed, it made
    the listing of it refuse the path, and each pass that listed the room's days fail
    as the storage being offline, for every reader."""
    try:
        check_object_path(name)
    except StorageError:
        return False
    return "/" not in name and utf8_text(name)


class Storage(abc.ABC):
    """One storage root (a folder, or a bucket and prefix)."""

    url: str

    @property
    def identity(self) -> str:
        """What this storage *is*, whatever way it was written: one storage, one
        identity. This device's index and outbox for the storage are named after it
        (``index_path_for``, ``outbox_path_for``), and the outbox keeps this device's
        chain heads, so two spellings of one storage must never give two identities
        (red team rt71: a folder reached through a link and by its own path had two
        outboxes, and the device forked its own chain). A cloud storage's ``url`` is its
        identity already (``StorageLocation.identity``); a folder's is its resolved path
        (``LocalStorage``)."""
        return self.url

    @abc.abstractmethod
    async def put_if_absent(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` unless it exists.

        Returns True when this call created it, False when an object with exactly the same
        bytes was already there (a retry meeting its own write). Raises
        ``AlreadyExistsError`` when different bytes are there, and
        ``TakenButMissingError`` (passing) when the name is said to be taken at each try
        and nothing is there to read.
        """

    def tag_of_written(self, data: bytes) -> str | None:
        """The content tag (``ObjectInfo.content_tag``) to keep for ``data`` this
        device wrote itself, computed from the bytes (``tag_of_bytes``): so a segment of
        its own is compared from the first listing that shows it, not taken as that
        listing says. None where listings give no checksum (a folder)."""
        return None

    @abc.abstractmethod
    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        """The object's bytes; ``StorageNotFoundError`` if there is none.

        Reads at most ``max_bytes + 1`` bytes whatever the object's size (declared or
        real): a larger object raises ``ObjectTooLargeError`` without being read whole.
        Anything that is not a plain object raises ``NotRegularFileError``. Both are
        ``UnreadableObjectError``: retrying will not help, report it.
        """

    async def spelled_as_stored(self, path: str) -> bool:
        """Whether a read of ``path`` can only open an object stored under exactly that
        name, code point for code point: asked before a name that no listing gave (an
        activity marker's, a change notice's) is read as that object.

        An object store compares names exactly: True, without a request (the read finds
        that object or none). A folder on a volume that ignores case, or how accented
        letters are encoded (Windows, macOS; FAT drives and SMB shares anywhere), opens
        ``…_alice.jsonl`` when ``…_ALICE.jsonl`` is read: what it read would be kept
        under a name that no listing shows, and the next listing took it for a segment
        removed from storage (red team rt93). ``LocalStorage`` says False then, and when
        nothing is stored under the name."""
        return True

    async def written_lately(self, path: str) -> bool:
        """Whether another program may still be writing ``path``: a folder shows a file
        as soon as its writer creates it, before its bytes are all there (the reference
        client, and any other that writes in place), so a reader that finds it unfinished
        reads it again once it has been left alone (``LocalStorage``). Write-once cloud
        objects appear whole or not at all: False."""
        return False

    @abc.abstractmethod
    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix`` (recursively), sorted by path."""

    async def list_dirs(self, prefix: str) -> list[str]:
        """The immediate child "folders" of ``prefix`` (names only), sorted."""
        return (await self.list_level(prefix)).folders

    @abc.abstractmethod
    async def list_level(self, prefix: str) -> Level:
        """One listing of ``prefix``'s level: the names of the "folders" right below it
        (as ``list_dirs``) and of the plain objects right in it, each sorted."""

    @abc.abstractmethod
    async def list_level_first(self, prefix: str, most: int) -> Level:
        """As ``list_level``, but a bucket asks only the pages ``most`` names take
        (folders and objects right in the level counted alike, in name order) and stops
        there: the ``Level`` is ``cut`` when the service had more. A member may write any
        number of objects right into a room's ``logs/``; what listing it may cost is the
        caller's to choose (``Poller.refresh`` behind other windows: red team rt102).
        A folder lists the whole level and cuts it (``level_first``: listing costs
        nothing there); a wrapper forwards it. Abstract: a default that listed the whole
        level was silently wrong for a wrapper around a bucket that forgot to forward
        it (every page of a member's junk listed again)."""

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        """Objects under ``prefix`` whose path sorts after ``after``."""
        items = await self.list_objects(prefix)
        return items if after is None else [i for i in items if i.path > after]

    @abc.abstractmethod
    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        """At most ``most`` objects under ``prefix`` whose path sorts after ``after``, in
        name order, and whether the listing stopped before the end (more follow). A bucket
        asks only the pages those take (``most`` / 1,000, and one for the end), starting
        after ``after`` where its service can (S3, GCS); Azure lists from the folder's
        start, and names before ``after`` count against ``most`` there. What a listing
        of a folder a member filled with junk may cost is then the caller's to choose
        (``sync/poller.py``: a room's background listing, a listing owed by a read on a
        notice). A folder lists whole and cuts (listing costs nothing there); a wrapper
        forwards it. Abstract, as ``list_level_first`` is: a default that listed whole
        lost the cap silently for a wrapper around a bucket that did not forward it."""

    async def list_between(self, prefix: str, after: str | None, before: str) -> list[ObjectInfo]:
        """Objects under ``prefix`` whose path sorts after ``after`` and before
        ``before``. A bucket lists in name order, page by page: it asks no page past
        ``before``, so names that sort after it (junk a member wrote) cost no request."""
        return [i for i in await self.list_after(prefix, after) if i.path < before]

    @abc.abstractmethod
    async def exists(self, path: str) -> bool: ...

    async def remove_probe(self, path: str) -> None:
        """Remove an object written by a self-test under ``.bucket-chat-probe/``.

        Nothing else is ever deleted. Stores that cannot delete keep the tiny probe.
        """
        return None

    async def open(self) -> None:
        """Set up what requests need (a cloud SDK's import and client: local work of a
        second or two); requests do it themselves when it was not done. Idempotent."""
        return None

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        return self.url

    def change_feed(self) -> ChangeFeed | None:
        """A new feed of this storage's notifications of new objects, if it is set up
        (an S3 bucket's SQS queue, ``feed.py``); the caller closes it. None by default."""
        return None

    async def probe_create_only(self) -> tuple[bool, str]:
        """Check that this store refuses to overwrite: ``(True, how)`` or ``(False, why not)``.

        Writes a small object under ``.bucket-chat-probe/``, then different bytes to the same
        name. The second write must raise ``AlreadyExistsError``; if it succeeds, the
        service ignored the precondition and nothing but the store's own retention
        policy keeps objects immutable. Storage failures are raised as ``StorageError``.
        The probe is removed afterwards where the store allows it.
        """
        probe = f"{PROBE_PREFIX}create-only-{uuid.uuid4().hex}"
        first = b"bucket-chat create-only probe: first write\n"
        second = b"bucket-chat create-only probe: second write\n"
        try:
            await self.put_if_absent(probe, first)
            try:
                await self.put_if_absent(probe, second)
            except AlreadyExistsError:
                return True, self.create_only_mechanism()
            kept = await self.get(probe)
            what = "replaced" if kept == second else "accepted but did not show"
            return False, self.create_only_failure(what)
        finally:
            try:
                await self.remove_probe(probe)
            except StorageError as exc:
                log.info("could not remove probe %s: %s", probe, exc)

    def create_only_mechanism(self) -> str:
        """How this store makes a write create-only (shown by self-tests)."""
        return "the store refused to overwrite an existing object"

    def create_only_failure(self, what: str) -> str:
        """The message for a store that let a create-only write overwrite an object."""
        return (
            f"{self.describe()} {what} an existing object on a create-only write: "
            "immutability rests on the store's own retention settings"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
