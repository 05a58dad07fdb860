"""Red team rt71: this device's index and outbox of a folder storage were named after the
folder *as written* (``storage.url``): the same folder reached as ``store``,
``link-to-store`` or ``../x/store`` had three outboxes, each with its own chain head, and
the device forked its own chain (every reader reports it as equivocation). They are now
named after the folder's identity (its resolved path); files an earlier version named
after a spelling are taken over, so nothing queued in them is lost."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import unicodedata
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.device_files import index_file, outbox_file
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.session import outbox_path_for, read_room

ALICE = "alice@example.com"
KEY = SigningKey(bytes(range(32)))
ROOM = "plans"

needs_links = pytest.mark.skipif(
    not hasattr(os, "symlink") or os.name == "nt", reason="POSIX links"
)


@needs_links
def test_every_spelling_of_one_folder_is_one_storage(tmp_path: Path) -> None:
    real = tmp_path / "store"
    real.mkdir()
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "chat-link"
    link.symlink_to(real, target_is_directory=True)
    spellings = [real, link, tmp_path / "elsewhere" / ".." / "store", Path(f"{real}/")]
    data = tmp_path / "data"
    stores = [LocalStorage(s) for s in spellings]
    assert len({s.url for s in stores}) > 1  # written differently...
    assert len({s.identity for s in stores}) == 1  # ...one folder
    assert len({outbox_file(data, s) for s in stores}) == 1
    assert len({index_file(data, s) for s in stores}) == 1
    other = tmp_path / "other"
    other.mkdir()
    assert LocalStorage(other).identity != stores[0].identity


def _queue_offline(store: LocalStorage, data: Path, body: str, *, create: bool = False) -> None:
    async def go() -> None:
        async with ChatClient.session(store, identity=(ALICE, KEY), data_dir=data) as client:
            sid = client.session_storage
            if create:
                ref = await client.create_room(sid, ROOM, "Plans", show=False)
                assert await client.within(sid, client.flush(sid, timeout=10))
            else:
                ref = client.room(ROOM)
            await client.send(ref, [(MESSAGE, {"body": body, "msgtype": "m.text"})])

    asyncio.run(go())


def _deliver(store: LocalStorage, data: Path) -> None:
    async def go() -> None:
        async with ChatClient.session(store, identity=(ALICE, KEY), data_dir=data) as client:
            sid = client.session_storage
            assert await client.within(sid, client.flush(sid, timeout=10))

    asyncio.run(go())


def _bodies_and_forks(store: LocalStorage) -> tuple[list[str], list[str]]:
    view = asyncio.run(read_room(store, ROOM))
    assert view.result is not None
    bodies = [a.event.body for a in view.result.timeline if a.event.type == MESSAGE]
    return bodies, [f.kind for f in view.result.findings if f.kind == "fork"]


def _rename_db(src: Path, dst: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        if Path(f"{src}{extra}").exists():
            os.replace(f"{src}{extra}", f"{dst}{extra}")


@needs_links
def test_an_earlier_versions_outbox_is_taken_over_with_what_waits_in_it(tmp_path: Path) -> None:
    """An outbox an earlier version named after the spelling used (here a link), holding
    a message not delivered yet: found under the identity's name, delivered once, and
    the chain goes on from it (no fork)."""
    real = tmp_path / "store"
    real.mkdir()
    link = tmp_path / "chat-link"
    link.symlink_to(real, target_is_directory=True)
    data = tmp_path / "data"
    store = LocalStorage(link)
    _queue_offline(store, data, "one", create=True)
    _queue_offline(store, data, "queued")  # not delivered: waits in the outbox
    canonical = outbox_path_for(data, store.identity)
    legacy = outbox_path_for(data, store.url)
    assert legacy != canonical
    _rename_db(canonical, legacy)  # as the earlier version left it
    _deliver(store, data)
    assert canonical.is_file() and not legacy.exists()
    _queue_offline(LocalStorage(real), data, "two")
    _deliver(LocalStorage(real), data)
    assert _bodies_and_forks(LocalStorage(real)) == (["one", "queued", "two"], [])


@needs_links
def test_an_earlier_outbox_of_another_spelling_is_set_aside_or_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both files exist: the identity's is used. The other spelling's, with nothing
    waiting, is set aside (not deleted); with messages waiting it is kept and said."""
    real = tmp_path / "store"
    real.mkdir()
    link = tmp_path / "chat-link"
    link.symlink_to(real, target_is_directory=True)
    data = tmp_path / "data"
    store = LocalStorage(link)
    canonical, legacy = outbox_file(data, store), outbox_path_for(data, store.url)
    Outbox(canonical).close()
    Outbox(legacy).close()
    assert outbox_file(data, store) == canonical
    assert not legacy.exists() and list(legacy.parent.glob(f"{legacy.name}.superseded-*"))

    Outbox(legacy).close()  # another run of the earlier version, another message
    with caplog.at_level(logging.WARNING, "bucket_chat.sync"):
        _with_pending(legacy)
        assert outbox_file(data, store) == canonical
    assert legacy.is_file()
    assert any("undelivered" in r.getMessage() for r in caplog.records)


def _with_pending(path: Path) -> None:
    """One message queued in the outbox at ``path``."""
    from bucket_chat_desktop.protocol.canonical import b64encode

    box = Outbox(path)
    try:
        box.seed_head(ROOM, b64encode(bytes(KEY.verify_key)), None)
        box.enqueue(
            room_id=ROOM,
            user_id=ALICE,
            signing_key=KEY,
            drafts=[(MESSAGE, {"body": "old", "msgtype": "m.text"})],
            clock=lambda: 1_700_000_000_000,
            unique=lambda: "u",
        )
    finally:
        box.close()


def test_a_case_insensitive_volume_on_linux_is_one_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt76: a team folder on an SMB/CIFS share, a FAT/exFAT drive or an ext4
    ``casefold`` folder on Linux ignores case: ``/mnt/share/Chat`` and ``/mnt/share/chat``
    are one folder. Case was folded only on Windows, and on macOS when the volume said
    so: on Linux the two spellings got two outboxes, two chain heads, and the device
    forked its own chain. The volume is asked on every system now. It is emulated here
    (this kernel has no casefold): both names exist and ``os.path.samefile`` says they
    are one folder, as it does on such a volume."""
    if os.name == "nt":
        pytest.skip("Windows always folds")
    (tmp_path / "share").mkdir()
    lower, upper = tmp_path / "share" / "chat", tmp_path / "share" / "Chat"
    lower.mkdir()
    upper.mkdir()  # stands for the same folder found under another case
    real_samefile = os.path.samefile

    def samefile(x: object, y: object) -> bool:
        sx, sy = os.fspath(x), os.fspath(y)  # type: ignore[call-overload]
        if sx.lower() == sy.lower() and str(tmp_path) in sx:
            return True
        return real_samefile(sx, sy)

    monkeypatch.setattr(os.path, "samefile", samefile)
    data = tmp_path / "data"
    a, b = LocalStorage(lower), LocalStorage(upper)
    assert outbox_file(data, a) == outbox_file(data, b), (a.identity, b.identity)
    # A volume that does not ignore case keeps two names two folders.
    (tmp_path / "strict").mkdir()
    (tmp_path / "strict" / "room").mkdir()
    (tmp_path / "strict" / "Room").mkdir()
    monkeypatch.setattr(os.path, "samefile", real_samefile)
    one, two = (
        LocalStorage(tmp_path / "strict" / "room"),
        LocalStorage(tmp_path / "strict" / "Room"),
    )
    assert one.identity != two.identity


def _mac_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, ignores_case: bool) -> None:
    """Emulate a macOS volume under ``tmp_path`` (this kernel has none): two names are one
    folder when they are equal after NFD (and case folding, if it ignores case), as APFS
    and HFS+ compare them; ``os.path.samefile`` says so."""
    real_samefile = os.path.samefile

    def key(path: str) -> str:
        nfd = unicodedata.normalize("NFD", path)
        return nfd.casefold() if ignores_case else nfd

    def samefile(x: object, y: object) -> bool:
        sx, sy = os.fspath(x), os.fspath(y)  # type: ignore[call-overload]
        if str(tmp_path) in sx and key(sx) == key(sy):
            return True
        return real_samefile(sx, sy)

    monkeypatch.setattr(os.path, "samefile", samefile)
    monkeypatch.setattr(local, "_IGNORES_CASE", {})


def _nfc_and_nfd(share: Path, name: str) -> tuple[Path, Path]:
    nfc, nfd = (share / unicodedata.normalize(form, name) for form in ("NFC", "NFD"))
    assert str(nfc) != str(nfd)
    nfc.mkdir(parents=True)
    nfd.mkdir()  # stands for the same folder found under its other spelling
    return nfc, nfd


@pytest.mark.skipif(os.name == "nt", reason="NTFS keeps NFC and NFD names apart")
def test_one_folder_spelled_nfc_and_nfd_on_a_mac_volume_is_one_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt93: ``~/Dropbox/Café`` typed in a terminal (NFC) and the same folder
    picked in a file dialog or made by the Finder (NFD) are one folder on macOS. The
    identity folded case but kept the form as typed: two outboxes, two chain heads, and
    the device forked its own chain in every room of the folder."""
    _mac_volume(tmp_path, monkeypatch, ignores_case=True)
    typed, picked = (LocalStorage(p) for p in _nfc_and_nfd(tmp_path / "Dropbox", "Café"))
    assert typed.identity == picked.identity == str(tmp_path / "Dropbox" / "Café").lower()
    data = tmp_path / "data"
    assert outbox_file(data, typed) == outbox_file(data, picked)
    assert index_file(data, typed) == index_file(data, picked)
    # and with its case changed too
    assert LocalStorage(tmp_path / "DROPBOX" / "CAFÉ").identity == typed.identity


@pytest.mark.skipif(os.name == "nt", reason="NTFS keeps NFC and NFD names apart")
def test_a_case_sensitive_mac_volume_still_ignores_how_accents_are_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APFS (and HFS+) formatted case-sensitive still compare names after normalising
    them: one folder, one identity; its case is kept (``Chat`` and ``chat`` are two)."""
    _mac_volume(tmp_path, monkeypatch, ignores_case=False)
    monkeypatch.setattr(local.sys, "platform", "darwin")
    nfc, nfd = _nfc_and_nfd(tmp_path / "Share", "Résumé")
    assert LocalStorage(nfc).identity == LocalStorage(nfd).identity == str(nfc)
    (tmp_path / "Share" / "chat").mkdir()
    (tmp_path / "Share" / "Chat").mkdir()
    assert LocalStorage(tmp_path / "Share" / "chat").identity != (
        LocalStorage(tmp_path / "Share" / "Chat").identity
    )


@pytest.mark.skipif(sys.platform == "darwin", reason="every macOS volume is one folder")
def test_a_folder_that_minds_case_keeps_nfc_and_nfd_names_two_storages(tmp_path: Path) -> None:
    """Linux (and NTFS) hold a folder of each form: they are two folders with their own
    rooms, so their own outboxes (one outbox would continue one folder's chains in the
    other's rooms)."""
    nfc, nfd = _nfc_and_nfd(tmp_path / "share", "Café")
    assert LocalStorage(nfc).identity != LocalStorage(nfd).identity


# -- the folder a spelling names changes (red team rt76) ----------------------------------


def _send(store: LocalStorage, data: Path, body: str, *, create: bool = False, flush: bool) -> None:
    async def go() -> None:
        async with ChatClient.session(store, identity=(ALICE, KEY), data_dir=data) as client:
            sid = client.session_storage
            if create:
                ref = await client.create_room(sid, ROOM, "Plans", show=False)
                assert await client.within(sid, client.flush(sid, timeout=10))
            else:
                ref = client.room(ROOM)
            await client.send(ref, [(MESSAGE, {"body": body, "msgtype": "m.text"})])
            if flush:
                assert await client.within(sid, client.flush(sid, timeout=10))

    asyncio.run(go())


def _repoint(link: Path, to: Path) -> None:
    link.unlink()
    link.symlink_to(to, target_is_directory=True)


def _move(src: Path, dst: Path, link: Path, *, leave_mount_point: bool = False) -> None:
    """The data moved from ``src`` to ``dst`` and ``link`` re-pointed; with
    ``leave_mount_point`` an empty ``src`` stays (a drive mounted elsewhere)."""
    shutil.move(str(src), str(dst))
    if leave_mount_point:
        src.mkdir()
    _repoint(link, dst)


@needs_links
@pytest.mark.parametrize("leave_mount_point", [False, True])
def test_a_queued_message_follows_the_storage_when_its_link_is_repointed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, leave_mount_point: bool
) -> None:
    """Red team rt76: a message queued (not delivered) through ``link -> a``; the data
    moved to ``b`` (or the drive mounted as ``b``, ``a`` left an empty mount point) and
    the link re-pointed. The outbox was named after the resolved folder only: the next
    run through the link opened a new, empty one, and "queued" was lost without a word.
    The outbox now follows the storage as the user wrote it, with its queue and heads,
    and says so; no file is left behind."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    link = tmp_path / "chat"
    link.symlink_to(a, target_is_directory=True)
    data = tmp_path / "data"
    _send(LocalStorage(link), data, "one", create=True, flush=True)
    _send(LocalStorage(link), data, "queued", flush=False)  # waits in the outbox
    _move(a, b, link, leave_mount_point=leave_mount_point)
    with caplog.at_level(logging.INFO, "bucket_chat.sync"):
        _send(LocalStorage(link), data, "two", flush=True)
    assert _bodies_and_forks(LocalStorage(link)) == (["one", "queued", "two"], [])
    assert any("outbox follows it" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in (data / "outbox").glob("*.sqlite3")) == [
        outbox_path_for(data, LocalStorage(link).identity).name
    ]
    assert index_file(data, LocalStorage(link)).is_file()


@needs_links
def test_the_device_does_not_fork_its_chain_when_the_folder_moves_back(tmp_path: Path) -> None:
    """Red team rt76: as above, then the folder goes back where it was (the drive mounted
    under its first name): the forgotten outbox delivered its message on the place the
    send made meanwhile had taken, and every reader saw this device's chain fork."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    link = tmp_path / "chat"
    link.symlink_to(a, target_is_directory=True)
    data = tmp_path / "data"
    _send(LocalStorage(link), data, "one", create=True, flush=True)
    _send(LocalStorage(link), data, "queued", flush=False)
    _move(a, b, link)
    _send(LocalStorage(link), data, "two", flush=True)
    _move(b, a, link)
    _send(LocalStorage(link), data, "three", flush=True)
    assert _bodies_and_forks(LocalStorage(link)) == (["one", "queued", "two", "three"], [])


@needs_links
def test_a_spelling_repointed_at_another_storage_leaves_the_outbox_with_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The link re-pointed at another storage while the first is still there: its
    outbox is not taken (its heads are those of the first storage's rooms: continued
    in the other storage's room of the same id they would break that chain); what
    waits in it is said, and delivered, once, when the first storage is opened again.
    Two spellings of one folder still share one outbox meanwhile."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    link = tmp_path / "chat"
    link.symlink_to(a, target_is_directory=True)
    data = tmp_path / "data"
    _send(LocalStorage(b), tmp_path / "other-device", "b one", create=True, flush=True)
    _send(LocalStorage(link), data, "one", create=True, flush=True)
    _send(LocalStorage(link), data, "queued", flush=False)
    _repoint(link, b)
    with caplog.at_level(logging.WARNING, "bucket_chat.sync"):
        _send(LocalStorage(link), data, "in b", flush=True)
    assert any("1 undelivered event(s)" in r.getMessage() for r in caplog.records)
    assert _bodies_and_forks(LocalStorage(b)) == (["b one", "in b"], [])
    assert outbox_file(data, LocalStorage(b)) == outbox_file(data, LocalStorage(link))
    _send(LocalStorage(a), data, "two", flush=True)  # the first storage, by its own path
    assert _bodies_and_forks(LocalStorage(a)) == (["one", "queued", "two"], [])
