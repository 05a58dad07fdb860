"""Checks that need file modes to apply (importable from every test folder, like
``waiting.py``): root ignores them, so as root a check runs in a forked child that
became ``nobody``."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from typing import Any

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NOBODY = 65534


def as_someone_modes_apply_to(check: Callable[[], Any]) -> Any:
    """``check()``'s JSON-able result, run where file modes apply: in this process when
    it is not root's, else in a forked child that became ``nobody`` (the modules are
    already loaded; a check that raises there comes back as ``{"child failed": ...}``)."""
    if not IS_ROOT:
        return check()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                result = check()
            except BaseException:
                result = {"child failed": traceback.format_exc()}
            os.write(write_end, json.dumps(result).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(report)
