"""Render the screenshots in the README from a realistic demo, offscreen.

    .venv/bin/python docs/screenshots/render.py [--out DIR]

Everything happens in a temporary ``BUCKET_CHAT_HOME`` (keys, settings, index) and a
temporary shared folder, so your own rooms and keys are never touched. The demo: Maya,
Jonas and Priya, a team shipping release 2.4 of their app; four rooms on a shared folder,
Markdown, yesterday's and today's messages, a chart shared as an image, and a room whose
history someone edited (the tamper banner and the audit).

The app is built the way ``app.run`` builds it after the first-run wizard (controller,
main window, tray, features, settings, attachments), on a qasync loop. Emoji need a
colour emoji font: on Debian, ``apt-get install fonts-noto-color-emoji``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ME = "maya@northwind.coop"
WIDTH, HEIGHT = 1100, 720


def _prepare_environment(home: Path) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["BUCKET_CHAT_HOME"] = str(home)
    os.environ["BUCKET_CHAT_KEY_STORE"] = "file"
    os.environ["BUCKET_CHAT_PASSPHRASE"] = "demo passphrase, not a secret"
    os.environ.pop("BUCKET_CHAT_STORAGE", None)


# -- the demo content -------------------------------------------------------------------------


def _local_ms(day: dt.date, hour: int, minute: int) -> int:
    moment = dt.datetime.combine(day, dt.time(hour, minute)).astimezone()
    return int(moment.timestamp() * 1000)


def _chart(path: Path) -> None:
    """A line chart as a teammate would paste it: p95 sync latency, 2.3 against 2.4."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = 720, 420
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)

    def font(size: int, bold: bool = False) -> Any:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            return ImageFont.load_default()

    d.text((36, 22), "Sync latency, p95 (ms)", fill="#1d2127", font=font(22, bold=True))
    d.text((36, 54), "one message, two devices, shared folder", fill="#6b717a", font=font(14))
    left, top, right, bottom = 70, 100, w - 30, h - 60
    for i, label in enumerate(("0", "200", "400", "600", "800")):
        y = bottom - i * (bottom - top) / 4
        d.line((left, y, right, y), fill="#e6e8eb", width=1)
        d.text((left - 12, y), label, fill="#6b717a", font=font(12), anchor="rm")
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    xs = [left + 20 + i * (right - left - 40) / 6 for i in range(7)]
    for x, day in zip(xs, days, strict=True):
        d.text((x, bottom + 14), day, fill="#6b717a", font=font(12), anchor="mt")
    old = [640, 610, 700, 655, 620, 690, 660]
    new = [210, 190, 230, 205, 180, 220, 195]

    def line(values: list[int], color: str) -> None:
        points = [(x, bottom - v / 800 * (bottom - top)) for x, v in zip(xs, values, strict=True)]
        d.line(points, fill=color, width=4, joint="curve")
        for x, y in points:
            d.ellipse((x - 5, y - 5, x + 5, y + 5), fill="white", outline=color, width=3)

    line(old, "#9aa0a8")
    line(new, "#3a7bd5")
    d.rectangle((w - 210, 24, w - 196, 38), fill="#9aa0a8")
    d.text((w - 188, 31), "2.3.2", fill="#1d2127", font=font(14), anchor="lm")
    d.rectangle((w - 120, 24, w - 106, 38), fill="#3a7bd5")
    d.text((w - 98, 31), "2.4-rc1", fill="#1d2127", font=font(14), anchor="lm")
    img.save(path)


async def build_demo(store: Path, me_key: Any, scratch: Path) -> None:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.event import MESSAGE
    from bucket_chat_desktop.storage.local import LocalStorage
    from bucket_chat_desktop.sync import blobs
    from bucket_chat_desktop.sync.writer import Draft, RoomWriter

    storage = LocalStorage(store)
    jonas_key = SigningKey(b"J" * 32)
    priya_key = SigningKey(b"P" * 32)
    today = dt.date.today()
    yesterday = today - dt.timedelta(days=1)
    now = int(time.time() * 1000)
    # today's messages end a few minutes ago, whatever the time of day
    morning = min(_local_ms(today, 9, 2), now - 40 * 60_000)

    class Clock:
        """The demo's clock: each message is written at the time ``say`` sets."""

        at = now

        def __call__(self) -> int:
            return self.at

    clock = Clock()

    def people(room: str) -> tuple[RoomWriter, RoomWriter, RoomWriter]:
        def writer(user: str, key: Any, name: str) -> RoomWriter:
            return RoomWriter(storage, room, user, key, displayname=name, clock=clock)

        return (
            writer(ME, me_key, "Maya Chen"),
            writer("jonas@northwind.coop", jonas_key, "Jonas"),
            writer("priya@northwind.coop", priya_key, "Priya"),
        )

    async def say(writer: RoomWriter, at: int, *drafts: Draft) -> None:
        clock.at = at
        await writer.send(list(drafts))

    # Release 2.4: the conversation on the first screenshot
    maya, jonas, priya = people("release-2-4")
    await jonas.write_metadata("Release 2.4", f"{yesterday.isoformat()}T08:00:00.000Z")
    y = yesterday
    await say(
        jonas,
        _local_ms(y, 16, 5),
        Draft.text(
            "Release candidate **2.4.0-rc1** is on the staging share. What changed:\n\n"
            "- the outbox survives restarts and outages\n"
            "- a new audit view for every room\n"
            "- sync on S3 is about 3× faster"
        ),
    )
    await say(
        priya, _local_ms(y, 16, 12), Draft.text("Nice! I'll run the migration tests tonight.")
    )
    await say(
        maya,
        _local_ms(y, 16, 20),
        Draft.text(
            "Can we hold the tag until the `verify` output is in the release notes? "
            "Support keeps asking what *key changed* means."
        ),
    )
    await say(
        jonas,
        _local_ms(y, 16, 31),
        Draft.text("Fair. Drafted it here: [release notes](https://example.com/notes/2.4)"),
    )
    await say(
        priya,
        morning,
        Draft.text("Migration tests: **48/48 green** ✅ One upload retried on the slow VPN."),
    )
    chart = scratch / "sync-latency-p95.png"
    _chart(chart)
    content = await blobs.upload(storage, "release-2-4", chart, limit_bytes=25 * 1024 * 1024)
    await say(
        jonas,
        morning + 6 * 60_000,
        Draft(MESSAGE, content),
        Draft.text("p95 sync latency, 2.3 against 2.4 🚀"),
    )
    await say(
        maya,
        morning + 11 * 60_000,
        Draft.text("That's a big drop. Let's tag rc2 after lunch and ship Thursday 🎉"),
    )

    # General: a quiet room (Priya writes again while the app runs: unread)
    maya, jonas, priya = people("general")
    await maya.write_metadata("General", f"{yesterday.isoformat()}T08:00:00.000Z")
    await say(maya, _local_ms(y, 9, 0), Draft.text("Welcome to the new chat, everyone 👋"))
    await say(jonas, _local_ms(y, 9, 4), Draft.text("No server to babysit. I like it."))

    # Design reviews
    maya, jonas, priya = people("design-reviews")
    await priya.write_metadata("Design reviews", f"{yesterday.isoformat()}T08:00:00.000Z")
    await say(priya, _local_ms(y, 11, 30), Draft.text("New onboarding flow, thoughts welcome."))
    await say(maya, _local_ms(y, 11, 42), Draft.text("Step 2 reads much better now."))

    # Vendor contracts: someone edited what Jonas wrote, in the file itself
    maya, jonas, priya = people("vendor-contracts")
    await maya.write_metadata("Vendor contracts", f"{yesterday.isoformat()}T08:00:00.000Z")
    await say(maya, _local_ms(y, 10, 0), Draft.text("Where are we with the hosting contract?"))
    await say(
        jonas,
        _local_ms(y, 10, 7),
        Draft.text("We can cancel it with 30 days' notice, in writing."),
    )
    await say(priya, _local_ms(y, 10, 15), Draft.text("Good, I'll send the letter on Monday."))
    for segment in (store / "rooms" / "vendor-contracts" / "logs").rglob("*.jsonl"):
        text = segment.read_text(encoding="utf-8")
        if "30 days" in text:
            segment.write_text(text.replace("30 days", "90 days"), encoding="utf-8")


async def priya_writes(store: Path, text: str = "Cake in the kitchen at 3 🎂") -> None:
    from nacl.signing import SigningKey

    from bucket_chat_desktop.storage.local import LocalStorage
    from bucket_chat_desktop.sync.writer import Draft, RoomWriter

    priya = RoomWriter(
        LocalStorage(store),
        "general",
        "priya@northwind.coop",
        SigningKey(b"P" * 32),
        displayname="Priya",
    )
    await priya.send([Draft.text(text)])


# -- the app ------------------------------------------------------------------------------------


class Session:
    """The app's objects, built like ``app.run`` does once settings exist."""

    def __init__(self, settings: Any, identity: Any) -> None:
        from bucket_chat_desktop.gui import features, tray
        from bucket_chat_desktop.gui.controller import Controller
        from bucket_chat_desktop.gui.main_window import MainWindow
        from bucket_chat_desktop.gui.widgets import settings_dialog

        self.controller = Controller(settings, identity)
        self.window = MainWindow(self.controller)
        tray.install(self.window, self.controller)
        self.features = features.install(self.window, self.controller)
        settings_dialog.install(self.window, self.controller)
        try:
            from bucket_chat_desktop.gui import attachments
        except ImportError:
            pass
        else:
            attachments.install(self.window, self.controller)
        from bucket_chat_desktop.gui import search

        self.search = search.install(self.window, self.controller)
        self.window.resize(WIDTH, HEIGHT)
        self.window.show()
        self.controller.start()

    def key(self, room: str) -> str:
        return f"{self.controller.settings.storages[0].id}/{room}"

    def loaded(self, room: str) -> bool:
        key = self.key(room)
        attached = self.controller.client._storages.get(key.split("/")[0])
        state = attached.engine.rooms.get(room) if attached else None
        return bool(
            state is not None and state.complete and self.controller.result(key) is state.result
        )

    def unread(self, room: str) -> int:
        item = self.controller.rooms.item(self.key(room))
        return item.unread if item is not None else 0

    async def close(self) -> None:
        await self.controller.shutdown()
        self.window.quitting = True
        self.window.close()
        self.window.deleteLater()


async def until(what: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo did not get ready in time")
        await asyncio.sleep(0.02)


async def settle(window: Any, seconds: float = 0.3) -> None:
    """Let layouts, delayed item layouts and thumbnails finish, then stick to the bottom."""
    await asyncio.sleep(seconds)
    window.timeline.doItemsLayout()
    window.timeline.scrollToBottom()
    await asyncio.sleep(0.05)  # Qt paints while the loop runs (no processEvents in a task)


def save(widget: Any, path: Path) -> None:
    image = widget.grab()
    if not image.save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path} ({image.width()}x{image.height()})")


def over(window: Any, dialog: Any, path: Path, top: int | None = None) -> None:
    """The window, dimmed, with ``dialog`` in front of it and a soft shadow: how a modal
    dialog looks on a desktop (offscreen, each top-level window is grabbed alone)."""
    from PySide6.QtCore import QPoint, QRect
    from PySide6.QtGui import QColor, QPainter

    base = window.grab()
    front = dialog.grab()
    painter = QPainter(base)
    painter.fillRect(base.rect(), QColor(0, 0, 0, 70))
    y = max(16, (base.height() - front.height()) // 2) if top is None else top
    at = QPoint((base.width() - front.width()) // 2, y)
    for i in range(12, 0, -1):
        painter.setPen(QColor(0, 0, 0, 0))
        painter.setBrush(QColor(0, 0, 0, 6))
        painter.drawRoundedRect(QRect(at, front.size()).adjusted(-i, -i + 6, i, i + 6), 10, 10)
    painter.drawPixmap(at, front)
    painter.end()
    if not base.save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path} ({base.width()}x{base.height()})")


async def render(out: Path, home: Path) -> None:
    from nacl.signing import SigningKey
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from bucket_chat_desktop.gui import theme
    from bucket_chat_desktop.gui.widgets.settings_dialog import open_settings
    from bucket_chat_desktop.gui.setup.wizard import SetupWizard
    from bucket_chat_desktop.keys.identity import Identity
    from bucket_chat_desktop.settings import Settings, StorageSettings

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    store = home / "shared-folder"
    # A fixed device key: the same fingerprints in every rendering (and no key file, so
    # the wizard shows what a new user sees).
    identity = Identity(ME, SigningKey(b"U" * 32))  # a purple avatar
    await build_demo(store, identity.signing_key, home)
    rooms = ["release-2-4", "general", "design-reviews", "vendor-contracts"]

    def settings() -> Settings:
        entry = StorageSettings(str(store), "Team share", list(rooms))
        return Settings(
            user_id=ME,
            displayname="Maya Chen",
            storages=[entry],
            last_room=f"{entry.id}/release-2-4",
        )

    # -- light -------------------------------------------------------------------------
    theme.apply(app, "light")
    s = Session(settings(), identity)
    await until(lambda: all(s.loaded(r) for r in rooms))
    await until(lambda: s.controller.current == s.key("release-2-4"))
    await priya_writes(store)  # arrives while Maya is in another room: unread badge
    await until(lambda: s.unread("general") > 0)
    await settle(s.window, 0.6)
    save(s.window, out / "main-light.png")

    s.window.members_button.click()
    await settle(s.window)
    save(s.window, out / "members.png")
    s.window.members_button.click()

    s.features.shortcut.activated.emit()  # Ctrl+K
    QTest.keyClicks(s.features.switcher.search, "re")
    await settle(s.window)
    save(s.window, out / "switcher.png")
    QTest.keyClick(s.features.switcher.search, Qt.Key.Key_Escape)

    # Ctrl+Shift+F once the rooms' text is searchable (indexed after they were read)
    indexes = [a.index for a in s.controller.client._storages.values()]
    await until(lambda: not any(i.text_pending for i in indexes))
    s.search.open(everywhere=True)
    QTest.keyClicks(s.search.panel.field, "release")
    await until(lambda: s.search.panel.model.rowCount() > 0)
    await settle(s.window)
    save(s.window, out / "search.png")
    QTest.keyClick(s.search.panel.field, Qt.Key.Key_Escape)

    dialog = open_settings(s.window, s.controller)
    dialog.resize(820, 560)
    await settle(s.window)
    over(s.window, dialog, out / "settings.png")
    dialog.reject()

    s.controller.select_room(s.key("vendor-contracts"))
    await until(lambda: s.window.banner.isVisible())
    await settle(s.window)
    s.window.banner_button.click()
    await until(lambda: s.features.audit_dialog is not None)  # opened once its view is read
    audit = s.features.audit_dialog
    assert audit is not None
    audit.resize(860, 590)
    if audit.table.model().rowCount():
        audit.table.selectRow(0)
    await settle(s.window)
    banner = s.window.banner.mapTo(s.window, s.window.banner.rect().bottomLeft()).y()
    over(s.window, audit, out / "audit.png", top=banner + 14)  # the banner stays in view
    audit.close()
    await s.close()

    # what a new user sees: no passphrase in the environment, so the wizard asks for one
    passphrase = os.environ.pop("BUCKET_CHAT_PASSPHRASE")
    store_choice = os.environ.pop("BUCKET_CHAT_KEY_STORE")
    wizard = SetupWizard(Settings())
    wizard.resize(900, 660)
    wizard.show()
    await asyncio.sleep(0.2)
    page = wizard.identity_page
    page.user_id.setText(ME)
    page.user_id.deselect()
    page.display_name.setText("Maya Chen")
    await asyncio.sleep(0.1)
    save(wizard, out / "wizard.png")
    wizard.cancel_tasks()
    wizard.close()
    wizard.deleteLater()
    os.environ["BUCKET_CHAT_PASSPHRASE"] = passphrase
    os.environ["BUCKET_CHAT_KEY_STORE"] = store_choice

    # -- dark ---------------------------------------------------------------------------
    theme.apply(app, "dark")
    d = Session(settings(), identity)
    await until(lambda: all(d.loaded(r) for r in rooms))
    await until(lambda: d.controller.current == d.key("release-2-4"))
    await priya_writes(store, "Leftover cake is in the fridge 🍰")
    await until(lambda: d.unread("general") > 0)
    await settle(d.window, 0.6)
    save(d.window, out / "main-dark.png")
    await d.close()


def _quiet_offscreen(_kind: Any, _context: Any, message: str) -> None:
    """Qt's messages, minus the offscreen platform's "This plugin does not support …"."""
    if not message.startswith("This plugin does not support"):
        print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNGs go")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bucket-chat-demo-") as tmp:
        home = Path(tmp)
        _prepare_environment(home)
        import qasync
        from PySide6.QtCore import qInstallMessageHandler
        from PySide6.QtGui import QFontDatabase
        from PySide6.QtWidgets import QApplication

        qInstallMessageHandler(_quiet_offscreen)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Bucket Chat")
        if not any("emoji" in f.lower() for f in QFontDatabase.families()):
            print(
                "note: no colour emoji font (Debian: apt-get install fonts-noto-color-emoji);"
                " emoji will show as boxes",
                file=sys.stderr,
            )
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            loop.run_until_complete(render(out, home))
    return 0


if __name__ == "__main__":
    sys.exit(main())
