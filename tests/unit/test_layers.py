"""The package's shape as rules that run (docs: STYLE.md, "The shape").

Imports flow one way::

    protocol  <-  storage, keys, index, settings  <-  sync  <-  gui, cli  <-  app, smoke

with plain helpers (``osfiles``, ``paths``, ``timestamps``, ``keyring_policy`` and the
package root's ``__version__``) under everything but ``protocol``, ``crashes`` (the
desktop app's crash reports) for gui, cli and app, and ``download_mark`` (the "downloaded
from the internet" mark, over protocol and osfiles) for export, gui and cli. Siblings of
one layer do not import each other.
Qt (PySide6, shiboken6, qasync) appears only in ``gui/``, ``app.py`` and ``smoke.py``.
``protocol/`` is pure: it imports nothing of the package but itself, only pure modules from
outside, and never reads the clock. Importing any module has no side effect: it writes no
file, makes no folder, starts no thread, opens no socket, and changes no environment
variable, logging handler, exception hook, signal handler or exit hook.

Imports are read with ``ast``, so an import inside a function or under ``TYPE_CHECKING``
counts as much as one at the top: it is a dependency all the same.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "bucket_chat_desktop"
PACKAGE_DIR = ROOT / PACKAGE

# What each part of the package may import besides itself. A part is a sub-package
# (``sync``) or a top-level module (``settings``); "" is the package root (``__version__``).
HELPERS = {"", "osfiles", "paths", "timestamps", "keyring_policy"}
LOCAL_STATE = {"storage", "keys", "index", "settings"}  # the layer above protocol
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "": set(),
    "osfiles": set(),
    "paths": set(),
    "timestamps": set(),
    "keyring_policy": set(),
    # the "downloaded from the internet" mark on every file copied out of a room: the
    # app's Open and Save as…, and the export (app and CLI) alike
    "download_mark": {"protocol", "osfiles"},
    "crashes": HELPERS,
    # storage, keys, index and settings sit side by side and do not lean on each other
    "storage": {"protocol"} | HELPERS,
    "keys": {"protocol"} | HELPERS,
    "index": {"protocol"} | HELPERS,
    "settings": {"protocol"} | HELPERS,
    "sync": {"protocol"} | LOCAL_STATE | HELPERS,
    # a room's timeline turned into files (HTML, JSONL): for the CLI and the app alike
    "export": {"protocol", "sync", "download_mark"} | LOCAL_STATE | HELPERS,
    "cli": {"protocol", "sync", "export", "crashes", "download_mark"} | LOCAL_STATE | HELPERS,
    "gui": {"protocol", "sync", "export", "crashes", "download_mark"} | LOCAL_STATE | HELPERS,
    "app": {"protocol", "sync", "crashes", "gui", "smoke"} | LOCAL_STATE | HELPERS,
    # the packaged app's self-test drives the real app
    "smoke": {"protocol", "sync", "crashes", "gui", "app"} | LOCAL_STATE | HELPERS,
    "__main__": {"app"},
}

QT_MODULES = {"PySide6", "shiboken6", "qasync"}
QT_PARTS = {"gui", "app", "smoke"}

# Everything protocol/ may import from outside the package: pure standard library modules,
# PyNaCl (signatures and hashes, no I/O) and orjson (decoding a line from bytes: no I/O).
# ``time`` is here for ``gmtime`` (a pure conversion); reading the clock is refused
# separately below. ``gc`` lets the audit pause the cycle collector while it builds many
# small objects; ``threading`` gives that pause (``protocol/heap.py``) its lock, as reads
# on several threads share it (protocol/ starts no thread: the import probe checks).
PROTOCOL_EXTERNAL = {
    "__future__",
    "abc",
    "array",
    "base64",
    "binascii",
    "bisect",
    "collections",
    "contextlib",
    "copy",
    "dataclasses",
    "enum",
    "functools",
    "gc",
    "hashlib",
    "heapq",
    "html",
    "itertools",
    "json",
    "math",
    "nacl",
    "operator",
    "orjson",
    "re",
    "string",
    "struct",
    "threading",
    "time",
    "types",
    "typing",
    "unicodedata",
    "weakref",
}
CLOCK_CALLS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "process_time"}
DATE_CALLS = {"now", "utcnow", "today", "fromtimestamp"}  # local "now" or the local zone


@dataclass(frozen=True)
class Import:
    source: str  # dotted module that imports
    line: int
    target: str  # dotted module imported (for ``from x import y``: x, or x.y if y is a module)

    def where(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(module: str, path: Path) -> list[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append(Import(module, node.lineno, sub if _is_module(sub) else target))
    return found


def _part(module: str) -> str:
    """``bucket_chat_desktop.sync.engine`` -> ``sync``; the package itself -> ``""``."""
    return module.split(".")[1] if "." in module else ""


ALL_IMPORTS = [imp for module, path in _modules() for imp in _imports(module, path)]


def test_the_import_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The rules below are only as good as this reader: relative imports at any depth,
    sub-modules imported by name, names imported from a package, imports in functions."""
    path = tmp_path / "x.py"
    path.write_text(
        textwrap.dedent(
            """
            import PySide6.QtCore
            from ..storage import base
            from ..protocol.event import Event
            from . import engine
            from .. import __version__

            def later():
                from ..gui import main_window
            """
        )
    )
    assert {i.target for i in _imports(f"{PACKAGE}.sync.x", path)} == {
        "PySide6.QtCore",
        f"{PACKAGE}.storage.base",
        f"{PACKAGE}.protocol.event",
        f"{PACKAGE}.sync.engine",
        PACKAGE,
        f"{PACKAGE}.gui.main_window",
    }
    path.write_text("from ...protocol import ids\n")
    assert [i.target for i in _imports(f"{PACKAGE}.gui.widgets.x", path)] == [
        f"{PACKAGE}.protocol.ids"
    ]


def test_every_part_of_the_package_has_a_place_in_the_layers() -> None:
    parts = {_part(module) for module, _ in _modules()}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED"


def test_imports_flow_one_way() -> None:
    wrong = [
        imp.where()
        for imp in ALL_IMPORTS
        if imp.target.split(".")[0] == PACKAGE
        and _part(imp.target) != _part(imp.source)
        and _part(imp.target) not in ALLOWED[_part(imp.source)]
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


# The front ends talk to ``ChatClient`` only (STYLE.md, "Seams"; issue 9, item 1): no engine,
# no engine session and no index of their own. The values the client hands out that are
# defined in ``index`` (``SearchHit``, ``Snippet``, ``TimelineRow``) are re-exported by
# ``sync.client`` and ``sync.events``, so there is no exception to make here.
FRONT_ENDS = {"gui", "cli"}
BEHIND_THE_CLIENT = (f"{PACKAGE}.sync.engine", f"{PACKAGE}.sync.session", f"{PACKAGE}.index")


def _behind_the_client(target: str) -> bool:
    return any(target == t or target.startswith(t + ".") for t in BEHIND_THE_CLIENT)


def _client_internals(tree: ast.AST) -> list[tuple[int, str]]:
    """``<x>.engine(...)`` (the engine of a storage, as ``ChatClient.engine`` handed it out)
    and the client's storage map (``client.storages``, or ``_storages`` anywhere)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "engine":
                found.append((node.lineno, ".engine(...)"))
        elif isinstance(node, ast.Attribute) and node.attr in {"storages", "_storages"}:
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if node.attr == "_storages" or name == "client":
                found.append((node.lineno, f".{node.attr}"))
    return found


def test_front_ends_talk_only_to_the_client() -> None:
    wrong = [
        imp.where()
        for imp in ALL_IMPORTS
        if _part(imp.source) in FRONT_ENDS and _behind_the_client(imp.target)
    ]
    for module, path in _modules():
        if _part(module) in FRONT_ENDS:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            wrong += [f"{module}:{line} uses {what}" for line, what in _client_internals(tree)]
    assert not wrong, "ask the ChatClient (sync/client.py) instead:\n" + "\n".join(wrong)


def test_the_client_rule_sees_what_it_forbids(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text(
        textwrap.dedent(
            """
            from ..sync.engine import SyncEngine
            from ..sync import session
            from ..index.search import SearchHit
            from ..sync.client import ChatClient

            def f(controller, settings):
                controller.client.engine("s").rooms
                controller.client.storages["s"].storage
                controller.client._storages.get("s")
                settings.storages[0]  # the settings' list: allowed
            """
        )
    )
    imports = _imports(f"{PACKAGE}.gui.x", path)
    assert [i.target for i in imports if _behind_the_client(i.target)] == [
        f"{PACKAGE}.sync.engine",
        f"{PACKAGE}.sync.session",
        f"{PACKAGE}.index.search",
    ]
    found = _client_internals(ast.parse(path.read_text()))
    assert [what for _, what in found] == [".engine(...)", ".storages", "._storages"], found


def test_qt_only_in_the_gui_the_app_and_its_smoke_test() -> None:
    wrong = [
        imp.where()
        for imp in ALL_IMPORTS
        if imp.target.split(".")[0] in QT_MODULES and _part(imp.source) not in QT_PARTS
    ]
    assert not wrong, "Qt outside gui/, app.py and smoke.py:\n" + "\n".join(wrong)


def test_no_import_hides_from_these_rules() -> None:
    """An import by name at run time (``importlib.import_module``, ``__import__``) is not
    seen by the rules above. Only the packaged app's self-test does it: it checks that each
    storage backend was bundled, by module name."""
    wrong = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in {"import_module", "__import__"} and _part(module) != "smoke":
                    wrong.append(f"{module}:{node.lineno} calls {name}")
    assert not wrong, "\n".join(wrong)


def test_protocol_imports_only_pure_modules() -> None:
    wrong = [
        imp.where()
        for imp in ALL_IMPORTS
        if _part(imp.source) == "protocol"
        and imp.target.split(".")[0] != PACKAGE
        and imp.target.split(".")[0] not in PROTOCOL_EXTERNAL
    ]
    assert not wrong, "protocol/ must stay pure (no I/O, clock or randomness):\n" + "\n".join(wrong)


def test_protocol_never_reads_the_clock() -> None:
    """The clock is passed in (tests and vectors pin it); ``time.gmtime(t)`` converts a given
    time and is fine, ``time.time()`` or ``datetime.now()`` are not."""
    wrong = []
    for module, path in _modules():
        if _part(module) != "protocol":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        time_names = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name == "time"
        }
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute):
                on_time = isinstance(node.value, ast.Name) and node.value.id in time_names
                if (on_time and node.attr in CLOCK_CALLS) or node.attr in DATE_CALLS:
                    name = node.attr
            elif isinstance(node, ast.ImportFrom) and node.module == "time":
                name = next((a.name for a in node.names if a.name in CLOCK_CALLS), None)
            if name is not None:
                wrong.append(f"{module}:{node.lineno} uses {name}")
    assert not wrong, "\n".join(wrong)


# Runs in a fresh interpreter: imports each module in turn and records, through an audit
# hook, what happens while each one is first imported. Threads are counted after each import
# (Python threads, and the OS threads where /proc shows them, which catches native ones).
PROBE = r"""
import importlib, json, logging, os, sys, threading

sys.dont_write_bytecode = True
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WATCHED = {
    "socket.__new__", "socket.connect", "socket.bind", "os.mkdir", "os.rename", "os.remove",
    "os.rmdir", "os.link", "os.symlink", "os.truncate", "os.chmod", "os.utime",
    "shutil.copyfile", "subprocess.Popen", "os.system", "os.posix_spawn", "os.fork",
    "os.exec", "os.startfile", "sqlite3.connect", "os.putenv", "os.unsetenv",
}
# Known effects of third-party imports, not of this package (exact values):
# shiboken's signature module, loaded when the first Qt class is defined, sets this option
# for itself through os.environ (PySide6 6.8-6.11).
FOREIGN = {("os.putenv", (b"PYSIDE6_OPTION_PYTHON_ENUM", b"True"))}
found, current = [], [None]

def where():  # the import under way, and the module of ours whose code acts, if any
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("bucket_chat_desktop"):
            return f"{current[0]} (in {name}:{frame.f_lineno})"
        frame = frame.f_back
    return current[0]

def hook(event, args):
    if current[0] is None:
        return
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        writes = writes or (isinstance(flags, int) and bool(flags & WRITE_FLAGS))
        if writes:
            found.append([where(), f"opens {path!r} for writing"])
    elif event in WATCHED and (event, args) not in FOREIGN:
        found.append([where(), f"{event} {args!r}"[:300]])

def tasks():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None

def state():
    return (
        threading.active_count(), tasks(), dict(os.environ),
        list(logging.getLogger().handlers), sys.excepthook, sys.stdout, sys.stderr,
    )

def guard(module, name):  # report a call of module.name made by code of this package
    original = getattr(module, name)

    def guarded(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if current[0] is not None and caller.startswith("bucket_chat_desktop"):
            found.append([f"{current[0]} (in {caller})", f"calls {module.__name__}.{name}"])
        return original(*args, **kwargs)

    setattr(module, name, guarded)

import atexit, faulthandler, signal, warnings
for module, name in [
    (atexit, "register"), (signal, "signal"), (faulthandler, "enable"),
    (warnings, "filterwarnings"), (warnings, "simplefilter"), (sys, "setrecursionlimit"),
    (os, "chdir"), (os, "umask"),
]:
    guard(module, name)
sys.addaudithook(hook)
before = state()
for name in sys.argv[1:]:
    current[0] = name
    importlib.import_module(name)
    current[0] = None
    after = state()
    if after[:2] != before[:2]:
        found.append([name, f"threads {before[:2]} -> {after[:2]} (Python, OS)"])
    if after[2] != before[2]:
        changed = sorted(set(after[2].items()) ^ set(before[2].items()))
        found.append([name, f"changes the environment: {changed}"])
    if after[3:] != before[3:]:
        found.append([name, "changes logging handlers, sys.excepthook or sys.std*"])
    before = after
qt = sys.modules.get("PySide6.QtCore")
if qt is not None and qt.QCoreApplication.instance() is not None:
    found.append(["(all)", "a QCoreApplication exists after the imports"])
print(json.dumps(found))
"""


def _probe(modules: list[str], tmp_path: Path, pythonpath: str) -> list[list[str]]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUCKET_CHAT", "XDG_"))}
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        APPDATA=str(home / "AppData"),
        LOCALAPPDATA=str(home / "AppData" / "Local"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        BUCKET_CHAT_HOME=str(tmp_path / "bucket-chat-home"),
        PYTHONPATH=pythonpath,
        PYTHONDONTWRITEBYTECODE="1",
        QT_QPA_PLATFORM="offscreen",
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found: list[list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    made = [p for folder in (home, tmp_path / "bucket-chat-home") for p in folder.rglob("*")]
    left = sorted(str(p.relative_to(tmp_path)) for p in made)
    if (tmp_path / "bucket-chat-home").exists():
        left.append("bucket-chat-home")
    if left:
        found.append(["(all)", f"files left behind: {left}"])
    return found


def test_importing_any_module_has_no_side_effect(tmp_path: Path) -> None:
    # ``__main__`` modules exist to run the program when imported; nothing else may act.
    modules = [m for m, path in _modules() if path.name != "__main__.py"]
    pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    found = _probe(modules, tmp_path, pythonpath)
    assert not found, "import-time side effects:\n" + "\n".join(f"{m}: {w}" for m, w in found)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import pathlib, os\npathlib.Path(os.environ['HOME'], 'f').write_text('x')\n", "opens"),
        ("import os\nos.mkdir(os.path.join(os.environ['HOME'], 'd'))\n", "os.mkdir"),
        ("import socket\nS = socket.socket()\n", "socket.__new__"),
        (
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n",
            "threads",
        ),
        ("import os\nos.environ['BUCKET_CHAT_X'] = '1'\n", "os.putenv"),
        ("import logging\nlogging.basicConfig()\n", "logging handlers"),
        ("import atexit\natexit.register(print)\n", "atexit.register"),
        ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n", "signal.signal"),
    ],
)
def test_the_side_effect_probe_catches_each_kind(tmp_path: Path, body: str, expected: str) -> None:
    """The probe is not blind: a module that does each forbidden thing is reported."""
    package = tmp_path / "src" / PACKAGE  # a stand-in package of the same name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "acting.py").write_text(body)
    found = _probe([f"{PACKAGE}.acting"], tmp_path, str(package.parent))
    assert any(expected in what for _, what in found), found


def test_the_mypy_configuration_is_strict() -> None:
    """``mypy bucket_chat_desktop`` (tests/run.sh, CI) checks every module strictly, and no
    per-module override relaxes a part of the package."""
    import tomllib

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)["tool"]["mypy"]
    assert config.get("strict") is True
    for override in config.get("overrides", []):
        modules = override["module"]
        modules = [modules] if isinstance(modules, str) else modules
        assert not [m for m in modules if m.startswith(PACKAGE)], override
