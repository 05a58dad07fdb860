"""The storage self-check: one exercise of a storage as the chat uses it, shared by the
wizard's and the settings' *Test connection* and by ``bucket-chat test-storage``.

It lists the rooms, writes a probe object create-only under ``.bucket-chat-probe/``,
reads it back, writes it again (a retry must be recognised) and with other bytes (must be
refused), finds it in a listing, removes it, and asks the service whether it honours the
create-only precondition (`Storage.probe_create_only`), and asks the bucket's
notification queue if one is configured (`Storage.change_feed`). The first step that
fails ends the check with an ``error`` naming it; a storage problem raised by a step (a
missing bucket, refused keys, no answer) is that step's failure. ``bucket-chat storage
test`` and ``test-storage`` print these steps and exit by this verdict (``cli.selftest``):
one check, one verdict, in the app and on the command line (red team rt88: ``storage
test`` had its own, which printed a failed step and then "Storage works", exit 0).

A storage that stops answering is given up after ``TEST_NO_ANSWER`` seconds without an
answer (a person waits for this), a slow one that keeps answering gets ``CHECK_TIMEOUT``
for the whole check.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from ..protocol.ids import logs_prefix
from ..storage.base import PROBE_PREFIX, AlreadyExistsError, Storage, StorageError
from .room_objects import list_rooms
from .watched import WatchedStorage, answer_within, watched

log = logging.getLogger("bucket_chat.sync.selfcheck")

CHECK_TIMEOUT = 90.0  # seconds for the whole check
# Seconds one request of the check may go unanswered: a storage that does not answer at
# all (a frozen service, a dead VPN) is reported in seconds.
TEST_NO_ANSWER = 6.0
PROBE_CLEANUP = 2.0  # seconds for removing the probe after the check was given up


@dataclass(frozen=True, slots=True)
class CheckStep:
    label: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``level`` is ``ok``, ``warning`` (works, weaker guarantees) or ``error``;
    ``steps``: what was tried, in order, up to where it stopped."""

    level: str
    message: str
    steps: tuple[CheckStep, ...] = ()

    @property
    def usable(self) -> bool:
        """True when chatting can work (a warning still works, with weaker guarantees)."""
        return self.level in ("ok", "warning")


# The steps' names, as the command line prints them (``cli.selftest``).
REACH_STEP = "reach the storage and list its rooms"
WRITE_STEP = "create-only write"
READ_STEP = "read back"
RETRY_STEP = "a retry of the same write is recognised"
OVERWRITE_STEP = "an existing object is never overwritten"
LISTED_STEP = "the new object is listed"
ENFORCED_STEP = "the service enforces create-only writes"
QUEUE_STEP = "the queue of the bucket's notifications answers"
# What a write that got through over an existing object means, and what to do.
NOT_CREATE_ONLY = (
    "the service ignores the create-only precondition, so nothing stops a client from "
    "replacing a message; docs/STORAGE.md says how to make the bucket refuse overwrites"
)


class _Steps:
    """The steps done so far, and the one running (the one a storage error ends)."""

    def __init__(self) -> None:
        self.done: list[CheckStep] = []
        self.running = REACH_STEP

    def ok(self, label: str, detail: str = "") -> None:
        self.done.append(CheckStep(label, True, detail))

    def failed(self, detail: str) -> CheckResult:
        self.done.append(CheckStep(self.running, False, detail))
        return CheckResult("error", f"{self.running}: {detail}", tuple(self.done))


async def check_storage_use(
    storage: Storage,
    *,
    room_id: str | None = None,
    no_answer: float = TEST_NO_ANSWER,
    timeout: float = CHECK_TIMEOUT,
) -> CheckResult:
    """Exercise ``storage`` (see the module's docstring); ``room_id``: also list that
    room's segments. Never raises for a storage problem: the reason is in the result,
    and the step it ended is its last step, failed."""
    checked = watched(storage)
    steps = _Steps()
    try:
        exercise = answer_within(
            checked, _exercise(checked, room_id, steps), no_answer, what=checked.describe()
        )
        return await asyncio.wait_for(exercise, timeout)
    except TimeoutError:
        message = f"no answer within {timeout:g} s"
    except StorageError as exc:
        message = str(exc)
    steps.done.append(CheckStep(steps.running, False, message))
    return CheckResult("error", message, tuple(steps.done))


async def _exercise(storage: WatchedStorage, room_id: str | None, steps: _Steps) -> CheckResult:
    rooms = await list_rooms(storage)
    found = f"{len(rooms)} room{'s' if len(rooms) != 1 else ''} found"
    steps.ok(REACH_STEP, found)
    probe = f"{PROBE_PREFIX}check-{secrets.token_hex(8)}"
    data = b"bucket-chat connection test " + secrets.token_hex(16).encode()
    steps.running = WRITE_STEP
    if await storage.put_if_absent(probe, data):
        steps.ok(WRITE_STEP)
    else:
        # "Already there, with these very bytes", under a random name never used: the
        # first try was stored and its answer lost, and a retry (the SDK's) found it.
        # A passing fault of the network, not a broken storage (red team rt52: it was
        # "a new object's name was already taken", an error).
        lost = "written; the first try's answer was lost, and its retry found it stored"
        steps.ok(WRITE_STEP, lost)
    try:
        steps.running = READ_STEP
        if await storage.get(probe) != data:
            return steps.failed("the test object read back with different contents")
        steps.ok(READ_STEP)
        steps.running = RETRY_STEP
        if await storage.put_if_absent(probe, data):
            return steps.failed(f"it was written again: {NOT_CREATE_ONLY}")
        steps.ok(RETRY_STEP)
        steps.running = OVERWRITE_STEP
        try:
            await storage.put_if_absent(probe, data + b"x")
            return steps.failed(f"it was overwritten: {NOT_CREATE_ONLY}")
        except AlreadyExistsError:
            steps.ok(OVERWRITE_STEP)
        steps.running = LISTED_STEP
        if probe not in {o.path for o in await storage.list_objects(PROBE_PREFIX)}:
            return steps.failed("the test object was written but is not listed")
        steps.ok(LISTED_STEP)
        if room_id is not None:
            steps.running = f"list room {room_id!r}"
            segments = await storage.list_objects(logs_prefix(room_id))
            steps.ok(steps.running, f"{len(segments)} object(s)")
    finally:
        # Bounded: this also runs when the check was given up on a storage that stopped
        # answering. A probe left behind under .bucket-chat-probe/ is harmless.
        try:
            await asyncio.wait_for(storage.remove_probe(probe), PROBE_CLEANUP)
        except (StorageError, TimeoutError) as exc:
            log.info("could not remove the probe %s: %s", probe, exc or "no answer")
    steps.running = ENFORCED_STEP
    honoured, how = await storage.probe_create_only()
    steps.done.append(CheckStep(ENFORCED_STEP, honoured, how))
    if not honoured:
        return CheckResult(
            "warning",
            f"Reads and writes work ({found}), but the store ignored the create-only "
            f"precondition: {how}.",
            tuple(steps.done),
        )
    feed = storage.change_feed()
    if feed is not None:  # an S3 bucket's notification queue: asked, never emptied here
        steps.running = QUEUE_STEP
        try:
            steps.ok(QUEUE_STEP, await feed.check())
        except StorageError as exc:
            steps.done.append(CheckStep(QUEUE_STEP, False, str(exc)))
            return CheckResult(
                "warning",
                f"The bucket works ({found}), but the queue does not: {exc}. The app will "
                "poll the bucket instead.",
                tuple(steps.done),
            )
        finally:
            await feed.close()
    return CheckResult(
        "ok", f"Connection works: wrote, read and listed a test object; {found}.", tuple(steps.done)
    )
