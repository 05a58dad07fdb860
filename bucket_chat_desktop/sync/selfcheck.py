"""The storage self-check: one exercise of a storage as the chat uses it, shared by the
wizard's and the settings' *Test connection* and by ``bucket-chat test-storage``.

It lists the rooms, writes a probe object create-only under ``.bucket-chat-probe/``,
writes it again (a retry must be recognised) and with other bytes (must be refused), reads
it back, finds it in a listing, removes it, and asks the service whether it honours the
create-only precondition (`Storage.probe_create_only`), and asks the bucket's
notification queue if one is configured (`Storage.change_feed`). A storage that stops answering is
given up after ``TEST_NO_ANSWER`` seconds without an answer (a person waits for this), a
slow one that keeps answering gets ``CHECK_TIMEOUT`` for the whole check.
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


async def check_storage_use(
    storage: Storage,
    *,
    room_id: str | None = None,
    no_answer: float = TEST_NO_ANSWER,
    timeout: float = CHECK_TIMEOUT,
) -> CheckResult:
    """Exercise ``storage`` (see the module's docstring); ``room_id``: also list that
    room's segments. Never raises for a storage problem: the reason is in the result."""
    checked = watched(storage)
    steps: list[CheckStep] = []
    try:
        exercise = answer_within(
            checked, _exercise(checked, room_id, steps), no_answer, what=checked.describe()
        )
        return await asyncio.wait_for(exercise, timeout)
    except TimeoutError:
        return CheckResult("error", f"no answer within {timeout:g} s", tuple(steps))
    except StorageError as exc:
        return CheckResult("error", str(exc), tuple(steps))


async def _exercise(
    storage: WatchedStorage, room_id: str | None, steps: list[CheckStep]
) -> CheckResult:
    def failed(label: str, detail: str) -> CheckResult:
        steps.append(CheckStep(label, False, detail))
        return CheckResult("error", f"{label}: {detail}", tuple(steps))

    rooms = await list_rooms(storage)
    found = f"{len(rooms)} room{'s' if len(rooms) != 1 else ''} found"
    steps.append(CheckStep("list the rooms", True, found))
    probe = f"{PROBE_PREFIX}check-{secrets.token_hex(8)}"
    data = b"bucket-chat connection test " + secrets.token_hex(16).encode()
    if await storage.put_if_absent(probe, data):
        steps.append(CheckStep("create-only write", True))
    else:
        # "Already there, with these very bytes", under a random name never used: the
        # first try was stored and its answer lost, and a retry (the SDK's) found it.
        # A passing fault of the network, not a broken storage (red team rt52: it was
        # "a new object's name was already taken", an error).
        lost = "written; the first try's answer was lost, and its retry found it stored"
        steps.append(CheckStep("create-only write", True, lost))
    try:
        if await storage.put_if_absent(probe, data):
            return failed("a retry of the same write is recognised", "it was written again")
        steps.append(CheckStep("a retry of the same write is recognised", True))
        try:
            await storage.put_if_absent(probe, data + b"x")
            return failed("an existing object is never overwritten", "it was overwritten")
        except AlreadyExistsError:
            steps.append(CheckStep("an existing object is never overwritten", True))
        if await storage.get(probe) != data:
            return failed("read back", "the test object read back with different contents")
        steps.append(CheckStep("read back", True))
        if probe not in {o.path for o in await storage.list_objects(PROBE_PREFIX)}:
            return failed("listed", "the test object was written but is not listed")
        steps.append(CheckStep("listed", True))
        if room_id is not None:
            segments = await storage.list_objects(logs_prefix(room_id))
            steps.append(CheckStep(f"list room {room_id!r}", True, f"{len(segments)} object(s)"))
    finally:
        # Bounded: this also runs when the check was given up on a storage that stopped
        # answering. A probe left behind under .bucket-chat-probe/ is harmless.
        try:
            await asyncio.wait_for(storage.remove_probe(probe), PROBE_CLEANUP)
        except (StorageError, TimeoutError) as exc:
            log.info("could not remove the probe %s: %s", probe, exc or "no answer")
    honoured, how = await storage.probe_create_only()
    steps.append(CheckStep("the service enforces create-only writes", honoured, how))
    if not honoured:
        return CheckResult(
            "warning",
            f"Reads and writes work ({found}), but the store ignored the create-only "
            f"precondition: {how}.",
            tuple(steps),
        )
    feed = storage.change_feed()
    if feed is not None:  # an S3 bucket's notification queue: asked, never emptied here
        label = "the queue of the bucket's notifications answers"
        try:
            steps.append(CheckStep(label, True, await feed.check()))
        except StorageError as exc:
            steps.append(CheckStep(label, False, str(exc)))
            return CheckResult(
                "warning",
                f"The bucket works ({found}), but the queue does not: {exc}. The app will "
                "poll the bucket instead.",
                tuple(steps),
            )
        finally:
            await feed.close()
    return CheckResult(
        "ok", f"Connection works: wrote, read and listed a test object; {found}.", tuple(steps)
    )
