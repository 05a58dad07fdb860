"""What each kind of finding means and what to do about it, for people.

One `Explanation` per `Kind`; the audit dialog, the findings table and the main window's
banner show them. Plain text only (the callers escape when they build rich text).
"""

from __future__ import annotations

from typing import NamedTuple

from ...protocol.findings import Kind


class Explanation(NamedTuple):
    title: str
    meaning: str
    action: str


_TAMPER = (
    "Someone with write access to the storage (or a broken sync tool) changed the folder. "
    "Ask the people in the room whether anyone edited files by hand; if nobody did, treat "
    "it as tampering."
)

EXPLANATIONS: dict[Kind, Explanation] = {
    Kind.LINE_TOO_LONG: Explanation(
        "Line too long",
        "A line of this segment is longer than 256 KiB. No chat app writes such a line, so "
        "it was not read: it is damage, or an attempt to slow readers down.",
        "Nothing from that line is shown. " + _TAMPER,
    ),
    Kind.BAD_ENCODING: Explanation(
        "Not valid text",
        "A line is not valid UTF-8 text: the file was damaged on disk or in transfer, or "
        "edited by a program that is not a chat app.",
        "That line is skipped; the rest of the segment is read. Restore the file from a "
        "backup if you have one.",
    ),
    Kind.BAD_JSON: Explanation(
        "Unreadable line",
        "A line is not one valid JSON value, so it cannot be an event.",
        "That line is skipped. " + _TAMPER,
    ),
    Kind.TOO_DEEP: Explanation(
        "Too deeply nested",
        "A line nests objects or lists more than 16 levels deep, which no event needs.",
        "That line is skipped. " + _TAMPER,
    ),
    Kind.TOO_DENSE: Explanation(
        "Too many values in one line",
        "A line packs more JSON values into its bytes than any event needs (more than "
        "one per 16 bytes, and more than 128): shaped to use up this device's memory "
        "when read.",
        "That line is skipped. " + _TAMPER,
    ),
    Kind.FLOAT: Explanation(
        "Fractional number",
        "Events may only hold whole numbers; a fraction, NaN or Infinity makes the signed "
        "form ambiguous, so a conforming app never writes one.",
        "That line is skipped. " + _TAMPER,
    ),
    Kind.BAD_SCHEMA: Explanation(
        "Malformed event",
        "A line is JSON but not a well-formed event: a required field is missing or has "
        "the wrong type.",
        "That line is skipped. If everyone uses an up-to-date app, "
        + _TAMPER[0].lower()
        + _TAMPER[1:],
    ),
    Kind.WRONG_ROOM: Explanation(
        "Event from another room",
        "An event names a different room than the folder it is stored in: it was copied "
        "here, perhaps to make it look as if it was said in this room.",
        "It is not shown here. Find out who copied files between rooms.",
    ),
    Kind.TRUNCATED: Explanation(
        "Cut-off last line",
        "The segment's last line is incomplete: a write was interrupted, or the file was "
        "copied while it was being written.",
        "If a sync tool is still copying, wait and open the room again. If it stays, the "
        "file is damaged and the cut-off message is lost.",
    ),
    Kind.SEGMENT_NAME_MISMATCH: Explanation(
        "File name does not match its contents",
        "A segment's name carries the time span of its events; this one's events are from "
        "another time. The file was renamed or its contents replaced.",
        "Its events are still checked one by one. " + _TAMPER,
    ),
    Kind.SEGMENT_TOO_LARGE: Explanation(
        "Segment too large",
        "A segment is larger than 64 MiB, far beyond anything an app writes, so it was not "
        "downloaded.",
        "Its contents, if any, are not shown. Find out where the file came from.",
    ),
    Kind.SEGMENT_ABANDONED: Explanation(
        "Segment mostly garbage",
        "A segment held more than 1,000 lines that are not events; the rest of it was not "
        "read, so the room's history is not complete.",
        "Its good lines before that point are shown. No app writes such a file: find out "
        "where it came from and remove it.",
    ),
    Kind.SEGMENT_UNREADABLE: Explanation(
        "File could not be read",
        "A segment of this room could not be read as it stands now: the storage did not "
        "answer, it is no regular file, or it is still being written. \u201cAudit "
        "says\u201d tells which.",
        "The room is read again later. If this stays: check the storage (permissions, "
        "connection) and who else writes to it.",
    ),
    Kind.SEGMENT_VANISHED: Explanation(
        "Segment gone or changed in storage",
        "A segment this device read and checked earlier is no longer in the storage as it "
        "was read: removed, moved, replaced by a link or folder, or rewritten (another size "
        "or checksum). Segments are never deleted or rewritten. Its events are still shown, "
        "as checked here, but the verdict is not final while the storage does not hold it.",
        "The report goes once the storage lists the segment as it was read (put it back from "
        "a backup). " + _TAMPER,
    ),
    Kind.UNEXPECTED_OBJECT: Explanation(
        "Stray file",
        "A file in the room's folder is not a message segment. It was ignored.",
        "Nothing to do. Remove it if you know where it came from.",
    ),
    Kind.EMPTY_SEGMENT: Explanation(
        "Empty segment",
        "A segment holds no events. Harmless, but no app writes empty segments.",
        "Nothing to do.",
    ),
    Kind.INVALID_SIGNATURE: Explanation(
        "Bad signature — message changed",
        "This event's signature does not match its contents: it was modified after its "
        "sender signed it, or it names a key that did not sign it. It is hidden, and the "
        "next event of the same device reports a gap.",
        "The original cannot be recovered from this copy. " + _TAMPER,
    ),
    Kind.SENDER_MISMATCH: Explanation(
        "Written in someone else's name",
        "A device key that belongs to one person signed an event claiming to come from "
        "another. The event is hidden.",
        "Find out who controls that key: it tried to speak for another member.",
    ),
    Kind.GAP: Explanation(
        "Missing link in the chain",
        "Every event names the hash of its device's previous event. This event's "
        "predecessor is not in the room: a segment was deleted or has not arrived yet, or "
        "an earlier event was modified (it then also fails its signature).",
        "If a sync tool is still copying, wait and open the room again. Otherwise messages "
        "before this one were removed or changed. " + _TAMPER,
    ),
    Kind.FORK: Explanation(
        "History forked",
        "Two events of one device follow the same predecessor. A device never does that on "
        "its own: its key was used on two machines at once, or a rewritten history was "
        "added next to the real one.",
        "Ask the sender whether they copied their key to another machine. If not, their "
        "key may be in someone else's hands.",
    ),
    Kind.REPLAY: Explanation(
        "Conflicting copies of one event",
        "The same event id is stored more than once with different contents. One copy per "
        "device that signed it is shown (one whose signature is good); when two devices "
        "signed it, replies, reactions, edits and deletions of it apply to neither.",
        "Someone re-uploaded a changed version of an event, or used another member's event "
        "id for a message of their own. Compare the copies listed in the details.",
    ),
    Kind.KEY_CHANGED: Explanation(
        "New key nobody introduced",
        "This person now signs with a key that none of their earlier devices introduced. "
        "It may be a reinstall that lost the old key, or someone else writing under their "
        "name.",
        "Ask them — not in this chat — whether they set up a new device. Compare the "
        "fingerprint in Members and mark the device as verified if it matches.",
    ),
    Kind.KEY_CONFLICT: Explanation(
        "Two keys claim one person",
        "Two or more device keys sign as the same person and none of them introduced the "
        "others. One may be an impostor who backdated their messages to look first, so "
        "none of them is trusted.",
        "Ask the person — not in this chat — which device is theirs, compare its "
        "fingerprint in Members and mark it verified; the other keys then show as not theirs.",
    ),
    Kind.IMPERSONATION: Explanation(
        "Unsigned message under a signing person's name",
        "A message without a signature claims to be from someone whose devices sign every "
        "message. Anyone with access to the storage can write such a line.",
        "Do not believe it came from them. " + _TAMPER,
    ),
    Kind.TRUNCATED_CHAIN: Explanation(
        "A member claims to have read messages that are missing",
        "A member's device (named in the details) signed that it had read a message of "
        "someone's that is no longer in the room. Either the newest part of that person's "
        "history was deleted from the storage, or the claim is false: it is only that "
        "member's word, and any member can sign such a claim about anyone.",
        "Ask both, not in this chat: the author what they sent last, and the member named "
        "whether they read it. If the author's last messages are missing here, someone with "
        "write access to the storage (or a broken sync tool) removed them; if nobody did, "
        "treat it as tampering. If the author sent nothing more, that member's claim was "
        "false.",
    ),
    Kind.UNREAD: Explanation(
        "History could not be read completely",
        "Part of the room could not be listed (the storage did not answer, or refused). "
        "What is shown was checked, but the verdict is not final until everything is read.",
        "The app tries again by itself. If it persists, check the storage connection.",
    ),
    Kind.READ_STOPPED: Explanation(
        "Reading stopped on a fault of this app",
        "This app stopped reading the room's history on an error of its own (a bug), not "
        "one the storage reported. What is shown was checked, but the verdict is not final "
        "until the room is read whole.",
        "Please report it, with the app's log. The app tries again by itself, after a "
        "minute and then less often.",
    ),
    Kind.METADATA_SIGNER_UNKNOWN: Explanation(
        "Room metadata signed by someone else",
        "metadata.json is signed, but not by a key of the person it names as the room's "
        "creator: someone else wrote the room's name and creator.",
        "Do not rely on the room name or creator shown. " + _TAMPER,
    ),
    Kind.MISSING_JOIN: Explanation(
        "Wrote before joining",
        "A device's first event is not a join. Other or older apps do this; it is no sign "
        "of tampering.",
        "Nothing to do.",
    ),
    Kind.DATED_AHEAD: Explanation(
        "Dated in the future",
        "A message is dated more than an hour after this computer's clock. It is not shown "
        "yet: placed by its date it would stay below every newer message, the room's last "
        "line for as long as its date is ahead. Its signature and chain are checked like "
        "any other, and the sender's later messages are shown in their places.",
        "Check this computer's date and time. If they are right, the sender's clock is set "
        "wrong (ask them to fix it), or someone wanted a message to stay at the bottom. "
        "It appears by itself an hour before its date.",
    ),
    Kind.DATED_BEFORE_WITNESS: Explanation(
        "Dated before it appeared",
        "Another member's device signed that, as of a later date, the sender's previous "
        "message was still the newest of theirs it had read. If that is true, this message "
        "was written, or put in the storage, after that date, though it is dated earlier "
        "and shown at its date among older messages. It is only that member's claim: a "
        "message sent late from a device that was offline, or a member whose device had "
        "not synced for a while, looks the same.",
        "Read it as news, not as something said back then. If the sender did not say "
        "they sent it late, ask them when they wrote it; if the member named has no "
        "reason to lie, someone may have backdated it to look as if it had been said "
        "earlier.",
    ),
    Kind.METADATA_MISSING: Explanation(
        "No room metadata",
        "The room has no metadata.json, so its name and creator are unknown. The messages "
        "are checked all the same.",
        "Nothing to do, unless the room used to have metadata.",
    ),
    Kind.METADATA_UNSIGNED: Explanation(
        "Unsigned room metadata",
        "The room's name and creation details were written without a signature (by the "
        "reference app), so they cannot be checked. The messages are checked.",
        "Nothing to do.",
    ),
    Kind.METADATA_INVALID: Explanation(
        "Room metadata rejected",
        "metadata.json is malformed, too large, names another room, or its signature is "
        "bad: the room's name or creator may have been changed.",
        "Do not rely on the room name shown. Ask the room's creator. " + _TAMPER,
    ),
    Kind.METADATA_CHANGED: Explanation(
        "Room metadata rewritten",
        "metadata.json is not what this device read before: it was replaced (another name "
        "or creator, even one well signed), removed or damaged. A room's metadata is "
        "written once, by its creator, and never changed: someone rewrote the room's name "
        "and creator. The name and creator read first are still shown.",
        "Ask the room's creator what the room is called. " + _TAMPER,
    ),
    Kind.BLOB_MISMATCH: Explanation(
        "Attachment does not match its message",
        "A file's bytes in storage differ from the size or SHA-256 that its signed message "
        "announces: the file was replaced or damaged after it was sent.",
        "The file is never shown or opened. Ask the sender to send it again. " + _TAMPER,
    ),
    Kind.RELATION_INVALID: Explanation(
        "Malformed reply, reaction, edit or deletion",
        "A reaction, edit or deletion names no usable target or carries unusable content "
        "(an empty or over-long reaction, an edit without text), or acts on something it "
        "cannot act on (an edit of a membership, a deletion of a deletion).",
        "It is ignored: the message it points at is shown as it was. No client of this "
        "protocol writes such events; ask who wrote it. " + _TAMPER,
    ),
    Kind.RELATION_CROSS_ROOM: Explanation(
        "Reply or reaction pointing into another room",
        "An event names a message of a different room as its target. Relations only ever "
        "act within their own room, so it is ignored.",
        "Nothing is changed by it. A correct client never writes one: it was written by "
        "hand or by a faulty or hostile client. " + _TAMPER,
    ),
    Kind.RELATION_NOT_SENDER: Explanation(
        "Someone tried to edit or delete another person's message",
        "An edit or deletion of a message was written by someone other than the message's "
        "sender, or its signature does not prove it comes from the sender of a verified "
        "message. It is ignored: the message keeps its text and stays visible.",
        "Find out who wrote it (the sender shown in the finding may itself be forged). " + _TAMPER,
    ),
}


def explain(kind: Kind) -> Explanation:
    return EXPLANATIONS.get(kind) or Explanation(kind.value, "", "")
