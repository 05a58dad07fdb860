# keyring's backend classes have unannotated constructors.
# mypy: disable-error-code="no-untyped-call"
"""Named storages: the settings file holds no secret, the keyring holds the keys, and
without a usable keyring keys are refused rather than written anywhere.

The keyring here is a small in-memory backend (a real ``KeyringBackend``); the Secret
Service path is covered by ``tests/integration/test_storage_cmd.py`` under
``tests/with-keyring.sh``.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, ClassVar

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import PasswordDeleteError

from bucket_chat_desktop.storage import open_storage
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.storage.profiles import KEYRING_SERVICE, ProfileError, ProfileStore
from bucket_chat_desktop.storage.s3 import S3Storage
from bucket_chat_desktop.storage.url import parse_storage_url

S3_KEYS = {"access_key_id": "AKIAEXAMPLE000000000", "secret_access_key": "wJalr-secret-value"}


class MemoryKeyring(KeyringBackend):
    """A keyring that keeps entries in a dict: enough to test what is stored where."""

    priority: ClassVar[float] = 5

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


# keyring registers every backend class it sees; keep this one out of its auto-detection
# (tests pass instances explicitly), or later tests would find it instead of the real one.
KeyringBackend._classes.discard(MemoryKeyring)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    return home


@pytest.fixture
def ring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def profiles(ring: MemoryKeyring) -> ProfileStore:
    return ProfileStore(backend=ring)


def test_the_settings_file_is_where_paths_say(isolated_home: Path) -> None:
    assert ProfileStore().path == isolated_home / "config" / "storages.json"


def test_add_get_list_remove(profiles: ProfileStore, ring: MemoryKeyring, tmp_path: Path) -> None:
    loc = parse_storage_url("s3://bucket/team?region=eu-west-1&endpoint_url=http://h:9000")
    profile = profiles.add("work", loc, S3_KEYS)
    assert profile.secret_names == ("access_key_id", "secret_access_key")
    profiles.add("home", parse_storage_url(str(tmp_path / "f")))
    assert [p.name for p in profiles.list()] == ["home", "work"]
    got = profiles.get("work")
    assert got is not None and got.location == loc
    assert profiles.secrets(got) == S3_KEYS
    assert profiles.get("nope") is None

    text = profiles.path.read_text()
    assert S3_KEYS["secret_access_key"] not in text and S3_KEYS["access_key_id"] not in text
    assert json.loads(text)["storages"]["work"] == {
        "url": "s3://bucket/team",
        "options": {"endpoint_url": "http://h:9000", "region": "eu-west-1"},
        "secrets": ["access_key_id", "secret_access_key"],
    }
    assert stat.S_IMODE(profiles.path.stat().st_mode) == 0o600
    assert json.loads(ring.entries[(KEYRING_SERVICE, "work")]) == S3_KEYS

    removed = profiles.remove("work")
    assert removed.name == "work" and (KEYRING_SERVICE, "work") not in ring.entries
    with pytest.raises(ProfileError, match="no storage named 'work'"):
        profiles.remove("work")


def test_names_and_duplicates(profiles: ProfileStore) -> None:
    loc = parse_storage_url("gs://bucket")
    for bad in ("", "-x", "a b", "a/b", "x" * 65, "é"):
        with pytest.raises(ProfileError, match="storage name"):
            profiles.add(bad, loc)
    profiles.add("w", loc)
    with pytest.raises(ProfileError, match="exists; remove it first"):
        profiles.add("w", loc)


def test_replace_drops_old_keys(profiles: ProfileStore, ring: MemoryKeyring) -> None:
    profiles.add("w", parse_storage_url("s3://bucket"), S3_KEYS)
    profiles.add("w", parse_storage_url("s3://bucket"), replace=True)
    assert ring.entries == {}
    profile = profiles.get("w")
    assert profile is not None and profiles.secrets(profile) == {}


@pytest.mark.parametrize(
    ("url", "secrets", "message"),
    [
        ("s3://bucket", {"access_key_id": "A"}, "needs both"),
        ("s3://bucket", {"account_key": "x"}, "take no secret 'account_key'"),
        ("gs://bucket", {"access_key_id": "A"}, "take no secret"),
        ("az://c1", {"account_key": "k", "sas_token": "s"}, "not several"),
        ("az://c1", {"account_key": ""}, "empty"),
        ("az://c1", {"account_key": "a\nb"}, "control characters"),
    ],
)
def test_secrets_are_checked(
    profiles: ProfileStore, url: str, secrets: dict[str, str], message: str
) -> None:
    with pytest.raises(ProfileError, match=message):
        profiles.add("w", parse_storage_url(url), secrets)
    assert not profiles.path.exists()


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()])
def test_no_usable_keyring_means_no_stored_keys(backend: Any, isolated_home: Path) -> None:
    store = ProfileStore(backend=backend)
    with pytest.raises(ProfileError) as caught:
        store.add("w", parse_storage_url("s3://bucket"), S3_KEYS)
    message = str(caught.value)
    assert "Keys are never written to files" in message and "environment variables" in message
    assert not store.path.exists()
    assert not any(isolated_home.rglob("*")) if isolated_home.exists() else True
    # Without keys a profile is fine.
    store.add("w", parse_storage_url("s3://bucket"))
    assert store.keyring_backend()[0] is None


def test_keys_missing_from_the_keyring(profiles: ProfileStore, ring: MemoryKeyring) -> None:
    profiles.add("w", parse_storage_url("az://c1?account_name=a"), {"account_key": "k"})
    ring.entries.clear()  # e.g. another machine, or the user cleaned the keyring
    profile = profiles.get("w")
    assert profile is not None
    with pytest.raises(ProfileError, match=r"has no keys for storage 'w'.*add it again"):
        profiles.secrets(profile)
    ring.entries[(KEYRING_SERVICE, "w")] = "not json"
    with pytest.raises(ProfileError, match="damaged"):
        profiles.secrets(profile)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken", "not valid JSON"),
        ('{"version": 1}', "no 'storages' object"),
        ('{"storages": {"w": 5}}', "has no URL"),
        ('{"storages": {"w": {"url": "s3://bucket", "options": []}}}', "malformed"),
        ('{"storages": {"w": {"url": "s3://bucket?x=1"}}}', "unknown option"),
    ],
)
def test_a_damaged_settings_file_says_so(
    profiles: ProfileStore, content: str, message: str
) -> None:
    profiles.path.parent.mkdir(parents=True)
    profiles.path.write_text(content)
    with pytest.raises(ProfileError, match=message) as caught:
        profiles.get("w")
    assert str(profiles.path) in str(caught.value)


def test_open_storage_by_name(profiles: ProfileStore, tmp_path: Path, monkeypatch: Any) -> None:
    profiles.add("work", parse_storage_url("s3://bucket/team?region=eu-west-1"), S3_KEYS)
    store = open_storage("work", profiles=profiles)
    assert isinstance(store, S3Storage)
    assert store.url == "s3://bucket/team"  # names the data: no region, no keys
    assert store._secrets == S3_KEYS
    # Names that are no profile are folders; a path is always a folder.
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_storage("elsewhere", profiles=profiles), LocalStorage)
    local = open_storage("./work", profiles=profiles)
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "work"


def _get_within(profiles: ProfileStore, seconds: float = 10.0) -> BaseException | None:
    """``profiles.get("w")``'s error, on a thread that is let go if it waits on a FIFO
    (then the FIFO's reader is released by opening it for writing, and this fails)."""
    import contextlib
    import os
    import threading

    caught: list[BaseException] = []

    def run() -> None:
        try:
            profiles.get("w")
        except BaseException as exc:  # handed to the test
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(profiles.path.resolve(), os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail("reading storages.json waited on a FIFO")
    return caught[0] if caught else None


@pytest.mark.parametrize("linked", [False, True], ids=["fifo", "link-to-fifo"])
def test_a_fifo_at_the_storages_file_is_refused_without_waiting(
    profiles: ProfileStore, linked: bool
) -> None:
    """A FIFO at ``storages.json`` (or a link to one) held `bucket-chat -s work` and the
    storage form's Save for ever: read as a regular file only, it is said what it is."""
    import os

    profiles.path.parent.mkdir(parents=True)
    fifo = profiles.path.with_name("elsewhere") if linked else profiles.path
    os.mkfifo(fifo)
    if linked:
        profiles.path.symlink_to(fifo)
    error = _get_within(profiles)
    assert isinstance(error, ProfileError)
    assert "is not a file but a FIFO" in str(error)
    assert fifo.exists()  # never rewritten nor removed: the user decides


def test_a_storages_file_that_is_a_link_to_an_endless_device_is_not_read(
    profiles: ProfileStore,
) -> None:
    profiles.path.parent.mkdir(parents=True)
    profiles.path.symlink_to("/dev/zero")
    error = _get_within(profiles)
    assert isinstance(error, ProfileError) and "not a file but a character device" in str(error)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"storages": {"w": {"url": "file:///x"}}, "pad": "' + "x" * (5 << 20) + '"}', "larger"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
    ids=["nested", "huge", "not-utf8"],
)
def test_a_hostile_storages_file_is_refused_in_words(
    profiles: ProfileStore, content: str | bytes, message: str
) -> None:
    """100,000 nested ``[`` ended `bucket-chat` with a ``RecursionError`` traceback (and
    the storage form's Save in the crash reporter); a file of any size was read whole."""
    profiles.path.parent.mkdir(parents=True)
    data = content if isinstance(content, bytes) else content.encode()
    profiles.path.write_bytes(data)
    with pytest.raises(ProfileError, match=message) as caught:
        profiles.list()
    assert str(profiles.path) in str(caught.value)
    assert profiles.path.read_bytes() == data  # kept as it was
