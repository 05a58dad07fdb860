"""Run one export: pages of rows in, files out, with progress and clean cancellation.

``export_room`` is a coroutine for the app's loop or the CLI's: reading pages and blobs
is awaited (the engine's worker and the storage do it), and every step that costs CPU
or disk (rendering a page, writing, hashing a blob) runs in a worker thread, so the
event loop (the GUI's) only schedules. Cancelling the task stops it between steps: the
output file never takes its name (``osfiles.atomic_output``) and the attachments copied
so far are removed. Once the file has begun taking its name, a cancel is too late: the
export completes, its attachments stay, and its summary says so (``cancelled_late``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ..download_mark import mark_as_downloaded
from ..osfiles import DIR_FDS, atomic_output, open_folder, write_atomic, write_new_at
from ..protocol.attachments import (
    MAX_NAME_BYTES,
    FileInfo,
    is_file_message,
    not_to_open,
    parse_file_content,
    safe_file_name,
    verify_blob,
)
from ..protocol.event import MESSAGE, Event
from ..storage.base import StorageError, StorageOfflineError
from ..sync.blobs import BlobError, BlobMismatchError, human_size, size_lie
from ..sync.events import ShownEvent
from .errors import FORMATS, ExportError, ExportExistsError
from .html_doc import Attachment, HtmlWriter, attachment_href
from .jsonl_doc import JsonlWriter
from .snapshot import RoomSnapshot

log = logging.getLogger("bucket_chat.export")
T = TypeVar("T")

PAGE_ROWS = 500
MAX_BLOB_BYTES = 512 * 1024 * 1024
FILES_SUFFIX = "_files"  # report.html -> report_files
MAX_EXTENSION_BYTES = 16  # a longer "extension" is part of the name (as safe_file_name cuts)
_INLINE_IMAGES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif"))

PageReader = Callable[[int, int], Awaitable[Sequence[ShownEvent] | None]]
BlobReader = Callable[[FileInfo, str], Awaitable[bytes]]
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class ExportSummary:
    path: Path
    format: str
    events: int = 0  # lines (JSONL) or messages and notices (HTML) written
    damaged: int = 0  # rows whose cached copy was not the event the audit checked
    late: int = 0  # messages written with a late-arrival note (``RoomSnapshot.late``)
    late_changes: int = 0  # edits and deletions noted late, each copy (applied or not)
    files_dir: Path | None = None
    copied: int = 0
    not_copied: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)
    bytes: int = 0
    # A cancel (Cancel, Ctrl-C) came while the page was taking its name: too late, the
    # export is complete and was not undone.
    cancelled_late: bool = False


def suggested_file_name(room_name: str, fmt: str) -> str:
    """A file name to offer for an export of a room named ``room_name`` (untrusted):
    made safe, and short enough that it and its attachments folder (``files_dir_for``)
    can be created. A name at the 255-byte limit plus ".html" could not be written."""
    tail = max(len(f".{fmt}".encode()), len(FILES_SUFFIX.encode()))
    stem = safe_file_name(room_name, fallback="room").encode("utf-8")
    short = stem[: MAX_NAME_BYTES - tail].decode("utf-8", "ignore")
    return f"{safe_file_name(short, fallback='room')}.{fmt}"


def files_dir_for(path: Path) -> Path:
    """``report.html`` -> ``report_files`` beside it."""
    return path.with_name(f"{path.stem}{FILES_SUFFIX}")


def _check_destination(path: Path, fmt: str, force: bool) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise ExportError(f"{path.parent} is not a folder")
    if path.is_dir():
        raise ExportError(f"{path} is a folder: name a file to write")
    if path.exists() and not force:
        raise ExportExistsError(f"{path} exists: choose another name, or overwrite it (--force)")


MAX_FOLDER_TRIES = 100  # "report_files (100)": past it, the folder is not written


class _Files:
    """The attachments folder of an HTML export: each blob checked against its signed
    hash and size before it is written, names made safe and unique, a blob announced
    twice copied once. Remembers what it created, to remove it on failure.

    It never writes into a folder that holds anything, nor over a file: the user's
    ``report_files`` (a browser's "Save page, complete" makes one) stays as it was, the
    attachments go to ``report_files (2)`` instead, and every file is created
    exclusively (a name taken meanwhile gets the next unique one). So what ``remove``
    deletes on a cancel or a failure is only what this export made."""

    def __init__(self, folder: Path, read_blob: BlobReader, max_bytes: int) -> None:
        self.wanted = folder  # ``files_dir_for(path)``; ``folder`` once one is chosen
        self.folder = folder
        self.chosen = False
        self.read_blob = read_blob
        self.max_bytes = max_bytes
        self.created_folder = False
        # What this export made, each with its identity (device, inode) when made:
        # ``remove`` deletes a path only while it is still that very file.
        self.created: list[tuple[Path, tuple[int, int]]] = []
        self._folder_id: tuple[int, int] | None = None
        # The chosen folder, open (POSIX): files are made and removed relative to it,
        # never by a path looked up again (``osfiles.write_new_at``).
        self._dir_fd: int | None = None
        self._names: set[str] = set()
        self._by_hash: dict[str, Attachment] = {}
        self.copied = 0
        self.not_copied: list[tuple[str, str]] = []
        # Why the storage could not be reached for a file (no answer, offline): the
        # files after it are not asked for, each would wait as long again.
        self.unreachable = ""

    def _unique(self, name: str) -> str:
        """``name`` (made safe), or with " (2)", " (3)"… before its extension when a
        file of that name was written already. The stem is shortened to leave room for
        the counter: cut after it, a name of the longest length lost its counter again
        and came out the same for ever."""
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem or len(ext.encode("utf-8")) > MAX_EXTENSION_BYTES:
            stem, ext = name, ""
        candidate, n = name, 1
        while candidate.casefold() in self._names:  # one file per name on any OS
            n += 1
            tail = f" ({n}).{ext}" if ext else f" ({n})"
            room = MAX_NAME_BYTES - len(tail.encode("utf-8"))
            short = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
            candidate = safe_file_name(short + tail)
        self._names.add(candidate.casefold())
        return candidate

    async def copy(self, ev: Event) -> Attachment | None:
        info = parse_file_content(ev.content)
        if isinstance(info, str):
            return None  # the page says why the message cannot be used
        known = self._by_hash.get(info.sha256)
        if known is not None and known.href is not None and known.size == info.size:
            return Attachment(info.name, info.size, known.href, known.image, known.risky)
        problem: str | None = None
        data: bytes | None = None
        if known is not None:
            # The file of this SHA-256 was copied, verified, at another size: the message
            # is wrong, whichever way (a smaller size than the file's would be refused as
            # a larger stored object, blaming neither; red team rt56). Not read again.
            lie = size_lie(info.size, known.size, "this export copied it")
            problem = f"the signed message does not describe its file ({lie})"
        elif info.size > self.max_bytes:
            problem = f"larger than this export copies ({human_size(self.max_bytes)})"
        elif self.unreachable:
            problem = f"not read: an earlier file got {self.unreachable}"
        else:
            try:
                data = await self.read_blob(info, ev.event_id)
            except BlobMismatchError as exc:
                if exc.conclusion == BlobMismatchError.MESSAGE:  # the message lies (rt55)
                    problem = f"the signed message does not describe its file ({exc.problem})"
                elif exc.conclusion == BlobMismatchError.EITHER:  # which, unknown (rt56)
                    problem = (
                        "the file in the storage and the signed message disagree "
                        f"({exc.problem}); either may be wrong"
                    )
                else:
                    problem = (
                        "the file in the storage does not match the signed message "
                        f"({exc.problem}); it was changed or damaged"
                    )
            except StorageOfflineError as exc:  # a no answer within a deadline too
                problem = str(exc) or type(exc).__name__
                self.unreachable = problem
            except (BlobError, StorageError, OSError) as exc:
                problem = str(exc) or type(exc).__name__
        if data is not None:
            # Checked here too: whatever fetched it, no byte is written that is not the
            # announced file.
            mismatch = await _off_loop(verify_blob, data, info)
            if mismatch is not None:
                problem = (
                    f"the file in the storage does not match the signed message ({mismatch}); "
                    "it was changed or damaged"
                )
                data = None
        if data is None:
            att = Attachment(info.name, info.size, problem=problem or "not read")
            self.not_copied.append((info.name, att.problem or ""))
            return att
        name = await _off_loop(self._write, info.name, data)
        if name is None:
            att = Attachment(info.name, info.size, problem="no free name to write it under")
            self.not_copied.append((info.name, att.problem or ""))
            return att
        image = info.msgtype == "m.image" and any(data.startswith(m) for m, _ in _INLINE_IMAGES)
        href = attachment_href(self.folder.name, name)
        # Not linked when its name or its bytes run code (the rule the app's Open
        # follows): a browser runs a web page's scripts, and sniffs a local file whose
        # name has no known extension.
        risky = not_to_open(info.name, data) is not None
        att = Attachment(info.name, info.size, href, image=image, risky=risky)
        self._by_hash[info.sha256] = att
        self.copied += 1
        return att

    def _choose_folder(self) -> None:
        """The first of ``report_files``, ``report_files (2)``… that this export can
        create, or that is an empty folder already (not a link): chosen at the first
        file written, before any link to it is, and kept for the whole export."""
        for n in range(1, MAX_FOLDER_TRIES + 1):
            candidate = self.wanted if n == 1 else _numbered(self.wanted, n)
            try:
                candidate.mkdir()
            except FileExistsError:
                if not candidate.is_symlink() and candidate.is_dir():
                    with os.scandir(candidate) as entries:
                        if next(entries, None) is None:
                            self.folder, self.chosen = candidate, True
                            self._hold(candidate)
                            return
                continue
            self.folder, self.chosen, self.created_folder = candidate, True, True
            self._hold(candidate)
            return
        raise ExportError(
            f"{self.wanted} and the next {MAX_FOLDER_TRIES - 1} names beside it exist: "
            "choose another name for the export"
        )

    def _hold(self, folder: Path) -> None:
        """Keep the chosen folder's identity, and (POSIX) the folder itself open."""
        self._folder_id = _folder_identity(folder)
        if DIR_FDS:
            self._dir_fd = open_folder(folder)
            if _identity(os.fstat(self._dir_fd)) != self._folder_id:  # between the looks
                raise ExportError(f"{folder} was replaced while the export chose it")

    def _write(self, wanted: str, data: bytes) -> str | None:
        """``data`` written as a new file named ``wanted`` (made unique); the name it
        got, None when every variant tried exists (files put there meanwhile)."""
        if not self.chosen:
            self._choose_folder()
        for _ in range(MAX_FOLDER_TRIES):
            name = self._unique(wanted)
            path = self.folder / name
            self._same_folder()
            try:
                if self._dir_fd is not None:  # into the folder held open, whatever its path
                    made = write_new_at(self._dir_fd, name, data, mode=0o644)
                else:
                    write_atomic(path, data, mode=0o644, overwrite=False)
                    made = os.lstat(path)
            except FileExistsError:
                continue  # not ours: never replaced; the next unique name
            self.created.append((path, _identity(made)))
            # As Open and Save as… mark theirs: a program or a macro document double-
            # clicked in this folder meets the system's warnings for downloads.
            mark_as_downloaded(path, dir_fd=self._dir_fd)
            return name
        return None

    def _same_folder(self) -> None:
        """Stop the export when the folder chosen is no longer that folder (renamed,
        and a link or another folder put in its place while the export ran): what is
        written next would go into whatever is there now."""
        if self._folder_id is None or _folder_identity(self.folder) != self._folder_id:
            raise ExportError(
                f"{self.folder} was moved or replaced while the export ran: nothing more "
                "is written into it"
            )

    def remove(self) -> None:
        """Delete what this export made, and only that: a file is unlinked while it is
        still the file made there (a folder swapped for a link since leads elsewhere,
        to files of the same name that are not ours). POSIX: in the folder held open,
        wherever it was moved; elsewhere, only while the folder is still at its path."""
        fd = self._dir_fd
        if fd is None and (
            self._folder_id is None or _folder_identity(self.folder) != self._folder_id
        ):
            return  # not the folder written into any more: nothing in it is known ours
        for path, made in self.created:
            with contextlib.suppress(OSError):
                if fd is not None:
                    if _identity(os.stat(path.name, dir_fd=fd, follow_symlinks=False)) == made:
                        os.unlink(path.name, dir_fd=fd)
                elif _identity(os.lstat(path)) == made:
                    path.unlink()
        if self.created_folder and _folder_identity(self.folder) == self._folder_id:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only ever an empty folder

    def close(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _folder_identity(folder: Path) -> tuple[int, int] | None:
    """The folder's identity, None when it is gone or no longer a folder (a link is
    not followed: a link in its place is not it)."""
    try:
        st = os.lstat(folder)
    except OSError:
        return None
    return _identity(st) if stat.S_ISDIR(st.st_mode) else None


def _numbered(folder: Path, n: int) -> Path:
    """``report_files (n)``, the name shortened to keep the counter within 255 bytes."""
    tail = f" ({n})"
    room = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    short = folder.name.encode("utf-8")[:room].decode("utf-8", "ignore")
    return folder.with_name(short + tail)


async def export_room(
    snapshot: RoomSnapshot,
    read_page: PageReader,
    read_blob: BlobReader | None,
    *,
    fmt: str,
    path: Path,
    force: bool = False,
    progress: Progress | None = None,
    exported_at: float | None = None,
    page_rows: int = PAGE_ROWS,
    max_blob_bytes: int = MAX_BLOB_BYTES,
) -> ExportSummary:
    """Write ``snapshot``'s room to ``path`` as ``fmt`` (``html`` or ``jsonl``).

    ``read_page(start, stop)``: rows of ``snapshot.result`` with their bodies, pinned
    (``timeline_page(pinned=True)``: a room read again meanwhile keeps them); None when
    the room can no longer be read (its storage removed, the room left): the export stops
    with an ``ExportError``, the file not written; ``read_blob``:
    an attachment's verified bytes (HTML only; None copies nothing). ``progress(done,
    total)`` after each page. Raises ``ExportExistsError`` when the output exists and
    not ``force``, ``ExportError`` for anything else the user must know.

    ``force`` replaces the output file only (when the export is complete): attachments
    never go into a folder that holds anything (``summary.files_dir`` says where they
    went: ``report_files (2)`` when ``report_files`` was taken), no file is ever
    overwritten, and a cancel or a failure removes only what this export created."""
    path = Path(os.path.abspath(path))
    _check_destination(path, fmt, force)
    summary = ExportSummary(path, fmt)
    files: _Files | None = None
    if fmt == "html" and read_blob is not None:
        files = _Files(files_dir_for(path), read_blob, max_blob_bytes)
        summary.files_dir = files.folder
    ok = False
    try:
        output = atomic_output(path, mode=0o644, overwrite=force)
        out = await _off_loop(output.__enter__)
        try:
            await _write(
                snapshot, out, read_page, files, summary, fmt, exported_at, page_rows, progress
            )
        except BaseException as exc:
            # The temporary file goes; ``path`` stays as it was. (No thread writes to it
            # any more: ``_off_loop`` waited for the one that was running.)
            await _off_loop(output.__exit__, type(exc), exc, exc.__traceback__)
            raise
        # Flushed, synced, named: once it begins, the page takes its name (a file the
        # user agreed to replace is gone), so a cancel that comes meanwhile is not
        # honoured for this step; what the page links stays, and the export is done.
        summary.cancelled_late = await _publish(output.__exit__, None, None, None)
        ok = True
    except FileExistsError as exc:
        raise ExportExistsError(f"{path} exists: choose another name, or overwrite it") from exc
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        try:
            if not ok and files is not None:
                await _off_loop(files.remove)
        finally:  # also when a cancel arrives while it removes
            if files is not None:
                files.close()
    if files is not None:
        summary.copied, summary.not_copied = files.copied, files.not_copied
        summary.files_dir = files.folder if files.created else None
    with contextlib.suppress(OSError):
        summary.bytes = path.stat().st_size
    return summary


async def _write(
    snapshot: RoomSnapshot,
    out: BinaryIO,
    read_page: PageReader,
    files: _Files | None,
    summary: ExportSummary,
    fmt: str,
    exported_at: float | None,
    page_rows: int,
    progress: Progress | None,
) -> None:
    total = snapshot.total

    def make() -> HtmlWriter | JsonlWriter:  # folds the room's names: off the loop
        if fmt == "html":
            return HtmlWriter(snapshot, out, exported_at=exported_at)
        return JsonlWriter(snapshot, out, exported_at=exported_at)

    writer = await _off_loop(make)
    await _off_loop(writer.begin)
    if progress is not None:
        progress(0, total)
    for start in range(0, total, page_rows):
        stop = min(total, start + page_rows)
        rows = await _page(read_page, start, stop)
        attachments: dict[int, Attachment] = {}  # by timeline position
        if isinstance(writer, HtmlWriter):
            for position in writer.wanted_quotes(rows).values():
                parent = await _page(read_page, position, position + 1)
                await _off_loop(writer.remember, parent)
            if files is not None:
                for position, row in enumerate(rows, start):
                    ev = row.event
                    if isinstance(ev, Event) and _is_file(ev, snapshot):
                        att = await files.copy(ev)
                        if att is not None:
                            attachments[position] = att
        await _off_loop(writer.page, start, rows, attachments)
        if progress is not None:
            progress(stop, total)
    await _off_loop(writer.end)
    summary.events, summary.damaged, summary.late = writer.written, writer.damaged, writer.late
    summary.late_changes = writer.late_changes


async def _publish(fn: Callable[..., Any], *args: Any) -> bool:
    """``fn(*args)`` in a worker thread, run to its end whatever cancels the task
    meanwhile (the page taking its name: ``_off_loop`` would raise the cancel once the
    name was taken, and the export be undone around a page that replaced the user's).
    True when a cancel came and was absorbed: the step was done, so the export is. When
    the step fails, a cancel that came is raised (nothing was published), else the
    step's error."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    cancels = 0
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancels += 1
    try:
        future.result()
    except BaseException as exc:
        if cancels:
            raise asyncio.CancelledError from exc
        raise
    task = asyncio.current_task()
    if task is not None:
        for _ in range(cancels):
            task.uncancel()  # too late to undo anything: the task goes on, done
    return cancels > 0


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread. Cancelled meanwhile, it still waits for that
    thread to finish before the cancellation goes on, so cleaning up never races a
    thread that still writes."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise


def _is_file(ev: Event, snapshot: RoomSnapshot) -> bool:
    if ev.type != MESSAGE:
        return False
    if not is_file_message(ev.content):
        return False
    agg = snapshot.relations.of(ev.event_id)
    # A deleted message's file is not copied; an edited one shows its new text instead.
    return agg is None or (agg.redacted is None and not agg.edits)


async def _page(read_page: PageReader, start: int, stop: int) -> Sequence[ShownEvent]:
    rows = await read_page(start, stop)
    if rows is None:
        raise ExportError(
            "the room can no longer be read here: its storage was removed or the room "
            "left while it was being exported; nothing was written"
        )
    if len(rows) != stop - start:
        raise ExportError(f"the room's rows {start}…{stop} could not be read")
    return rows
