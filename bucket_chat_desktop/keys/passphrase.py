"""Where the passphrase of an encrypted key file comes from when nobody passes one in.

A passphrase provider is any callable ``provider(user_id, creating) -> str``; the GUI will
pass its own (a dialog). `DefaultPassphraseProvider` serves the CLI and scripts.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable

from .errors import PassphraseRejectedError, PassphraseUnavailableError

PASSPHRASE_ENV = "BUCKET_CHAT_PASSPHRASE"

PassphraseProvider = Callable[[str, bool], str]
"""``provider(user_id, creating)``: ``creating`` is True when a new key file is written."""

_ATTEMPTS = 3

_claimed: str | None = None


def claim_env_passphrase() -> str | None:
    """Move ``$BUCKET_CHAT_PASSPHRASE`` out of the environment into this process's memory.

    Whatever the program starts later (the application that opens an attachment, a
    browser, a shell) inherits the environment; the passphrase must not go with it.
    The app and the CLI call this first thing; `DefaultPassphraseProvider` calls it too,
    so the value is still served after it left the environment. Returns the value.
    """
    global _claimed
    value = os.environ.pop(PASSPHRASE_ENV, None)  # pop also unsets it at the C level
    if value is not None:  # set again (even to ""): the newest value counts
        _claimed = value or None
    return _claimed


class DefaultPassphraseProvider:
    """``$BUCKET_CHAT_PASSPHRASE`` if set, else a terminal prompt, else an error.

    ``keyring_reason`` is why the OS keyring is not used; it goes into the error message
    so that a user without a terminal learns both what went wrong and what to do.
    When creating, the prompt asks twice and accepts only two equal, non-empty entries.
    """

    def __init__(self, keyring_reason: str | None = None) -> None:
        self.keyring_reason = keyring_reason

    def __call__(self, user_id: str, creating: bool) -> str:
        from_env = claim_env_passphrase()
        if from_env:
            return from_env
        if not _stdin_is_terminal():
            raise PassphraseUnavailableError(self._unavailable_message(user_id))
        if not creating:
            passphrase = getpass.getpass(f"Passphrase for the key of {user_id}: ")
            if not passphrase:
                raise PassphraseRejectedError("No passphrase was entered.")
            return passphrase
        return _prompt_new(user_id)

    def _unavailable_message(self, user_id: str) -> str:
        if self.keyring_reason is not None:
            return (
                f"No OS keyring is usable here ({self.keyring_reason}) and no passphrase was "
                f"given: set {PASSPHRASE_ENV} or run in a terminal."
            )
        return (
            f"The key of {user_id} is kept in an encrypted file and no passphrase was given: "
            f"set {PASSPHRASE_ENV} or run in a terminal."
        )


def _stdin_is_terminal() -> bool:
    stdin = sys.stdin
    try:
        return stdin is not None and stdin.isatty()
    except (ValueError, OSError):  # closed or detached stdin
        return False


def _prompt_new(user_id: str) -> str:
    problem = ""
    for _ in range(_ATTEMPTS):
        first = getpass.getpass(f"{problem}New passphrase to protect the key of {user_id}: ")
        if not first:
            problem = "The passphrase must not be empty. "
            continue
        second = getpass.getpass("Repeat the passphrase: ")
        if first == second:
            return first
        problem = "The two entries differ. "
    raise PassphraseRejectedError(
        f"No passphrase was set for the key of {user_id}: {problem.strip()}"
    )
