"""LocalStorage on real temp folders: create-only writes, races, killed writers, hostile
paths, listings, permissions and a full disk.

Some cases need root (a tiny tmpfs for "disk full", dropping to ``nobody`` for
"permission denied"); they skip with the reason when that is not possible.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from file_modes import IS_ROOT, NOBODY, as_someone_modes_apply_to

from bucket_chat_desktop.storage import open_storage
from bucket_chat_desktop.storage.base import (
    AlreadyExistsError,
    ObjectInfo,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
)
from bucket_chat_desktop.storage.local import TEMP_PREFIX, LocalStorage

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def every_file(folder: Path) -> list[str]:
    """Every file below ``folder``, hidden ones included, relative POSIX paths."""
    out = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            out.append(Path(dirpath, name).relative_to(folder).as_posix())
    return sorted(out)


def temp_files(folder: Path) -> list[str]:
    return [p for p in every_file(folder) if Path(p).name.startswith(TEMP_PREFIX)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path) -> LocalStorage:
    return LocalStorage(root)


def _mount_tmpfs(where: Path, size: str) -> None:
    if not (IS_ROOT and sys.platform.startswith("linux")):
        pytest.skip("mounting a tmpfs needs root on Linux")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: the "full disk"."""
    where = tmp_path / "tiny"
    _mount_tmpfs(where, "64k")
    try:
        yield where
    finally:
        _umount(where)


# -- create-only writes ---------------------------------------------------------------------


def test_put_creates_the_object_and_leaves_no_temp_file(store: LocalStorage, root: Path) -> None:
    assert run(store.put_if_absent("rooms/r/logs/2025-01-01/a.jsonl", b"one\n")) is True
    assert (root / "rooms/r/logs/2025-01-01/a.jsonl").read_bytes() == b"one\n"
    assert run(store.get("rooms/r/logs/2025-01-01/a.jsonl")) == b"one\n"
    assert every_file(root) == ["rooms/r/logs/2025-01-01/a.jsonl"]


def test_put_of_an_empty_object(store: LocalStorage) -> None:
    assert run(store.put_if_absent("e", b"")) is True
    assert run(store.get("e")) == b""
    assert run(store.put_if_absent("e", b"")) is False


def test_retry_with_the_same_bytes_returns_false(store: LocalStorage, root: Path) -> None:
    assert run(store.put_if_absent("a/b", b"same")) is True
    assert run(store.put_if_absent("a/b", b"same")) is False
    assert (root / "a/b").read_bytes() == b"same"
    assert every_file(root) == ["a/b"]


@pytest.mark.parametrize("other", [b"diff", b"same+longer", b"sam", b""])
def test_other_bytes_raise_and_never_overwrite(
    store: LocalStorage, root: Path, other: bytes
) -> None:
    run(store.put_if_absent("a/b", b"same"))
    before = (root / "a/b").stat()
    with pytest.raises(AlreadyExistsError):
        run(store.put_if_absent("a/b", other))
    after = (root / "a/b").stat()
    assert (root / "a/b").read_bytes() == b"same"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert every_file(root) == ["a/b"]


def test_already_exists_is_a_storage_error() -> None:
    # Callers catch StorageError for "show the user one line": the subclass must fit.
    assert issubclass(AlreadyExistsError, StorageError)
    assert issubclass(StorageFullError, StorageError)
    assert issubclass(StorageNotFoundError, StorageError)


def test_a_folder_at_the_name_is_a_taken_name_not_a_crash(store: LocalStorage, root: Path) -> None:
    # A taken name (the writer picks another): not a final error (red team rt57).
    (root / "a" / "b").mkdir(parents=True)
    with pytest.raises(AlreadyExistsError, match="occupied by a folder"):
        run(store.put_if_absent("a/b", b"x"))
    assert (root / "a" / "b").is_dir() and temp_files(root) == []


def test_a_file_where_a_folder_should_be_is_an_error(store: LocalStorage, root: Path) -> None:
    run(store.put_if_absent("a", b"file"))
    with pytest.raises(StorageError, match="cannot create folder"):
        run(store.put_if_absent("a/b", b"x"))
    assert (root / "a").read_bytes() == b"file"


# -- races ------------------------------------------------------------------------------------


def _race_threads(store: LocalStorage, path: str, datas: list[bytes]) -> list[object]:
    """Start one thread per data, release them together; each result or exception."""
    barrier = threading.Barrier(len(datas))
    results: list[object] = [None] * len(datas)

    def racer(i: int) -> None:
        barrier.wait()
        try:
            results[i] = asyncio.run(store.put_if_absent(path, datas[i]))
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(datas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_eight_threads_race_for_one_name(store: LocalStorage, root: Path) -> None:
    for round_ in range(5):
        path = f"race/{round_}"
        datas = [bytes([i + 1]) * (50_000 + i) for i in range(8)]
        results = _race_threads(store, path, datas)
        winners = [i for i, r in enumerate(results) if r is True]
        losers = [r for r in results if isinstance(r, AlreadyExistsError)]
        assert len(winners) == 1 and len(losers) == 7, results
        assert (root / path).read_bytes() == datas[winners[0]]
    assert temp_files(root) == []


_RACER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from bucket_chat_desktop.storage.base import AlreadyExistsError
    from bucket_chat_desktop.storage.local import LocalStorage

    root, path, go, i = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    data = bytes([i + 1]) * (200_000 + i)
    store = LocalStorage(root)
    print("ready", flush=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(3)
    try:
        print("won" if asyncio.run(store.put_if_absent(path, data)) else "same", flush=True)
    except AlreadyExistsError:
        print("lost", flush=True)
    """
)


def test_eight_processes_race_for_one_name(tmp_path: Path, store: LocalStorage, root: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(root), "race/obj", str(go), str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        outcomes = [p.communicate(timeout=30)[0].split() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * 8
    flat = [o[0] for o in outcomes]
    assert sorted(flat) == ["lost"] * 7 + ["won"], flat
    winner = flat.index("won")
    assert (root / "race/obj").read_bytes() == bytes([winner + 1]) * (200_000 + winner)
    assert every_file(root) == ["race/obj"]


# -- a writer killed mid-write ----------------------------------------------------------------

_BIG = 32 * 1024 * 1024

_SLOW_WRITER = textwrap.dedent(
    f"""
    import asyncio, sys
    from bucket_chat_desktop.storage.local import LocalStorage

    store = LocalStorage(sys.argv[1])

    async def main() -> None:
        for i in range(1000):
            await store.put_if_absent(f"objs/o{{i:04d}}", bytes([i % 251]) * {_BIG})
            print(i, flush=True)

    asyncio.run(main())
    """
)


def test_a_killed_writer_leaves_nothing_or_the_whole_object(
    tmp_path: Path, store: LocalStorage, root: Path
) -> None:
    caught_mid_write = False
    for attempt in range(5):
        where = tmp_path / f"attempt{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _SLOW_WRITER, str(where)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "0"  # one object published
            time.sleep(0.02 * (attempt + 1))  # now the next one is being written
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        folder = where / "objs"
        names = sorted(os.listdir(folder))
        finals = [n for n in names if not n.startswith(".")]
        temps = [n for n in names if n.startswith(TEMP_PREFIX)]
        assert set(names) == set(finals) | set(temps), names
        assert finals, "the first object was reported published"
        for name in finals:  # each published object is whole
            i = int(name[1:])
            data = (folder / name).read_bytes()
            assert len(data) == _BIG and data == bytes([i % 251]) * _BIG, name
        assert len(temps) <= 1
        listed = run(LocalStorage(where).list_objects(""))
        assert [o.path for o in listed] == [f"objs/{n}" for n in finals]
        assert all(o.size == _BIG for o in listed)
        if temps:
            caught_mid_write = True
            # The half-written object is invisible to readers: not listed, not at its name.
            index = len(finals)
            assert not (folder / f"o{index:04d}").exists()
            assert not run(LocalStorage(where).exists(f"objs/o{index:04d}"))
            break
    if not caught_mid_write:
        pytest.skip("the writer was never caught mid-write; the invariant held each time")


def test_listing_ignores_temp_files_and_dot_folders(store: LocalStorage, root: Path) -> None:
    run(store.put_if_absent("rooms/r/logs/d/a.jsonl", b"a"))
    folder = root / "rooms/r/logs/d"
    (folder / f"{TEMP_PREFIX}0123456789abcdef").write_bytes(b"half an obj")
    (folder / ".DS_Store").write_bytes(b"litter")
    (root / "rooms/r/logs/.sync").mkdir()
    (root / "rooms/r/logs/.sync/b.jsonl").write_bytes(b"hidden")
    (root / "rooms/.hidden-room").mkdir()
    (root / "rooms/.hidden-room/metadata.json").write_bytes(b"{}")
    assert run(store.list_objects("")) == [ObjectInfo("rooms/r/logs/d/a.jsonl", 1)]
    assert run(store.list_objects("rooms/r/logs/")) == [ObjectInfo("rooms/r/logs/d/a.jsonl", 1)]
    assert run(store.list_dirs("rooms/")) == ["r"]
    assert run(store.list_dirs("rooms/r/logs/")) == ["d"]
    # put_if_absent still works next to a stale temp file
    assert run(store.put_if_absent("rooms/r/logs/d/b.jsonl", b"bb")) is True


# -- hostile object paths ---------------------------------------------------------------------

HOSTILE = ["../x", "../../x", "/abs", "/", "a//b", "a/./b", "a/../b", "a/..", ".", "a/", "",
           "a\x00b", "a\\b", "..\\x"]  # fmt: skip


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_are_refused_before_touching_disk(tmp_path: Path, path: str) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    store = LocalStorage(outer / "store" / "root")
    for call in (
        lambda: store.put_if_absent(path, b"x"),
        lambda: store.get(path),
        lambda: store.exists(path),
    ):
        with pytest.raises(StorageError, match="unsafe object path"):
            run(call())
    assert list(outer.iterdir()) == []  # not even the root folder was created


@pytest.mark.parametrize("prefix", ["../", "../x/", "/abs/", "a//b/", "a/./b/", "a\x00/", "a\\b/"])
def test_hostile_prefixes_are_refused(store: LocalStorage, root: Path, prefix: str) -> None:
    root.mkdir()
    (root.parent / "x").mkdir()
    (root.parent / "x" / "secret").write_bytes(b"s")
    for call in (lambda: store.list_objects(prefix), lambda: store.list_dirs(prefix)):
        with pytest.raises(StorageError, match="unsafe object path"):
            run(call())


# -- missing objects and listings -------------------------------------------------------------


def test_missing_objects(store: LocalStorage, root: Path) -> None:
    # The root itself does not exist yet.
    with pytest.raises(StorageNotFoundError, match="does not exist"):
        run(store.get("rooms/r/metadata.json"))
    assert run(store.exists("rooms/r/metadata.json")) is False
    assert run(store.list_objects("rooms/r/logs/")) == []
    assert run(store.list_dirs("rooms/")) == []
    assert run(store.list_after("rooms/", None)) == []
    run(store.put_if_absent("rooms/r/metadata.json", b"{}"))
    with pytest.raises(StorageNotFoundError):
        run(store.get("rooms/r/other.json"))
    with pytest.raises(StorageNotFoundError):
        run(store.get("rooms/nope/metadata.json"))
    assert run(store.exists("rooms/r")) is False  # a folder is not an object
    assert run(store.exists("rooms/r/metadata.json")) is True
    assert run(store.list_objects("rooms/nope/")) == []
    assert run(store.list_dirs("rooms/nope/")) == []
    assert not (root / "rooms/nope").exists()


def test_get_of_a_folder_is_an_error(store: LocalStorage, root: Path) -> None:
    (root / "d").mkdir(parents=True)
    with pytest.raises(StorageError) as info:
        run(store.get("d"))
    assert not isinstance(info.value, StorageNotFoundError)


def test_list_objects_is_recursive_sorted_and_sized(store: LocalStorage) -> None:
    for path, data in [
        ("rooms/b/logs/2025-01-02/z", b"zz"),
        ("rooms/b/logs/2025-01-01/y", b"y"),
        ("rooms/a/metadata.json", b"{}"),
        ("rooms/b/metadata.json", b"{1}"),
        ("top", b"t"),
    ]:
        run(store.put_if_absent(path, data))
    assert run(store.list_objects("rooms/b/")) == [
        ObjectInfo("rooms/b/logs/2025-01-01/y", 1),
        ObjectInfo("rooms/b/logs/2025-01-02/z", 2),
        ObjectInfo("rooms/b/metadata.json", 3),
    ]
    assert run(store.list_objects("rooms/b")) == run(store.list_objects("rooms/b/"))
    assert [o.path for o in run(store.list_objects(""))] == [
        "rooms/a/metadata.json",
        "rooms/b/logs/2025-01-01/y",
        "rooms/b/logs/2025-01-02/z",
        "rooms/b/metadata.json",
        "top",
    ]
    assert run(store.list_dirs("")) == ["rooms"]
    assert run(store.list_dirs("rooms/")) == ["a", "b"]
    assert run(store.list_dirs("rooms/b/logs")) == ["2025-01-01", "2025-01-02"]


def test_list_after(store: LocalStorage) -> None:
    paths = [f"logs/2025-01-0{d}/m{i}" for d in (1, 2) for i in range(3)]
    for p in reversed(paths):
        run(store.put_if_absent(p, p.encode()))
    assert [o.path for o in run(store.list_after("logs/", None))] == paths
    assert [o.path for o in run(store.list_after("logs/", paths[2]))] == paths[3:]
    assert [o.path for o in run(store.list_after("logs/", "logs/2025-01-01/m1x"))] == paths[2:]
    assert run(store.list_after("logs/", paths[-1])) == []
    assert [o.path for o in run(store.list_after("logs/", ""))] == paths


def test_probe_removal_only_touches_probes(store: LocalStorage, root: Path) -> None:
    run(store.put_if_absent("rooms/r/metadata.json", b"{}"))
    with pytest.raises(StorageError, match="only self-test probes"):
        run(store.remove_probe("rooms/r/metadata.json"))
    assert (root / "rooms/r/metadata.json").exists()
    run(store.put_if_absent(".bucket-chat-probe/p1", b"p"))
    run(store.remove_probe(".bucket-chat-probe/p1"))
    assert every_file(root) == ["rooms/r/metadata.json"]
    assert not (root / ".bucket-chat-probe").exists()


def test_open_storage(tmp_path: Path) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert open_storage(f"file://{tmp_path}").url == str(tmp_path)
    with pytest.raises(StorageError, match="unknown storage URL"):
        open_storage("ftp://host/x")


# -- permissions ------------------------------------------------------------------------------


@pytest.mark.skipif(IS_ROOT, reason="root ignores folder permissions (see the 'nobody' test)")
def test_permission_denied(store: LocalStorage, root: Path) -> None:
    (root / "ro").mkdir(parents=True)
    (root / "ro").chmod(0o500)
    try:
        with pytest.raises(StorageError, match="permission denied") as info:
            run(store.put_if_absent("ro/x", b"x"))
        assert not isinstance(info.value, StorageFullError | AlreadyExistsError)
        assert list((root / "ro").iterdir()) == []
    finally:
        (root / "ro").chmod(0o700)


def _checks_as_nobody(root: Path) -> dict[str, list[str]]:
    """Run in a forked child that dropped to ``nobody``: the modules are already loaded."""
    store = LocalStorage(root)
    out: dict[str, list[str]] = {}
    calls: list[tuple[str, Callable[[], Coroutine[Any, Any, object]]]] = [
        ("put_ro", lambda: store.put_if_absent("ro/x", b"x")),
        ("put_sub", lambda: store.put_if_absent("ro/sub/x", b"x")),
        ("get", lambda: store.get("secret/x")),
        ("exists", lambda: store.exists("secret/x")),
        ("list_objects", lambda: store.list_objects("secret/")),
        ("list_dirs", lambda: store.list_dirs("secret/")),
    ]
    for name, call in calls:
        try:
            out[name] = ["ok", repr(run(call()))]
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)]
    return out


@pytest.mark.skipif(not IS_ROOT, reason="dropping to 'nobody' needs root")
def test_permission_denied_as_nobody() -> None:
    """Root ignores modes, so the checks run in a forked child that became ``nobody``."""
    base = Path(tempfile.mkdtemp(prefix="bc-perm-"))
    try:
        base.chmod(0o755)
        root = base / "root"
        (root / "ro").mkdir(parents=True)
        (root / "secret").mkdir()
        (root / "secret" / "x").write_bytes(b"s")
        os.chown(root, NOBODY, NOBODY)
        (root / "ro").chmod(0o555)
        (root / "secret").chmod(0o000)
        run(LocalStorage(root).exists("ro/warm-up"))  # load the thread pool before forking
        out = as_someone_modes_apply_to(lambda: _checks_as_nobody(root))
        for name in ("put_ro", "put_sub", "get", "exists", "list_objects", "list_dirs"):
            kind, message = out[name]
            assert kind == "StorageError", (name, json.dumps(out, indent=1))
            assert "permission denied" in message, (name, message)
        assert list((root / "ro").iterdir()) == []
    finally:
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o700)
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _put_at_a_name_nobody_may_read(root: Path) -> list[str]:
    store = LocalStorage(root)
    out = []
    for data in (b"ours", b"a planted file that nobody may read"):
        try:
            out.append(f"ok {run(store.put_if_absent('rooms/r/logs/d/x.jsonl', data))}")
        except StorageError as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_a_file_nobody_may_read_at_the_name_is_a_taken_name() -> None:
    """Red team rt57: an object the create-only write cannot read back to compare (here
    a file of mode 000 at the segment's name) is not these bytes: the name is taken and
    the writer picks the next one. It was a plain error ("permission denied"), which
    failed the message for good. (As ``nobody`` when run as root, which reads anything.)"""
    base = Path(tempfile.mkdtemp(prefix="bc-perm-"))
    try:
        base.chmod(0o755)
        root = base / "root"
        (root / "rooms/r/logs/d").mkdir(parents=True)
        (root / "rooms/r/logs/d/x.jsonl").write_bytes(b"a planted file that nobody may read")
        (root / "rooms/r/logs/d/x.jsonl").chmod(0)
        for folder in (root, root / "rooms", root / "rooms/r", root / "rooms/r/logs"):
            folder.chmod(0o777)
        (root / "rooms/r/logs/d").chmod(0o777)
        run(LocalStorage(root).exists("rooms/warm-up"))  # load the thread pool before forking
        out = as_someone_modes_apply_to(lambda: _put_at_a_name_nobody_may_read(root))
        for said in out:  # other bytes, or even the very bytes there: it cannot tell
            assert said.startswith("AlreadyExistsError: "), out
            assert "permission denied" in said, out
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


# -- a full disk ------------------------------------------------------------------------------


def test_full_disk(tiny_disk: Path) -> None:
    store = LocalStorage(tiny_disk / "store")
    assert run(store.put_if_absent("rooms/r/first", b"1" * 1000)) is True
    with pytest.raises(StorageFullError, match="the disk is full") as info:
        run(store.put_if_absent("rooms/r/big", b"B" * 200_000))
    assert "rooms" in str(info.value)  # names the object
    assert temp_files(tiny_disk) == []
    assert not (tiny_disk / "store/rooms/r/big").exists()
    assert run(store.get("rooms/r/first")) == b"1" * 1000
    # Fill it up in small steps: every object either lands whole or the call says "full".
    written: dict[str, bytes] = {}
    for i in range(100):
        data = bytes([i]) * 7000
        try:
            assert run(store.put_if_absent(f"rooms/r/fill{i}", data)) is True
        except StorageFullError:
            break
        written[f"rooms/r/fill{i}"] = data
    else:
        pytest.fail("a 64 KiB disk took 700 KB")
    assert temp_files(tiny_disk) == []
    assert run(store.get("rooms/r/first")) == b"1" * 1000
    for path, data in written.items():
        assert run(store.get(path)) == data
    listed = {o.path for o in run(store.list_objects(""))}
    assert listed == {"rooms/r/first", *written}


# -- publishing without hard links ------------------------------------------------------------


@pytest.fixture
def other_device(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than ``tmp_path``: ``os.link`` there fails (EXDEV)."""
    home_dev = tmp_path.stat().st_dev
    if IS_ROOT and sys.platform.startswith("linux"):
        where = tmp_path / "other"
        where.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True
        )
        if proc.returncode == 0:
            try:
                yield where
            finally:
                _umount(where)
            return
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != home_dev:
        where = Path(tempfile.mkdtemp(dir=shm))
        try:
            yield where
        finally:
            subprocess.run(["rm", "-rf", str(where)], check=False)
        return
    pytest.skip("no folder on another file system is available")


def test_publish_falls_back_when_hard_links_fail(tmp_path: Path, other_device: Path) -> None:
    tmp = tmp_path / f"{TEMP_PREFIX}src"
    data = os.urandom(300_000)
    tmp.write_bytes(data)
    target = other_device / "obj"
    with pytest.raises(OSError) as info:  # this is really the case the fallback is for
        os.link(tmp, other_device / "probe")
    assert info.value.errno == errno.EXDEV
    LocalStorage._write_exclusive(other_device, "obj", data)
    assert target.read_bytes() == data
    with pytest.raises(FileExistsError):
        LocalStorage._write_exclusive(other_device, "obj", b"other")
    assert target.read_bytes() == data
    (other_device / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(FileExistsError):  # a link at the name is never followed
        LocalStorage._write_exclusive(other_device, "link", data)
    assert not (tmp_path / "outside").exists()


def test_publish_fallback_on_a_full_disk_leaves_no_partial_object(
    tmp_path: Path, tiny_disk: Path
) -> None:
    target = tiny_disk / "obj"
    with pytest.raises(OSError) as info:  # more than the 64 KiB disk holds
        LocalStorage._write_exclusive(tiny_disk, "obj", b"x" * 200_000)
    assert info.value.errno == errno.ENOSPC
    assert not target.exists(), "a truncated object was left at the final name"
    # and the storage error a caller then builds says "full"
    assert isinstance(LocalStorage(tiny_disk)._error(info.value, "x"), StorageFullError)
