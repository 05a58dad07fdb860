"""Crash reports and the "did the last run end cleanly?" marker of the desktop app.

A native crash (SIGSEGV in Qt or shiboken, an abort) kills the process before Python can
log anything. So at start-up the app opens ``<data dir>/crash/crash-<time>-<pid>.log`` and
points ``faulthandler`` at it: a crash leaves the Python traceback of every thread there.
Next to it, ``running-<pid>.json`` says that this run is in progress; a clean exit removes
both (the log only if it is empty).

At the next start, a marker whose process is gone means the last run did not end cleanly:
the app then starts in *safe mode* (it opens no room, since the last room may be what
crashed it) and tells the user where the report is. Another instance that is still
running is not mistaken for a crash (on POSIX, where that can be checked): one app runs
per config folder (``gui/single_instance.py``, decided before this module is used, so a
start that only raises the running app's window leaves no marker), but two config folders
may share a data folder.

No Qt here: ``app.py`` uses it before the GUI exists.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import json
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .osfiles import write_atomic

log = logging.getLogger("bucket_chat.app")

KEEP_REPORTS = 10  # crash logs kept; older ones are deleted
_MARKER_RE = re.compile(r"running-([0-9]{1,10})\.json")
_LOG_RE = re.compile(r"crash-[0-9]{8}-[0-9]{6}-[0-9]{1,10}\.log")


@dataclass(frozen=True, slots=True)
class LastRun:
    """How the previous run ended, as far as the files tell."""

    clean: bool
    report: Path | None = None  # a crash log with something in it, if one was written


class CrashReports:
    """One run's crash log and marker. ``start()`` first, ``clean_exit()`` at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid = os.getpid()
        self.marker = folder / f"running-{self.pid}.json"
        self.log_path: Path | None = None
        self._file: IO[str] | None = None

    def start(self) -> LastRun:
        """Look at how the last run ended, then arm faulthandler for this one. Never
        raises: without a writable data folder the app still starts (without reports)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            last = self._previous_runs()
            self._prune()
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.log_path = self.folder / f"crash-{stamp}-{self.pid}.log"
            self._file = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run
            self._file.write(f"Bucket Chat crash report (pid {self.pid}, started {stamp})\n")
            self._file.flush()
            faulthandler.enable(self._file, all_threads=True)
            marker = json.dumps({"pid": self.pid, "log": self.log_path.name})
            write_atomic(self.marker, marker.encode("utf-8"))
        except OSError as exc:
            log.warning("crash reports are off: %s", exc)
            return LastRun(clean=True)
        return last

    def record_exception(self, exc: BaseException) -> None:
        """A Python exception that ends the app: its traceback goes to the crash log."""
        if self._file is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._file.write("\nUnhandled exception:\n")
            self._file.write("".join(traceback.format_exception(exc)))
            self._file.flush()

    def clean_exit(self) -> None:
        """The run ended normally: no marker, and no empty report, stays behind."""
        if self._file is not None:
            faulthandler.disable()
            # faulthandler falls back to stderr for the rest of the interpreter's life
            with contextlib.suppress(Exception):
                faulthandler.enable(sys.stderr, all_threads=True)
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            if self.log_path is not None and not _has_report(self.log_path):
                with contextlib.suppress(OSError):
                    self.log_path.unlink()
        with contextlib.suppress(OSError):
            self.marker.unlink()

    # -- the previous runs ---------------------------------------------------------------

    def _previous_runs(self) -> LastRun:
        clean = True
        report: Path | None = None
        for marker in sorted(self.folder.glob("running-*.json")):
            m = _MARKER_RE.fullmatch(marker.name)
            if m is None:
                continue
            pid = int(m.group(1))
            if pid == self.pid or _alive(pid):
                continue  # this process, or another instance still running
            clean = False
            found = self._report_of(marker)
            if found is not None and (report is None or found.name > report.name):
                report = found
            with contextlib.suppress(OSError):
                marker.unlink()
        return LastRun(clean=clean, report=report)

    def _report_of(self, marker: Path) -> Path | None:
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        name = data.get("log") if isinstance(data, dict) else None
        # only a report file of ours in this folder, whatever the marker says
        if not isinstance(name, str) or not _LOG_RE.fullmatch(name):
            return None
        path = self.folder / name
        if not _has_report(path):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return path

    def _prune(self) -> None:
        logs = sorted(p for p in self.folder.glob("crash-*.log") if _LOG_RE.fullmatch(p.name))
        for old in logs[:-KEEP_REPORTS]:
            with contextlib.suppress(OSError):
                old.unlink()


def _has_report(path: Path) -> bool:
    """More than the header line: faulthandler or an exception wrote something."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            f.readline()
            return bool(f.read(1))
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return False  # cannot check cheaply and safely: assume it is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
