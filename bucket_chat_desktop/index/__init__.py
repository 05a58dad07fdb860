"""The local SQLite cache of verified events, audits, trust pins and sync cursors."""

from .db import CachedEvent, Index, IndexedEvent, TimelineRow, index_path_for
from .search import SearchHit, SearchPage, Snippet

__all__ = [
    "CachedEvent",
    "Index",
    "IndexedEvent",
    "SearchHit",
    "SearchPage",
    "Snippet",
    "TimelineRow",
    "index_path_for",
]
