"""Only the app writes ``settings.json``, and one app runs per config folder.

Red team rt71 (F5): two app instances each saved the whole settings snapshot they had
loaded, so one undid the other's mute, join or added storage. The fix is one instance per
config folder (``gui/single_instance.py``, tested in tests/gui/test_single_instance.py),
and ``settings.save`` stays a whole-file write with no re-read and merge, because no
other program writes the file: the ``bucket-chat`` command line keeps its storages in
``storages.json``. This test keeps that true: no module outside the app (``app.py``,
``gui/``) reaches the settings file's writer or its path."""

from __future__ import annotations

import ast
from pathlib import Path

import bucket_chat_desktop

PACKAGE = Path(bucket_chat_desktop.__file__).resolve().parent
WRITERS = {"save", "settings_path", "_set_aside"}  # what writes or names settings.json


def _outside_the_app() -> list[Path]:
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] not in ("gui", "app.py", "settings.py")
    ]


def test_only_the_app_writes_the_settings_file() -> None:
    offenders = []
    modules = _outside_the_app()
    assert any(p.relative_to(PACKAGE).parts[0] == "cli" for p in modules)
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = set()  # names the settings module is imported under
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("settings"):
                for name in node.names:
                    if name.name in WRITERS:
                        offenders.append(f"{path.name}: imports {name.name}")
            if isinstance(node, ast.ImportFrom):
                aliases |= {n.asname or n.name for n in node.names if n.name == "settings"}
            if isinstance(node, ast.Import):
                aliases |= {n.asname or n.name for n in node.names if n.name.endswith(".settings")}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in WRITERS
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                offenders.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
        if "settings.json" in path.read_text(encoding="utf-8"):
            offenders.append(f"{path.name}: names settings.json")
    assert offenders == [], offenders
