"""What every test shares: one Secret Service at a time.

``tests/with-keyring.sh`` gives the whole run one Secret Service (a private GNOME
Keyring), and some tests lock it to see what a locked keyring does. Tests marked
``keyring`` therefore take a file lock for their whole duration (set-up and tear-down
included), shared by every pytest-xdist worker of the run: they run one after another
whatever the scheduler does. (pytest-xdist's ``xdist_group`` used to do this; with
pytest 9.2 its grouping silently does nothing, and a locking test ran beside the others.)

Child processes (``bucket-chat``, the app) import the package of this checkout: the
virtualenv's scripts would otherwise import the one its editable install points at, which
in another git worktree is a different checkout's code.
"""

from __future__ import annotations

import fcntl
import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
)


@pytest.fixture(autouse=True)
def _cheap_new_key_files(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files created in this process take Argon2id's minimum cost, not the app's
    interactive default (about 0.2-0.45 s of CPU each time a command unlocks the key: more
    than half of an in-process CLI test's time, measured with cProfile). It is real
    encryption with smaller, valid limits that the file states, as an older or a backup
    file may; reading honours them as always. The key store's own tests keep the default
    they check."""
    if "keys" in request.node.path.parts:
        return
    from nacl.pwhash import argon2id

    from bucket_chat_desktop.keys.store import EncryptedFileStore

    cheap = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
    monkeypatch.setattr(EncryptedFileStore.__init__, "__kwdefaults__", cheap)


@pytest.fixture(autouse=True)
def _one_secret_service_user(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    if request.node.get_closest_marker("keyring") is None:
        yield
        return
    # The run's temporary root: one per run, the parent of each worker's (popen-gwN).
    lock = tmp_path_factory.getbasetemp().parent / "secret-service.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the order the workers run tests in (scheduling only: no test depends on it) --------------

# The slowest tests (tens of seconds each, measured with ``--durations``), by node id
# without parameters. pytest-xdist's ``worksteal`` hands each worker a contiguous quarter
# of the collection and lets idle workers take the back half of a busy one's queue; a
# slow test near the end of a quarter started late and ran on alone for a minute after
# every other test had finished. Each of these goes to the head of a quarter instead
# (the slowest first, each to the quarter with the least slow work so far), so they all
# start in the first minutes and the run ends on short tests.
SLOW_FIRST = (
    "tests/fuzz/test_cli_fuzz.py::test_cli_on_hostile_rooms",
    "tests/gui/test_relations_flow.py::test_two_users_reply_react_edit_and_delete_and_everyone_sees_the_same",
    "tests/integration/test_hung_network.py::test_cli_with_a_frozen_storage_queues_reads_the_index_and_delivers_once_after",
    "tests/integration/test_cli_relations_cloud.py::test_two_users_relate_on_s3",
    "tests/e2e/test_relations_cli.py::test_two_users_relate_on_a_local_folder",
    "tests/integration/test_change_feed.py::test_a_wait_let_go_without_a_rest_is_paid_for_by_the_next_rest",
    "tests/e2e/test_chat_flow.py::test_two_users_three_devices_exchange_1000_messages",
    "tests/integration/test_change_feed.py::test_made_up_attachments_get_two_waits_without_a_rest_then_the_pace_of_junk",
    "tests/fuzz/test_gui_fuzz.py::test_app_opens_hostile_rooms",
    "tests/e2e/test_search_cli.py::test_search_finds_what_this_device_read",
    "tests/e2e/test_relations_cli.py::test_forged_relations_are_reported_and_change_nothing",
    "tests/integration/test_outbox_recovery.py::test_ten_writers_at_once_deliver_everything_once_with_intact_chains",
    "tests/gui/test_hung_reads_gui.py::test_a_stalling_storage_holds_up_neither_the_app_nor_its_other_storage",
    "tests/unit/sync/test_verifier.py::test_where_no_worker_can_start_the_caller_is_told_to_do_it_itself",
    "tests/integration/test_hung_reads.py::test_a_listing_that_never_ends_is_refused_and_the_storage_works_after",
    "tests/fuzz/test_protocol_fuzz.py::test_hostile_room_audits_without_raising_and_loses_nothing",
    "tests/gui/test_hung_reads_gui.py::test_creating_or_joining_a_room_gives_up_on_a_storage_that_stops_answering",
    # Found slowest in a full run of 4,301 tests (--durations, machine loaded): each took
    # 40-120 s there, more than most listed above, and none was listed.
    "tests/e2e/test_tamper.py::test_modified_message_is_invalid_and_breaks_the_chain",
    "tests/unit/sync/test_idle_request_budget.py::test_junk_names_in_a_quiet_rooms_newest_days_keep_an_idle_storage_within_its_budget",
    "tests/e2e/test_sync_cli.py::test_a_send_to_a_read_only_store_is_queued_then_delivered_once",
    "tests/gui/test_safe_mode.py::test_a_crashed_app_leaves_a_report_and_starts_next_in_safe_mode",
    "tests/gui/test_hung_network_gui.py::test_a_hung_storage_shows_not_answering_and_clears_when_it_answers",
    "tests/e2e/test_sync_cli.py::test_sync_and_chat_count_and_say_what_is_wrong_with_the_metadata",
    "tests/gui/test_first_screen_on_trial.py::test_the_first_screen_takes_the_first_key_seen_on_trial",
    "tests/unit/index/test_index_lock.py::test_a_segment_is_never_seen_half_written_from_another_thread",
    "tests/e2e/test_sync_cli.py::test_one_shot_sync_prints_counts",
    "tests/e2e/test_one_device_one_chain.py::test_a_damaged_outbox_file_gets_a_message_not_a_traceback",
    "tests/fuzz/test_handover_agreement.py::test_hostile_rooms_agree",
    "tests/e2e/test_sync_cli.py::test_history_works_after_the_index_is_deleted_or_broken",
    # No longer listed since their rooms are set up in-process (``Device.given``): of
    # the 13 and 8 one-shot bucket-chat processes each started, 1 and 2 are left (and
    # the first's ``sync --follow``); side by side on a loaded machine (load 17-22) they
    # took 25 s and 19 s against 80 s and 66 s before, now the shortest of
    # test_sync_cli.py's:
    # test_sync_cli.py::test_chat_and_follow_show_the_room_as_history_does and
    # ::test_history_from_an_index_edited_to_hold_hostile_rows.
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers < 2:
        return  # one process runs them all in turn: the order changes nothing
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    slow = sorted(
        (item for item in items if item.nodeid.split("[", 1)[0] in rank),
        key=lambda item: rank[item.nodeid.split("[", 1)[0]],
    )
    if not slow:
        return
    chosen = {id(item) for item in slow}
    rest = [item for item in items if id(item) not in chosen]
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for i, item in enumerate(slow):  # round robin, slowest first
        heads[i % workers].append(item)
    # The quarters exactly as worksteal cuts them at the start (``check_schedule``: each
    # idle worker in turn gets the pending count divided by the workers still to serve).
    left = len(items)
    ordered: list[pytest.Item] = []
    for w in range(workers):
        size = left // (workers - w)
        left -= size
        ordered.extend(heads[w])
        take = max(0, size - len(heads[w])) if w < workers - 1 else len(rest)
        ordered.extend(rest[:take])
        rest = rest[take:]
    assert len(ordered) == len(items)
    items[:] = ordered


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """After a test with Qt, once pytest let go of all it kept of it, collect its garbage
    here, on the GUI thread, and freeze what is left.

    Until the test's tear-down is over, pytest keeps its fixture values and the log
    records of its phases; a record of ``log.exception`` keeps the traceback, and the
    traceback the frames, with their windows, controllers and qasync loops. They became
    garbage only after the GUI collector's fixture had stopped, and the next full
    collection destroyed them on whichever thread ran it: in a later test without Qt,
    fsspec's I/O thread ("QObject::~QObject: Timers cannot be stopped from another
    thread", which failed that test, and at times a crash).

    What outlives the collection is frozen (``gc.freeze``) so that the collections that
    follow do not scan it all again: a full collection of a worker's heap took
    100-300 ms after each Qt test. Only a speed-up: the app's heap policy hands the frozen
    generation back to the collector when a read's pause ends (``protocol/heap.py``), and
    what was alive here is no hazard until it becomes garbage — which a test's own tear-down
    makes, and which is collected here. ``tests/gui/test_qt_garbage_between_tests.py``.

    The GUI collector a test's fixture started (``GuiThreadCollector``) is stopped here
    too, rather than at the end of the fixture: its ``stop`` runs the same full
    collection, and a full collection costs 100-300 ms in a worker whose heap a read's
    pause handed back to the collector — twice per Qt test was a few per cent of the
    whole suite (``qt_loops.stop_after_the_test``)."""
    try:
        return (yield)
    finally:
        if "qapp" in getattr(item, "fixturenames", ()):
            from qt_loops import stop_collectors_left  # Qt is loaded: the test used it

            # A GUI test's collector, left started by its fixture, is stopped now: its
            # stop collects (so once, not twice); else collect here.
            if not stop_collectors_left():
                gc.collect()
            gc.freeze()
