"""A long chain of device introductions leading back to a key the reader pinned, read by
the ``bucket-chat`` command in-process (real folder storage, the reader's real SQLite
index, where ``history`` pins what it trusted on first use).

Red team rt64: the walk back from a pinned key went over every introduction once per key
it added, O(N^2): 10,000 one-event keys took 5 s to audit, ``history`` of 20,000 took
95 s. The work is counted here (how many introductions the audit walks over), not timed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import run_main
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol import audit as audit_module
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event, public_key_text

ROOM = "chain-room"
MALLORY = "mallory@example.com"
T0 = 1757851245000
N = 300  # keys in the chain: enough for N^2 to stand far above N


class _Counted(set[tuple[str, str, str]]):
    """The audit's introductions, counting each one a loop takes out of them."""

    walked = 0

    def __iter__(self) -> Any:
        for edge in super().__iter__():
            _Counted.walked += 1
            yield edge


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "correct horse battery staple")
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    return home


def _event(key: SigningKey, n: int, ts: int, kind: str, content: dict[str, Any],
           prev: str | None = None) -> Event:  # fmt: skip
    return build_event(
        room_id=ROOM,
        sender_id=MALLORY,
        event_type=kind,
        content=content,
        timestamp_ms=ts,
        unique=f"{n:08x}-0000-4000-8000-{n:012x}",
        prev_event_hash=prev,
        signing_key=key,
    )


def _put(store: Path, events: list[Event], client: str) -> None:
    path = store / path_for(events, client, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def _states(capsys: pytest.CaptureFixture[str], store: Path) -> list[str]:
    r = run_main(capsys, ["-s", str(store), "history", "--room-id", ROOM, "--json"])
    assert r.code == 0, r
    return [e["trust"] for e in json.loads(r.out)["events"]]


def test_a_chain_of_introductions_back_to_a_pinned_key_is_walked_once(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    home: Path,
) -> None:
    store = tmp_path / "shared"
    keys = [SigningKey(bytes([1 + i % 250, i // 250]) * 16) for i in range(N + 1)]
    pub = [public_key_text(k) for k in keys]
    pinned = keys[N]
    first = [_event(pinned, 1, T0, MEMBER, {"membership": "join"})]
    first.append(_event(pinned, 2, T0 + 1, MESSAGE, {"body": "hi", "msgtype": "m.text"},
                        first[0].hash))  # fmt: skip
    _put(store, first, "mallory")
    # The reader trusts mallory's only key on first use and pins it in its index.
    assert _states(capsys, store) == ["verified", "verified"]
    # K0 -> K1 -> ... -> K(N-1) -> the pinned key, each introduction both sides signed.
    chain = []
    for i in range(N):
        content: dict[str, Any] = {"membership": "join", "add_device_key": pub[i + 1]}
        if i:
            content["introduced_by"] = pub[i - 1]
        chain.append(_event(keys[i], 10 + i, T0 + 10 + i, MEMBER, content))
    _put(store, chain, "chain")
    later = _event(pinned, 5, T0 + 10 + N, MEMBER,
                   {"membership": "join", "introduced_by": pub[N - 1]}, first[-1].hash)  # fmt: skip
    _put(store, [later], "mallory2")

    decide = audit_module._decide_trust

    audits = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        audits[0] += 1
        trust = decide(*args, **kwargs)
        trust.edges = _Counted(trust.edges)
        return trust

    monkeypatch.setattr(audit_module, "_decide_trust", counted)
    _Counted.walked = 0
    states = _states(capsys, store)
    walked_pinned = _Counted.walked
    # The pinned key vouches for the keys that introduced it, back to K0: all verified.
    assert states == ["verified"] * (N + 3)
    # A reader that pinned nothing trusts K0 (the one key nobody introduced) and what it
    # leads to: the pinned key's first two events came before its introduction.
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "fresh"))
    assert _states(capsys, store) == ["key-changed"] * 2 + ["verified"] * (N + 1)
    # Each audit walks the introductions a few times at most (a map back is made once),
    # never once per key the walk adds (N + 1 times: N^2 = 90,000 here).
    assert audits[0] and walked_pinned <= 3 * N * audits[0], (walked_pinned, audits, N)
