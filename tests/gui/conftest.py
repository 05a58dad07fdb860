"""Shared fixtures for the GUI tests (pytest-qt, Qt offscreen, real widgets).

- ``qloop``: a ``qasync.QEventLoop`` over pytest-qt's ``qapp``, already "running" — qtbot's
  ``waitUntil``/``waitSignal`` spin Qt, and that drives asyncio tasks. Teardown cancels the
  tasks a test left behind and closes the loop *without* ``loop.stop()`` (which would call
  ``app.exit()`` and break later waits).
- ``wait_for(qtbot, coro, ms)`` (and ``run(coro, qtbot, s)``): await a coroutine from a
  synchronous test.
- ``qt_garbage_on_main_thread``: collect Qt garbage on the main thread around a test.
- ``home``: an isolated ``BUCKET_CHAT_HOME`` with the encrypted-file key store and a
  passphrase in ``BUCKET_CHAT_PASSPHRASE`` (no OS keyring is touched for device keys).
- ``memory_keyring``: an in-memory keyring backend to hand to ``ProfileStore(backend=…)``
  where a test needs storage keys kept (it is not installed globally).
- ``launch(settings)``: the app started as at start-up (``desk.py``), quit at teardown.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError
from qt_loops import delete_what_was_left, end_qloop, stop_after_the_test

from bucket_chat_desktop.gui.collector import GuiThreadCollector
from bucket_chat_desktop.protocol.audit import AuditResult
from bucket_chat_desktop.protocol.room_state import RoomState, Roster

PASSPHRASE = "correct horse battery staple"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread(qapp: Any) -> Iterator[GuiThreadCollector]:
    """As the app does (``app._main``): garbage is collected on the GUI thread only, never
    on fsspec's I/O thread or an engine's thread, where a Qt object in a cycle (a closed
    qasync loop, a window) would be destroyed off its thread. Handed back to CPython after
    each test: the worker's next test may be one without Qt, whose loop never runs the
    timer. It is stopped (a full collection) once pytest let go of the test, in
    ``tests/conftest.py`` (``qt_loops.stop_after_the_test``)."""
    collector = GuiThreadCollector(qapp)
    collector.start()
    try:
        yield collector
    finally:
        try:
            delete_what_was_left()
        finally:
            stop_after_the_test(collector)


@pytest.fixture
def qloop(qapp: Any, qtbot: Any) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        end_qloop(loop, qapp, qtbot)


def roster_of(items: Any) -> Roster:
    """The room state the engine's state thread hands the GUI with an audit (``result``)
    or a list of its rows: a GUI model only takes it, never folds a timeline itself."""
    fold = RoomState.of(items) if isinstance(items, AuditResult) else RoomState()
    if not isinstance(items, AuditResult):
        fold.add(items)
    return fold.roster()


def wait_for(qtbot: Any, coro: Coroutine[Any, Any, T], timeout: int = 15_000) -> T:
    """Await ``coro`` on the test's qasync loop (``qloop`` must be active) and return its
    result, spinning Qt until it is done; fails after ``timeout`` milliseconds."""
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()


def run(coro: Coroutine[Any, Any, T], qtbot: Any, timeout: float = 10.0) -> T:
    """``wait_for`` with the timeout in seconds (the older tests' order)."""
    return wait_for(qtbot, coro, int(timeout * 1000))


@pytest.fixture
def qt_garbage_on_main_thread() -> Iterator[None]:
    """Collect a test's Qt garbage (the closed qasync loop and its timer object, the
    window) here, on the main thread, after the other fixtures' teardown (ask for it with
    ``pytestmark = pytest.mark.usefixtures(...)``).

    Left to the cyclic GC it can die on whichever thread allocates next — a hashing or
    engine worker — where ``~QObject`` cannot unregister its timers; the next test's
    event loop then fires a timer at freed memory (a segfault in
    ``QTimerInfoList::activateTimers``).

    After the test, that collection is the one ``tests/conftest.py`` runs for every GUI
    test once pytest let go of it (stopping ``_collect_on_the_gui_thread``'s collector,
    which keeps CPython's automatic collector off until then): later than the other
    fixtures' teardown, on the same thread. One here as well scanned the worker's whole
    heap a second time."""
    gc.collect()
    yield


@pytest.fixture(autouse=True)
def _no_earlier_gui_faults() -> None:
    """Each test starts with no failure of a Qt callback on record: tests that assert
    ``safe.failures()`` is empty must not see what an earlier test in the same worker
    provoked on purpose (``test_safe.py`` does)."""
    from bucket_chat_desktop.gui import safe

    safe._reported.clear()


@pytest.fixture(autouse=True)
def _no_claimed_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app moves $BUCKET_CHAT_PASSPHRASE out of the environment into memory when it
    reads it; an earlier test's value must not survive into the next test."""
    from bucket_chat_desktop.keys import passphrase

    monkeypatch.setattr(passphrase, "_claimed", None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's device: its own settings, keys and default store under ``tmp_path``."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(folder))
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    return folder


class MemoryKeyring(KeyringBackend):
    """A real keyring backend that keeps secrets in a dict (priority 1: usable)."""

    priority: ClassVar[float] = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


# keyring registers every backend class it sees; keep this one out of its auto-detection
# (tests pass instances explicitly), or later tests would find it instead of the real one.
KeyringBackend._classes.discard(MemoryKeyring)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    return MemoryKeyring()


def shot(widget: Any, name: str, tmp_path: Path) -> Path:
    """Render ``widget`` to ``tmp_path``; also into $BUCKET_CHAT_GUI_SHOTS when set, to look
    at it."""
    path = tmp_path / f"{name}.png"
    image = widget.grab()
    assert image.save(str(path))
    folder = os.environ.get("BUCKET_CHAT_GUI_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(folder) / f"{name}.png"))
    return path


@pytest.fixture
def launch(qtbot: Any, qloop: Any, home: Path, qapp: Any) -> Iterator[Callable[..., Any]]:
    """Start the app the way ``bucket-chat-desktop`` does once settings exist; each call
    returns a ``desk.Desk``."""
    from desk import launching  # imports the app: only for the tests that ask

    yield from launching(qtbot, qapp)
