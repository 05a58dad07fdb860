"""``bucket_chat_desktop.crashes``: a real native crash (SIGSEGV in a child process that
armed the reports) is found at the next start with its report; a clean exit, or another
instance still running, is not mistaken for one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from bucket_chat_desktop.crashes import KEEP_REPORTS, CrashReports

CHILD = textwrap.dedent(
    """
    import sys, faulthandler
    from pathlib import Path
    from bucket_chat_desktop.crashes import CrashReports
    reports = CrashReports(Path(sys.argv[1]))
    reports.start()
    def paint_the_hostile_row():
        faulthandler._sigsegv()  # what shiboken did on an unnormalised exception
    if sys.argv[2] == "crash":
        paint_the_hostile_row()
    elif sys.argv[2] == "wait":
        print("ready", flush=True)
        sys.stdin.readline()
    reports.clean_exit()
    """
)


def child(folder: Path, mode: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def test_a_native_crash_leaves_a_report_found_at_the_next_start(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    proc = child(folder, "crash")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGSEGV, err
    assert len(list(folder.glob("running-*.json"))) == 1

    reports = CrashReports(folder)
    last = reports.start()
    try:
        assert not last.clean
        assert last.report is not None and last.report.parent == folder
        text = last.report.read_text()
        assert "Fatal Python error: Segmentation fault" in text
        assert "paint_the_hostile_row" in text
        assert [p.name for p in folder.glob("running-*.json")] == [reports.marker.name]
    finally:
        reports.clean_exit()
    # the report is kept; this run's empty log and marker are gone
    assert list(folder.glob("running-*.json")) == []
    assert sorted(folder.iterdir()) == [last.report]
    again = CrashReports(folder)
    assert again.start().clean
    again.clean_exit()


def test_a_clean_exit_leaves_nothing_and_the_next_start_is_normal(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    proc = child(folder, "clean")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert list(folder.iterdir()) == []
    reports = CrashReports(folder)
    assert reports.start().clean
    reports.clean_exit()


def test_another_instance_still_running_is_not_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    proc = child(folder, "wait")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        reports = CrashReports(folder)
        assert reports.start().clean
        assert len(list(folder.glob("running-*.json"))) == 2
        reports.clean_exit()
    finally:
        proc.communicate("\n", timeout=60)
    assert proc.returncode == 0
    assert list(folder.iterdir()) == []


def test_a_process_killed_without_a_report_is_unclean_with_no_report(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    proc = child(folder, "wait")
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.kill()
    proc.communicate(timeout=60)
    reports = CrashReports(folder)
    last = reports.start()
    reports.clean_exit()
    assert not last.clean and last.report is None
    assert list(folder.iterdir()) == []  # the empty log of the killed run is removed


def test_a_marker_cannot_point_outside_the_crash_folder(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    folder.mkdir()
    secret = tmp_path / "secret.log"
    secret.write_text("header\nnot a crash report\n")
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    (folder / f"running-{dead}.json").write_text(json.dumps({"pid": dead, "log": str(secret)}))
    (folder / "running-1x.json").write_text("{")  # not ours: ignored
    reports = CrashReports(folder)
    last = reports.start()
    reports.clean_exit()
    assert not last.clean and last.report is None
    assert secret.exists()


def test_old_reports_are_pruned(tmp_path: Path) -> None:
    folder = tmp_path / "crash"
    folder.mkdir()
    for i in range(KEEP_REPORTS + 5):
        (folder / f"crash-20260101-0000{i:02d}-{100 + i}.log").write_text("h\nreport\n")
    reports = CrashReports(folder)
    reports.start()
    reports.clean_exit()
    left = sorted(p.name for p in folder.glob("crash-*.log"))
    assert len(left) == KEEP_REPORTS and left[-1].startswith("crash-20260101-000014")
    assert os.listdir(folder)  # the reports stay
