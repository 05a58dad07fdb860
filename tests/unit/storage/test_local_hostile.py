"""LocalStorage against a folder that someone with write access has booby-trapped: FIFOs
and links named like objects, linked folders leading out of the storage, files larger
than any reader asked for. Real files, real FIFOs, real symbolic links."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bucket_chat_desktop.storage.base import (
    AlreadyExistsError,
    NotRegularFileError,
    ObjectInfo,
    ObjectTooLargeError,
    StorageNotFoundError,
)
from bucket_chat_desktop.storage.local import LocalStorage

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and POSIX links")

T = TypeVar("T")
SEG = "rooms/r/logs/2025-01-01/messages_1_1_a.jsonl"


def run(coro: Coroutine[Any, Any, T]) -> T:
    # A FIFO read that blocks would hang here for ever: bound it so the test fails instead.
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 20)

    return asyncio.run(bounded())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "store"
    (folder / "rooms/r/logs/2025-01-01").mkdir(parents=True)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_fifo_named_like_a_segment_is_refused_at_once(root: Path) -> None:
    os.mkfifo(root / SEG)
    store = LocalStorage(root)
    with pytest.raises(NotRegularFileError) as caught:
        run(store.get(SEG))
    assert caught.value.kind == "FIFO" and caught.value.path == SEG
    assert "not a regular file: FIFO" in str(caught.value)
    # Listed, so that readers can report it, but marked as what it is.
    assert run(store.list_objects("rooms/")) == [ObjectInfo(SEG, 0, special="FIFO")]
    assert run(store.exists(SEG)) is True  # the name is taken


def test_a_fifo_at_the_name_makes_a_writer_pick_another_name(root: Path) -> None:
    os.mkfifo(root / SEG)
    with pytest.raises(AlreadyExistsError, match="occupied by a FIFO"):
        run(LocalStorage(root).put_if_absent(SEG, b"data"))


def test_a_folder_at_the_name_makes_a_writer_pick_another_name(root: Path) -> None:
    """Red team rt57: a folder at the exact name of the next segment (empty, so no
    listing shows it) was a plain error, "a folder has that name", and the message
    failed for good; a FIFO or a link there made the writer pick the next name. A name
    held by anything that is not these very bytes is taken, whatever holds it."""
    (root / SEG).mkdir()
    with pytest.raises(AlreadyExistsError, match="folder"):
        run(LocalStorage(root).put_if_absent(SEG, b"data"))
    assert list((root / SEG).iterdir()) == []  # nothing written into it


def test_a_link_named_like_a_segment_is_not_followed(root: Path, outside: Path) -> None:
    secret = outside / "secret.jsonl"
    secret.write_bytes(b"private bytes of another program\n")
    (root / SEG).symlink_to(secret)
    store = LocalStorage(root)
    with pytest.raises(NotRegularFileError, match="symbolic link"):
        run(store.get(SEG))
    assert run(store.list_objects("rooms/")) == [ObjectInfo(SEG, 0, special="symbolic link")]
    with pytest.raises(AlreadyExistsError):  # and nothing is written through it
        run(store.put_if_absent(SEG, b"x"))
    assert secret.read_bytes() == b"private bytes of another program\n"


@pytest.mark.parametrize(
    "linked",
    ["rooms", "rooms/r", "rooms/r/logs", "rooms/r/logs/2025-01-01", "activity"],
)
def test_linked_folders_never_lead_writes_out_of_the_storage(
    tmp_path: Path, outside: Path, linked: str
) -> None:
    root = tmp_path / "store"
    where = root / linked
    where.parent.mkdir(parents=True, exist_ok=True)
    if where.exists():
        where.rmdir()
    where.symlink_to(outside, target_is_directory=True)
    store = LocalStorage(root)
    seg = SEG if linked != "activity" else "activity/2025-01-01/1~r~2025-01-01~m_1_1_a.jsonl"
    with pytest.raises(NotRegularFileError) as caught:
        run(store.put_if_absent(seg, b"hello\n"))
    assert caught.value.path == linked and caught.value.kind == "symbolic link"
    assert f"{linked} is a symbolic link" in str(caught.value)
    assert everything_under(outside) == []  # no folder, no temp file, no object
    # Reads and listings do not follow it either.
    (outside / "x").mkdir()
    (outside / "x" / "y.jsonl").write_bytes(b"outside")
    with pytest.raises(NotRegularFileError):
        run(store.get(f"{linked}/x/y.jsonl"))
    listed = run(store.list_objects(""))
    assert ObjectInfo(linked, 0, special="symbolic link") in listed
    assert not any(i.path.endswith("y.jsonl") for i in listed)


def test_a_linked_folder_is_named_and_never_followed(root: Path, outside: Path) -> None:
    """A link where a room or a day folder would be is named by ``list_dirs`` (so that
    reading it reports the link) and listing under it raises: left out of the names,
    a day folder swapped for a link was a day with nothing in it, and a new device
    verified the room clean."""
    (outside / "secret").mkdir()
    (root / "rooms" / "evil").symlink_to(outside, target_is_directory=True)
    store = LocalStorage(root)
    assert run(store.list_dirs("rooms/")) == ["evil", "r"]
    for prefix in ("rooms/evil/", "rooms/evil/logs/"):
        with pytest.raises(NotRegularFileError) as caught:
            run(store.list_dirs(prefix))
        assert caught.value.kind == "symbolic link" and "rooms/evil" in str(caught.value)
        with pytest.raises(NotRegularFileError):
            run(store.list_objects(prefix))
    assert run(store.list_dirs("rooms/r/")) == ["logs"]  # the real room is listed as before


def test_a_file_larger_than_the_cap_is_not_read_whole(root: Path) -> None:
    # 64 GiB (sparse): reading it whole would take minutes and all the memory there is.
    with open(root / SEG, "wb") as fh:
        fh.truncate(64 * 1024**3)
    store = LocalStorage(root)
    with pytest.raises(ObjectTooLargeError) as caught:
        run(store.get(SEG, max_bytes=4096))
    assert caught.value.limit == 4096
    assert "more than 4,096 bytes" in str(caught.value)
    with pytest.raises(ObjectTooLargeError):
        run(store.get(SEG))  # the default cap applies when the caller names none


def test_an_oversized_file_is_refused_before_a_byte_is_read(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStorage(root)
    (root / SEG).write_bytes(b"a" * 100)
    assert run(store.get(SEG, max_bytes=100)) == b"a" * 100  # exactly the cap is fine
    (root / SEG).unlink()
    (root / SEG).write_bytes(b"b" * 1_000_000)
    read: list[int] = []
    real_read = os.read

    def counting(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    with pytest.raises(ObjectTooLargeError):
        run(store.get(SEG, max_bytes=99))
    assert sum(read) == 0
    assert run(store.get(SEG, max_bytes=1_000_000)) == b"b" * 1_000_000
    assert sum(read) == 1_000_000


def test_missing_objects_and_folders_are_still_not_found(root: Path) -> None:
    store = LocalStorage(root)
    with pytest.raises(StorageNotFoundError):
        run(store.get("rooms/nope/logs/2025-01-01/messages_1_1_a.jsonl"))
    with pytest.raises(StorageNotFoundError):
        run(store.get(SEG))
    assert run(store.exists(SEG)) is False


def test_a_deep_nesting_is_reported_not_walked(root: Path) -> None:
    deep = root / "rooms" / "r" / "logs"
    for _ in range(200):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "x.jsonl").write_bytes(b"x")
    listed = run(LocalStorage(root).list_objects("rooms/"))
    assert len(listed) == 1 and listed[0].special == "folder nested too deep"
    assert listed[0].path.count("/") == 12
