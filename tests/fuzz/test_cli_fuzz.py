"""Properties of the ``bucket-chat`` command on hostile rooms in a local folder.

- It exits 0, 1 or 2, never with a traceback; on 2 with one line on stderr.
- What it prints holds no raw terminal controls (C0/C1 controls and DEL; in the text
  output also bidi controls and line separators, which JSON may carry) and encodes as
  UTF-8 (a lone surrogate, valid as a JSON escape in a signed event, must not crash it);
  its log records, on stderr as in the real command, are held to the same rules.
- ``verify`` is never CLEAN (nor exits 0) when a segment was left unread.
- Reads stay bounded: entries that would block (a FIFO) or never end (``/dev/zero``) or
  are larger than any limit (a sparse 3 GB ``metadata.json``) are read by a subprocess
  under a time and an address-space limit; hanging or exhausting memory fails the test.

Most examples run ``main()`` in this process (cheap); the unbounded kinds only ever run in
a subprocess, where a hang can be killed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import traceback
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given

from bucket_chat_desktop.cli.main import main

from .conftest import fuzz_settings
from .hostile import (
    BLOCKING_KINDS,
    ROOM,
    SPECIAL_KINDS,
    HostileRoom,
    hostile_rooms,
    join,
    room_of,
    say,
    write_room,
)

REPO = Path(__file__).resolve().parents[2]
BOUNDED_TIMEOUT = 30  # seconds: a liveness limit (a hang), not a speed requirement
BOUNDED_MEMORY = 1024**3  # address space of the subprocess (a normal run peaks near 260 MB)
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@dataclass
class Result:
    code: int
    out: str
    err: str
    args: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"bucket-chat {' '.join(self.args)} -> exit {self.code}\n"
            f"--- stdout\n{self.out[:3000]}\n--- stderr\n{self.err[:3000]}"
        )


class Crashed(Exception):
    """``main()`` raised: the user would have seen this traceback."""


def raw_controls(text: str, *, json_text: bool = False) -> list[str]:
    """Characters a terminal would act on rather than show."""
    bad = []
    for c in text:
        cat = unicodedata.category(c)
        terminal = (cat == "Cc" and c not in "\n\t") or cat == "Cs"
        layout = c in BIDI or cat in ("Zl", "Zp")  # JSON may carry these; a terminal not
        if terminal or (layout and not json_text):
            bad.append(c)
    return bad


def run_inprocess(*args: str) -> Result:
    """``bucket-chat ARGS`` in this process, its output through strict UTF-8 streams (as a
    terminal's) and its log records on stderr (as ``logging.basicConfig`` would)."""
    out_buf, err_buf = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_buf, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_buf, encoding="utf-8", errors="strict", write_through=True)
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100000"  # an error reads as one line (a pipe's: 80, ``fit``)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 2
            except Exception as exc:
                # A traceback a user would see: keep its last frames for the report.
                raise Crashed(traceback.format_exc(limit=-3)) from exc
    finally:
        root.removeHandler(handler)
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return Result(code, out_buf.getvalue().decode(), err_buf.getvalue().decode(), args)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BOUNDED_MEMORY, BOUNDED_MEMORY))


def run_bounded(home: Path, *args: str) -> Result:
    """``bucket-chat ARGS`` as a subprocess under a time and a memory limit."""
    env = dict(os.environ)
    env.update(
        BUCKET_CHAT_HOME=str(home),
        BUCKET_CHAT_KEY_STORE="file",
        BUCKET_CHAT_PASSPHRASE="x",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        PYTHONIOENCODING="utf-8:strict",
        LC_ALL="C.UTF-8",
        COLUMNS="100000",  # an error reads as one line (a pipe's are cut at 80: ``fit``)
    )
    env.pop("BUCKET_CHAT_STORAGE", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bucket_chat_desktop.cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=BOUNDED_TIMEOUT,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"bucket-chat {' '.join(args)} still reading after {BOUNDED_TIMEOUT} s")
    return Result(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        args,
    )


def check_result(r: Result, *, json_out: bool = False) -> None:
    assert r.code in (0, 1, 2), r
    assert "Traceback" not in r.out and "Traceback" not in r.err, r
    if r.code == 2:
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bucket-chat: "), r
    assert not raw_controls(r.out, json_text=json_out), (raw_controls(r.out, json_text=json_out), r)
    assert not raw_controls(r.err), (raw_controls(r.err), r)
    if json_out and r.code != 2:
        json.loads(r.out)


def check_verify(r: Result, room: HostileRoom) -> None:
    """``verify`` said CLEAN (exit 0) only if nothing was left unread."""
    check_result(r)
    if room.has_unreadable:
        assert r.code != 0 and "CLEAN:" not in r.out.replace("NOT CLEAN:", ""), (
            f"verify called a room CLEAN with unreadable entries {room.specials}",
            r,
        )


def check_verify_json(r: Result, room: HostileRoom) -> None:
    check_result(r, json_out=True)
    if room.has_unreadable and r.code != 2:
        assert json.loads(r.out)["clean"] is False and r.code == 1, r


def check_room(store: Path, room: HostileRoom) -> None:
    """Every read-only command on the room; all their failures are reported together."""
    s = str(store)
    runs = [
        (check_result, ("rooms",)),
        (lambda r: check_verify(r, room), ("verify", "--room-id", ROOM)),
        (lambda r: check_verify_json(r, room), ("verify", "--room-id", ROOM, "--json")),
        (check_result, ("history", "--room-id", ROOM)),
        # from this device's index now: the hostile rows went through SQLite
        (lambda r: check_result(r, json_out=True), ("history", "--room-id", ROOM, "--json")),
        (check_result, ("history", "--room-id", ROOM, "--limit", "2")),
        # search: the hostile rows' text through the search index and its snippets
        (check_result, ("search", "e")),
        (check_result, ("search", "--room-id", ROOM, "the")),
        (lambda r: check_result(r, json_out=True), ("search", "a", "--json")),
    ]
    failures = []
    for check, args in runs:
        try:
            check(run_inprocess("-s", s, *args))
        except Exception as exc:
            failures.append(f"bucket-chat {' '.join(args)}: {type(exc).__name__}: {exc}")
    assert not failures, "\n\n".join(failures)


@fuzz_settings(0.4)
@given(hostile_rooms(specials=SPECIAL_KINDS))
def test_cli_on_hostile_rooms(home: Path, tmp_path: Path, room: HostileRoom) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        store = Path(folder) / "store"
        write_room(store, room, Path(folder) / "outside")
        check_room(store, room)


# -- entries a reader without bounds would hang on or exhaust memory with ---------------------


@pytest.mark.parametrize("kind", BLOCKING_KINDS)
def test_unbounded_entry_is_read_within_bounds(tmp_path: Path, kind: str) -> None:
    room = room_of(join(), say("hi"), specials=(kind,))
    store = tmp_path / "store"
    write_room(store, room, tmp_path / "outside")
    home = tmp_path / "home"
    s = str(store)
    check_verify(run_bounded(home, "-s", s, "verify", "--room-id", ROOM), room)
    check_result(run_bounded(home, "-s", s, "history", "--room-id", ROOM))
    if "metadata" in kind:
        check_result(run_bounded(home, "-s", s, "rooms"))
