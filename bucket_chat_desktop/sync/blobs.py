"""Uploading and downloading attachment blobs (see ``protocol/attachments.py``).

``upload`` reads a local file, hashes it, makes a thumbnail of an image, and stores the
bytes create-only under their SHA-256; it returns the message content to send. Nothing
here sends the message: the caller does, after the blob is safely stored, so a message
never names a blob that is not there (unless the storage loses it).

``download`` fetches a blob and checks it against the signed hash and size before
anything else sees the bytes; a mismatch raises ``BlobMismatchError``, never returns data.
``BlobCache`` keeps verified blobs on this machine, named by hash (so a cached file can be
trusted as long as it still hashes right, which is checked again on every read).

Every file access and every CPU-heavy step (hashing, Pillow) runs in a worker thread; the
event loop only schedules and reports progress.

Progress and cancellation, honestly: the ``Storage`` interface writes whole objects, so
``progress`` counts bytes *read and hashed*; the write itself is one step, announced
through ``stage`` ("uploading"). Cancelling before the write leaves nothing in the
storage. Cancelling during the write is best effort: the write is abandoned (for cloud
stores the request is cancelled; a local folder write already in a worker thread
finishes), so an unreferenced blob may remain. That is harmless: blobs are content
addressed and no message names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import mimetypes
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import osfiles, paths
from ..osfiles import ensure_private_dir, write_atomic
from ..protocol.attachments import (
    MAX_THUMBNAIL_BYTES,
    THUMBNAIL_BOX,
    FileInfo,
    blob_path,
    file_content,
    is_sha256_hex,
    middle_cut,
    safe_file_name,
    sha256_hex,
    verify_blob,
)
from ..protocol.canonical import b64encode
from ..protocol.untrusted_text import one_line
from ..storage.base import (
    READ_RATE_FLOOR,
    AlreadyExistsError,
    NotRegularFileError,
    Storage,
    StorageNotFoundError,
    UnreadableObjectError,
)

log = logging.getLogger("bucket_chat.sync")

CHUNK = 1024 * 1024
DOWNLOAD_MIN_RATE = 8 * 1024
"""Bytes a second an attachment's download must keep once the service's own time is
used up (``storage.base.READ_RATE_FLOOR``). The app's own reads keep 256 KiB/s
(``storage.cloud.MIN_READ_RATE``), so that a service that trickles cannot hold them;
at that rate a 25 MB attachment could not be downloaded over a link under about
2 Mbit/s at all (every try stopped at the same point). A person asked for this one,
sees it come and can cancel it; a service sending less than this still ends it."""
SLOW_DOWNLOADS = 3
"""Downloads that may keep only ``DOWNLOAD_MIN_RATE`` at once (more keep the app's own
256 KiB/s). They share the storage's connections with the app's own reads (botocore's
pool holds 10): a service that sent ten attachments just over 8 KiB/s held every
connection for most of an hour, and each segment read, listing and marker failed as
"no answer" meanwhile."""
_slow_downloads = 0
_slow_lock = threading.Lock()


@contextlib.contextmanager
def _slow_download_allowed() -> Iterator[None]:
    """``DOWNLOAD_MIN_RATE`` for the reads inside, if fewer than ``SLOW_DOWNLOADS``
    downloads have it now; else the app's own rate."""
    global _slow_downloads
    with _slow_lock:
        allowed = _slow_downloads < SLOW_DOWNLOADS
        if allowed:
            _slow_downloads += 1
    if not allowed:
        yield
        return
    floor = READ_RATE_FLOOR.set(DOWNLOAD_MIN_RATE)
    try:
        yield
    finally:
        READ_RATE_FLOOR.reset(floor)
        with _slow_lock:
            _slow_downloads -= 1


MAX_PREVIEW_PIXELS = 40_000_000
"""Images with more pixels are sent as plain files: decoding one would take too much
memory (a 40-megapixel RGB image is 120 MB). Checked from the header, before decoding."""
PREVIEW_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif"}
PREVIEW_FORMATS |= {"WEBP": "image/webp", "BMP": "image/bmp", "TIFF": "image/tiff"}

# Stages reported through ``stage``.
READING = "reading"
PREVIEW = "preview"
UPLOADING = "uploading"
DONE = "done"

Progress = Callable[[int, int], None]
Stage = Callable[[str], None]


class BlobError(Exception):
    """An attachment problem, with a message written for the user."""


class AttachmentRefusedError(BlobError):
    """The file cannot be attached as it is (too large, not a file, unreadable)."""


class UploadCancelledError(BlobError):
    """The user cancelled; see ``stored`` for whether the blob may already exist."""

    def __init__(self, message: str, *, stored: bool = False) -> None:
        super().__init__(message)
        self.stored = stored


class BlobMissingError(BlobError):
    """The message names a blob the storage does not have (not synced yet, or lost)."""


class BlobTooLargeError(BlobError):
    """The announced file is larger than this device agrees to download."""


class BlobMismatchError(BlobError):
    """The stored bytes are not the file the signed message announced: tampering or damage.

    Never comes with data. ``path`` is the blob's object path; ``event_id`` (when the
    caller passed one) the message that announced it; ``conclusion`` whom the mismatch
    blames: the storage (``STORED``: bytes of the announced size that do not hash
    right), the message (``MESSAGE``: the file of its SHA-256 has another size), or
    neither (``EITHER``: a stored object larger than the message says, refused unread,
    may be a damaged file or the right one under a message that understates its size).
    """

    STORED = "The file in the storage was changed or damaged"
    MESSAGE = "The signed message does not describe the file it names"
    EITHER = "The stored object and the signed message that names it disagree"

    def __init__(
        self,
        problem: str,
        *,
        name: str,
        path: str,
        event_id: str | None = None,
        conclusion: str = STORED,
    ) -> None:
        super().__init__(f"{name}: {problem}. {conclusion}; it was not used.")
        self.conclusion = conclusion  # whom the mismatch blames
        self.problem = problem
        self.name = name
        self.path = path
        self.event_id = event_id


def human_size(n: int) -> str:
    """``80 MB``, ``1.5 GB``, ``512 bytes``: units of 1024, as the timeline shows them."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            if unit == "bytes":
                return f"{n:,} bytes"
            text = f"{size:,.1f}".removesuffix(".0")
            return f"{text} {unit}"
        size /= 1024
    return f"{n:,} bytes"  # pragma: no cover - the loop always returns


def refusal_for_size(name: str, size: int, limit_bytes: int) -> str | None:
    """The message shown when a file is over the limit, else None."""
    if size <= limit_bytes:
        return None
    return f"{name} is {human_size(size)}; the limit is {human_size(limit_bytes)} (Settings)"


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageFacts:
    mimetype: str
    width: int
    height: int
    thumbnail: bytes | None


def _open_regular(path: Path) -> tuple[BinaryIO, int]:
    """The picked file, open, and its size when opened (``osfiles.open_regular``).

    Opened with ``O_NONBLOCK`` and checked with ``fstat``: a FIFO swapped in after the
    look (red team rt65) is refused, never waited on (a worker blocked in ``open`` held
    the upload queue and the app's exit for good). A file of the kernel's own trees
    (``/proc``, ``/sys``, ``/dev``), whatever link led there, is refused: procfs calls
    ``/proc/self/environ`` a regular file of 0 bytes, and it reads as the app's
    environment, cloud secrets included (rt65)."""
    name = safe_file_name(path.name)
    try:
        fd, real, st = osfiles.open_regular(path)
    except osfiles.SpecialFileError as exc:
        if exc.kind == "folder":
            raise AttachmentRefusedError(f"{name} is a folder; attach the files inside it") from exc
        raise AttachmentRefusedError(
            f"{name} is not a regular file ({_led_to(path, exc.path)}{exc.kind})"
        ) from exc
    try:
        tree = osfiles.system_tree(real, st)
        if tree is not None:
            raise AttachmentRefusedError(
                f"{name} is not a regular file ({_led_to(path, real)}a file the system "
                f"shows in {tree}, not a document); nothing was sent"
            )
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def link_target(path: Path) -> str | None:
    """Where ``path`` really leads when a link in it leads elsewhere, else None: what
    is read and sent under the picked name. Blocking (it looks at the disk)."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return None
    return None if real == os.path.abspath(path) else real


def link_note(path: Path) -> str:
    """What the transfer row adds when a link in ``path`` leads elsewhere ("a link to
    /home/…/report-v7.pdf", else ""): what is read and sent under the picked name.
    Blocking (it looks at the disk)."""
    real = link_target(path)
    return "" if real is None else _link_to(real)


def _link_to(real: str) -> str:
    return f"a link to {middle_cut(one_line(real, 1000), 120)}"


def _led_to(path: Path, real: str) -> str:
    """The words before a refusal's reason: "a link to /proc/42/environ: " when ``path``
    is not ``real`` itself, else ""."""
    if real == os.path.abspath(path):
        return ""
    return f"{_link_to(real)}: "


async def read_file(
    path: Path,
    *,
    limit_bytes: int,
    progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
) -> tuple[bytes, str]:
    """The file's bytes and SHA-256 hex, read a chunk at a time in a worker thread.

    Refuses a file over ``limit_bytes`` before reading it. Never reads more than the
    size the file had when opened: one that yields more is refused (it grew meanwhile:
    a file still being written, or a kernel file that calls itself empty and is not,
    red team rt65), never sent as what it was named. ``progress(done, total)`` is
    called on the loop.
    """
    name = safe_file_name(path.name)
    try:
        fh, size = await asyncio.to_thread(_open_regular, path)
    except FileNotFoundError as exc:
        raise AttachmentRefusedError(f"{name} does not exist (moved or deleted?)") from exc
    except IsADirectoryError as exc:
        raise AttachmentRefusedError(f"{name} is a folder; attach the files inside it") from exc
    except PermissionError as exc:
        raise AttachmentRefusedError(f"{name} cannot be read: permission denied") from exc
    except OSError as exc:
        raise AttachmentRefusedError(f"{name} cannot be read: {exc.strerror or exc}") from exc
    try:
        refusal = refusal_for_size(name, size, limit_bytes)
        if refusal:
            raise AttachmentRefusedError(refusal)
        digest = hashlib.sha256()
        parts: list[bytes] = []
        done = 0
        if progress:
            progress(0, size)
        while True:
            if cancel is not None and cancel.is_set():
                raise UploadCancelledError(f"{name}: cancelled; nothing was stored")
            try:
                # One byte past the size tells a file that grew from one that did not.
                chunk = await asyncio.to_thread(_read_and_hash, fh, digest, size + 1 - done)
            except OSError as exc:
                raise AttachmentRefusedError(
                    f"{name} cannot be read: {exc.strerror or exc}"
                ) from exc
            if not chunk:
                break
            parts.append(chunk)
            done += len(chunk)
            if done > size:
                raise AttachmentRefusedError(
                    f"{name} changed while it was read: it holds more than the "
                    f"{human_size(size)} it had when opened (still being written?); "
                    "nothing was sent. Attach it again once it is complete"
                )
            if progress:
                progress(done, max(size, done))
    finally:
        await asyncio.to_thread(fh.close)
    # Joining 25 MB is a memcpy long enough to stutter the GUI: off the loop too.
    data = parts[0] if len(parts) == 1 else await asyncio.to_thread(b"".join, parts)
    return data, digest.hexdigest()


def _read_and_hash(fh: BinaryIO, digest: Any, most: int) -> bytes:
    chunk = fh.read(max(0, min(CHUNK, most)))
    digest.update(chunk)
    return chunk


# -- images ----------------------------------------------------------------------------------


def describe_image(data: bytes) -> ImageFacts | None:
    """Size and thumbnail of an image in a format every desktop shows, else None.

    Blocking and CPU-heavy: call it in a worker thread. Reads the header first and
    refuses to decode more than ``MAX_PREVIEW_PIXELS`` (decompression bombs). EXIF
    orientation is applied to both the reported size and the thumbnail, so a portrait
    photo from a phone is announced and previewed upright.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=list(PREVIEW_FORMATS)) as img:
            width, height = img.size
            if width < 1 or height < 1 or width * height > MAX_PREVIEW_PIXELS:
                return None
            mimetype = PREVIEW_FORMATS[str(img.format)]
            orientation = _orientation(img)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            thumbnail = _thumbnail(img, orientation)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        log.info("not previewing an image: %s", exc)
        return None
    except Exception as exc:  # a broken file must never stop an upload
        log.warning("Pillow failed on an image (%s: %s)", type(exc).__name__, exc)
        return None
    return ImageFacts(mimetype, width, height, thumbnail)


def _orientation(img: Any) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _thumbnail(img: Any, orientation: int) -> bytes | None:
    """A JPEG (or PNG, for images with transparency) within ``THUMBNAIL_BOX`` and
    ``MAX_THUMBNAIL_BYTES``, shrinking size and quality until it fits."""
    from PIL import Image

    box_w, box_h = THUMBNAIL_BOX
    if orientation in (5, 6, 7, 8):
        box_w, box_h = box_h, box_w
    img.seek(0)
    if img.format == "JPEG":
        img.draft("RGB", (box_w, box_h))  # decode at a reduced scale: fast and small
    frame = img.convert("RGBA" if _has_alpha(img) else "RGB")
    frame.thumbnail((box_w, box_h), Image.Resampling.LANCZOS)
    transpose = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    if transpose is not None:
        frame = frame.transpose(transpose)
    for scale in (1.0, 0.75, 0.5, 0.35, 0.25):
        small = frame
        if scale < 1.0:
            size = (max(1, int(frame.width * scale)), max(1, int(frame.height * scale)))
            small = frame.resize(size, Image.Resampling.LANCZOS)
        if small.mode == "RGBA":
            out = io.BytesIO()
            small.save(out, "PNG", optimize=True)
            if out.tell() <= MAX_THUMBNAIL_BYTES:
                return out.getvalue()
            # too big as PNG: flatten onto white and try JPEG at this size
            flat = Image.new("RGB", small.size, "white")
            flat.paste(small, mask=small.getchannel("A"))
            small = flat
        for quality in (80, 65, 50, 35):
            out = io.BytesIO()
            small.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= MAX_THUMBNAIL_BYTES:
                return out.getvalue()
    return None


def _has_alpha(img: Any) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def guess_mimetype(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


# -- upload ----------------------------------------------------------------------------------


async def upload(
    storage: Storage,
    room_id: str,
    path: str | os.PathLike[str],
    *,
    limit_bytes: int,
    progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
    stage: Stage | None = None,
    name: str | None = None,
    cache: BlobCache | None = None,
) -> dict[str, Any]:
    """Store a local file as a blob of ``room_id``; return the message content to send.

    Raises ``AttachmentRefusedError`` (with the reason: over ``limit_bytes``, not a
    file, unreadable), ``UploadCancelledError`` when ``cancel`` is set, ``BlobError`` when
    a different object already sits at the blob's name (a damaged or hostile storage:
    nobody could ever download this file intact), and ``StorageError`` as the storage
    does. ``name`` overrides the file name announced (default: the file's own name).
    """
    source = Path(path)
    shown = safe_file_name(name if name is not None else source.name)
    if stage:
        stage(READING)
    data, digest = await read_file(
        source, limit_bytes=limit_bytes, progress=progress, cancel=cancel
    )
    target = blob_path(room_id, digest)
    if stage:
        stage(PREVIEW)
    facts = await asyncio.to_thread(describe_image, data)
    if cancel is not None and cancel.is_set():
        raise UploadCancelledError(f"{shown}: cancelled; nothing was stored")
    if stage:
        stage(UPLOADING)
    await _put_cancellable(storage, target, data, shown, cancel)
    if cache is not None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(cache.put, digest, data)
    if stage:
        stage(DONE)
    if facts is None:
        mimetype = await asyncio.to_thread(guess_mimetype, shown)  # reads mime.types once
        return file_content(shown, len(data), mimetype, digest)
    return file_content(
        shown,
        len(data),
        facts.mimetype,
        digest,
        width=facts.width,
        height=facts.height,
        thumbnail_b64=b64encode(facts.thumbnail) if facts.thumbnail else None,
    )


async def _put_cancellable(
    storage: Storage, target: str, data: bytes, shown: str, cancel: asyncio.Event | None
) -> None:
    put = asyncio.ensure_future(storage.put_if_absent(target, data))
    racers: set[asyncio.Future[Any]] = {put}
    waiter = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    if waiter is not None:
        racers.add(waiter)
    try:
        await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        put.cancel()
        raise
    finally:
        if waiter is not None:
            waiter.cancel()
    if not put.done():
        put.cancel()
        raise UploadCancelledError(
            f"{shown}: cancelled while uploading; no message was sent (the file may "
            "remain in the storage, unreferenced)",
            stored=True,
        )
    try:
        created = put.result()
    except AlreadyExistsError as exc:
        if not exc.compared:  # an object that may be this very file, unreadable (rt58)
            raise BlobError(
                f"{shown} cannot be stored: its name is held by an object this device "
                f"cannot compare with it ({exc})"
            ) from exc
        raise BlobError(
            f"{shown} cannot be stored: a different object already occupies its name "
            f"{target} (the storage holds damaged or forged data)"
        ) from exc
    if not created:
        log.info("blob %s was already stored (identical bytes)", target)


# -- download --------------------------------------------------------------------------------


async def download(
    storage: Storage,
    room_id: str,
    info: FileInfo,
    dest: str | os.PathLike[str] | None = None,
    *,
    cache: BlobCache | None = None,
    max_bytes: int | None = None,
    event_id: str | None = None,
) -> bytes:
    """The verified bytes of the blob ``info`` announces; also written to ``dest``.

    Served from ``cache`` when it has the blob (re-verified), else fetched and verified,
    then cached. Raises ``BlobMismatchError`` when the bytes are not exactly the
    announced file (nothing is written anywhere then), ``BlobMissingError`` when the
    storage has no such blob, ``BlobTooLargeError`` when ``info.size`` exceeds
    ``max_bytes``, and ``StorageError`` as the storage does.
    """
    path = blob_path(room_id, info.sha256)
    data = await asyncio.to_thread(cache.get, info) if cache is not None else None
    if data is not None and len(data) != info.size:
        # The file of that SHA-256 is this device's, verified: it is the message that
        # lies about its size (red team rt55: the copy was deleted as "damaged").
        raise _size_lie(info, len(data), path, event_id, "this device keeps its copy")
    if data is None:
        if max_bytes is not None and info.size > max_bytes:
            raise BlobTooLargeError(
                f"{info.name} is {human_size(info.size)}; this device downloads at most "
                f"{human_size(max_bytes)} (Settings)"
            )
        try:
            # The signed size is the cap: a blob that holds more is refused after
            # info.size + 1 bytes, never read whole (nor a FIFO/link put in its place).
            with _slow_download_allowed():
                data = await storage.get(path, max_bytes=info.size)
        except StorageNotFoundError as exc:
            raise BlobMissingError(
                f"{info.name} is not in the storage (yet): {path} does not exist"
            ) from exc
        except UnreadableObjectError as exc:
            conclusion = BlobMismatchError.STORED
            if isinstance(exc, NotRegularFileError):
                why = f"the stored object is not a regular file: {exc.kind}"
            else:
                # Not read past the signed size, so not hashed: the storage may hold a
                # damaged file, or the right one under a message that understates its
                # size (red team rt56). Neither is blamed.
                why = f"the stored object is larger than the announced {human_size(info.size)}"
                conclusion = BlobMismatchError.EITHER
            log.warning("blob %s does not match its message %s: %s", path, event_id, why)
            raise BlobMismatchError(
                why, name=info.name, path=path, event_id=event_id, conclusion=conclusion
            ) from exc
        if len(data) != info.size and await asyncio.to_thread(sha256_hex, data) == info.sha256:
            raise _size_lie(info, len(data), path, event_id, "the storage holds it as named")
        problem = await asyncio.to_thread(verify_blob, data, info)
        if problem is not None:
            log.warning("blob %s does not match its message %s: %s", path, event_id, problem)
            raise BlobMismatchError(problem, name=info.name, path=path, event_id=event_id)
        if cache is not None:
            try:
                await asyncio.to_thread(cache.put, info.sha256, data)
            except OSError as exc:
                log.warning("could not cache %s: %s", path, exc)
    if dest is not None:
        await asyncio.to_thread(write_atomic, Path(dest), data, mode=0o644)
    return data


def size_lie(announced: int, size: int, kept: str) -> str:
    """What a message that names a file by its SHA-256 with another size gets wrong:
    "the signed message says 1,201 bytes, but the file of its SHA-256 has 1,200 (…)",
    ``kept`` saying where that file is."""
    return (
        f"the signed message says {announced:,} bytes, but the file of its SHA-256 has "
        f"{size:,} ({kept})"
    )


def _size_lie(
    info: FileInfo, size: int, path: str, event_id: str | None, kept: str
) -> BlobMismatchError:
    """The error for a message that names a file by its SHA-256 with another size: the
    bytes are right, the message is wrong (nobody can store bytes that match it)."""
    lie = size_lie(info.size, size, kept)
    log.warning("message %s does not match blob %s: %s", event_id, path, lie)
    return BlobMismatchError(
        lie, name=info.name, path=path, event_id=event_id, conclusion=BlobMismatchError.MESSAGE
    )


# -- cache -----------------------------------------------------------------------------------


class BlobCache:
    """Verified blobs on this machine, ``<root>/<2 hex>/<sha256 hex>``, plus named copies
    for opening them with the desktop's default application.

    Content addressed, so one cache serves every room and storage. Every read is
    verified again; a file that no longer matches is deleted and treated as absent.
    Blocking: call the methods from a worker thread.
    """

    def __init__(self, root: Path | None = None, *, max_bytes: int = 1024 * 1024 * 1024) -> None:
        self.root = root if root is not None else paths.data_dir() / "cache" / "blobs"
        self.max_bytes = max_bytes

    def _private(self, folder: Path) -> None:
        """Cached attachments are the user's alone: the cache's folders are 0700 (also
        those an older version created 0755), its files 0600 (``write_atomic``)."""
        ensure_private_dir(self.root)
        for part in reversed(folder.relative_to(self.root).parents):
            ensure_private_dir(self.root / part)
        ensure_private_dir(folder)

    def path_for(self, sha256: str) -> Path:
        if not is_sha256_hex(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256

    def get(self, info: FileInfo) -> bytes | None:
        """The cached bytes of ``info.sha256`` (checked against it), or None. Their size
        may differ from ``info.size``: the caller says so (``download``)."""
        path = self.path_for(info.sha256)
        data = self._read(path, max(info.size, self.max_bytes))
        if data is None:
            return None
        # Damaged when its bytes are not those of its name's SHA-256. Not by the size a
        # message names: any member can sign a message with the right hash and a wrong
        # size, and the copy, deleted for it, may be the only one left (red team rt55).
        if sha256_hex(data) != info.sha256:
            log.warning("cached blob %s is damaged; discarding it", path)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return data

    @staticmethod
    def _read(path: Path, cap: int) -> bytes | None:
        """The bytes of the cache file ``path``, or None when it is not one to read.

        Read with ``osfiles.read_regular_file``: a FIFO there (or a link to one, or to
        ``/dev/zero``: a restored backup, a sync tool over the data folder) is refused
        without blocking (it hung Open, Save as… and exports for good: red team rt65)
        and removed, so the blob is fetched from the storage instead. ``cap``: more
        than the cache holds at all (a message may understate the size of a file this
        device keeps, rt55: the caller says so), never read whole."""
        try:
            return osfiles.read_regular_file(path, cap)
        except osfiles.SpecialFileError as exc:
            log.warning("cached blob %s is not a regular file (%s); discarding it", path, exc.kind)
            with contextlib.suppress(OSError):  # a folder stays (and is never read)
                path.unlink()
            return None
        except osfiles.FileTooLargeError:
            log.warning("cached blob %s holds more than %s; not using it", path, human_size(cap))
            return None
        except OSError:
            return None

    def put(self, sha256: str, data: bytes) -> Path:
        """Store bytes the caller has verified (or hashed itself) under their hash."""
        path = self.path_for(sha256)
        self._private(path.parent)
        if not path.exists():
            write_atomic(path, data)
            self.prune()
        return path

    def open_copy(self, info: FileInfo, data: bytes) -> Path:
        """A copy named ``info.name`` (sanitised) to hand to the desktop; not executable."""
        folder = self.root / "named" / info.sha256[:32]
        self._private(folder)
        path = folder / safe_file_name(info.name)
        if self._read(path, len(data)) == data:
            return path
        write_atomic(path, data)  # replaces whatever was there (a FIFO, a link), unread
        return path

    def prune(self) -> None:
        """Remove least recently used blobs while the cache is over ``max_bytes``."""
        try:
            files = [*self.root.glob("??/*"), *self.root.glob("named/*/*")]
            stats = [(p, p.stat()) for p in files if p.is_file()]
        except OSError:
            return
        total = sum(s.st_size for _, s in stats)
        for p, s in sorted(stats, key=lambda item: item[1].st_mtime):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                p.unlink()
                total -= s.st_size
