"""A file system mounted and never answered: a share or mount whose server hangs (sshfs,
rclone, SMB), or a member's own FUSE mount inside a shared folder. Every lookup on it
waits for ever (the process waiting can only be killed). It needs /dev/fuse and a mount
namespace of its own: tests run it in a child made with ``unshare`` and skip, saying why,
where that cannot be done."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path


def mountable() -> str:
    """Why a FUSE file system cannot be mounted here, or "" when it can: this process is
    root or may make a user namespace, and /dev/fuse is there."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    probe = subprocess.run(
        [*unshare(), sys.executable, "-c", HUNG_MOUNT + "print('mounted')", "/mnt"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "" if probe.stdout.strip() == "mounted" else f"cannot mount FUSE: {probe.stderr[-300:]}"


def unshare() -> list[str]:
    own = [] if os.geteuid() == 0 else ["-U", "-r"]
    return ["unshare", *own, "-m", "--propagation", "private"]


HUNG_MOUNT = r"""
import ctypes, os, sys
# A FUSE file system that never answers, not even its first request: every opening of
# a folder on it waits (a mount whose server hangs: sshfs, rclone, a member's own).
_fuse = os.open("/dev/fuse", os.O_RDWR)
_opts = f"fd={_fuse},rootmode=40000,user_id=0,group_id=0".encode()
_libc = ctypes.CDLL(None, use_errno=True)
if _libc.mount(b"hung", sys.argv[1].encode(), b"fuse", 6, _opts) != 0:  # nosuid, nodev
    sys.exit(f"mount: {os.strerror(ctypes.get_errno())}")
"""


class Lines:
    """A child's output, line by line, each waited for at most ``timeout`` seconds (a
    hung child gives "" instead of hanging the test). Read from the descriptor: a
    buffered reader would read ahead of what ``select`` can see."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def next(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return ""
            more = os.read(self.fd, 4096)
            if not more:
                return ""
            self.buffer += more
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().strip()


def run_child(script: Path, *args: str, timeout: float = 60.0) -> tuple[list[str], str]:
    """``script`` run under ``unshare()`` (where it may mount ``HUNG_MOUNT``) with
    ``args``: its lines up to "ending" (or its end, or ``timeout`` seconds without a
    line), and its standard error. The child is killed then: a thread stuck on the
    mount ends with it."""
    child = subprocess.Popen(
        [*unshare(), sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    lines = Lines(child.stdout.fileno())
    out: list[str] = []
    try:
        while (line := lines.next(timeout=timeout)) not in ("ending", ""):
            out.append(line)
    finally:
        child.kill()
        err = child.stderr.read()
        child.wait()
    return out, err
