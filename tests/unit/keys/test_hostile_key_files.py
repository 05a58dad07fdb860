"""Key files and key backups shaped by someone hostile (or a damaged disk, a sync tool):
JSON that Python's parser refuses with other errors than its own, files too large to be a
key, and names that are no regular file at all (a FIFO, a link to one, a device), through
the real keys package and real files; and the public index of keyring identities the same.

Each of these once got through as a raw Python error (the app's start-up catches only
`KeysError`: it would have crashed) or blocked for good on a FIFO (at start-up, on the GUI
thread, with no window yet)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.pwhash import argon2id
from nacl.signing import SigningKey

from bucket_chat_desktop.keys import (
    EncryptedFileStore,
    Identity,
    KeyFileCorruptError,
    KeysError,
    export_backup,
    import_backup,
    read_backup,
)
from bucket_chat_desktop.keys.keyfile import MAX_KEY_FILE_BYTES
from bucket_chat_desktop.keys.public_index import PublicIndex

USER = "alice@example.com"
PASS = "pw-12345678"
CORRUPT = "not a valid Bucket Chat key file"
NO_FIFOS = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
HANG = 5.0  # seconds: what used to block forever is expected back at once


def backup_bytes(user_id: str = USER) -> bytes:
    return export_backup(
        Identity(user_id, SigningKey.generate()),
        PASS,
        opslimit=argon2id.OPSLIMIT_MIN,
        memlimit=argon2id.MEMLIMIT_MIN,
    )


def long_opslimit() -> bytes:
    """A backup whose opslimit has 5000 digits: ``json.loads`` raises a plain ValueError
    ("Exceeds the limit (4300 digits) ... use sys.set_int_max_str_digits()")."""
    text = json.dumps(json.loads(backup_bytes()))
    hostile = text.replace('"opslimit": 1', '"opslimit": ' + "9" * 5000)
    assert "9" * 5000 in hostile
    return hostile.encode()


def nested() -> bytes:
    """Within the size cap, yet too deep for the parser: a RecursionError."""
    data = b"[" * 60_000
    assert len(data) <= MAX_KEY_FILE_BYTES
    return data


def oversized() -> bytes:
    return b"[" * 100_000


# -- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (long_opslimit, "a number too long to be read"),
        (nested, "nested too deeply"),
        (oversized, "never holds more than 65,536"),
    ],
    ids=["5000-digit-opslimit", "nested-60000-deep", "over-64-KiB"],
)
def test_a_hostile_backup_is_a_corrupt_backup_in_words_of_our_own(
    make: Callable[[], bytes], why: str
) -> None:
    with pytest.raises(KeyFileCorruptError, match=CORRUPT) as caught:
        import_backup(make(), PASS)
    text = str(caught.value)
    assert why in text
    assert "set_int_max_str_digits" not in text and "recursion" not in text.lower()


@pytest.mark.parametrize("make", [long_opslimit, nested], ids=["digits", "nested"])
def test_a_hostile_key_file_in_the_store_is_a_keys_error(
    fast_store: EncryptedFileStore, provider: Any, make: Callable[[], bytes]
) -> None:
    """What the app's start-up catches (it catches KeysError only), and no passphrase is
    asked for a file that is no key."""
    fast_store.directory.mkdir(parents=True)
    path = fast_store.path_for(USER)
    path.write_bytes(make())
    with pytest.raises(KeyFileCorruptError, match=CORRUPT) as caught:
        fast_store.load(USER)
    assert str(path) in str(caught.value)
    assert provider.calls == []
    assert fast_store.list_user_ids() == []


def test_a_huge_key_file_is_refused_unread(fast_store: EncryptedFileStore) -> None:
    fast_store.directory.mkdir(parents=True)
    path = fast_store.path_for(USER)
    with path.open("wb") as handle:  # sparse: 1 GiB on the books, nothing on the disk
        handle.truncate(1 << 30)
    with pytest.raises(KeyFileCorruptError, match="too large to be a key file"):
        fast_store.load(USER)
    assert fast_store.list_user_ids() == []


# -- names that are no regular file ------------------------------------------------------------


def within(fn: Callable[[], Any], timeout: float = HANG) -> Any:
    """``fn()`` run in a thread: its result or the exception it raised; the test fails
    (and does not hang) if it is still running after ``timeout`` seconds."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # handed to the test
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} was still blocked after {timeout} s"
    return box[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe; whoever is left blocked on it when the test ends is let go."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # a reader waiting: it reads EOF
    except OSError:
        return  # no reader: nothing blocked
    os.close(fd)


@NO_FIFOS
@pytest.mark.parametrize("as_link", [False, True], ids=["fifo", "link-to-fifo"])
def test_a_fifo_at_the_key_file_name_is_refused_without_blocking(
    fast_store: EncryptedFileStore, provider: Any, fifo: Path, as_link: bool
) -> None:
    fast_store.directory.mkdir(parents=True)
    path = fast_store.path_for(USER)
    if as_link:
        path.symlink_to(fifo)
    else:
        os.replace(fifo, path)
        fifo.symlink_to(path)  # the fixture lets a blocked reader go through it
    result = within(lambda: fast_store.load(USER))
    assert isinstance(result, KeyFileCorruptError), result
    assert "is not a regular file (FIFO)" in str(result)
    assert provider.calls == []


@NO_FIFOS
def test_a_fifo_in_the_key_folder_is_skipped_when_listing(
    fast_store: EncryptedFileStore, fifo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fast_store.save(USER, SigningKey.generate())
    planted = fast_store.directory / "aa-planted.key"
    os.replace(fifo, planted)
    fifo.symlink_to(planted)  # the fixture lets a blocked reader go through it
    (fast_store.directory / "zz-planted.key").symlink_to(planted)
    assert within(fast_store.list_user_ids) == [USER]
    assert "not a regular file (FIFO)" in caplog.text


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_link_to_a_device_at_the_key_file_name_is_never_read(
    fast_store: EncryptedFileStore,
) -> None:
    fast_store.directory.mkdir(parents=True)
    fast_store.path_for(USER).symlink_to("/dev/zero")
    result = within(lambda: fast_store.load(USER))
    assert isinstance(result, KeyFileCorruptError), result
    assert "not a regular file (character device)" in str(result)


# -- a backup file the user picked ---------------------------------------------------------------


@NO_FIFOS
def test_a_backup_that_is_a_fifo_is_refused_without_blocking(fifo: Path) -> None:
    result = within(lambda: read_backup(fifo))
    assert isinstance(result, KeysError), result
    assert "is not a regular file (FIFO), so it cannot be a key backup" in str(result)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_backup_that_is_a_device_is_refused_unread() -> None:
    result = within(lambda: read_backup(Path("/dev/zero")))
    assert isinstance(result, KeysError), result
    assert "not a regular file (character device)" in str(result)


def test_a_backup_too_large_to_be_one_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.key"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)
    with pytest.raises(KeysError, match="too large to be a key backup"):
        read_backup(path)


def test_a_folder_is_no_backup(tmp_path: Path) -> None:
    with pytest.raises(KeysError, match=r"not a regular file \(folder\)"):
        read_backup(tmp_path)


def test_a_link_the_user_made_to_their_backup_is_followed(tmp_path: Path) -> None:
    """The user picked a link in the file dialog: it leads to their backup, which is read."""
    real = tmp_path / "real-backup.key"
    real.write_bytes(backup_bytes())
    link = tmp_path / "link.key"
    link.symlink_to(real)
    assert import_backup(read_backup(link), PASS).user_id == USER


def test_a_missing_backup_says_it_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(KeysError, match=r"Cannot read .*gone\.key"):
        read_backup(tmp_path / "gone.key")


# -- the public index of keyring identities ----------------------------------------------------


@pytest.mark.parametrize("make", [long_opslimit, nested], ids=["digits", "nested"])
def test_a_hostile_identity_index_is_a_damaged_one(
    tmp_path: Path, make: Callable[[], bytes]
) -> None:
    """Logged and rewritten, as a damaged index always was (a raw ValueError or
    RecursionError before)."""
    path = tmp_path / "identities.json"
    path.write_bytes(make())
    index = PublicIndex(path, "keyring")
    assert index.read() == {}
    index.add(USER, "public-key-b64")
    assert index.read() == {USER: "public-key-b64"}


@NO_FIFOS
def test_a_fifo_as_the_identity_index_does_not_block(fifo: Path) -> None:
    index = PublicIndex(fifo, "keyring")
    assert within(index.read) == {}
