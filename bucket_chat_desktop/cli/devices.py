"""What ``add-device`` and ``accept-device`` may sign, decided on the room as this device
read and verified it (PROTOCOL.md section 7). Each check returns the sentence that refuses
(the command exits 2 and writes nothing) or None.

Red team rt72: ``accept-device`` signed an acceptance of an introduction that did not
exist (run before ``add-device``, or naming another person's key) — every reader then
showed that join as key-changed for good — and ``add-device`` "introduced" this device's
own key (a restored backup: two machines sharing one key) as a new device."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from ..protocol.audit import DEVICE_ACCEPT_FIELD, DEVICE_ADD_FIELD, TrustState
from ..protocol.audit import offered_introductions as _offered
from ..protocol.event import MEMBER, Event
from ..protocol.ids import room_option

Shown = Sequence[tuple[Event, TrustState]]  # the room's timeline with this device's verdicts


class Accept(Enum):
    SIGN = "sign"  # an introduction of this device by that key is there: accept it
    DONE = "done"  # this device accepted it already: nothing to send


def shared_key_text(user_id: str) -> str:
    """``add-device`` of this device's own key."""
    return (
        "--key is this device's own key: this device already signs with that key; both "
        "devices share it (a key restored from a backup is the same key), so there is no "
        "other device to introduce, and readers cannot tell the two apart. Give the other "
        f"device a key of its own: there, 'bucket-chat setup-keys --user-id {user_id} "
        "--force' (it keeps a backup of the shared key, and refuses if that device "
        "already wrote with it), then run add-device here with its new key. Nothing was "
        "written"
    )


def writes_as(shown: Shown, key: str) -> str | None:
    """The sender id ``key`` signs as in the room (its first event with a good
    signature), or None when it wrote nothing there."""
    for ev, state in shown:
        if ev.sender_key == key and state is not TrustState.INVALID:
            return ev.sender_id
    return None


def _joins_by(shown: Shown, user_id: str, key: str, field: str, value: str) -> bool:
    return any(
        ev.type == MEMBER
        and ev.sender_id == user_id
        and ev.sender_key == key
        and state is not TrustState.INVALID
        and ev.content.get("membership") == "join"
        and ev.content.get(field) == value
        for ev, state in shown
    )


def _not_yours(key: str, other: str, user_id: str, room_id: str) -> str:
    return (
        f"key {key[:12]}… writes as {other!r} in room {room_id!r}, not as {user_id!r}: "
        "it is not a device of yours. Nothing was written"
    )


def add_device_refusal(
    shown: Shown, user_id: str, own_key: str, key: str, room_id: str
) -> str | None:
    """Why this device (``own_key``, writing as ``user_id``) must not introduce ``key``
    in the room, or None: a key that writes as someone else there, one this device
    introduced already, one that already speaks for this user there."""
    other = writes_as(shown, key)
    if other is not None and other != user_id:
        return _not_yours(key, other, user_id, room_id)
    if _joins_by(shown, user_id, own_key, DEVICE_ADD_FIELD, key):
        return (
            f"this device already introduced key {key[:12]}… in room {room_id!r}; if "
            "that device has not accepted yet, run there: bucket-chat accept-device "
            f"{room_option(room_id)} --user-id {user_id} --key {own_key}. Nothing was written"
        )
    if any(
        ev.sender_key == key and ev.sender_id == user_id and state is TrustState.VERIFIED
        for ev, state in shown
    ):
        return (
            f"key {key[:12]}… already writes as you in room {room_id!r} and is trusted "
            "there: it is a device of yours already. Nothing was written"
        )
    return None


def accept_device_check(
    shown: Shown, user_id: str, own_key: str, key: str, room_id: str
) -> Accept | str:
    """Whether this device (``own_key``, ``user_id``) may accept an introduction by
    ``key``: only one the room holds — a join of ``user_id`` signed by ``key`` (a good
    signature) naming this device's key, not answered yet (``offered_introductions``,
    as the app offers them). Otherwise the sentence that refuses."""
    other = writes_as(shown, key)
    if other is not None and other != user_id:
        return _not_yours(key, other, user_id, room_id)
    if _joins_by(shown, user_id, own_key, DEVICE_ACCEPT_FIELD, key):
        return Accept.DONE
    if _joins_by(shown, user_id, own_key, DEVICE_ADD_FIELD, key):
        return (
            f"this device introduced key {key[:12]}… itself in room {room_id!r}: run "
            "accept-device on that device, naming this device's key. Nothing was written"
        )
    if key in _offered(shown, user_id, own_key):
        return Accept.SIGN
    return (
        f"no introduction of this device by key {key[:12]}… as {user_id!r} in room "
        f"{room_id!r} (as this device read it). Run add-device on your other device "
        f"first: bucket-chat add-device {room_option(room_id)} --user-id {user_id} --key "
        f"{own_key}; then, once it has been delivered, accept-device here again. Nothing "
        "was written"
    )
