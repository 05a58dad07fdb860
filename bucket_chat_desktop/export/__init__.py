"""Export a room: its audited, verified timeline turned into files a person keeps.

One job, no Qt: the CLI (``bucket-chat export``) and the desktop app hand it a frozen
snapshot of a room (``RoomSnapshot``: the engine's audit, its relations and findings),
a way to read pages of rows with their bodies (``ChatClient.timeline_page`` /
``SyncEngine.timeline_page``, the app's own read path) and a way to fetch a blob
verified against its signed hash (``sync/blobs.download``). Two formats
(docs/EXPORT.md):

- ``html``: one self-contained page (inline CSS, no script, a Content-Security-Policy
  that forbids every remote resource) with every message's trust state, replies, edits,
  deletions, reactions and member events, and attachments copied into
  ``<name>_files/`` beside it after their SHA-256 was checked;
- ``jsonl``: a header line, then one line per event as read, with its trust state and,
  for targets, the relations applied to it.

Everything read from storage is hostile: escaped (``untrusted_text``), bidi controls
spelled out, file names sanitised. A room is written a page at a time: the whole room
is never one string in memory, and the output takes its name only when complete.

The package itself holds only what a front end needs before it exports (``FORMATS``,
``ExportError``): the writers are in ``runner`` (``export_room``) and ``snapshot``
(``snapshot_of``), imported by whoever exports.
"""

from .errors import FORMATS, ExportError, ExportExistsError

__all__ = ["FORMATS", "ExportError", "ExportExistsError"]
