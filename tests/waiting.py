"""One wait for the tests' asyncio code (importable from every test folder: pytest puts
``tests/`` on the path with its root ``conftest.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

LIVENESS = 60.0  # seconds: a bound on a hung test, not a measurement


async def until(what: Callable[[], object], timeout: float = LIVENESS) -> None:
    """Wait until ``what()`` is true; fail after ``timeout`` seconds. The bound is generous
    on purpose: a loaded CI machine is slow, and only a hung test should reach it. A test
    that asserts on time passes its own, smaller ``timeout``."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
