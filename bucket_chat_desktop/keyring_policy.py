"""The one keyring policy, for the signing keys (``keys/``) and storage secrets
(``storage/profiles.py``).

- **Backend.** Keyring's own choice (``PYTHON_KEYRING_BACKEND``, keyring's config file);
  a chainer gives way to the first of its backends that passes. Refused: the ``fail``
  backend (no keyring) and the ``null`` one (disabled), backends that keep secrets in
  plain files or ask for a password on a terminal (``keyrings.alt``,
  ``keyrings.cryptfile``: without a terminal they crash with EOFError), and those keyring
  itself does not recommend (priority below 1).
- **Service names.** `KEY_SERVICE` ``bucket-chat`` holds a device's signing key (username
  = user id); `STORAGE_SERVICE` ``bucket-chat-storage`` holds a named storage's secrets
  (username = profile name, one JSON object).
- **No usable keyring.** The signing key goes to an encrypted key file instead
  (``keys.open_key_store`` in ``auto``); storage secrets are refused, never written to a
  file (the SDKs' environment variables and credential files work instead).
- **A locked keyring.** `probe` asks for an entry that is never written, so a keyring that
  stays locked (its unlock prompt dismissed, no prompter on a headless box) is found
  before anything is saved and counts as unusable. An operation that meets a locked
  keyring later fails with the same words (`failure`).
- **Messages** name the backend and say what could not be done and why.
- **A keyring that does not answer** (a stuck Secret Service, an unlock prompt nobody
  sees) would hold a call forever: the app makes its keyring calls on a thread of their
  own (`in_daemon_thread`) and tells the user after `KEYRING_DEADLINE` seconds. Such a
  thread is a daemon: one stuck in the keyring never keeps the app from exiting (the
  default executor's threads are joined at exit).

Keyring is imported when first used, not with this module: ``keyring`` looks up its
backends through entry points, which the CLI's quick commands need not pay for.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the type, for this package's annotations (keyring is imported late)
    from keyring.backend import KeyringBackend as KeyringBackend

KEY_SERVICE = "bucket-chat"
STORAGE_SERVICE = "bucket-chat-storage"
# Looked up (never written) to check that the keyring answers.
PROBE_USER = "bucket-chat-availability-probe"
# Backends that keep secrets in plain files or ask for a password through getpass.
REJECTED_MODULE_PREFIXES = ("keyrings.alt", "keyrings.cryptfile")
# Seconds a person waits for the keyring to answer before being told it does not (an
# answer takes well under 0.1 s; an unlock prompt shown by the keyring may take longer,
# so the user is told, never cut off: the call goes on and Retry waits for it again).
KEYRING_DEADLINE = 5.0

T = TypeVar("T")


def in_daemon_thread(call: Callable[[], T], name: str) -> concurrent.futures.Future[T]:
    """Start ``call`` on a daemon thread of its own; its result (or exception) in the
    future. Nothing waits for the thread: a call that never returns is left behind,
    and the process still exits."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = call()
        except BaseException as exc:  # handed to whoever waits, as the call raised it
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=work, name=name, daemon=True).start()
    return future


def describe(exc: BaseException) -> str:
    """An exception as words: its message, or its type when it has none."""
    text = str(exc).strip()
    return text if text else type(exc).__name__


def _qualified_name(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _why_no_backend() -> str:
    configured = os.environ.get("PYTHON_KEYRING_BACKEND")
    if configured:
        return f"PYTHON_KEYRING_BACKEND={configured} selects no keyring"
    if sys.platform.startswith("linux"):
        try:
            from keyring.backends import SecretService

            SecretService.Keyring.priority  # noqa: B018 - raises with the reason
        except Exception as exc:
            return f"no OS keyring backend is available; Secret Service: {describe(exc)}"
    return "no OS keyring backend is available"


def _rejection(backend: KeyringBackend) -> str | None:
    """Why ``backend`` must not hold our secrets, or None if it may."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, fail.Keyring):
        return _why_no_backend()
    if isinstance(backend, null.Keyring):
        return "the keyring is disabled (keyring.backends.null.Keyring)"
    if isinstance(backend, chainer.ChainerBackend):
        return "a chained keyring cannot be used directly"
    qualified = _qualified_name(backend)
    if type(backend).__module__.startswith(REJECTED_MODULE_PREFIXES):
        return f"{qualified} stores secrets in a file or asks for them on a terminal"
    try:
        priority = float(type(backend).priority)
    except Exception as exc:
        return f"{qualified} is not available: {describe(exc)}"
    if priority < 1:
        return f"{qualified} is not a recommended keyring (priority {priority:g} < 1)"
    return None


def select_keyring_backend(
    backend: KeyringBackend | None = None,
) -> tuple[KeyringBackend | None, str]:
    """``(backend, "")`` for the keyring backend to use, or ``(None, reason)``.

    ``backend`` defaults to ``keyring.get_keyring()``; tests and callers that were given
    one pass it. Does not contact the keyring (see `probe`).
    """
    from keyring.backends import chainer

    if backend is None:
        import keyring

        backend = keyring.get_keyring()
    if isinstance(backend, chainer.ChainerBackend):
        reasons = []
        for candidate in backend.backends:
            reason = _rejection(candidate)
            if reason is None:
                return candidate, ""
            reasons.append(reason)
        if not reasons:
            return None, _why_no_backend()
        return None, "; ".join(reasons)
    reason = _rejection(backend)
    if reason is not None:
        return None, reason
    return backend, ""


def backend_name(backend: KeyringBackend | None = None) -> str:
    """The qualified class name of the backend in use, or where none may be used, of the
    one keyring itself chose (the packaged app's self-test names it)."""
    chosen, _ = select_keyring_backend(backend)
    if chosen is None:
        import keyring

        chosen = backend if backend is not None else keyring.get_keyring()
    return _qualified_name(chosen)


def probe(backend: KeyringBackend | None = None) -> tuple[bool, str]:
    """``(True, backend name)`` if the chosen keyring answers, else ``(False, reason)``.

    Asks for an entry that is never written, so a locked keyring, a dismissed prompt or
    a missing D-Bus session shows up here rather than when a secret is saved. On a
    desktop whose keyring is locked this may show the system's unlock prompt and wait.
    """
    chosen, reason = select_keyring_backend(backend)
    if chosen is None:
        return False, reason
    try:
        chosen.get_password(KEY_SERVICE, PROBE_USER)
    except Exception as exc:
        return False, failure(chosen, "be used", exc)
    return True, str(chosen.name)


def failure(backend: KeyringBackend, action: str, exc: BaseException) -> str:
    """What to tell the user when ``backend`` failed to ``action`` (e.g. "read the key of
    alice@example.com"): a locked keyring is named as such."""
    from keyring.errors import KeyringLocked

    if isinstance(exc, KeyringLocked):
        return f"the OS keyring ({backend.name}) is locked and was not unlocked ({describe(exc)})"
    return f"the OS keyring ({backend.name}) could not {action}: {describe(exc)}"
