"""Which piece each source fetches next (pure, no Qt, not thread-safe: the swarm locks it).

Pieces go in file order to whichever source asks next (in order: a download that is
interrupted leaves one contiguous verified prefix behind, and a player can start on it).
Pieces that a stream needs soon (``set_priority``) go first. Once every missing piece is
being fetched by someone, an idle source may fetch a copy of a piece another source still
owes (the endgame), so a slow source never holds up the end; at most one extra copy each.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable


class PiecePicker:
    """Missing, in-flight and done pieces of one file, and who fetches what."""

    #: A piece is asked of at most this many sources at once (the endgame's copy included).
    MAX_COPIES = 2

    def __init__(self, verified: bytearray | bytes) -> None:
        self.count = len(verified)
        self._done = bytearray(verified)
        self._missing = sorted(i for i, ok in enumerate(verified) if not ok)
        self._next = 0  # index into _missing where unassigned pieces may start
        self._in_flight: dict[int, set[Hashable]] = {}
        self._since: dict[int, int] = {}  # piece -> order it was first asked for
        self._asked = 0
        self._priority: list[int] = []

    # ------------------------------------------------------------ queries

    def is_done(self, index: int) -> bool:
        return bool(self._done[index])

    def finished(self) -> bool:
        return not self._missing

    def missing_count(self) -> int:
        return len(self._missing)

    def has_unassigned(self) -> bool:
        """Some missing piece nobody is fetching."""
        return any(index not in self._in_flight for index in self._missing)

    def in_flight(self) -> dict[int, frozenset]:
        return {index: frozenset(who) for index, who in self._in_flight.items()}

    def states(self) -> bytes:
        """One byte per piece: 0 missing, 1 being fetched, 2 done (for a piece map)."""
        states = bytearray(2 if ok else 0 for ok in self._done)
        for index in self._in_flight:
            states[index] = 1
        return bytes(states)

    # ------------------------------------------------------------ choosing

    def set_priority(self, pieces: Iterable[int]) -> None:
        """Fetch these first, in this order (a stream's window); replaces the last list."""
        self._priority = [i for i in pieces if 0 <= i < self.count and not self._done[i]]

    def next_for(
        self,
        source: Hashable,
        endgame: bool = True,
        worth_copying: Callable[[int], bool] | None = None,
        urgent: bool = True,
        help_late: bool = True,
    ) -> int | None:
        """The piece ``source`` should ask for next, or None when it has nothing to do.

        In the endgame only pieces ``worth_copying`` says yes to are copied (the swarm knows
        who is faster). Without ``urgent`` the priority pieces are left to others (a source
        whose pipeline is already busy would only deliver them late); ``help_late`` copies
        a priority piece another source is late with (only worth it while a stream waits).
        """
        for index in self._priority if urgent else ():
            if not self._done[index] and index not in self._in_flight:
                return self._assign(index, source)
        # A stream's piece another source is late with: help (the streaming endgame).
        for index in self._priority if urgent and help_late else ():
            who = self._in_flight.get(index)
            if (
                who is not None
                and source not in who
                and len(who) < self.MAX_COPIES
                and worth_copying is not None
                and worth_copying(index)
            ):
                return self._assign(index, source)
        while self._next < len(self._missing) and (
            self._done[self._missing[self._next]] or self._missing[self._next] in self._in_flight
        ):
            self._next += 1
        later = set() if urgent else set(self._priority)
        for position in range(self._next, len(self._missing)):
            index = self._missing[position]
            if index not in self._in_flight and index not in later:
                return self._assign(index, source)
        if not endgame:
            return None
        # Endgame: copy the piece asked for longest ago that this source does not have yet.
        candidates = [
            index
            for index, who in self._in_flight.items()
            if source not in who
            and len(who) < self.MAX_COPIES
            and (worth_copying is None or worth_copying(index))
        ]
        if not candidates:
            return None
        return self._assign(min(candidates, key=self._since.__getitem__), source)

    def _assign(self, index: int, source: Hashable) -> int:
        if index not in self._in_flight:
            self._in_flight[index] = set()
            self._since[index] = self._asked
            self._asked += 1
        self._in_flight[index].add(source)
        return index

    # ------------------------------------------------------------ outcomes

    def release(self, index: int, source: Hashable) -> None:
        """``source`` will not deliver ``index`` (failed, dropped, busy): someone else may."""
        who = self._in_flight.get(index)
        if who is None:
            return
        who.discard(source)
        if not who:
            del self._in_flight[index]
            self._since.pop(index, None)
            if not self._done[index]:
                self._next = 0  # it is free again: look from the start

    def complete(self, index: int) -> set:
        """``index`` verified and written; returns the other sources still fetching it."""
        others = self._in_flight.pop(index, set())
        self._since.pop(index, None)
        if not self._done[index]:
            self._done[index] = 1
            self._missing.remove(index)
            self._next = 0
        return others
