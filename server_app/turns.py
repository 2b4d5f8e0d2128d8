"""Fair turns for the index server's request work. Pure Python, no Qt.

One pass of the event loop may do ``budget`` seconds of request work; past that,
connections wait in a queue. The queue is first come, first served, except that a
request counts as made later the longer its connection has been busy without a
quiet spell, waiting included: a connection that asks now and then goes ahead of
those that ask non-stop, which keep their order among themselves, even in the first
round of a flood, when none of them has been answered yet.

Times are passed in (``now``, from ``time.monotonic()``), so the order can be tested
without a clock.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Generic, TypeVar

#: Seconds of request work one pass of the event loop may do; the rest wait for the
#: next pass, so timers, other connections and the admin window keep up.
TURN_BUDGET = 0.010
#: A connection quiet for longer than this (seconds) counts as newly busy when it asks again.
QUIET_GAP = 0.25
#: A request counts as made later by BUSY_WEIGHT times how long its connection has been
#: busy, at most BUSY_CAP seconds later. (Among connections busy since the same moment
#: the order stays first come, first served.)
BUSY_WEIGHT = 10.0
BUSY_CAP = 10.0

T = TypeVar("T")


@dataclass(eq=False)
class BusyClock:
    """How long one connection has had requests for the server without a quiet spell.

    The seconds before ``busy_started``, plus the time since (while ``quiet_since`` is
    None). Short pauses (QUIET_GAP), like the round trip between a reply and the next
    request, neither count nor end a busy spell.
    """

    busy_before: float = 0.0
    busy_started: float = 0.0
    quiet_since: float | None = float("-inf")
    #: The pass in which this connection last had a turn.
    turn_pass: int = -1

    def asking(self, now: float) -> None:
        """The connection asks for a turn: a busy spell starts or goes on."""
        if self.quiet_since is not None:
            if now - self.quiet_since > QUIET_GAP:
                self.busy_before = 0.0
            self.busy_started = now
            self.quiet_since = None

    def answered(self, now: float) -> None:
        """Everything the connection asked so far is answered."""
        if self.quiet_since is None:
            self.busy_before += now - self.busy_started
            self.quiet_since = now


class TurnQueue(Generic[T]):
    """Who may work now, and who goes next (see the module docstring)."""

    def __init__(self, budget: float = TURN_BUDGET) -> None:
        self.budget = budget
        #: Seconds of request work done in this pass, and the pass's number.
        self.spent = 0.0
        self.pass_number = 0
        # Two heaps over the same entries: by the priority while a connection's busy
        # time still counts, and by its cap. An entry is a one-item list holding the
        # owner, emptied (None) once it is served.
        self._by_busy: list[tuple[float, int, list[T | None]]] = []
        self._by_cap: list[tuple[float, int, list[T | None]]] = []
        self.waiting = 0
        self._order = itertools.count()

    def start_pass(self) -> None:
        """A new pass of the event loop: a fresh budget."""
        self.spent = 0.0
        self.pass_number += 1

    def spend(self, seconds: float) -> None:
        self.spent += seconds

    @property
    def budget_left(self) -> bool:
        """More turns may be given in this pass (always at least one)."""
        return self.spent < self.budget or not self.spent

    def request(self, owner: T, clock: BusyClock, now: float) -> bool:
        """True when ``owner`` may go on now; else it is queued and ``pop()`` returns it later.

        It goes on at once if nobody waits, this pass has done less than ``budget`` of
        work and it has not had its turn in this pass (so one that pipelines requests
        cannot take it all).
        """
        clock.asking(now)
        if not self.waiting and self.spent < self.budget and clock.turn_pass != self.pass_number:
            clock.turn_pass = self.pass_number
            return True
        # Its priority at a later time t is min(now + BUSY_WEIGHT * busy(t), now + BUSY_CAP),
        # busy(t) = busy_before + t - busy_started: the first part minus BUSY_WEIGHT * t is
        # the same for every t, so each heap's order never changes while entries wait.
        entry: list[T | None] = [owner]
        order = next(self._order)
        growing = now + BUSY_WEIGHT * (clock.busy_before - clock.busy_started)
        heapq.heappush(self._by_busy, (growing, order, entry))
        heapq.heappush(self._by_cap, (now + BUSY_CAP, order, entry))
        self.waiting += 1
        return False

    def pop(self, now: float) -> T | None:
        """The queued owner with the lowest priority at ``now``, or None."""
        for heap in (self._by_busy, self._by_cap):
            while heap and heap[0][2][0] is None:
                heapq.heappop(heap)
        if not self._by_busy:
            return None
        growing, order, _ = self._by_busy[0]
        capped, cap_order, _ = self._by_cap[0]
        heap = self._by_busy
        if (capped, cap_order) < (growing + BUSY_WEIGHT * now, order):
            heap = self._by_cap
        _, _, entry = heapq.heappop(heap)
        owner, entry[0] = entry[0], None  # the other heap drops it when it is on top
        self.waiting -= 1
        if not self.waiting:
            self._by_busy.clear()
            self._by_cap.clear()
        return owner

    def waiting_owners(self) -> list[T]:
        """The owners queued now, in no particular order."""
        return [entry[0] for _, _, entry in self._by_busy if entry[0] is not None]

    def clear(self) -> None:
        self._by_busy.clear()
        self._by_cap.clear()
        self.waiting = 0
