"""``osfiles.write_atomic``, the one way the app writes a file it owns, on real files.

Whole or nothing, never through a link planted at the final name, private modes exact
whatever the umask, create-only when asked, no temporary file left behind; and the paths
that used to have their own copy (crash marker, key backup, settings, storage profiles,
key files) behave the same way.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bucket_chat_desktop import osfiles, settings
from bucket_chat_desktop.crashes import CrashReports
from bucket_chat_desktop.osfiles import write_atomic
from bucket_chat_desktop.storage.profiles import ProfileStore
from bucket_chat_desktop.storage.url import parse_storage_url

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes and links")


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set a umask for one test and restore the old one."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_overwrite_gives_the_whole_new_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new\n\r\n\x00\x1a")
    assert target.read_bytes() == b"new\n\r\n\x00\x1a"
    assert _leftovers(tmp_path) == []


@posix_only
def test_a_name_of_the_longest_length_in_any_script_can_be_written(tmp_path: Path) -> None:
    # 85 CJK characters are 255 bytes: the temporary file was named after the first 200
    # characters of the name, 273 bytes, and nothing of that name could be written.
    for name in ("图" * 85, "😀" * 63, "a" * 255):
        assert len(name.encode()) >= 252
        write_atomic(tmp_path / name, b"whole")
        assert (tmp_path / name).read_bytes() == b"whole"
    assert len(list(tmp_path.iterdir())) == 3


def test_a_link_at_the_final_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / "profile.json"
    target.symlink_to(victim)
    write_atomic(target, b"mine")
    assert victim.read_bytes() == b"precious"
    assert not target.is_symlink() and target.read_bytes() == b"mine"


@posix_only
def test_private_mode_is_exact_whatever_the_umask(tmp_path: Path, umask: Any) -> None:
    umask(0)
    write_atomic(tmp_path / "key", b"secret")
    assert _mode(tmp_path / "key") == 0o600
    umask(0o277)  # would leave the owner without write permission
    write_atomic(tmp_path / "key2", b"secret")
    assert _mode(tmp_path / "key2") == 0o600


@posix_only
def test_a_public_mode_is_left_to_the_umask(tmp_path: Path, umask: Any) -> None:
    umask(0o077)
    write_atomic(tmp_path / "saved.png", b"image", mode=0o644)
    assert _mode(tmp_path / "saved.png") == 0o600
    umask(0o022)
    write_atomic(tmp_path / "saved2.png", b"image", mode=0o644)
    assert _mode(tmp_path / "saved2.png") == 0o644


@posix_only
def test_replacing_keeps_the_new_mode_not_the_old_files(tmp_path: Path) -> None:
    target = tmp_path / "storages.json"
    target.write_bytes(b"{}")
    target.chmod(0o666)
    write_atomic(target, b"{}")
    assert _mode(target) == 0o600


def test_create_only_refuses_an_existing_file_and_keeps_it(tmp_path: Path) -> None:
    target = tmp_path / "alice.key"
    write_atomic(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


@posix_only
def test_create_only_counts_a_dangling_link_as_taken(tmp_path: Path) -> None:
    target = tmp_path / "alice.key"
    target.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"secret", overwrite=False)
    assert not (tmp_path / "nowhere").exists()


def test_create_only_without_hard_links_still_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT volumes and many SMB shares refuse hard links; the refusal is injected at
    ``os.link`` alone, the files are real."""

    def no_links(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "alice.key"
    write_atomic(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


def test_a_failed_replace_leaves_the_old_state_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(OSError):
        write_atomic(target, b"data")
    assert (target / "inside").read_bytes() == b"kept"
    assert _leftovers(tmp_path) == []


def test_a_missing_folder_is_an_error_not_a_surprise_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "file", b"data")
    assert not (tmp_path / "absent").exists()


def test_windows_replace_waits_for_a_scanner_to_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows a replace fails with PermissionError while another process holds the
    target; the refusal is injected twice at ``os.replace``, the third call is real."""
    real_replace = os.replace
    refusals = [PermissionError(13, "in use"), PermissionError(13, "in use")]

    def busy(src: Any, dst: Any) -> None:
        if refusals:
            raise refusals.pop()
        real_replace(src, dst)

    monkeypatch.setattr(osfiles, "_POSIX", False)
    monkeypatch.setattr(osfiles, "_WINDOWS_REPLACE_PAUSE", 0.0)
    monkeypatch.setattr(os, "replace", busy)
    target = tmp_path / "settings.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and refusals == []


def test_windows_replace_gives_up_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_busy(src: Any, dst: Any) -> None:
        raise PermissionError(13, "in use")

    monkeypatch.setattr(osfiles, "_POSIX", False)
    monkeypatch.setattr(osfiles, "_WINDOWS_REPLACE_PAUSE", 0.0)
    monkeypatch.setattr(os, "replace", always_busy)
    target = tmp_path / "settings.json"
    target.write_bytes(b"old")
    with pytest.raises(PermissionError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


# -- the paths that had their own copy ------------------------------------------------------


@posix_only
def test_the_crash_marker_is_not_written_through_a_planted_link(tmp_path: Path) -> None:
    """It used to write ``running-<pid>.tmp`` by name, following a link left there."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    reports = CrashReports(tmp_path / "crashes")
    (tmp_path / "crashes").mkdir()
    reports.marker.with_suffix(".tmp").symlink_to(victim)
    try:
        reports.start()
        assert victim.read_bytes() == b"precious"
        assert json.loads(reports.marker.read_text())["pid"] == os.getpid()
        assert _mode(reports.marker) == 0o600
    finally:
        reports.clean_exit()


@posix_only
def test_the_key_backup_is_not_written_through_a_link(tmp_path: Path) -> None:
    """The wizard's backup used to open the chosen name with O_TRUNC, following a link."""
    from bucket_chat_desktop.gui.setup.key_card import _write_private

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    chosen = tmp_path / "bucket-chat-key.key"
    chosen.symlink_to(victim)
    _write_private(chosen, b"encrypted backup")
    assert victim.read_bytes() == b"precious"
    assert chosen.read_bytes() == b"encrypted backup" and _mode(chosen) == 0o600


@posix_only
def test_settings_and_profiles_are_private_and_replace_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    empty = b'{"version": 1, "storages": {}}'
    victim2 = tmp_path / "victim2"
    victim2.write_bytes(empty)
    (tmp_path / "settings.json").symlink_to(victim)
    (tmp_path / "storages.json").symlink_to(victim2)
    settings.save(settings.Settings(user_id="a@example.org"), tmp_path / "settings.json")
    profiles = ProfileStore(tmp_path / "storages.json")
    profiles.add("here", parse_storage_url(str(tmp_path / "bucket")))
    assert victim.read_bytes() == b"precious" and victim2.read_bytes() == empty
    assert settings.load(tmp_path / "settings.json").user_id == "a@example.org"
    assert _mode(tmp_path / "settings.json") == 0o600
    assert _mode(tmp_path / "storages.json") == 0o600
    assert _leftovers(tmp_path) == []
