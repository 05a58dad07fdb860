"""``bucket-chat-desktop``: wiring and an explicit, ordered start-up and shutdown.

0. one instance per config folder: a second start brings the running instance's window
   to the front and ends (``gui/single_instance.py``);
1. Qt application and a qasync event loop (asyncio runs inside Qt's loop);
2. settings; the first-run wizard when nobody is set up yet;
3. the device key from the key store (a passphrase dialog for encrypted key files);
4. controller (chat client, engines) and main window; tray;
5. on quit: tasks cancelled, engines closed, settings saved — in that order.

Around all of it, ``crashes.CrashReports``: faulthandler writes native crashes to
``<data dir>/crash/``; when the last run did not end cleanly (or with ``--safe-mode``) the
app starts in safe mode — no room is opened, and the user is told where the report is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from . import __version__, paths
from . import settings as settings_store
from .crashes import CrashReports, LastRun
from .keys.passphrase import claim_env_passphrase
from .protocol.untrusted_text import terminal_safe

if TYPE_CHECKING:
    from .gui.single_instance import Instance

log = logging.getLogger("bucket_chat.app")


class _SafeFormatter(logging.Formatter):
    """The app's log lines quote storage text (object names, a service's error replies,
    a queue's): escaped like all of ``bucket-chat``'s output before they reach the
    terminal the app may have been started from."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), multiline=True)


def log_handler(stream: TextIO) -> logging.Handler:
    """The handler of the app's log (``main``: standard error)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bucket-chat-desktop", description="Bucket Chat: serverless, tamper-evident chat."
    )
    parser.add_argument("--version", action="version", version=f"bucket-chat-desktop {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument(
        "--minimized", action="store_true", help="start in the tray (if there is one)"
    )
    parser.add_argument(
        "--safe-mode",
        action="store_true",
        help="open no room at start (the app does this by itself after a crash)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="self-check of an installed app: open the main window offscreen, a local store, "
        "every storage backend and the keyring backend, then exit (0 = all good)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Programs started to open attachments inherit the environment: no passphrase in it.
    claim_env_passphrase()
    args = build_parser().parse_args(argv)
    if args.smoke:
        from .smoke import run_smoke

        return run_smoke()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        handlers=[log_handler(sys.stderr)],
    )
    # One instance per config folder, decided before the crash marker: a start that only
    # brings the running instance's window to the front is no run of its own.
    instance = _claim_instance()
    if instance is None:
        return 0
    if isinstance(instance, int):
        return instance
    try:
        reports = CrashReports(paths.crash_dir())
        last = reports.start()
        if args.safe_mode:
            last = LastRun(clean=False, report=last.report)
        try:
            status = _main(args, last, instance)
        except (KeyboardInterrupt, SystemExit):
            reports.clean_exit()  # the user stopped it: not a crash
            raise
        except BaseException as exc:  # the app ends abnormally: the next start is safe mode
            reports.record_exception(exc)
            raise
        reports.clean_exit()
        return status
    finally:
        instance.release()  # after the settings were saved: the next start reads them


def _claim_instance() -> Instance | int | None:
    """This process as the config folder's one instance; None when the running one was
    asked to show its window (this start ends, status 0); 1 when it does not answer
    (said on standard error). See ``gui/single_instance.py``."""
    from PySide6.QtWidgets import QApplication

    from .gui.single_instance import AlreadyRunning, claim

    QApplication.instance() or QApplication(sys.argv[:1])
    try:
        return claim(paths.config_dir())
    except AlreadyRunning as exc:
        log.error("%s", exc)
        _say_not_answering(str(exc))
        return 1


# How long the "already running but does not answer" message stays up by itself: a start
# from a desktop menu has no terminal to read, and nothing should wait on it for ever.
NOT_ANSWERING_SHOWN_MS = 120_000


def _say_not_answering(text: str) -> None:
    """Say in a window why this start ends (it is said on standard error too)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Warning, "Bucket Chat is already running", text)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    QTimer.singleShot(NOT_ANSWERING_SHOWN_MS, box.close)
    box.exec()


def _log_unhandled(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    """Exceptions in Qt slots and timers reach ``sys.excepthook`` (PySide prints and goes
    on): log them, so they are not lost on a stderr nobody reads."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)  # type: ignore[arg-type]
        return
    log.error("unhandled exception in a Qt callback", exc_info=exc)


APP_USER_MODEL_ID = "io.github.bucketchat.BucketChat"
"""Windows groups windows, taskbar buttons and notifications by this id; the Start-menu
shortcut the installer makes carries the same (installer/windows/bucket-chat.iss)."""


def set_app_user_model_id() -> bool:
    """Give this process the app's AppUserModelID (Windows only; True if it took)."""
    if sys.platform != "win32":
        return False
    import ctypes

    shell32 = ctypes.windll.shell32
    return bool(shell32.SetCurrentProcessExplicitAppUserModelID(APP_USER_MODEL_ID) == 0)


GUI_SWITCH_INTERVAL = 0.001  # seconds a busy thread keeps the GIL from one that waits


def prefer_the_gui_thread() -> None:
    """Let the GUI thread get the GIL back within 1 ms (CPython's default is 5 ms). Every
    call from Qt into Python (a delegate sizing a row, a slot) takes the GIL again; while
    the engine's state thread runs Python (a 100,000-event audit), each of those waited up
    to the interval, and laying out a room's rows took 0.45 s instead of 25 ms. Measured:
    the slowest switch during a back-fill 450 ms at 5 ms, 127-255 ms at 1 ms
    (docs/SCHEDULING.md). The background threads switch more often only while the GUI
    thread asks."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL)


def _main(args: argparse.Namespace, last: LastRun, instance: Instance | None = None) -> int:
    sys.excepthook = _log_unhandled
    set_app_user_model_id()  # before the first window or notification exists
    prefer_the_gui_thread()
    import qasync
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .gui import theme
    from .gui.collector import GuiThreadCollector

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    GuiThreadCollector(app).start()  # cycles with Qt objects die on the GUI thread only
    app.setApplicationName("Bucket Chat")
    app.setOrganizationName("bucket-chat")
    app.setDesktopFileName("bucket-chat-desktop")
    app.setQuitOnLastWindowClosed(False)
    icon = _app_icon()
    if icon is not None:
        app.setWindowIcon(QIcon(icon))
    # Never raises: a damaged file is set aside and the report says so (run shows it).
    settings, settings_report = settings_store.load_reporting()
    theme.apply(app, settings.theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        status: int = loop.run_until_complete(
            run(
                app,
                settings,
                start_minimized=args.minimized,
                last_run=last,
                settings_report=settings_report,
                instance=instance,
            )
        )
        return status


def _app_icon() -> str | None:
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for candidate in (
        here / "resources" / "icons" / "bucket-chat-256.png",
        here.parent / "resources" / "icons" / "bucket-chat-256.png",
    ):
        if candidate.exists():
            return str(candidate)
    return None


async def run(
    app: object,
    settings: settings_store.Settings,
    *,
    start_minimized: bool,
    last_run: LastRun | None = None,
    settings_report: settings_store.LoadReport | None = None,
    instance: Instance | None = None,
) -> int:
    """The app until the user quits. ``last_run`` not clean: safe mode (no room opened,
    a notice says why and where the crash report is). ``settings_report`` telling of a
    damaged settings file: a notice says what was lost and where the file was kept (before
    the first-run wizard, when nothing usable was left). ``instance``: this config
    folder's single instance, which brings the main window to the front when the app is
    started again."""
    from .gui.controller import Controller
    from .gui.main_window import MainWindow
    from .gui.startup import (
        first_run,
        load_identity,
        settings_notice,
        show_safe_mode_notice,
        until_closed,
    )

    tell = settings_report is not None and settings_report.needs_telling
    if tell and settings_report is not None and not settings.configured:
        # read before the wizard asks for everything again
        await until_closed(settings_notice(settings_report, None))
        tell = False
    if not settings.configured:
        settings_or_none = await first_run(settings)
        if settings_or_none is None:
            return 0
        settings = settings_or_none
    identity = await load_identity(settings)
    if identity is None:
        return 1
    safe_mode = last_run is not None and not last_run.clean
    if safe_mode:
        log.warning("safe mode: the last run did not end cleanly; no room is opened")
        settings.last_room = ""  # the room that was open may be what crashed the app
    controller = Controller(settings, identity)
    window = MainWindow(controller)
    closed = asyncio.Event()
    window.destroyed.connect(closed.set)
    if instance is not None:  # a later start of the app brings this window to the front
        instance.window = window
        instance.quitting = lambda: window.quitting or closed.is_set()
    from .gui import tray as tray_feature
    from .gui.widgets import settings_dialog

    tray = tray_feature.install(window, controller)
    from .gui import features

    features.install(window, controller)
    from .gui import search

    search.install(window, controller)
    settings_dialog.install(window, controller)
    from .gui import attachments

    attachments.install(window, controller)
    from .gui import relation_actions, room_export, social

    relation_actions.install(window, controller)
    room_export.install(window, controller)
    social.install(window, controller)
    minimized = (start_minimized or settings.start_minimized) and tray is not None
    if not minimized:
        window.show()
    if safe_mode and last_run is not None:
        show_safe_mode_notice(window, last_run.report)
    if tell and settings_report is not None:
        settings_notice(settings_report, window)
    controller.start()
    log.info("started; %s", f"opening {settings.last_room}" if settings.last_room else "no room")

    original_close = window.closeEvent

    def close_event(event: object) -> None:
        original_close(event)  # type: ignore[arg-type]
        if window.quitting:
            closed.set()

    window.closeEvent = close_event  # type: ignore[method-assign]
    quit_filter = _watch_application_quit(app, window.quit)
    try:
        await closed.wait()
        await controller.shutdown()
    finally:
        _stop_watching(app, quit_filter)
        if instance is not None:
            instance.window = None
            instance.quitting = lambda: True
    if tray is not None:
        tray.hide()
    return 0


def _watch_application_quit(app: object, quit_window: Callable[[], None]) -> object:
    """Make every application quit an orderly one.

    Cmd+Q, the macOS app menu's Quit, a logout and ``QApplication.quit()`` all send the
    application a Quit event; Qt would then close the windows (the main window's close
    handler only hides it while minimise-to-tray is on, which cancels the quit) and stop
    the event loop under ``run_until_complete`` (which raises if ``run`` has not returned,
    as with a second quit during shutdown). Instead the event is taken here and becomes
    the window's own Quit: ``run`` then shuts down and returns, and that ends the loop.
    Only the window's close button still minimises to the tray."""
    from PySide6.QtCore import QEvent, QObject

    class QuitFilter(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() != QEvent.Type.Quit or watched is not app:
                return False
            log.info("the application was asked to quit")
            # A second quit finds the window closing already (a no-op); a window already
            # deleted (RuntimeError) means run() is ending anyway.
            with contextlib.suppress(RuntimeError):
                quit_window()
            return True

    quit_filter = QuitFilter()
    app.installEventFilter(quit_filter)  # type: ignore[attr-defined]
    return quit_filter


def _stop_watching(app: object, quit_filter: object) -> None:
    app.removeEventFilter(quit_filter)  # type: ignore[attr-defined]


if os.environ.get("BUCKET_CHAT_DEBUG_ASYNCIO"):
    logging.getLogger("asyncio").setLevel(logging.DEBUG)
