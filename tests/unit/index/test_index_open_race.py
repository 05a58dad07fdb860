"""Several processes open one storage's index (and outbox) at the same moment: the app's
first start after a storage is added while a script runs ``bucket-chat sync``, or two
commands started together.

Red team rt71 (F4): ``Index.open`` read ``user_version`` and then created the tables; a
process that read 0 before the other one committed its tables met "table segments already
exists", took the other's fresh, healthy index for a broken one and moved it aside
(``<name>.broken-<time>``) under that process's open connection: that process went on
caching into the renamed file, nobody read it again, and every later process started from
an empty index (97 of 100 real two-process trials). "database is locked" was taken for a
broken file too, and a new outbox's switch to WAL failed with it (2 of 200)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bucket_chat_desktop.index import db as index_db
from bucket_chat_desktop.index.db import Index, IndexBusy, secure_database_file

ROOT = Path(__file__).resolve().parents[3]

# The other process: opens the index, caches something, says what it saw.
_OTHER = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from bucket_chat_desktop.index.db import Index
    ix = Index.open(Path(sys.argv[1]), "/the/storage")
    ix.set_cursor("written-by", "the other process")
    ix.close()
    """
)


def _aside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".broken-" in p.name)


def test_two_processes_opening_one_new_index_move_nothing_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race, made certain: right after this process read the schema version of the
    new index, another process (a real one) opens it. Before the fix that process created
    the tables and this one moved its index aside; now the other one waits (it says so)
    until this one has finished creating the index, then uses it."""
    path = tmp_path / "index" / "abc.sqlite3"
    path.parent.mkdir()
    real_connect = sqlite3.connect
    other: list[subprocess.Popen[str]] = []
    other_said: list[str] = []
    armed = [True]

    class Interleaved(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            cur = super().execute(sql, *args)
            if sql.strip() == "PRAGMA user_version" and armed[0]:
                armed[0] = False
                proc = subprocess.Popen(
                    [sys.executable, "-c", _OTHER, str(path)],
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                other.append(proc)
                assert proc.stderr is not None
                # until the other process has done all it can: finished opening (the
                # old code) or waits for this one to finish (it logs that it waits)
                for line in proc.stderr:
                    other_said.append(line)
                    if "waiting for another program to finish opening" in line:
                        break
            return cur

    def connect(database: Any, *args: Any, **kw: Any) -> sqlite3.Connection:
        if armed[0]:
            kw["factory"] = Interleaved
        return real_connect(database, *args, **kw)

    monkeypatch.setattr(index_db.sqlite3, "connect", connect)
    mine = Index.open(path, "/the/storage")
    try:
        assert other, "the other process was not started"
        _, rest = other[0].communicate(timeout=120)
        said = "".join(other_said) + rest
        assert other[0].returncode == 0, said
        assert _aside(path.parent) == [], f"a healthy index was moved aside as broken: {said}"
        # one index for both: what the other process cached is in the file this one has open
        assert mine.cursor("written-by") == "the other process"
    finally:
        mine.close()
        for proc in other:
            if proc.poll() is None:
                proc.kill()


def test_a_busy_index_is_not_moved_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another connection holds a write transaction longer than the busy timeout: opening
    says the index is busy (and which) and leaves the file, and what it holds, in place."""
    path = tmp_path / "index" / "abc.sqlite3"
    first = Index.open(path, "/the/storage")
    first.set_cursor("kept", "yes")
    first.close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    monkeypatch.setattr(index_db, "BUSY_TIMEOUT", 0.05)
    try:
        with pytest.raises(IndexBusy, match="is busy") as raised:
            Index.open(path, "/the/storage")
        assert str(path) in str(raised.value)
        assert _aside(path.parent) == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    again = Index.open(path, "/the/storage")
    try:
        assert again.cursor("kept") == "yes"
    finally:
        again.close()


def test_a_new_outbox_or_index_file_is_a_wal_database_before_anyone_switches_it(
    tmp_path: Path,
) -> None:
    """Switching a new file to WAL takes a lock SQLite does not wait for when another
    connection switches it too: two processes creating one outbox failed with "database
    is locked". The file is made a WAL database under the opening lock, before the
    outbox's or the index's own connection asks for WAL (then a no-op)."""
    path = tmp_path / "outbox" / "abc.sqlite3"
    secure_database_file(path)
    assert path.read_bytes()[18:20] == b"\x02\x02"  # the header's WAL read/write versions
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
