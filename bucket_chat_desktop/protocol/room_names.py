"""Room names that may pass for another room's.

A room's name is what its metadata says: anyone who can write to a storage can create a
room and call it anything, "Payroll" beside the real Payroll, "Gеneral" (a Cyrillic "е")
beside General, or "payroll", the id of another room. ``name_lookalikes`` is the one rule
every front end marks such names by (the join dialog, the room list, the quick switcher,
notification titles, ``bucket-chat rooms``): a name looks like another when their
skeletons are the same (``untrusted_text.skeleton``: look-alike letters made one, case
folded, spaces dropped), whether it looks like another room's name or another room's id.

Of two names that look the same, the one whose own letters are suspect (``id_warning``:
look-alike letters, mixed scripts, invisible characters) is marked; when neither or both
are, both are: rooms have no trustworthy order (a creation date is what its creator
wrote), so which one is the real one cannot be decided here. A name that looks like
another room's id is always marked.

Pure: no I/O, no Qt. Linear in the number of rooms (a dictionary per look), so a list
of thousands of rooms is judged at once, and a few rooms (``judge``) are judged again
against only the rooms that share their looks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from .untrusted_text import id_warning, skeleton

MAX_NAMED = 3  # other rooms a reason names; the rest are counted


@dataclass(frozen=True, slots=True)
class NamedRoom:
    """One room as a list shows it. ``name`` is the name as shown (cleaned by the caller:
    ``display_name_safe``), "" when it has none (then it is judged by nothing, but its
    id still counts). ``label`` is how a reason names this room (its id when "");
    ``here``: one of the rooms listed ("another room here"), else one the user is in
    elsewhere ("another room you are in")."""

    key: str  # what tells two rooms apart: a room id in one storage, "<storage>/<room>" across
    room_id: str
    name: str
    label: str = ""
    here: bool = True

    @property
    def called(self) -> str:
        return self.label or self.room_id


def name_look(text: str) -> str:
    """What a room's name or id looks like (two with one look can be taken for each
    other)."""
    return skeleton(text.casefold())


def name_looks(room_ids: Sequence[str]) -> list[str]:
    """``name_look`` of each room id, in a few calls for the lot: a storage may list
    200,000 ids, and the join dialog compares every name it reads with all of them.
    Room ids are ASCII letters, digits, '.', '_' and '-' (``ROOM_ID_RE``), which
    ``name_look`` lower-cases and folds pair by pair (``skeleton``); joined by "/" (which
    no pair holds, and which is neither dropped nor folded) they are folded at once and
    split again. Any other text is looked at one by one."""
    joined = "/".join(room_ids)
    if (
        joined.isascii()
        and joined.isprintable()
        and " " not in joined
        and joined.count("/") == len(room_ids) - 1
    ):
        return name_look(joined).split("/") if room_ids else []
    return [name_look(r) for r in room_ids]


def suspect_name(name: str) -> bool:
    """Whether a name's own letters may deceive: ``id_warning``'s checks (look-alike
    letters, mixed scripts, invisible characters), spaces allowed."""
    return id_warning(name.replace(" ", "")) is not None


def name_lookalikes(
    rooms: Iterable[NamedRoom], judge: Collection[str] | None = None
) -> dict[str, str]:
    """Room key -> why its name may pass for another room's, in words naming the other
    rooms; rooms not listed are not marked. ``judge``: the keys to answer for (all when
    None); every room shares what it looks like with the others all the same. Of two
    rooms given with one key, the first is the one kept. Each answer reads a fixed part
    of its groups (thousands of rooms of one name cost no more each than two)."""
    kept: dict[str, NamedRoom] = {}
    for given in rooms:
        kept.setdefault(given.key, given)
    by_name: dict[str, _Group] = {}
    by_id: dict[str, _Group] = {}
    looks: dict[str, str] = {}
    for each in kept.values():
        if each.name:
            look = looks[each.key] = name_look(each.name)
            by_name.setdefault(look, _Group()).add(each)
        by_id.setdefault(name_look(each.room_id), _Group()).add(each)
    out: dict[str, str] = {}
    # per look, the rooms whose ids look so and whose names do not: a room's reason by
    # id leaves out those its reason by name names (red team rt62: thousands of rooms
    # whose ids differ in case only walked the whole group each, 4 s for 8,192)
    unnamed: dict[str, _Group] = {}
    for key in kept if judge is None else judge:
        room = kept.get(key)
        if room is None or key not in looks:
            continue
        look = looks[key]
        reasons: list[str] = []
        names = by_name[look]
        mine = names.suspect(room)
        by_names = marked_by_name(len(names), mine, names.suspects - (1 if mine else 0))
        if by_names:
            reasons += names.said("name", room)
        ids = by_id.get(look)
        if ids is not None:  # rooms whose ids look like it (said once: by name if so)
            if by_names:  # those not named by name already: worked out once per look
                if look not in unnamed:
                    unnamed[look] = ids.without(names)
                reasons += unnamed[look].said("id", room)
            else:
                reasons += ids.said("id", room)
        if reasons:
            out[key] = " ".join(reasons)
    return out


def marked_by_name(count: int, suspect: bool, others_suspect: int) -> bool:
    """Whether a room whose name shares its look with ``count`` rooms' (itself among
    them) is marked for it: a plain name imitated by another's look-alike letters is not
    (that one is), otherwise all of them are."""
    return count > 1 and (suspect or not others_suspect)


class _Group:
    """The rooms of one look, listed ones and others apart, and how many of them have
    suspect names."""

    __slots__ = ("_keys", "_suspect", "away", "here", "suspects")

    def __init__(self) -> None:
        self.here: list[NamedRoom] = []
        self.away: list[NamedRoom] = []
        self._keys: set[str] = set()
        self._suspect: dict[str, bool] = {}
        self.suspects = 0

    def add(self, room: NamedRoom) -> None:
        (self.here if room.here else self.away).append(room)
        self._keys.add(room.key)
        if room.name and suspect_name(room.name):
            self._suspect[room.key] = True
            self.suspects += 1

    def __len__(self) -> int:
        return len(self._keys)

    def holds(self, room: NamedRoom) -> bool:
        return room.key in self._keys

    def suspect(self, room: NamedRoom) -> bool:
        return self._suspect.get(room.key, False)

    def without(self, other: _Group) -> _Group:
        """The rooms of this group that ``other`` does not hold."""
        rest = _Group()
        for room in (*self.here, *self.away):
            if not other.holds(room):
                rest.add(room)
        return rest

    def said(self, what: str, room: NamedRoom) -> list[str]:
        """The reasons, naming the group's rooms other than ``room`` (a fixed part of
        the group is read, however large)."""
        mine = 1 if self.holds(room) else 0
        here = [r for r in self.here[: MAX_NAMED + 1] if r.key != room.key]
        away = [r for r in self.away[: MAX_NAMED + 1] if r.key != room.key]
        return said_like(
            what,
            here,
            away,
            len(self.here) - (mine if room.here else 0),
            len(self.away) - (0 if room.here else mine),
        )


def said_like(
    what: str,
    here: list[NamedRoom],
    away: list[NamedRoom],
    here_count: int | None = None,
    away_count: int | None = None,
) -> list[str]:
    """ "Its name looks like the <what> of another room here (a, b)", and of another
    room the user is in; ``*_count``: how many there are (``len`` of the list when None)."""
    out = []
    for rooms, count, among in (
        (here, here_count, "another room here"),
        (away, away_count, "another room you are in"),
    ):
        count = len(rooms) if count is None else count
        if count > 0:
            first = [r.called for r in rooms[:MAX_NAMED]]
            more = count - len(first)
            named = ", ".join(first) + (f" and {more:,} more" if more > 0 else "")
            out.append(f"Its name looks like the {what} of {among} ({named}).")
    return out
