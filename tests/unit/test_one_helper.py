"""One helper per job (docs: STYLE.md, "Seams"), as rules that run over the package's source.

A second copy of a helper is how a fix gets lost: the storage form once escaped rich text
with its own ``esc`` that left quotes alone while the rest of the app used
``html_escape``. Each rule names the one module allowed to do the job, and every other
module that does it is listed by file and line.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "bucket_chat_desktop"


@functools.cache
def _nodes() -> tuple[tuple[str, tuple[ast.AST, ...]], ...]:
    """Every module of the package with all of its nodes, parsed and walked once for all
    the rules (each rule only reads them)."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        found.append((rel, tuple(ast.walk(ast.parse(path.read_text("utf-8"), filename=rel)))))
    return tuple(found)


def _offenders(is_bad: Callable[[ast.AST], bool], allowed: set[str]) -> list[str]:
    found = []
    for rel, nodes in _nodes():
        if rel in allowed:
            continue
        found.extend(f"{rel}:{node.lineno}" for node in nodes if is_bad(node))
    return found


def _imports(node: ast.AST, module: str) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name == module or a.name.startswith(module + ".") for a in node.names)
    if isinstance(node, ast.ImportFrom):
        name = node.module or ""
        return node.level == 0 and (name == module or name.startswith(module + "."))
    return False


def _calls_attribute(node: ast.AST, owner: str, names: set[str]) -> bool:
    """``owner.name(...)`` for a name in ``names`` (``os.replace(...)``)."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == owner
    )


def test_one_html_escape() -> None:
    """Rich text is escaped by ``protocol.untrusted_text.html_escape`` (stdlib
    ``html.escape`` with quotes) and nothing else: no ``html`` import, no hand-made
    ``&lt;``, no ``toHtmlEscaped`` anywhere else."""
    allowed = {"protocol/untrusted_text.py"}

    def bad(node: ast.AST) -> bool:
        if _imports(node, "html"):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return "&lt;" in node.value or "&gt;" in node.value or node.value == "&amp;"
        return isinstance(node, ast.Attribute) and node.attr == "toHtmlEscaped"

    assert _offenders(bad, allowed) == []


def test_one_atomic_write() -> None:
    """Files the app owns are written by ``osfiles.write_atomic``: no other module renames
    a temporary file into place or syncs a file it wrote. The local object store is the
    exception: its create-only publish (temp file, hard link) is the storage protocol."""
    allowed = {"osfiles.py", "storage/local.py"}

    def bad(node: ast.AST) -> bool:
        return _calls_attribute(node, "os", {"replace", "rename", "fsync"})

    def path_rename(node: ast.AST) -> bool:
        """``Path.replace(target)`` / ``Path.rename(target)``: one argument (str.replace
        takes two at least)."""
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"replace", "rename"}
            and len(node.args) + len(node.keywords) == 1
        )

    assert _offenders(bad, allowed) == []
    # the index moves a broken database aside (a rename of what is there, no write)
    assert _offenders(path_rename, allowed | {"index/db.py"}) == []


def test_one_private_folder_helper() -> None:
    """``ensure_private_dir`` is defined once (``osfiles``)."""
    defined = [
        f"{rel}:{node.lineno}"
        for rel, nodes in _nodes()
        for node in nodes
        if isinstance(node, ast.FunctionDef) and node.name == "ensure_private_dir"
    ]
    assert [d.split(":")[0] for d in defined] == ["osfiles.py"]


def test_one_keyring_policy() -> None:
    """Only ``keyring_policy`` imports keyring (also for types: the others take
    ``KeyringBackend`` from it), so the keys and the storage secrets cannot drift apart
    in which backend they accept or what they say when it fails."""
    allowed = {"keyring_policy.py"}

    def bad(node: ast.AST) -> bool:
        return _imports(node, "keyring") or _imports(node, "keyrings")

    assert _offenders(bad, allowed) == []
