"""The connection test behind the form's "Test connection" button, and the kinds of storage.

`check_storage` is a real create-only write, read-back, listing and overwrite probe, run on
the caller's event loop (it never blocks the UI). No widgets here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from ...storage.base import StorageError
from ...storage.open import open_location
from ...storage.url import StorageLocation
from ...sync.selfcheck import (
    CHECK_TIMEOUT,
    TEST_NO_ANSWER,
    CheckResult,
    check_storage_use,
)

log = logging.getLogger("bucket_chat.gui")

KINDS = ("file", "s3", "gs", "az")
KIND_LABELS = {
    "file": "Folder",
    "s3": "Amazon S3",
    "gs": "Google Cloud",
    "az": "Azure Blob",
}
KIND_NAMES = {
    "file": "folder",
    "s3": "S3 bucket",
    "gs": "Google Cloud Storage bucket",
    "az": "Azure Blob container",
}
# A test the user waits for should fail fast: one attempt, a short timeout (unless the
# user gave their own in a URL).
TEST_OPTIONS = {"retries": "1", "timeout": "15"}


# -- the connection test -------------------------------------------------------------------


async def check_storage(
    location: StorageLocation,
    secrets: Mapping[str, str] | None = None,
    *,
    create_folder: bool = False,
    timeout: float = CHECK_TIMEOUT,
    no_answer: float = TEST_NO_ANSWER,
) -> CheckResult:
    """Exercise a storage as the chat will: list the rooms, write an object create-only
    under ``.bucket-chat-probe/``, read it back, list it, remove it, then check that the
    service refuses to overwrite (`Storage.probe_create_only`).

    Never raises for a storage problem: the one-line reason is in the result. A folder that
    does not exist is an error unless ``create_folder`` (then it is created first).
    """
    if location.kind == "file":
        folder = Path(location.bucket).expanduser()
        problem = await asyncio.to_thread(folder_problem, folder, create_folder)
        if problem:
            return CheckResult("error", problem)
    elif location.is_cloud:
        extra = {k: v for k, v in TEST_OPTIONS.items() if k not in location.options}
        location = location.with_options(extra)
    try:
        storage = open_location(location, secrets)
    except StorageError as exc:
        return CheckResult("error", str(exc))
    try:
        return await check_storage_use(storage, no_answer=no_answer, timeout=timeout)
    except Exception as exc:  # a bug or an SDK surprise: shown, logged, never lost
        log.exception("connection test of %s failed", location.root())
        return CheckResult("error", f"unexpected error ({type(exc).__name__}): {exc}")
    finally:
        try:
            await storage.close()
        except Exception as exc:
            log.debug("closing the tested storage: %s", exc)


def folder_problem(folder: Path, create: bool) -> str:
    if folder.is_dir():
        return ""
    if folder.exists():
        return f"{folder} is not a folder"
    if not create:
        return f"the folder {folder} does not exist (create it, or choose another folder)"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the folder {folder}: {exc.strerror or exc}"
    return ""
