"""Frozen entry point of ``bucket-chat-desktop``, the windowed executable.

PyInstaller runs this file as ``__main__``; it only adapts the process to being a windowed
program and hands over to `bucket_chat_desktop.app.main`.
"""

import multiprocessing
import sys

# First: a worker process of a cold read (sync/verifier.py, started by ``spawn``) is this
# executable run again with ``--multiprocessing-fork``; it becomes that worker here,
# before anything of the app (Qt) is imported or a console attached.
multiprocessing.freeze_support()


def _attach_parent_console() -> None:
    """A windowed Windows executable starts without stdout/stderr, so ``--version``,
    ``--help`` and ``--smoke`` would have nowhere to print. When it was started from a
    console (cmd, PowerShell), write to that console; from Explorer there is none and
    nothing changes. Streams redirected by the caller (to a file or pipe) are kept."""
    if sys.platform != "win32" or (sys.stdout is not None and sys.stderr is not None):
        return
    import ctypes

    attach_parent_process = -1
    if not ctypes.windll.kernel32.AttachConsole(attach_parent_process):
        return
    console = open("CONOUT$", "w", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = console
    if sys.stderr is None:
        sys.stderr = console


_attach_parent_console()

from bucket_chat_desktop.app import main  # noqa: E402

raise SystemExit(main())
