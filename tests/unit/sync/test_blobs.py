"""Attachment blobs on a real local folder: upload and download round trips, limits,
cancellation, tampering, the cache, and images made with Pillow (thumbnails, EXIF
orientation, decompression bombs)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import PIL.ImageFile
import pytest
from file_modes import as_someone_modes_apply_to
from nacl.signing import SigningKey
from PIL import Image

from bucket_chat_desktop.protocol.attachments import (
    FILE,
    IMAGE,
    MAX_THUMBNAIL_BYTES,
    FileInfo,
    blob_path,
    parse_file_content,
)
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Severity
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import blobs
from bucket_chat_desktop.sync.blobs import (
    AttachmentRefusedError,
    BlobCache,
    BlobError,
    BlobMismatchError,
    BlobMissingError,
    BlobTooLargeError,
    UploadCancelledError,
    download,
    upload,
)
from bucket_chat_desktop.sync.session import read_room
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
MB = 1024 * 1024
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def info_of(content: dict[str, Any]) -> FileInfo:
    info = parse_file_content(content)
    assert isinstance(info, FileInfo), info
    return info


def blob_file(store: LocalStorage, sha: str) -> Path:
    return store.root / "rooms" / ROOM / "blobs" / sha


def stored_blobs(store: LocalStorage) -> list[str]:
    folder = store.root / "rooms" / ROOM / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def image_bytes(size: tuple[int, int], fmt: str = "PNG", **save: Any) -> bytes:
    img = Image.new("RGB", size)
    w, h = size
    # left half red, right half blue, a green bar at the top: orientation is checkable
    img.paste((220, 30, 30), (0, 0, w // 2, h))
    img.paste((30, 30, 220), (w // 2, 0, w, h))
    img.paste((30, 200, 30), (0, 0, w, max(1, h // 10)))
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


# -- round trips ------------------------------------------------------------------------------


def test_upload_then_download_round_trip(store: LocalStorage, files: Path, tmp_path: Path) -> None:
    data = os.urandom(3 * MB + 17)  # more than one read chunk
    path = files / "report.pdf"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    seen: list[tuple[int, int]] = []
    stages: list[str] = []
    content = run(
        upload(
            store,
            ROOM,
            path,
            limit_bytes=25 * MB,
            progress=lambda d, t: seen.append((d, t)),
            stage=stages.append,
        )
    )
    assert content == {
        "msgtype": FILE,
        "body": "report.pdf",
        "info": {
            "name": "report.pdf",
            "size": len(data),
            "mimetype": "application/pdf",
            "sha256": sha,
        },
    }
    assert blob_file(store, sha).read_bytes() == data
    assert stages == [blobs.READING, blobs.PREVIEW, blobs.UPLOADING, blobs.DONE]
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    dest = tmp_path / "saved.pdf"
    assert run(download(store, ROOM, info_of(content), dest)) == data
    assert dest.read_bytes() == data


def test_an_identical_re_upload_reuses_the_blob(store: LocalStorage, files: Path) -> None:
    (files / "a.txt").write_bytes(b"same bytes")
    (files / "copy of a.txt").write_bytes(b"same bytes")
    first = run(upload(store, ROOM, files / "a.txt", limit_bytes=MB))
    again = run(upload(store, ROOM, files / "a.txt", limit_bytes=MB))
    other = run(upload(store, ROOM, files / "copy of a.txt", limit_bytes=MB))
    assert first == again
    assert other["info"]["sha256"] == first["info"]["sha256"]
    assert other["body"] == "copy of a.txt"
    assert stored_blobs(store) == [first["info"]["sha256"]]


def test_an_empty_file_is_a_valid_attachment(store: LocalStorage, files: Path) -> None:
    (files / "empty").write_bytes(b"")
    content = run(upload(store, ROOM, files / "empty", limit_bytes=MB))
    assert content["info"]["size"] == 0
    assert run(download(store, ROOM, info_of(content))) == b""


def test_a_foreign_object_at_the_blob_name_refuses_the_upload(
    store: LocalStorage, files: Path
) -> None:
    data = b"the real file"
    (files / "f.txt").write_bytes(data)
    run(store.put_if_absent(blob_path(ROOM, hashlib.sha256(data).hexdigest()), b"squatter"))
    with pytest.raises(BlobError, match="different object already occupies"):
        run(upload(store, ROOM, files / "f.txt", limit_bytes=MB))


def test_the_room_still_audits_clean_with_blobs_beside_its_logs(
    store: LocalStorage, files: Path
) -> None:
    (files / "a.txt").write_bytes(b"attached")
    writer = RoomWriter(store, ROOM, "alice@example.com", SigningKey(b"\x01" * 32))
    run(writer.create_room("Room", "2025-09-14T12:00:45.000Z"))
    content = run(upload(store, ROOM, files / "a.txt", limit_bytes=MB))
    run(writer.send([Draft(MESSAGE, content)]))
    view = run(read_room(store, ROOM))
    assert view.complete and not view.partial and view.result is not None
    result = view.result
    assert [f for f in result.findings if f.severity is Severity.ERROR] == []
    assert not [f for f in result.findings if "blobs" in (f.path or "")]
    assert result.timeline[-1].event.content["info"]["sha256"] == content["info"]["sha256"]


# -- refusals ---------------------------------------------------------------------------------


def test_a_file_over_the_limit_is_refused_with_the_reason(store: LocalStorage, files: Path) -> None:
    path = files / "photo.raw"
    with open(path, "wb") as fh:
        fh.truncate(80 * MB)  # sparse: nothing is read
    with pytest.raises(AttachmentRefusedError) as caught:
        run(upload(store, ROOM, path, limit_bytes=25 * MB))
    assert str(caught.value) == "photo.raw is 80 MB; the limit is 25 MB (Settings)"
    assert stored_blobs(store) == []


def test_a_file_that_grows_while_read_is_refused_not_sent_cut_or_grown(
    store: LocalStorage, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never more bytes than the size taken at open (red team rt65: procfs says 0 and
    yields the environment); a file still being written says so and sends nothing."""
    path = files / "log.txt"
    path.write_bytes(b"x" * 100)
    real = blobs._open_regular

    def grown(p: Path) -> tuple[Any, int]:
        fh, size = real(p)
        with open(p, "ab") as more:
            more.write(b"y" * 2 * MB)
        return fh, size

    monkeypatch.setattr(blobs, "_open_regular", grown)
    with pytest.raises(AttachmentRefusedError) as caught:
        run(upload(store, ROOM, path, limit_bytes=25 * MB))
    assert str(caught.value) == (
        "log.txt changed while it was read: it holds more than the 100 bytes it had when "
        "opened (still being written?); nothing was sent. Attach it again once it is complete"
    )
    assert stored_blobs(store) == []


@pytest.mark.parametrize("what", ["missing", "folder", "fifo"])
def test_things_that_are_not_regular_files_are_refused(
    store: LocalStorage, files: Path, what: str
) -> None:
    path = files / "thing"
    if what == "folder":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)  # opening it would block forever
    with pytest.raises(AttachmentRefusedError, match="thing"):
        run(asyncio.wait_for(upload(store, ROOM, path, limit_bytes=MB), 10))


def _unblock(*fifos: Path) -> None:
    """Give a reader blocked in open() on one of these FIFOs a writer (it then reads EOF)."""
    for p in fifos:
        try:
            fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        os.close(fd)


def _in_thread(work: Callable[[], object], *fifos: Path, wait: float = 5) -> list[object]:
    """``work()`` in a thread: its result (or exception) in the list. A thread still busy
    after ``wait`` seconds is unblocked (its FIFOs get a writer) and the test fails: it
    never hangs itself."""
    result: list[object] = []

    def body() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # what the row would say
            result.append(exc)

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(wait)
    stuck = worker.is_alive()
    try:
        assert not stuck, f"blocked for {wait} s on a FIFO"
    finally:
        for _ in range(40):
            if not worker.is_alive():
                break
            _unblock(*fifos)
            worker.join(0.25)
    assert not worker.is_alive()
    return result


def test_a_fifo_swapped_in_between_the_look_and_the_open_is_refused_unopened(
    store: LocalStorage, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt65: the file was looked at (regular), then another user swapped a FIFO
    in; the blocking ``open`` waited for a writer for good, holding the upload queue (every
    later upload "Waiting…") and the app's exit. The swap happens right after the look."""
    picked = files / "report.pdf"
    picked.write_bytes(b"%PDF-1.7 the report")
    fifo = files / ".swap"
    os.mkfifo(fifo)
    real_stat = os.stat

    def look_then_swap(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real_stat(path, *args, **kwargs)
        if os.fspath(path) in (str(picked), os.path.realpath(picked)) and fifo.exists():
            os.replace(fifo, picked)  # the FIFO takes the picked name
        return st

    monkeypatch.setattr(os, "stat", look_then_swap)
    [outcome] = _in_thread(lambda: run(upload(store, ROOM, picked, limit_bytes=MB)), picked)
    monkeypatch.undo()
    assert isinstance(outcome, AttachmentRefusedError), outcome
    assert str(outcome) == "report.pdf is not a regular file (FIFO)"
    assert stored_blobs(store) == []


SWAPPER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
while True:
    libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE: a and b trade places
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2")
def test_an_attachment_swapped_for_a_fifo_by_another_process_never_hangs(
    store: LocalStorage, files: Path
) -> None:
    """Red team rt65, for real: another process swaps a FIFO and the picked file back and
    forth (``renameat2(RENAME_EXCHANGE)``) while the file is attached again and again.
    Each attempt is sent or refused; none blocks."""
    picked = files / "report.pdf"
    picked.write_bytes(b"%PDF-1.7 the report")
    swap = files / ".swap"
    os.mkfifo(swap)
    outcomes: list[str] = []
    stop = threading.Event()

    def attach_again_and_again() -> None:
        while not stop.is_set() and len(outcomes) < 300:
            try:
                run(upload(store, ROOM, picked, limit_bytes=MB))
                outcomes.append("sent")
            except AttachmentRefusedError as exc:
                outcomes.append(str(exc))

    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(picked), str(swap)])
    worker = threading.Thread(target=attach_again_and_again, daemon=True)
    worker.start()
    stalled = False
    try:
        seen = -1
        while worker.is_alive():
            worker.join(1.5)
            if worker.is_alive() and len(outcomes) == seen:  # none ended for 1.5 s: stuck
                stalled = True
                break
            seen = len(outcomes)
    finally:
        stop.set()
        swapper.kill()
        swapper.wait()
        for _ in range(40):  # a stuck open() gets a writer, reads EOF and goes on
            if not worker.is_alive():
                break
            _unblock(picked, swap)
            worker.join(0.25)
    assert not worker.is_alive()
    assert not stalled, f"an upload blocked on a FIFO after {len(outcomes)} attempts"
    refusals = {o for o in outcomes if o != "sent"}
    assert refusals <= {"report.pdf is not a regular file (FIFO)"}, refusals


ENVIRON_SECRET = "rt65-wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
ENVIRON_PASSPHRASE = "rt65 correct horse battery staple"
ENVIRON_CHILD = """
import asyncio, json, os, sys
from pathlib import Path
from bucket_chat_desktop.keys.passphrase import claim_env_passphrase
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import blobs
claim_env_passphrase()  # as the app and the CLI do first thing
assert "BUCKET_CHAT_PASSPHRASE" not in os.environ
store, picked = Path(sys.argv[1]), Path(sys.argv[2])
try:
    content = asyncio.run(blobs.upload(LocalStorage(store), "general", picked,
                                       limit_bytes=25 * 1024 * 1024))
    print(json.dumps({"sent": content}))
except blobs.BlobError as exc:
    print(json.dumps({"refused": str(exc)}))
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="procfs")
@pytest.mark.parametrize("how", ["link", "folder link"])
def test_a_link_to_the_apps_environment_is_refused_and_named(tmp_path: Path, how: str) -> None:
    """Red team rt65: "invoice.pdf", extracted from a member's archive as a link to
    ``/proc/self/environ``: procfs calls it a regular file of 0 bytes, and the upload
    read on past that and stored the app's environment (the cloud secret, the key
    passphrase even after ``claim_env_passphrase``) write-once, as "invoice.pdf". Run
    in a child process with a made-up secret in its environment; the real upload."""
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    if how == "link":
        picked = downloads / "invoice.pdf"
        picked.symlink_to("/proc/self/environ")  # as unzip or tar extracts it
    else:
        (downloads / "invoices").symlink_to("/proc/self")
        picked = downloads / "invoices" / "environ"
    store = tmp_path / "store"
    env = {
        **os.environ,
        "AWS_SECRET_ACCESS_KEY": ENVIRON_SECRET,
        "BUCKET_CHAT_PASSPHRASE": ENVIRON_PASSPHRASE,
    }
    child = subprocess.run(
        [sys.executable, "-c", ENVIRON_CHILD, str(store), str(picked)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert child.returncode == 0, child.stderr
    told = json.loads(child.stdout.strip().splitlines()[-1])
    stored = [p.read_bytes() for p in store.rglob("blobs/*") if p.is_file()]
    assert not [data for data in stored if ENVIRON_SECRET.encode() in data], told
    assert stored == [], told
    assert "refused" in told, told
    assert re.fullmatch(
        rf"{picked.name} is not a regular file \(a link to /proc/\d+/environ: a file the "
        r"system shows in /proc, not a document\); nothing was sent",
        told["refused"],
    ), told


def test_a_link_to_the_users_own_file_is_sent_and_its_target_named(
    store: LocalStorage, files: Path
) -> None:
    """A user's own link to their file is fine: what it leads to is sent, under the
    picked name; ``link_target`` says where it leads (the transfer row shows it)."""
    (files / "real-report-v7.pdf").write_bytes(b"%PDF-1.7 version 7")
    picked = files / "report.pdf"
    picked.symlink_to("real-report-v7.pdf")
    content = run(upload(store, ROOM, picked, limit_bytes=MB))
    assert content["info"]["name"] == "report.pdf"
    assert run(download(store, ROOM, info_of(content))) == b"%PDF-1.7 version 7"
    assert blobs.link_target(picked) == os.path.realpath(files / "real-report-v7.pdf")
    assert blobs.link_target(files / "real-report-v7.pdf") is None


# -- cancellation -----------------------------------------------------------------------------


def test_cancel_before_the_upload_stores_nothing(store: LocalStorage, files: Path) -> None:
    (files / "a.bin").write_bytes(b"a" * 100)
    cancel = asyncio.Event()
    cancel.set()
    with pytest.raises(UploadCancelledError) as caught:
        run(upload(store, ROOM, files / "a.bin", limit_bytes=MB, cancel=cancel))
    assert not caught.value.stored
    assert stored_blobs(store) == []


def test_cancel_while_reading_stores_nothing(store: LocalStorage, files: Path) -> None:
    (files / "big.bin").write_bytes(os.urandom(4 * MB))

    async def go() -> None:
        cancel = asyncio.Event()

        def progress(done: int, total: int) -> None:
            if done >= MB:
                cancel.set()

        await upload(
            store, ROOM, files / "big.bin", limit_bytes=25 * MB, progress=progress, cancel=cancel
        )

    with pytest.raises(UploadCancelledError, match="nothing was stored"):
        run(go())
    assert stored_blobs(store) == []


class SlowStorage(LocalStorage):
    """A real folder whose writes take a while (a slow uplink)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.started = asyncio.Event()
        self.finished = False

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        self.started.set()
        await asyncio.sleep(5)
        self.finished = True
        return await super().put_if_absent(path, data)


def test_cancel_during_the_put_abandons_it_and_says_so(tmp_path: Path, files: Path) -> None:
    store = SlowStorage(tmp_path / "slow")
    (files / "a.bin").write_bytes(b"a" * 1000)

    async def go() -> None:
        cancel = asyncio.Event()
        task = asyncio.ensure_future(
            upload(store, ROOM, files / "a.bin", limit_bytes=MB, cancel=cancel)
        )
        await store.started.wait()
        cancel.set()
        try:
            await task
        finally:
            assert not store.finished  # did not wait for the slow write

    with pytest.raises(UploadCancelledError) as caught:
        run(go())
    assert caught.value.stored  # best effort: the caller is told a blob may remain
    assert "no message was sent" in str(caught.value)


# -- downloads and tampering -------------------------------------------------------------------


def test_a_tampered_blob_raises_and_writes_nothing(
    store: LocalStorage, files: Path, tmp_path: Path
) -> None:
    (files / "contract.txt").write_bytes(b"pay 100 EUR")
    content = run(upload(store, ROOM, files / "contract.txt", limit_bytes=MB))
    info = info_of(content)
    blob_file(store, info.sha256).write_bytes(b"pay 900 EUR")  # same size, other bytes
    cache = BlobCache(tmp_path / "cache")
    dest = tmp_path / "out.txt"
    with pytest.raises(BlobMismatchError) as caught:
        run(download(store, ROOM, info, dest, cache=cache, event_id="ev-1"))
    assert caught.value.path == blob_path(ROOM, info.sha256)
    assert caught.value.event_id == "ev-1"
    assert str(caught.value).startswith("contract.txt: the stored file's SHA-256 is ")
    assert str(caught.value).endswith("changed or damaged; it was not used.")
    assert not dest.exists() and not list(tmp_path.glob(".out.txt*"))
    assert not cache.path_for(info.sha256).exists()
    blob_file(store, info.sha256).write_bytes(b"pay 100 EUR, thanks")  # other size
    with pytest.raises(BlobMismatchError, match="bytes"):
        run(download(store, ROOM, info, dest))


def test_a_blob_larger_than_its_signed_size_is_refused_unread(
    store: LocalStorage, files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message says 10 bytes; the storage holds 64 GiB (sparse) at the blob's name.
    Reading it whole before comparing sizes would take minutes and all the memory."""
    (files / "note.txt").write_bytes(b"0123456789")
    info = info_of(run(upload(store, ROOM, files / "note.txt", limit_bytes=MB)))
    blob = blob_file(store, info.sha256)
    blob.unlink()
    with open(blob, "wb") as fh:
        fh.truncate(64 * 1024**3)
    read: list[int] = []
    real_read = os.read

    def counting(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    dest = tmp_path / "out.txt"
    with pytest.raises(BlobMismatchError, match="larger than the announced 10 bytes"):
        run(download(store, ROOM, info, dest, cache=BlobCache(tmp_path / "cache")))
    assert sum(read) <= 11 and not dest.exists()


def test_a_message_that_understates_a_blobs_size_blames_neither_unread(
    store: LocalStorage, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt56: a message naming a blob by its right SHA-256 with a size SMALLER
    than the file's was said to have found the storage's file "changed or damaged": the
    read, capped at the size the message says, is refused as too large. Unread, nothing
    says which is wrong (a damaged file, or the right one under a wrong size): neither
    is blamed, and no more than the signed size (+1) is read to say so."""
    (files / "contract.pdf").write_bytes(b"%PDF-1.4 the signed contract\n" * 40)
    honest = info_of(run(upload(store, ROOM, files / "contract.pdf", limit_bytes=MB)))
    lying = dataclasses.replace(honest, name="contract-v2.pdf", size=honest.size - 1)
    read: list[int] = []
    real_read = os.read

    def counting(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    with pytest.raises(BlobMismatchError) as caught:
        run(download(store, ROOM, lying, event_id="$lie"))
    assert sum(read) <= honest.size
    assert caught.value.conclusion == BlobMismatchError.EITHER
    assert str(caught.value) == (
        "contract-v2.pdf: the stored object is larger than the announced 1.1 KB. The stored "
        "object and the signed message that names it disagree; it was not used."
    )
    assert "changed or damaged" not in str(caught.value)


def test_a_fifo_at_the_blob_name_is_refused_without_hanging(
    store: LocalStorage, files: Path, tmp_path: Path
) -> None:
    (files / "note.txt").write_bytes(b"0123456789")
    info = info_of(run(upload(store, ROOM, files / "note.txt", limit_bytes=MB)))
    blob = blob_file(store, info.sha256)
    blob.unlink()
    os.mkfifo(blob)

    async def bounded() -> None:
        await asyncio.wait_for(download(store, ROOM, info, tmp_path / "out.txt"), 20)

    with pytest.raises(BlobMismatchError, match="not a regular file: FIFO"):
        run(bounded())


def test_a_missing_blob_says_so(store: LocalStorage) -> None:
    info = info_of({"msgtype": FILE, "body": "x", "info": {"size": 1, "sha256": "a" * 64}})
    with pytest.raises(BlobMissingError, match="not in the storage"):
        run(download(store, ROOM, info))


def test_an_announced_size_over_the_download_limit_is_not_fetched(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_get(path: str, **_: Any) -> bytes:
        raise AssertionError("must not download")

    monkeypatch.setattr(store, "get", no_get)
    info = info_of({"msgtype": FILE, "body": "x", "info": {"size": 2**40, "sha256": "a" * 64}})
    with pytest.raises(BlobTooLargeError, match="at most 256 MB"):
        run(download(store, ROOM, info, max_bytes=256 * MB))


def test_the_cache_serves_verified_blobs_and_drops_damaged_ones(
    store: LocalStorage, files: Path, tmp_path: Path
) -> None:
    (files / "a.txt").write_bytes(b"cached bytes")
    cache = BlobCache(tmp_path / "cache")
    content = run(upload(store, ROOM, files / "a.txt", limit_bytes=MB, cache=cache))
    info = info_of(content)
    assert cache.path_for(info.sha256).read_bytes() == b"cached bytes"  # primed by upload
    assert cache.path_for(info.sha256).stat().st_mode & 0o777 == 0o600
    blob_file(store, info.sha256).unlink()
    assert run(download(store, ROOM, info, cache=cache)) == b"cached bytes"  # no storage read
    cache.path_for(info.sha256).write_bytes(b"cached bytez")  # damaged on this disk
    with pytest.raises(BlobMissingError):  # not served from the cache, not in storage
        run(download(store, ROOM, info, cache=cache))
    assert not cache.path_for(info.sha256).exists()


def test_a_message_that_lies_about_a_blobs_size_does_not_delete_the_cached_copy(
    store: LocalStorage, files: Path, tmp_path: Path
) -> None:
    """Red team rt55: a message naming a blob by its right SHA-256 with a wrong size
    had this device's verified copy deleted as damaged, the only copy left once the
    storage had dropped the blob. The message is what does not match; the copy stays."""
    (files / "contract.pdf").write_bytes(b"%PDF-1.4 the signed contract\n" * 40)
    cache = BlobCache(tmp_path / "cache")
    honest = info_of(run(upload(store, ROOM, files / "contract.pdf", limit_bytes=MB, cache=cache)))
    blob_file(store, honest.sha256).unlink()  # the provider drops the blob
    for size in (honest.size + 1, honest.size - 1):
        lying = dataclasses.replace(honest, name="contract-v2.pdf", size=size)
        with pytest.raises(BlobMismatchError) as caught:
            run(download(store, ROOM, lying, cache=cache, event_id="$lie"))
        assert str(caught.value) == (
            f"contract-v2.pdf: the signed message says {size:,} bytes, but the file of its "
            f"SHA-256 has {honest.size:,} (this device keeps its copy). The signed message "
            "does not describe the file it names; it was not used."
        )
        assert caught.value.event_id == "$lie"
    assert run(download(store, ROOM, honest, cache=cache)) == b"%PDF-1.4 the signed contract\n" * 40


@pytest.mark.skipif(os.name != "posix", reason="FIFOs")
@pytest.mark.parametrize("planted", ["FIFO", "link to a FIFO"])
def test_a_fifo_in_the_blob_cache_is_fetched_from_the_storage_instead(
    store: LocalStorage, tmp_path: Path, planted: str
) -> None:
    """Red team rt65: ``BlobCache.get`` read whatever sat at a blob's name, blocking: a
    FIFO there (or a link to one, or to ``/dev/zero``: a restored backup, a sync tool
    over the data folder) hung Open, Save as… and every export of the room for good.
    It is not a cached file: it goes, and the blob comes from the storage."""
    data = b"%PDF-1.7 the minutes"
    sha = hashlib.sha256(data).hexdigest()
    run(store.put_if_absent(blob_path(ROOM, sha), data))  # the storage is fine
    cache = BlobCache(tmp_path / "cache")
    at = cache.path_for(sha)
    at.parent.mkdir(parents=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    if planted == "FIFO":
        fifo.rename(at)
        fifo = at
    else:  # (a link to /dev/zero: test_osfiles; the old read never ended, filling memory)
        at.symlink_to(fifo)
    info = FileInfo("m.file", "minutes.pdf", len(data), "application/pdf", sha)
    saved = tmp_path / "saved.pdf"
    [got] = _in_thread(lambda: run(download(store, ROOM, info, saved, cache=cache)), fifo)
    assert got == data
    assert saved.read_bytes() == data
    assert not at.is_symlink() and at.read_bytes() == data  # cached anew, a regular file


@pytest.mark.skipif(os.name != "posix", reason="FIFOs")
def test_a_fifo_at_an_open_copys_name_is_replaced_unread(tmp_path: Path) -> None:
    """The named copy handed to the desktop ("Open") was compared by reading it: a FIFO
    there blocked for good (rt65). It is replaced by the file, never opened."""
    data = b"%PDF-1.7 the minutes"
    info = FileInfo(
        "m.file", "minutes.pdf", len(data), "application/pdf", hashlib.sha256(data).hexdigest()
    )
    cache = BlobCache(tmp_path / "cache")
    path = cache.open_copy(info, data)
    path.unlink()
    os.mkfifo(path)
    [got] = _in_thread(lambda: cache.open_copy(info, data), path)
    assert got == path
    assert path.read_bytes() == data


def test_an_unreadable_copy_of_the_same_file_is_not_called_a_different_object() -> None:
    """Red team rt58: a file someone shared (same bytes, so the same blob name) whose
    stored copy this device may not read (mode 000): sending it failed with "a different
    object already occupies its name … (the storage holds damaged or forged data)".
    Nothing different is there; what is there could not be compared, and it says so."""
    base = Path(tempfile.mkdtemp(prefix="bc-blob-twin-", dir="/tmp"))
    try:
        os.chmod(base, 0o777)
        root = base / "store"
        data = b"minutes of the meeting\n" * 100
        stored = root / blob_path(ROOM, hashlib.sha256(data).hexdigest())
        stored.parent.mkdir(parents=True)
        for p in (root, root / "rooms", root / "rooms" / ROOM, stored.parent):
            os.chmod(p, 0o777)
        stored.write_bytes(data)  # the very same file, shared before by a member ...
        os.chmod(stored, 0)  # ... who then made their copy unreadable
        source = base / "minutes.txt"
        source.write_bytes(data)
        os.chmod(source, 0o644)

        def check() -> str:
            try:
                run(upload(LocalStorage(root), ROOM, source, limit_bytes=MB))
            except BlobError as exc:
                return str(exc)
            return "uploaded"

        # what the upload imports, imported here (the child may not read the venv)
        run(upload(LocalStorage(base / "warm"), ROOM, source, limit_bytes=MB))
        said = as_someone_modes_apply_to(check)
        assert said.startswith(
            "minutes.txt cannot be stored: its name is held by an object this device cannot "
            f"compare with it ({stored} is taken by an object this write cannot compare"
        ), said
        assert said.endswith(": permission denied)"), said
        assert "different object" not in said and "forged" not in said, said
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_open_copies_use_the_safe_name_and_are_not_executable(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    data = b"#!/bin/sh\necho hi\n"
    content = {
        "msgtype": FILE,
        "body": "x",
        "info": {
            "name": "../../.bashrc",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    }
    path = cache.open_copy(info_of(content), data)
    assert path.name == "_.._.bashrc"
    assert path.parent.parent == cache.root / "named"
    assert path.stat().st_mode & 0o777 == 0o600
    assert cache.open_copy(info_of(content), data) == path


def test_the_cache_prunes_least_recently_used_blobs(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=250)
    shas = []
    for i in range(4):
        data = bytes([i]) * 100
        sha = hashlib.sha256(data).hexdigest()
        cache.put(sha, data)
        os.utime(cache.path_for(sha), (1000 + i, 1000 + i))
        shas.append(sha)
    cache.prune()
    kept = [s for s in shas if cache.path_for(s).exists()]
    assert kept == shas[2:]


# -- images ---------------------------------------------------------------------------------


def rgb(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    r, g, b = img.convert("RGB").getpixel((x, y))  # type: ignore[misc]
    return int(r), int(g), int(b)


def thumbnail_of(content: dict[str, Any]) -> Image.Image:
    raw = base64.b64decode(content["info"]["thumbnail"])
    assert len(raw) <= MAX_THUMBNAIL_BYTES
    return Image.open(io.BytesIO(raw))


def test_an_image_gets_its_size_and_a_small_thumbnail(store: LocalStorage, files: Path) -> None:
    (files / "chart.png").write_bytes(image_bytes((800, 600)))
    content = run(upload(store, ROOM, files / "chart.png", limit_bytes=MB))
    assert content["msgtype"] == IMAGE
    info = content["info"]
    assert (info["w"], info["h"], info["mimetype"]) == (800, 600, "image/png")
    thumb = thumbnail_of(content)
    assert thumb.size == (320, 240)
    assert rgb(thumb, 10, 200)[0] > 150  # left half red
    assert rgb(thumb, 310, 200)[2] > 150  # right half blue


def test_exif_orientation_is_applied(store: LocalStorage, files: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    (files / "phone.jpg").write_bytes(image_bytes((400, 200), "JPEG", exif=exif.tobytes()))
    content = run(upload(store, ROOM, files / "phone.jpg", limit_bytes=MB))
    info = content["info"]
    assert (info["w"], info["h"], info["mimetype"]) == (200, 400, "image/jpeg")
    thumb = thumbnail_of(content).convert("RGB")
    assert thumb.size == (120, 240)
    # rotated clockwise: the stored left (red) half is now on top, right (blue) below,
    # and the green bar that ran along the stored top now runs down the right edge
    assert rgb(thumb, 40, 30)[0] > 150
    assert rgb(thumb, 40, 210)[2] > 150
    assert rgb(thumb, 117, 120)[1] > 150


def test_a_noisy_photo_still_gets_a_thumbnail_under_the_cap(
    store: LocalStorage, files: Path
) -> None:
    rng = random.Random(7)
    img = Image.frombytes("RGB", (1600, 1200), rng.randbytes(1600 * 1200 * 3))
    out = io.BytesIO()
    img.save(out, "PNG")
    (files / "noise.png").write_bytes(out.getvalue())
    content = run(upload(store, ROOM, files / "noise.png", limit_bytes=25 * MB))
    assert content["msgtype"] == IMAGE
    thumbnail_of(content).load()  # decodes, and the size is checked in thumbnail_of


def test_a_transparent_png_keeps_a_usable_thumbnail(store: LocalStorage, files: Path) -> None:
    img = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (100, 100, 200, 200))
    out = io.BytesIO()
    img.save(out, "PNG")
    (files / "logo.png").write_bytes(out.getvalue())
    content = run(upload(store, ROOM, files / "logo.png", limit_bytes=MB))
    thumb = thumbnail_of(content)
    assert thumb.format == "PNG" and thumb.mode == "RGBA"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_sent_as_a_plain_file(store: LocalStorage, files: Path) -> None:
    (files / "bomb.png").write_bytes(_png_header_only(60_000, 60_000))  # 3.6 gigapixels
    decoded: list[object] = []  # the pixels are never decoded (3.6 gigapixels: minutes)
    real_load = PIL.ImageFile.ImageFile.load

    def counted_load(image: PIL.ImageFile.ImageFile) -> Any:
        decoded.append(image)
        return real_load(image)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PIL.ImageFile.ImageFile, "load", counted_load)
        content = run(upload(store, ROOM, files / "bomb.png", limit_bytes=MB))
    assert decoded == []
    assert content["msgtype"] == FILE
    assert "thumbnail" not in content["info"] and "w" not in content["info"]
    assert content["info"]["mimetype"] == "image/png"


def test_an_image_over_the_preview_pixel_cap_is_a_plain_file(
    store: LocalStorage, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs, "MAX_PREVIEW_PIXELS", 100 * 100)
    (files / "wide.png").write_bytes(image_bytes((101, 100)))
    assert run(upload(store, ROOM, files / "wide.png", limit_bytes=MB))["msgtype"] == FILE


def test_a_broken_image_is_sent_as_a_plain_file(store: LocalStorage, files: Path) -> None:
    (files / "broken.jpg").write_bytes(image_bytes((200, 200), "JPEG")[:300])
    content = run(upload(store, ROOM, files / "broken.jpg", limit_bytes=MB))
    assert content["msgtype"] == FILE and content["info"]["mimetype"] == "image/jpeg"


def test_human_sizes() -> None:
    assert blobs.human_size(512) == "512 bytes"
    assert blobs.human_size(80 * MB) == "80 MB"
    assert blobs.human_size(1536 * 1024) == "1.5 MB"
    assert blobs.human_size(3 * 1024 * MB) == "3 GB"
