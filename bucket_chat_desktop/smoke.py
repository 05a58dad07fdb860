"""``bucket-chat-desktop --smoke``: prove that an installed (or frozen) app is complete.

Everything the app loads dynamically is exercised: Qt platform plugin and widgets (the main
window is built and rendered offscreen), the qasync loop, PyNaCl's native library, a local
store with a create-only write, the fsspec cloud backends (imported and instantiated — no
network), the keyring backend, image formats and Markdown. Prints one line per check.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path


def run_smoke() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    results: list[tuple[str, bool, str]] = []

    def check(name: str, fn: Callable[[], str]) -> None:
        try:
            detail = fn()
            results.append((name, True, detail))
        except Exception as exc:  # the point is to report every failure, not stop at one
            detail = f"{type(exc).__name__}: {exc}"
            if os.environ.get("BUCKET_CHAT_SMOKE_TRACE"):
                detail += "\n" + traceback.format_exc()
            results.append((name, False, detail))

    check("version", _version)
    check("crypto (PyNaCl / libsodium)", _crypto)
    check("keyring backend", _keyring)
    for module in ("s3fs", "gcsfs", "adlfs"):
        check(f"storage backend {module}", lambda m=module: _backend(m))  # type: ignore[misc]
    check("Qt + main window (offscreen) + local store", _gui)
    width = max(len(n) for n, _, _ in results)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name:<{width}}  {detail}")
    failed = [n for n, ok, _ in results if not ok]
    print("smoke: all checks passed" if not failed else f"smoke: {len(failed)} check(s) failed")
    sys.stdout.flush()
    return 0 if not failed else 1


def _version() -> str:
    from . import __version__

    return f"bucket-chat-desktop {__version__}"


def _crypto() -> str:
    import nacl
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    signed = key.sign(b"smoke")
    key.verify_key.verify(signed)
    return f"PyNaCl {nacl.__version__}: sign + verify ok"


def _keyring() -> str:
    from .keys import KeyringStore

    usable, reason = KeyringStore.usable()
    return f"{'usable' if usable else 'not usable (encrypted key file fallback)'}: {reason}"


def _backend(module: str) -> str:
    if module == "gcsfs":
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    mod = importlib.import_module(module)
    import fsspec  # type: ignore[import-untyped]

    protocol = {"s3fs": "s3", "gcsfs": "gs", "adlfs": "az"}[module]
    cls = fsspec.get_filesystem_class(protocol)
    return f"{module} {getattr(mod, '__version__', '?')} -> {cls.__name__}"


def _gui() -> str:
    import qasync
    from PySide6.QtGui import QImage, QImageReader
    from PySide6.QtWidgets import QApplication

    from .gui.markdown import to_html

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp, loop:
        detail = loop.run_until_complete(_gui_async(Path(tmp)))
    fmt = {bytes(f.data()).decode() for f in QImageReader.supportedImageFormats()}
    assert {"png", "jpeg"} <= fmt, f"image formats missing: {sorted(fmt)}"
    assert "<strong>" in to_html("**ok**")
    assert QImage(8, 8, QImage.Format.Format_ARGB32).width() == 8
    shown = sorted(f for f in fmt if f in ("png", "jpeg", "gif", "webp", "svg"))
    return f"{detail}; image formats: {', '.join(shown)}"


async def _gui_async(tmp: Path) -> str:
    from nacl.signing import SigningKey

    from .gui.controller import Controller
    from .gui.main_window import MainWindow
    from .keys import Identity
    from .settings import Settings, StorageSettings
    from .storage import open_storage

    store = tmp / "store"
    storage = open_storage(str(store))
    created = await storage.put_if_absent("smoke/probe", b"smoke")
    assert created and await storage.get("smoke/probe") == b"smoke"
    settings = Settings(
        user_id="smoke@localhost",
        storages=[StorageSettings(str(store), "smoke", [])],
    )
    os.environ.setdefault("BUCKET_CHAT_HOME", str(tmp / "home"))
    controller = Controller(settings, Identity("smoke@localhost", SigningKey.generate()))
    window = MainWindow(controller)
    window.show()
    await asyncio.sleep(0.05)
    image = window.grab()
    window.quit()
    await controller.client.close()
    assert image.width() > 100
    return f"window {image.width()}x{image.height()}, local store create-only ok"
