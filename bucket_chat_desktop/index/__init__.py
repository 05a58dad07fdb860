"""The local SQLite cache of verified events, audits, trust pins and sync cursors."""

from .db import CachedEvent, Index, IndexedEvent, TimelineRow, index_path_for

__all__ = ["CachedEvent", "Index", "IndexedEvent", "TimelineRow", "index_path_for"]
