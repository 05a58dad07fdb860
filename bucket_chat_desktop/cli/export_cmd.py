"""``bucket-chat export``: a room's verified timeline as an HTML page or JSONL.

Reads the room through the app's read path (this device's index, the engine's audit,
pages with bodies from the index) and its attachments through ``sync.blobs.download``
(checked against the signed hash). Progress goes to stderr; the summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from ..export import FORMATS, ExportError
from ..protocol.attachments import FileInfo
from ..protocol.untrusted_text import terminal_safe
from ..storage import Storage, StorageError
from ..storage.base import StorageOfflineError
from ..sync.client import ChatClient, SyncConfig
from ..sync.watched import NoAnswerError, interactive_deadline
from . import format as fmt

# Seconds one request of the export (reading the room, then each attachment) may wait
# without an answer: longer than the interactive deadline, an export reads much. A file
# comes in one request, so a big one on a slow link gets longer: its size at this rate.
READ_NO_ANSWER = 30.0
SLOWEST_LINK = 64 * 1024  # bytes a second
PROGRESS_EVERY = 2.0  # seconds between progress lines
PROGRESS_MIN_ROWS = 5_000  # smaller rooms are quiet


def add_export_parser(command: Any) -> None:
    p = command("export", "write a room's verified timeline to an HTML page or JSONL file")
    p.add_argument("--room-id", required=True, help="the room's id")
    p.add_argument("--format", choices=FORMATS, default="html", help="default: %(default)s")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the file to write")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output file once the export is complete (attachments "
        "never overwrite a file: a folder that holds files makes them go to another)",
    )
    p.add_argument(
        "--max-attachment-mb",
        type=int,
        default=512,
        help="attachments larger than this are not copied (HTML); default: %(default)s",
    )


class _Progress:
    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if total < PROGRESS_MIN_ROWS or (now - self.last < PROGRESS_EVERY and done < total):
            return
        self.last = now
        fmt.out(f"exporting: {done:,} of {total:,} events", file=sys.stderr, flush=True)


async def run_export(args: argparse.Namespace, storage: Storage, room_id: str) -> int:
    """0 when written (also for a room with findings: the export says so), 2 otherwise
    (raised as ``ExportError``/``StorageError`` to ``main``)."""
    from ..export.runner import export_room, files_dir_for  # the writers: only here
    from ..export.snapshot import snapshot_of
    from .main import _require_room  # the command's shared checks

    if args.max_attachment_mb < 0:
        raise ExportError("--max-attachment-mb must be 0 or more")
    path = Path(args.output).expanduser()
    # Bodies come from the index a page at a time, as in the app: a huge room is never
    # held in memory whole.
    config = SyncConfig(keep_bodies=False)
    async with ChatClient.session(storage, outbox=False, config=config) as client:
        ref = client.room(room_id)
        seconds = interactive_deadline()
        await _require_room(storage, room_id, client=client, seconds=seconds)
        try:
            await client.within(
                ref.storage_id,
                client.open_room(ref, focus=False, wait=True),
                max(seconds, READ_NO_ANSWER),
            )
        except NoAnswerError as exc:
            raise StorageError(f"{exc}; nothing was exported") from exc
        view = await client.room_view(ref)
        if view is None or view.result is None:
            raise ExportError(f"room {room_id!r} could not be read: nothing was exported")
        snapshot = snapshot_of(view, storage.describe())
        result = view.result

        async def read_page(start: int, stop: int) -> Any:
            return await client.timeline_page(ref, result, start, stop, pinned=True)

        async def read_blob(info: FileInfo, event_id: str) -> bytes:
            # Without a deadline the storage's own timeouts and retries held the export
            # that long for each file (90 s with the defaults; a provider holding the
            # connection open: for ever). The export skips the files after one that got
            # no answer (``export.runner``).
            wait = max(seconds, READ_NO_ANSWER, info.size / SLOWEST_LINK)
            download = client.download_blob(ref, info, event_id=event_id)
            try:
                return await asyncio.wait_for(download, wait)
            except TimeoutError as exc:
                raise StorageOfflineError(
                    f"no answer from {storage.describe()} within {wait:g} s"
                ) from exc

        summary = await export_room(
            snapshot,
            read_page,
            read_blob,
            fmt=args.format,
            path=path,
            force=args.force,
            progress=_Progress(),
            max_blob_bytes=args.max_attachment_mb * 1024 * 1024,
        )
    if summary.cancelled_late:
        fmt.out(
            f"interrupted after {terminal_safe(str(summary.path))} was written: the export "
            "is complete (not undone)",
            file=sys.stderr,
        )
    fmt.out(
        f"Exported {summary.events:,} events of {room_id!r} to {terminal_safe(str(summary.path))}"
    )
    if summary.copied or summary.not_copied:
        where = f" to {terminal_safe(str(summary.files_dir))}" if summary.files_dir else ""
        fmt.out(f"  attachments: {summary.copied:,} copied{where}")
        usual = files_dir_for(summary.path)
        if summary.files_dir is not None and summary.files_dir != usual:
            fmt.out(
                f"  ({terminal_safe(usual.name)} already holds other files: left as it was)",
                file=sys.stderr,
            )
    for name, why in summary.not_copied:
        fmt.out(f"  NOT COPIED: {terminal_safe(name)}: {terminal_safe(why)}", file=sys.stderr)
    if summary.damaged:
        fmt.out(f"  {summary.damaged:,} event(s) damaged in this device's cache", file=sys.stderr)
    verdict = "clean" if snapshot.clean else f"{len(snapshot.errors):,} finding(s)"
    if snapshot.vanished:
        verdict += "; part of the history was removed or changed in storage after it was read"
    elif not snapshot.complete:
        verdict += "; history not completely read"
    fmt.out(f"  audit: {verdict}")
    return 0
