"""Every file this program writes is written in binary mode, on every OS.

Windows opens ``os.open`` descriptors in text mode unless ``O_BINARY`` is given, and then
turns each ``\\n`` byte written into ``\\r\\n``: blobs fail their hash, segments change.
POSIX has no text mode, so a plain round trip here cannot fail. Instead:

- the source of the whole package is read and any ``os.open`` call outside
  `bucket_chat_desktop.osfiles` fails the test (a new write path cannot bypass it), and
- every real write path is run with ``osfiles.BINARY`` set to a harmless marker bit while
  ``os.open`` is watched: each descriptor opened for writing must carry the marker.
"""

from __future__ import annotations

import ast
import asyncio
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bucket_chat_desktop
from bucket_chat_desktop import osfiles, settings
from bucket_chat_desktop.index.db import secure_database_file
from bucket_chat_desktop.osfiles import write_atomic
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.storage.profiles import ProfileStore
from bucket_chat_desktop.storage.url import parse_storage_url
from bucket_chat_desktop.sync.blobs import BlobCache

PACKAGE = Path(bucket_chat_desktop.__file__).parent
AWKWARD = b"line\nbreak\r\nreturn\r nul\x00 eof\x1a end\n"


OS_MODULES = {"os", "nt", "posix"}


def _raw_opens(tree: ast.AST) -> list[int]:
    """Lines that call ``os.open`` (under any alias of the module) or import it by name."""
    names = set(OS_MODULES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name in OS_MODULES and a.asname}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "open"
                and isinstance(func.value, ast.Name)
                and func.value.id in names
            ):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module in OS_MODULES
            and any(alias.name == "open" for alias in node.names)
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_no_module_calls_os_open_except_the_binary_helper() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "osfiles.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(PACKAGE)}:{line}" for line in _raw_opens(tree)]
    assert offenders == [], "use bucket_chat_desktop.osfiles.open_fd instead of os.open"


def test_the_source_scan_sees_a_raw_os_open() -> None:
    """The scan above must be able to fail."""
    code = (
        "import os\nimport os as _os\nfrom os import open as o\n"
        "fd = os.open('x', os.O_WRONLY)\nfd = _os.open('x', 1)\nfd = open('x', 'wb')\n"
    )
    assert _raw_opens(ast.parse(code)) == [3, 4, 5]


MARK = os.O_NOCTTY  # harmless for regular files, not used by any write path itself
WRITE = os.O_WRONLY | os.O_RDWR


@pytest.fixture
def write_opens(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """``(path, flags)`` of each descriptor opened for writing, with the marker as BINARY."""
    seen: list[tuple[str, int]] = []
    real_open = os.open

    def watching(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & WRITE:
            seen.append((os.fspath(path), flags))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(osfiles, "BINARY", MARK)
    monkeypatch.setattr(os, "open", watching)
    return seen


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


WRITERS: dict[str, Callable[[Path], None]] = {
    "local storage": lambda tmp: _run(LocalStorage(tmp).put_if_absent("rooms/r/b", AWKWARD)),
    "local storage without hard links": lambda tmp: LocalStorage._write_exclusive(
        tmp, "obj", AWKWARD
    ),
    "key files": lambda tmp: write_atomic(tmp / "key", AWKWARD, overwrite=False),
    "saved attachment": lambda tmp: write_atomic(tmp / "saved.bin", AWKWARD, mode=0o644),
    "blob cache": lambda tmp: BlobCache(tmp / "cache").put("ab" * 32, AWKWARD) and None,
    "index and outbox database": lambda tmp: secure_database_file(tmp / "index.sqlite"),
    "storage profiles": lambda tmp: (
        ProfileStore(tmp / "storages.json").add("here", parse_storage_url(str(tmp / "bucket")))
        and None
    ),
    "settings": lambda tmp: settings.save(settings.Settings(), tmp / "settings.json"),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_write_path_opens_binary(
    name: str, tmp_path: Path, write_opens: list[tuple[str, int]]
) -> None:
    WRITERS[name](tmp_path)
    text_mode = [path for path, flags in write_opens if not flags & MARK]
    assert text_mode == []


def test_the_wizards_key_export_opens_binary(
    tmp_path: Path, write_opens: list[tuple[str, int]]
) -> None:
    from bucket_chat_desktop.gui.setup.key_card import _write_private

    _write_private(tmp_path / "identity.key", AWKWARD)
    assert write_opens and all(flags & MARK for _, flags in write_opens)
    assert (tmp_path / "identity.key").read_bytes() == AWKWARD


# -- hard links refused with EINVAL --------------------------------------------------------


def test_publishing_falls_back_when_windows_refuses_hard_links_with_einval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT/exFAT volumes and many SMB shares on Windows refuse ``CreateHardLink`` with an
    error Python maps to EINVAL; this machine's file systems all have hard links, so the
    refusal is injected at ``os.link`` alone (the files are real)."""

    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "link", no_links)
    store = LocalStorage(tmp_path)
    assert _run(store.put_if_absent("rooms/r/obj", AWKWARD)) is True
    assert (tmp_path / "rooms" / "r" / "obj").read_bytes() == AWKWARD
    assert _run(store.put_if_absent("rooms/r/obj", AWKWARD)) is False  # still create-only
    assert sorted(p.name for p in (tmp_path / "rooms" / "r").iterdir()) == ["obj"]


def test_atomic_output_names_the_file_only_when_complete(tmp_path: Path) -> None:
    """A big output (a room's export) streamed in pieces: an exception keeps what was
    there, without ``overwrite`` an existing name is refused, no temporary file stays."""
    path = tmp_path / "room.html"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), osfiles.atomic_output(path, mode=0o644) as out:
        out.write(b"half of the new")
        raise RuntimeError("cancelled")
    assert path.read_bytes() == b"old"
    with pytest.raises(FileExistsError), osfiles.atomic_output(path, overwrite=False) as out:
        out.write(b"new")
    assert path.read_bytes() == b"old"
    with osfiles.atomic_output(path, mode=0o644) as out:
        for _ in range(3):
            out.write(b"piece ")
    assert path.read_bytes() == b"piece piece piece "
    assert sorted(p.name for p in tmp_path.iterdir()) == ["room.html"]


def test_move_aside_never_overwrites(tmp_path: Path) -> None:
    """A broken file set aside (``settings.py``) takes a new name and never another
    file's: a file or a link already at the target stays as it was."""
    from bucket_chat_desktop.osfiles import move_aside

    broken, taken = tmp_path / "settings.json", tmp_path / "settings.json.broken-1"
    broken.write_bytes(b"{")
    taken.write_bytes(b"kept")
    with pytest.raises(FileExistsError):
        move_aside(broken, taken)
    assert taken.read_bytes() == b"kept" and broken.read_bytes() == b"{"
    (tmp_path / "elsewhere").write_bytes(b"theirs")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        move_aside(broken, tmp_path / "link")
    assert (tmp_path / "elsewhere").read_bytes() == b"theirs"
    move_aside(broken, tmp_path / "settings.json.broken-2")
    assert not broken.exists() and (tmp_path / "settings.json.broken-2").read_bytes() == b"{"


@pytest.mark.skipif(os.name != "posix", reason="FIFOs, O_NONBLOCK")
def test_open_regular_never_blocks_on_a_fifo_and_hands_back_a_blocking_descriptor(
    tmp_path: Path,
) -> None:
    """Red team rt65: attachments open the picked file with ``open_regular``; a FIFO is
    refused unopened, and the file it does open reads as a plain blocking descriptor."""
    import fcntl

    (tmp_path / "real.txt").write_bytes(b"text")
    (tmp_path / "link.txt").symlink_to("real.txt")  # the user's own link: fine
    fd, real, st = osfiles.open_regular(tmp_path / "link.txt")
    try:
        assert real == os.path.realpath(tmp_path / "real.txt")
        assert st.st_size == 4
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
        assert os.read(fd, 10) == b"text"
    finally:
        os.close(fd)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-fifo").symlink_to("fifo")
    (tmp_path / "to-zero").symlink_to("/dev/zero")
    for name, kind in [("fifo", "FIFO"), ("to-fifo", "FIFO"), ("to-zero", "character device")]:
        with pytest.raises(osfiles.SpecialFileError) as caught:
            osfiles.open_regular(tmp_path / name)
        assert caught.value.kind == kind


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="procfs")
def test_system_tree_tells_kernel_files_by_path_and_by_file_system(tmp_path: Path) -> None:
    """``/proc/self/environ`` is a "regular file" of 0 bytes that reads as the process's
    environment (rt65): told by its resolved path, and by its device whatever path led
    there (a folder swapped for a link after the path was resolved)."""
    environ = os.stat("/proc/self/environ")
    assert osfiles.system_tree(os.path.realpath("/proc/self/environ"), environ) == "/proc"
    assert osfiles.system_tree("/sys/kernel/mm/x", environ) == "/sys"
    assert osfiles.system_tree("/dev/shm/x", environ) == "/dev"
    assert osfiles.system_tree(str(tmp_path / "environ"), environ) == "/proc"
    (tmp_path / "mine.txt").write_bytes(b"mine")
    mine = os.stat(tmp_path / "mine.txt")
    assert osfiles.system_tree(str(tmp_path / "mine.txt"), mine) is None
    assert osfiles.system_tree("/procfiles/mine.txt", mine) is None
