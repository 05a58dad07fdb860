"""The index, the outbox and the attachment cache hold every message and file in clear
text: they are the user's alone (files 0600, folders 0700), whatever the umask, and files
an older version left readable are fixed when opened. Real SQLite, real files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.attachments import FILE, FileInfo, parse_file_content, sha256_hex
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.sync.blobs import BlobCache
from bucket_chat_desktop.sync.outbox import Outbox

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes")


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: new files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def sqlite_files(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name)]


def test_a_new_index_and_its_wal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "index" / "abc.sqlite3"
    index = Index.open(path, "file:///x")
    try:
        index.set_cursor("c", "v")  # a write: the -wal and -shm files exist now
        files = sqlite_files(path)
        assert {p.name for p in files} >= {"abc.sqlite3", "abc.sqlite3-wal", "abc.sqlite3-shm"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert mode(path.parent) == 0o700
    finally:
        index.close()


def test_a_new_outbox_and_its_wal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "outbox" / "abc.sqlite3"
    box = Outbox(path)
    signing_key = SigningKey(b"\x01" * 32)
    try:
        box.seed_head("room-1", b64encode(bytes(signing_key.verify_key)), None)
        box.enqueue(
            room_id="room-1",
            user_id="alice@example.com",
            signing_key=signing_key,
            drafts=[(MESSAGE, {"body": "secret plans", "msgtype": "m.text"})],
            clock=lambda: 1_757_851_245_000,
            unique=lambda: "00000000-0000-4000-8000-000000000001",
        )
        files = sqlite_files(path)
        assert "abc.sqlite3-wal" in {p.name for p in files}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert mode(path.parent) == 0o700
    finally:
        box.close()


def test_files_left_readable_by_an_older_version_are_fixed_on_open(tmp_path: Path) -> None:
    for kind in ("index", "outbox"):
        folder = tmp_path / kind
        folder.mkdir(mode=0o755)
        path = folder / "old.sqlite3"
        first = Index.open(path) if kind == "index" else Outbox(path)
        first.close()
        for p in [path, *(Path(f"{path}{x}") for x in ("-wal", "-shm", "-journal"))]:
            p.touch()
            os.chmod(p, 0o644)
        os.chmod(folder, 0o755)
        again = Index.open(path) if kind == "index" else Outbox(path)
        try:
            assert mode(folder) == 0o700
            assert {p.name: mode(p) for p in sqlite_files(path)} == {
                p.name: 0o600 for p in sqlite_files(path)
            }
        finally:
            again.close()


def test_the_blob_cache_is_private(tmp_path: Path) -> None:
    root = tmp_path / "cache" / "blobs"
    root.mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)  # as an older version left it
    cache = BlobCache(root)
    data = b"the attachment"
    info = parse_file_content(
        {
            "msgtype": FILE,
            "body": "plan.txt",
            "info": {"size": len(data), "sha256": sha256_hex(data)},
        }
    )
    assert isinstance(info, FileInfo)
    stored = cache.put(info.sha256, data)
    named = cache.open_copy(info, data)
    for path in (stored, named):
        assert mode(path) == 0o600
        folder = path.parent
        while folder != root.parent:
            assert mode(folder) == 0o700, folder
            folder = folder.parent
