"""What every test shares: one Secret Service at a time.

``tests/with-keyring.sh`` gives the whole run one Secret Service (a private GNOME
Keyring), and some tests lock it to see what a locked keyring does. Tests marked
``keyring`` therefore take a file lock for their whole duration (set-up and tear-down
included), shared by every pytest-xdist worker of the run: they run one after another
whatever the scheduler does. (pytest-xdist's ``xdist_group`` used to do this; with
pytest 9.2 its grouping silently does nothing, and a locking test ran beside the others.)

Child processes (``bucket-chat``, the app) import the package of this checkout: the
virtualenv's scripts would otherwise import the one its editable install points at, which
in another git worktree is a different checkout's code.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
)


@pytest.fixture(autouse=True)
def _one_secret_service_user(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    if request.node.get_closest_marker("keyring") is None:
        yield
        return
    # The run's temporary root: one per run, the parent of each worker's (popen-gwN).
    lock = tmp_path_factory.getbasetemp().parent / "secret-service.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
