"""The local SQLite cache of verified events, audits, trust pins and sync cursors."""

from .db import Index, IndexedEvent, TimelineRow, index_path_for

__all__ = ["Index", "IndexedEvent", "TimelineRow", "index_path_for"]
