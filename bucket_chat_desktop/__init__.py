"""Bucket Chat Desktop: serverless, tamper-evident chat over folders and buckets."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``__version__`` is read from the installed metadata when first asked for:
    # importlib.metadata costs ~30 ms, and every ``bucket-chat`` command and the app's
    # start paid it although few of them print the version.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("bucket-chat-desktop")
    except PackageNotFoundError:  # running from a source tree
        found = "0+unknown"  # metadata missing: a broken install or bundle
    globals()["__version__"] = found
    return found
