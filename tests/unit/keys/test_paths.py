"""bucket_chat_desktop.paths (kept next to the keys tests, its first user)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from bucket_chat_desktop import paths


def test_home_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "device-a"))
    assert paths.data_dir() == tmp_path / "device-a" / "data"
    assert paths.config_dir() == tmp_path / "device-a" / "config"
    assert paths.default_store_dir() == tmp_path / "device-a" / "data" / "store"
    assert not (tmp_path / "device-a").exists()  # nothing is created


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUCKET_CHAT_HOME", "dev")
    assert paths.data_dir() == tmp_path / "dev" / "data"


def test_platform_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUCKET_CHAT_HOME", raising=False)
    data = Path(platformdirs.user_data_dir("bucket-chat", appauthor=False))
    assert paths.data_dir() == data
    assert paths.config_dir() == Path(platformdirs.user_config_dir("bucket-chat", appauthor=False))
    assert paths.default_store_dir() == data / "store"
    assert paths.data_dir().name == "bucket-chat"


def test_empty_home_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKET_CHAT_HOME", "")
    assert paths.data_dir() == Path(platformdirs.user_data_dir("bucket-chat", appauthor=False))
