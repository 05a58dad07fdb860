"""The one guard between Python code and Qt's virtual calls: an exception never reaches Qt.

Why this exists (PySide6 6.11 / shiboken6 6.11, CPython 3.11): when a Python override of
a Qt virtual (a delegate's ``paint``/``sizeHint``, a model's ``data``, a widget's
``paintEvent``...) raises while Qt was entered from Python — ``grab()``, ``show()``, a
model signal emitted by our code, qasync's ``run_forever`` — shiboken stores the
exception to re-raise later and first prepends "Error calling Python override of ..." to
its message (``storePythonOverrideErrorOrPrint``). For an exception set by C code
(``datetime.fromtimestamp`` past the year 9999, a ``TypeError`` from a call with the wrong
arguments) CPython 3.11 hands shiboken the exception *unnormalised*, and shiboken reads
its ``args`` as if it were an exception object: SIGSEGV in ``PepException_GetArgs``. Even
when it does not crash, the paint ends with the painter left in ``save()`` state and the
error pops up later in an unrelated Python call.

So no exception may leave an override. Every override of a Qt virtual in ``gui/`` is
either declared through :func:`guard` (fallback: Qt's own implementation, or a given
value) or lives in a :class:`SafeDelegate` subclass, whose ``paint``/``sizeHint``/
``helpEvent`` are guarded here once: a row that fails is drawn as "This message could not
be shown: <why>", the painter is always restored, and the failure is logged (once per
kind of failure, not once per frame). ``tests/gui/test_safe.py`` checks every class in
``gui/`` for unguarded overrides.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QHelpEvent, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

log = logging.getLogger("bucket_chat.gui")

Index = QModelIndex | QPersistentModelIndex
F = TypeVar("F", bound=Callable[..., Any])

GUARDED = "__bucket_chat_guarded__"
FAILURE_COLOR = "#d64545"
_BASE = object()  # fallback: call the Qt base class's implementation
_reported: dict[tuple[str, str, str], int] = {}
_MAX_KINDS = 500


def why(exc: BaseException) -> str:
    """A short, single-line reason for the user (the full traceback goes to the log)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:159] + "…"


def report(where: str, exc: BaseException) -> str:
    """Log a failure in a Qt callback and return :func:`why`. The traceback is logged the
    first time a kind of failure happens; repeats (a row repainted at every scroll) only
    count, so a hostile row cannot flood the log."""
    reason = why(exc)
    key = (where, type(exc).__name__, reason)
    seen = _reported.get(key, 0)
    if len(_reported) < _MAX_KINDS or seen:
        _reported[key] = seen + 1
    if not seen:
        log.error("%s failed: %s", where, reason, exc_info=exc)
    return reason


def failures() -> dict[tuple[str, str, str], int]:
    """How often each kind of failure happened (where, type, reason): for tests and the
    log at exit."""
    return dict(_reported)


def guard(fallback: Any = _BASE) -> Callable[[F], F]:
    """Declare a Python override of a Qt virtual. An exception it raises is reported and
    the call answers ``fallback`` instead: a value, a callable given the same arguments,
    or by default Qt's own implementation of the method."""

    def decorate(method: F) -> F:
        name = method.__name__

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # nothing may reach shiboken
                where = f"{type(self).__name__}.{name}"
                report(where, exc)
                try:
                    if fallback is _BASE:
                        return _base_call(type(self), wrapper, name, self, args, kwargs)
                    if callable(fallback):
                        return fallback(self, *args, **kwargs)
                    return fallback
                except Exception as again:
                    report(where + " (fallback)", again)
                    return None

        setattr(wrapper, GUARDED, True)
        return wrapper  # type: ignore[return-value]

    return decorate


def _base_call(
    cls: type, wrapper: Any, name: str, obj: Any, args: Any, kwargs: dict[str, Any]
) -> Any:
    owner = next(c for c in cls.__mro__ if c.__dict__.get(name) is wrapper)
    return getattr(super(owner, obj), name)(*args, **kwargs)


def paint_failure(painter: QPainter, rect: QRect, text: str) -> None:
    """Draw one line saying what could not be shown (plain text, elided to the row)."""
    painter.setPen(QColor(FAILURE_COLOR))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    box = rect.adjusted(14, 2, -14, -2)
    shown = QFontMetrics(painter.font()).elidedText(text, Qt.TextElideMode.ElideRight, box.width())
    painter.drawText(box, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), shown)


class SafeDelegate(QStyledItemDelegate):
    """Base of every item delegate in the app. Subclasses implement ``paint_row``,
    ``row_size`` and optionally ``row_help``; they must not override ``paint``,
    ``sizeHint`` or ``helpEvent`` (the test suite checks). ``paint_row`` gets a painter
    that is saved before and restored after, whatever happens; it must not leave its own
    ``save()`` unbalanced (use ``with painter_state(painter):``). It is clipped to the
    row's rectangle."""

    failure_text = "This row could not be shown"

    def paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        super().paint(painter, option, index)

    def row_size(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return super().sizeHint(option, index)

    def row_help(
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        return bool(super().helpEvent(event, view, option, index))

    def failure_size(self, option: QStyleOptionViewItem) -> QSize:
        return QSize(option.rect.width(), QFontMetrics(option.font).height() + 12)

    @guard(None)
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        try:
            # A row paints only inside its own rectangle: text from storage can reach far
            # past its line (a letter under dozens of combining marks is stacked a hundred
            # pixels high), and must not be drawn over the rows around it.
            painter.setClipRect(option.rect, Qt.ClipOperation.IntersectClip)
            self.paint_row(painter, option, index)
        except Exception as exc:  # drawn as a failure row instead
            reason = report(f"{type(self).__name__}.paint_row", exc)
            painter.restore()
            painter.save()
            # cover what was drawn before the failure, then say what happened
            painter.fillRect(option.rect, option.palette.base())
            paint_failure(painter, QRect(option.rect), f"{self.failure_text}: {reason}")
        finally:
            painter.restore()

    @guard(lambda self, option, index: self.failure_size(option))
    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        size = self.row_size(option, index)
        return size if isinstance(size, QSize) else self.failure_size(option)

    @guard(False)
    def helpEvent(
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        return bool(self.row_help(event, view, option, index))


@contextlib.contextmanager
def painter_state(painter: QPainter) -> Iterator[QPainter]:
    """``painter.save()`` ... ``painter.restore()``, restored also on an exception."""
    painter.save()
    try:
        yield painter
    finally:
        painter.restore()
