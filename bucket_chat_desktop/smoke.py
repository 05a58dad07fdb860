"""``bucket-chat-desktop --smoke``: prove that an installed (or frozen) app is complete.

Everything the app loads dynamically is exercised: Qt platform plugin and widgets (the main
window is built and rendered offscreen), the qasync loop, PyNaCl's native library, a local
store with a create-only write, the fsspec cloud backends (imported and instantiated — no
network), the keyring backend, image formats and Markdown. Prints one line per check.

Two checks exist for Windows and macOS, where nothing else proves them before a user would:

- binary files: bytes holding ``\n``, ``\r\n``, ``\r``, NUL and Ctrl-Z go through the
  local-folder storage, an attachment blob (upload, download, the blob cache, a saved
  copy), a key file and the settings file; each file is then read back by name, in
  binary, and its SHA-256 compared. A descriptor opened in text mode on Windows would
  have changed them.
- the keyring backend is named, and on Windows and macOS it must be the system's own
  (Windows Credential Manager, macOS Keychain) and answer; elsewhere, or with
  ``BUCKET_CHAT_SMOKE_KEYRING`` set to a backend's class path (``any`` for none), that.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path


def run_smoke() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for stream in (sys.stdout, sys.stderr):  # a file on Windows gets the ANSI code page:
        reconfigure = getattr(stream, "reconfigure", None)  # a reason in another script
        if reconfigure is not None:  # must not turn a passing check into a crash
            reconfigure(errors="backslashreplace")
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
    check("segment-checking worker process", _worker_process)
    check("keyring backend", _keyring)
    check("binary files (local storage, blob, cache, key file)", _binary_files)
    if sys.platform == "win32":
        check("Windows AppUserModelID", _app_user_model_id)
    for module in ("s3fs", "gcsfs", "adlfs"):
        check(f"storage backend {module}", lambda m=module: _backend(m))  # type: ignore[misc]
    check("Qt + main window (offscreen) + local store", _gui)
    check("single instance (Qt lock file, local server)", _single_instance)
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


def _worker_process() -> str:
    """A cold read verifies in worker processes (``sync/verifier.py``), started by
    ``spawn``: a frozen app whose entry point lacks ``freeze_support()`` would start
    itself again instead of a worker, or fail here."""
    from nacl.signing import SigningKey

    from .protocol.handover import unpack
    from .protocol.signing import build_event
    from .sync.verifier import SegmentVerifier

    event = build_event(
        room_id="smoke",
        sender_id="smoke@example.com",
        event_type="m.room.message",
        content={"body": "smoke", "msgtype": "m.text"},
        timestamp_ms=1_760_000_000_000,
        unique="00000000-0000-4000-8000-000000000001",
        prev_event_hash=None,
        signing_key=SigningKey.generate(),
    )
    path = "rooms/smoke/logs/2025-10-09/messages_1760000000000_1760000000000_smoke.jsonl"

    async def run() -> str:
        verifier = SegmentVerifier(1)
        try:
            packed = await asyncio.wait_for(verifier.prepare(path, event.line(), "smoke"), 60)
        finally:
            verifier.close()
        assert packed is not None and not isinstance(packed, str), packed
        verdicts = unpack(packed, "smoke").verdicts
        assert verdicts == [(True, "Ed25519 signature good")], verdicts
        return "started, decoded and verified a segment"

    return asyncio.run(run())


PLATFORM_KEYRINGS = {
    "win32": "keyring.backends.Windows.WinVaultKeyring",
    "darwin": "keyring.backends.macOS.Keyring",
}
"""The backend a user of that system gets: Windows Credential Manager, macOS Keychain."""


def _keyring() -> str:
    from .keyring_policy import backend_name
    from .keys import KeyringStore

    name = backend_name()  # also when refused (no keyring, or one keeping secrets in files)
    usable, reason = KeyringStore.usable()
    expected = os.environ.get("BUCKET_CHAT_SMOKE_KEYRING") or PLATFORM_KEYRINGS.get(sys.platform)
    if expected and expected != "any":
        assert name == expected, f"the keyring backend is {name} ({reason}), not {expected}"
        assert usable, f"{name} does not answer: {reason}"
    state = "usable" if usable else "not usable (encrypted key file fallback)"
    return f"{state}: {reason} [{name}]"


AWKWARD_BYTES = bytes(range(256)) + b"line\nCRLF\r\nCR\r NUL\x00 EOF\x1a\n" * 64
"""Every byte value, and the ones a text-mode descriptor changes or stops at."""


def _binary_files() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_binary_round_trips(Path(tmp)))


async def _binary_round_trips(tmp: Path) -> str:
    from .osfiles import write_atomic
    from .protocol.attachments import FileInfo, blob_path, parse_file_content
    from .storage.local import LocalStorage
    from .sync.blobs import BlobCache, download, upload

    want = hashlib.sha256(AWKWARD_BYTES).hexdigest()

    def same_on_disk(path: Path, what: str) -> None:
        with open(path, "rb") as fh:  # by name: always binary, whatever wrote it
            got = fh.read()
        digest = hashlib.sha256(got).hexdigest()
        assert digest == want, (
            f"{what}: {path.name} has {len(got)} bytes, SHA-256 {digest[:12]}, "
            f"not {len(AWKWARD_BYTES)} bytes, {want[:12]} (text-mode write?)"
        )

    store = LocalStorage(tmp / "store")
    assert await store.put_if_absent("smoke/binary", AWKWARD_BYTES)
    same_on_disk(tmp / "store" / "smoke" / "binary", "local storage")
    assert await store.get("smoke/binary") == AWKWARD_BYTES, "local storage read changed it"
    LocalStorage._write_exclusive(tmp / "store", "no-links", AWKWARD_BYTES)
    same_on_disk(tmp / "store" / "no-links", "local storage without hard links")

    source = tmp / "attachment.bin"
    source.write_bytes(AWKWARD_BYTES)
    cache = BlobCache(tmp / "cache")
    content = await upload(store, "smoke", source, limit_bytes=1 << 20, cache=cache)
    info = parse_file_content(content)
    assert isinstance(info, FileInfo), f"upload gave no file content: {info}"
    assert info.sha256 == want, "the blob's announced hash is not the file's"
    same_on_disk(tmp / "store" / Path(blob_path("smoke", info.sha256)), "blob in storage")
    saved = tmp / "saved.bin"
    fresh = BlobCache(tmp / "cache2")
    assert await download(store, "smoke", info, saved, cache=fresh) == AWKWARD_BYTES
    same_on_disk(saved, "saved attachment")
    same_on_disk(fresh.path_for(info.sha256), "blob cache")
    write_atomic(tmp / "key", AWKWARD_BYTES, overwrite=False)
    same_on_disk(tmp / "key", "key file")
    return (
        f"{len(AWKWARD_BYTES)} bytes with LF, CR, NUL, ^Z: SHA-256 {want[:12]} kept by the "
        "storage, the blob, the caches, the saved copy and the key file"
    )


def _app_user_model_id() -> str:
    import ctypes

    from .app import APP_USER_MODEL_ID, set_app_user_model_id

    assert set_app_user_model_id(), "SetCurrentProcessExplicitAppUserModelID failed"
    value = ctypes.c_wchar_p()
    shell32 = ctypes.windll.shell32  # type: ignore[attr-defined]
    assert shell32.GetCurrentProcessExplicitAppUserModelID(ctypes.byref(value)) == 0
    assert value.value == APP_USER_MODEL_ID, f"the process says {value.value!r}"
    return str(value.value)


def _backend(module: str) -> str:
    if module == "gcsfs":
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    mod = importlib.import_module(module)
    import fsspec  # type: ignore[import-untyped]

    protocol = {"s3fs": "s3", "gcsfs": "gs", "adlfs": "az"}[module]
    cls = fsspec.get_filesystem_class(protocol)
    return f"{module} {getattr(mod, '__version__', '?')} -> {cls.__name__}"


def _single_instance() -> str:
    """``gui/single_instance.py`` in a temporary config folder: QtNetwork is in the bundle
    and its local server listens (a second start of the app brings the first forward)."""
    from PySide6.QtWidgets import QApplication

    from .gui.single_instance import claim

    QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        instance = claim(Path(tmp))
        if instance is None:
            raise RuntimeError("a fresh config folder was taken for one in use")
        try:
            if not instance.listening:
                raise RuntimeError("the local server does not listen")
            return f"listening as {instance.name}"
        finally:
            instance.release()


def _gui() -> str:
    import qasync
    from PySide6.QtGui import QImage, QImageReader
    from PySide6.QtWidgets import QApplication

    from .gui.collector import GuiThreadCollector
    from .gui.markdown import to_html

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    GuiThreadCollector(app).start()  # as the app does
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
