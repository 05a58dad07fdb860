"""The GUI talks to one client object: it never reaches into an engine or an index.

STYLE.md, "Seams": front ends "never reach into the engine's rooms, the index or a storage;
if they need something, the client grows a method or an event carries it". An index call on
the GUI thread waits for the engine's worker (which holds the index's lock through a long
ingest), and an engine's room state is changed by that worker while the GUI reads it. The
client's methods (``room_view``, ``confirmed_keys``, ``mark_verified``, ``reaudit``) run on
the engine's serial worker and hand back values nobody changes afterwards.

Read with ``ast``: ``something.index.anything`` (an index's method or attribute: Qt models'
``model.index(row)`` is a call, not this), any ``.engine`` attribute (the engine of an
attached storage), and ``engine.rooms``. ``tests/unit/test_layers.py`` adds the imports
(no ``sync.engine``, ``sync.session`` or ``index`` in front ends) and the client's
private storage map.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUI = ROOT / "bucket_chat_desktop" / "gui"
CLI = ROOT / "bucket_chat_desktop" / "cli"

# (file under gui/, function) -> why it still reaches in. Only what is not converted yet;
# each entry is a known debt, reported, not a licence.
REMAINING: dict[tuple[str, str], str] = {}
# The CLI talks to a ``ChatClient.session`` of its one storage, like the GUI to the app's.
REMAINING_CLI: dict[tuple[str, str], str] = {}


def _keeps_live_room(node: ast.AST) -> bool:
    """``x = ... open_room(...) ...``: ``open_room`` returns the engine's own room state,
    which its state thread goes on changing; a front end asks ``room_view`` for a frozen
    view instead."""
    if not isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) or node.value is None:
        return False
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "open_room"
        for n in ast.walk(node.value)
    )


def _reaches(node: ast.AST) -> str | None:
    if _keeps_live_room(node):
        return "open_room's live room"
    if not isinstance(node, ast.Attribute):
        return None
    if node.attr == "engine":
        return ".engine"
    if isinstance(node.value, ast.Attribute) and node.value.attr == "index":
        return f".index.{node.attr}"
    if node.attr == "rooms" and (
        (isinstance(node.value, ast.Name) and node.value.id == "engine")
        or (isinstance(node.value, ast.Attribute) and node.value.attr == "engine")
    ):
        return "engine.rooms"
    return None


def reaches_in(source: str) -> list[tuple[str, int, str]]:
    """``(function, line, what)`` for each place ``source`` reaches into an engine or index."""
    found: list[tuple[str, int, str]] = []

    def walk(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            what = _reaches(child)
            if what is not None:
                found.append((name, getattr(child, "lineno", 0), what))
            walk(child, name)

    walk(ast.parse(source), "<module>")
    return found


def test_the_rule_sees_what_it_forbids() -> None:
    source = (
        "def a(attached):\n"
        "    attached.index.mark_verified('x', 'k')\n"
        "def b(client, ref):\n"
        "    return client._storages[ref].engine.rooms.get('r')\n"
        "def c(engine):\n"
        "    return engine.rooms\n"
        "def d(model):\n"
        "    return model.index(0).data()\n"  # a Qt model's index(): allowed
        "async def e(engine):\n"
        "    room = await answer_within(s, engine.open_room('r'), 5)\n"
        "async def f(engine):\n"
        "    await engine.open_room('r')\n"  # read, then ask for a view: allowed
        "    view = await engine.room_view('r')\n"
    )
    kinds = {(f, what) for f, _, what in reaches_in(source)}
    assert ("a", ".index.mark_verified") in kinds
    assert ("b", ".engine") in kinds and ("b", "engine.rooms") in kinds
    assert ("c", "engine.rooms") in kinds
    assert not any(f == "d" for f, _ in kinds)
    assert ("e", "open_room's live room") in kinds
    assert not any(f == "f" for f, _ in kinds)


def _offending(
    root: Path, remaining: dict[tuple[str, str], str], allowed: frozenset[str] = frozenset()
) -> tuple[list[str], set[tuple[str, str]]]:
    """Where the package under ``root`` reaches in (except ``allowed`` kinds and the
    ``remaining`` debts), and the debts that are stale."""
    offending: list[str] = []
    seen: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for function, line, what in reaches_in(path.read_text(encoding="utf-8")):
            if what in allowed:
                continue
            if (rel, function) in remaining:
                seen.add((rel, function))
                continue
            offending.append(f"{root.name}/{rel}:{line} in {function}(): {what}")
    return offending, set(remaining) - seen


def test_the_gui_reaches_into_no_engine_and_no_index() -> None:
    offending, stale = _offending(GUI, REMAINING)
    assert not offending, "ask the ChatClient instead:\n" + "\n".join(offending)
    assert not stale, f"converted already, drop from REMAINING: {sorted(stale)}"


def test_the_cli_reaches_into_no_engine_no_index_and_no_live_room() -> None:
    """``rooms`` when the storage does not answer read ``engine.index.rooms()`` directly;
    it asks ``ChatClient.cached_rooms`` now. ``history``, ``verify``, ``sync`` and
    ``chat`` kept the engine's live room from ``open_room`` (and ``history`` wrote the
    metadata's findings into the engine's own audit result); they read frozen views now.
    Every command drove an engine of its own (``engine_session``); they talk to a
    ``ChatClient.session`` now, as the app talks to its client."""
    offending, stale = _offending(CLI, REMAINING_CLI)
    assert not offending, "ask the ChatClient instead:\n" + "\n".join(offending)
    assert not stale, f"converted already, drop from REMAINING_CLI: {sorted(stale)}"


def test_front_ends_write_only_through_the_engine() -> None:
    """One write path (issue 9, item 2): events go out through the engine's outbox.
    ``RoomWriter`` writes segments straight to storage (tests, benchmarks and the
    metadata step of ``sync.rooms`` use it); the wizard's join and ``add-device`` did,
    past the outbox and re-reading the room's segments themselves."""
    found = [
        f"{root.name}/{path.relative_to(root).as_posix()}"
        for root in (GUI, CLI)
        for path in sorted(root.rglob("*.py"))
        if "RoomWriter" in path.read_text(encoding="utf-8")
    ]
    assert not found, "send through the engine (sync.rooms, engine.send) instead: " + str(found)
