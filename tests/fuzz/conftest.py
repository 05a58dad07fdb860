"""The fuzz suite's Hypothesis profiles and shared fixtures.

Profiles (choose with ``HYPOTHESIS_PROFILE``):

- ``fuzz`` (default): small and reproducible — derandomized, no example database — so
  the whole directory stays within about a minute on two cores in the normal test run;
- ``long``: many more examples, random, for a run on demand::

      HYPOTHESIS_PROFILE=long python -m pytest tests/fuzz -p no:cacheprovider

Each test takes its share of the profile's example count (``fuzz_settings(share)``),
since a GUI example costs a hundred protocol examples.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_SUPPRESS = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.function_scoped_fixture,  # fixtures here are reused on purpose
    HealthCheck.large_base_example,
    HealthCheck.filter_too_much,
]
settings.register_profile(
    "fuzz",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    # No shrinking: a failing example is reported as found, at once (shrinking a GUI or
    # CLI example can take minutes, past the suite's per-test timeout). The long profile
    # shrinks.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_SUPPRESS,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "fuzz")


BASE = settings.get_profile(PROFILE)


def fuzz_settings(share: float, **overrides: Any) -> settings:
    """Settings for one test: the active profile with ``share`` of its ``max_examples``
    (at least 1). Applied per test rather than with ``load_profile``, so the other test
    directories keep their own defaults when the whole suite runs."""
    return settings(BASE, max_examples=max(1, int(BASE.max_examples * share)), **overrides)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Hypothesis warns when it prints a large example; here large examples are the point.
    here = Path(__file__).parent
    quiet = pytest.mark.filterwarnings("ignore:Generating overly large repr")
    for item in items:
        if here in item.path.parents:
            item.add_marker(quiet)


PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's device: settings, keys, index and outbox under ``tmp_path``."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(folder))
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    return folder


class HookCapture(logging.Handler):
    """Exceptions that never reach the caller: PySide prints those raised in Python
    overrides of virtual methods (``data``, ``paint``) through ``sys.excepthook``, and
    ones raised in ``__del__`` or callbacks go to ``sys.unraisablehook``; asyncio's
    handler gets those of tasks nobody awaited; the app's own code logs the exceptions
    it catches (``log.exception``) on its ``bucket_chat`` loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            self.errors.append(
                f"logged by {record.name}: {record.getMessage()}: {type(exc).__name__}: {exc}"
                f" (at {_last_frame(exc)})"
            )

    def excepthook(self, kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        self.errors.append(f"excepthook: {kind.__name__}: {exc} (at {_last_frame(exc)})")

    def unraisablehook(self, unraisable: Any) -> None:
        exc = unraisable.exc_value
        self.errors.append(
            f"unraisable: {type(exc).__name__}: {exc} ({unraisable.object!r}"
            f" at {_last_frame(exc) if exc is not None else '?'})"
        )

    def threadhook(self, args: Any) -> None:
        exc = args.exc_value
        where = _last_frame(exc) if exc is not None else "?"
        self.errors.append(f"thread: {args.exc_type.__name__}: {exc} (at {where})")

    def loop_handler(self, loop: Any, context: dict[str, Any]) -> None:
        self.errors.append(f"asyncio: {context.get('message')}: {context.get('exception')!r}")

    def check(self) -> None:
        errors, self.errors = self.errors, []
        assert not errors, "\n".join(errors)


def _last_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno}"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[HookCapture]:
    capture = HookCapture()
    monkeypatch.setattr(sys, "excepthook", capture.excepthook)
    monkeypatch.setattr(sys, "unraisablehook", capture.unraisablehook)
    monkeypatch.setattr(threading, "excepthook", capture.threadhook)
    logger = logging.getLogger("bucket_chat")
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


@pytest.fixture
def qloop(qapp: Any, qtbot: Any, hooks: HookCapture) -> Iterator[Any]:
    """A qasync loop over pytest-qt's ``qapp`` that counts as running, so qtbot's waits
    drive asyncio tasks; torn down without ``stop()`` (which would quit the app).

    Garbage is collected on the GUI thread only while it runs, as in the app
    (``GuiThreadCollector``): with CPython's automatic collector, a thread that
    allocates (the engine's state thread, fsspec's I/O thread) collects Qt objects in
    cycles off their thread (a Qt warning, which fails the test, or a crash), and the
    app under fuzzing was not run as users run it."""
    import qasync
    from qt_loops import delete_what_was_left, end_qloop, stop_after_the_test

    from bucket_chat_desktop.gui.collector import GuiThreadCollector

    collector = GuiThreadCollector(qapp)
    collector.start()
    loop = qasync.QEventLoop(qapp, already_running=True)
    loop.set_exception_handler(hooks.loop_handler)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        try:
            end_qloop(loop, qapp, qtbot, warn=False)
            delete_what_was_left()
        finally:
            # the worker's next test may be one without Qt: stopped (a full collection)
            # once pytest let go of this one (``tests/conftest.py``)
            stop_after_the_test(collector)
