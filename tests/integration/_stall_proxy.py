"""A proxy in front of an emulator that makes the faults a real network or service makes.

SIGSTOP freezes a whole emulator: every bucket on it at once, every request. Real faults
are narrower: one connection stops half-way through an answer, one object trickles a byte
now and then, one listing never ends. ``StallProxy`` forwards HTTP to the emulator, one
request per connection (``Connection: close`` both ways, so each request is judged apart;
clients simply connect again), and applies the first rule whose method and path (with its
query) match:

- ``HANG``: the request is read and nothing is answered (the emulator is not asked);
- ``HALFWAY``: the answer's head and the first ``keep`` bytes of its body are sent, then
  nothing more;
- ``TRICKLE``: the answer is sent one byte every ``every`` seconds (its body; its head
  too with ``head=True``: an answer with no body, S3's and Azure's to a write);
- ``PACED``: the answer is sent ``keep`` bytes every ``every`` seconds (a slow link that
  keeps delivering);
- ``SLOW_UPLOAD``: the request's body is read ``keep`` bytes every ``every`` seconds (a
  slow uplink), then the request goes on to the emulator;
- ``CUT``: the request goes on to the emulator (a write is stored), then the answer's
  head promises ``keep`` more bytes than its body has, the body is sent and the
  connection is dropped: an answer cut off in the middle by the network or a proxy;
- ``LOST``: the request goes on to the emulator (a write is stored), and ``answer``'s
  bytes are sent instead of the emulator's answer: a success lost on its way back;
- ``answer=``: a function of the request (method, target, body) gives the bytes of the
  whole HTTP answer instead of the emulator (a broken or hostile service).

``release()`` drops the rules and lets every stalled request go on (the emulator is asked
then, as a thawed service answers what it was sent). It runs its own event loop on a
thread, so it serves async tests, Qt tests and subprocesses alike; ``close()`` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

HANG = "hang"
HALFWAY = "halfway"
TRICKLE = "trickle"
PACED = "paced"
SLOW_UPLOAD = "slow-upload"
CUT = "cut"
LOST = "lost"
PASS = "pass"


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query, as sent
    body: bytes


@dataclass
class Rule:
    pattern: str  # a regex searched in the request's target (path and query)
    mode: str = HANG
    method: str | None = None  # None: any
    keep: int = 0  # HALFWAY: body bytes sent before the stall; PACED, SLOW_UPLOAD: a step
    every: float = 1.0  # TRICKLE, PACED: seconds between steps
    head: bool = False  # TRICKLE, PACED: the answer's head is paced too
    answer: Callable[[Request], bytes] | None = None
    times: int | None = None  # the rule applies to this many requests, then no more
    hits: list[Request] = field(default_factory=list)

    def matches(self, request: Request) -> bool:
        if self.method is not None and request.method != self.method:
            return False
        if self.times is not None and len(self.hits) >= self.times:
            return False
        return re.search(self.pattern, request.target) is not None


def http_answer(status: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def server_error_once(proxy: StallProxy, hits: list[str]) -> Callable[[Request], bytes]:
    """An ``answer=`` for a rule: a 500 with S3's error body, once (it drops the proxy's
    rules as it answers), each request it answers noted in ``hits``."""

    def answer(request: Request) -> bytes:
        hits.append(request.target)
        proxy.rules.clear()
        error = b"<Error><Code>InternalError</Code><Message>busy</Message></Error>"
        return http_answer("500 Internal Server Error", error, "application/xml")

    return answer


def _with_close(head: bytes) -> bytes:
    """``head`` (request or answer, without its blank line) with ``Connection: close``."""
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line and line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


class StallProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.host = host
        self.port = 0
        self.rules: list[Rule] = []
        self.requests: list[Request] = []  # every request, in order
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._release: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._held = 0  # requests held by a rule right now

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- from the test's thread ------------------------------------------------------------

    def start(self) -> StallProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def stall(self, pattern: str, mode: str = HANG, **kw: object) -> Rule:
        return self.add(Rule(pattern, mode, **kw))  # type: ignore[arg-type]

    def release(self) -> None:
        """Drop the rules; every stalled request goes on."""
        self.rules = []

        def go() -> None:
            old, self._release = self._release, asyncio.Event()
            if old is not None:
                old.set()

        self._loop.call_soon_threadsafe(go)

    def stalled(self) -> int:
        """Requests held by a rule right now."""
        return asyncio.run_coroutine_threadsafe(self._count(), self._loop).result(10)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- on the proxy's loop ---------------------------------------------------------------

    async def _start(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _count(self) -> int:
        return self._held

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._one(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the proxy closes: this connection ends (asyncio logs a cancelled one)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _held_until_released(self) -> None:
        assert self._release is not None
        self._held += 1
        try:
            await self._release.wait()
        finally:
            self._held -= 1

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
        method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        slow = next(
            (
                r
                for r in list(self.rules)
                if r.mode == SLOW_UPLOAD and r.matches(Request(method, target, b""))
            ),
            None,
        )
        if slow is not None and length:
            parts, left, step = [], length, max(slow.keep, 1)
            while left:
                await asyncio.sleep(slow.every)
                parts.append(await reader.readexactly(min(step, left)))
                left -= len(parts[-1])
            body = b"".join(parts)
        else:
            body = await reader.readexactly(length) if length else b""
        request = Request(method, target, body)
        self.requests.append(request)
        rule = next((r for r in list(self.rules) if r.matches(request)), None)
        if rule is not None:
            rule.hits.append(request)
        mode = rule.mode if rule is not None and rule.mode != SLOW_UPLOAD else PASS
        if rule is not None and rule.answer is not None and rule.mode != LOST:
            writer.write(rule.answer(request))
            await writer.drain()
            return
        if mode == HANG:
            await self._held_until_released()
            mode = PASS
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            up_writer.write(_with_close(head) + body)
            await up_writer.drain()
            answer_head = (await up_reader.readuntil(b"\r\n\r\n"))[:-4]
            paced_head = mode in (TRICKLE, PACED) and rule is not None and rule.head
            if not paced_head and mode not in (CUT, LOST):
                writer.write(_with_close(answer_head))
            rest = await up_reader.read()
        finally:
            up_writer.close()
        if mode == LOST and rule is not None and rule.answer is not None:
            writer.write(rule.answer(request))
            await writer.drain()
            return
        if mode == CUT:
            promised = len(rest) + max(rule.keep if rule else 0, 1)
            lines = [
                line
                for line in _with_close(answer_head).split(b"\r\n")
                if line
                and line.split(b":", 1)[0].strip().lower()
                not in (b"content-length", b"transfer-encoding")
            ]
            lines.append(b"Content-Length: %d" % promised)
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
            await writer.drain()
            writer.transport.abort()
            return
        if paced_head:
            rest = _with_close(answer_head) + rest
        if mode == HALFWAY:
            writer.write(rest[: rule.keep if rule else 0])
            await writer.drain()
            await self._held_until_released()
            writer.write(rest[rule.keep if rule else 0 :])
        elif mode in (TRICKLE, PACED):
            assert rule is not None and self._release is not None
            released = self._release
            step = max(rule.keep, 1) if mode == PACED else 1
            for i in range(0, len(rest), step):
                writer.write(rest[i : i + step])
                await writer.drain()
                if released.is_set():
                    writer.write(rest[i + step :])
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), rule.every)
        else:
            writer.write(rest)
        await writer.drain()
