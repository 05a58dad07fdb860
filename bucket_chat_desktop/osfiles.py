"""The one door to ``os.open``: every descriptor this program opens is in binary mode.

On Windows, ``os.open`` without ``O_BINARY`` gives a text-mode descriptor: ``os.write`` and
a file object made with ``os.fdopen(fd, "wb")`` both turn each ``\\n`` byte into ``\\r\\n``
(and reads turn it back, and stop at a ``\\x1a`` byte). A blob written that way fails its
SHA-256 check and a segment changes its bytes. POSIX has no text mode, so nothing shows
on Linux or macOS: a test (tests/unit/test_osfiles.py) reads the package's source and
refuses any ``os.open`` call outside this module.

Files opened by name (``open(path, "wb")``, ``Path.write_bytes``, ``tempfile.mkstemp``)
are binary at the descriptor already; Python adds ``O_BINARY`` itself there.
"""

from __future__ import annotations

import os

BINARY: int = getattr(os, "O_BINARY", 0)
"""``os.O_BINARY`` on Windows, 0 elsewhere."""


def open_fd(
    path: str | os.PathLike[str],
    flags: int,
    mode: int = 0o777,
    *,
    dir_fd: int | None = None,
) -> int:
    """``os.open`` with ``O_BINARY`` added to ``flags`` (see the module's docstring)."""
    return os.open(path, flags | BINARY, mode, dir_fd=dir_fd)
