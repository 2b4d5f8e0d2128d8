"""The fair-turn queue on its own: no Qt, no sockets, times passed in."""

from __future__ import annotations

from server_app.turns import BUSY_CAP, QUIET_GAP, BusyClock, TurnQueue

T0 = 1000.0


def busy_clock(busy: float) -> BusyClock:
    """A connection busy for ``busy`` seconds at T0 (0: it asks after a quiet spell)."""
    if busy == 0:
        return BusyClock()
    return BusyClock(busy_before=busy, busy_started=T0, quiet_since=None)


def test_the_first_asker_of_a_pass_goes_at_once_and_only_once_per_pass():
    queue: TurnQueue[str] = TurnQueue(budget=1.0)
    clock = BusyClock()
    assert queue.request("a", clock, T0) is True
    assert queue.request("a", clock, T0) is False  # a second turn in the same pass waits
    assert queue.pop(T0) == "a" and queue.waiting == 0
    queue.start_pass()
    assert queue.request("a", clock, T0) is True


def test_everyone_waits_once_the_budget_is_spent_and_nobody_jumps_the_queue():
    queue: TurnQueue[str] = TurnQueue(budget=0.010)
    queue.spend(0.011)
    assert queue.request("a", BusyClock(), T0) is False
    queue.start_pass()
    assert queue.budget_left
    # Somebody waits: a newcomer queues behind it even with budget left.
    assert queue.request("b", BusyClock(), T0) is False
    assert [queue.pop(T0), queue.pop(T0), queue.pop(T0)] == ["a", "b", None]


def test_a_pass_always_has_room_for_one_turn():
    queue: TurnQueue[str] = TurnQueue(budget=0.0)
    assert queue.budget_left
    queue.spend(0.001)
    assert not queue.budget_left


def test_the_queue_puts_the_least_busy_first_and_each_entry_comes_out_once():
    queue: TurnQueue[str] = TurnQueue()
    queue.spend(1.0)  # this pass's budget is used up: everyone queues
    for name, busy in (("flooder", 5.0), ("mid", 0.05), ("newcomer", 0.0)):
        assert queue.request(name, busy_clock(busy), T0) is False
    assert [queue.pop(T0) for _ in range(3)] == ["newcomer", "mid", "flooder"]
    # A crowd busy for almost the same time comes out in order, each once, without spinning.
    crowd = [f"c{n}" for n in range(2000)]
    for n, name in enumerate(crowd):
        queue.request(name, busy_clock(0.1 + n * 1e-6), T0)
    assert [queue.pop(T0) for _ in range(2000)] == crowd
    assert queue.waiting == 0 and queue.pop(T0) is None


def test_waiting_counts_as_busy_but_never_more_than_the_cap():
    queue: TurnQueue[str] = TurnQueue()
    queue.spend(1.0)
    queue.request("old flooder", busy_clock(100.0), T0)  # capped: T0 + BUSY_CAP
    later = T0 + BUSY_CAP - 1.0
    queue.request("newcomer", BusyClock(), later)  # priority: later
    assert queue.pop(later) == "newcomer"
    queue.request("late flooder", busy_clock(100.0), later)
    # The old flooder's cap has come before the late one's.
    assert [queue.pop(later), queue.pop(later)] == ["old flooder", "late flooder"]


def test_a_short_pause_keeps_a_busy_spell_and_a_quiet_one_ends_it():
    clock = BusyClock()
    clock.asking(T0)
    clock.answered(T0 + 2.0)
    assert clock.busy_before == 2.0
    clock.asking(T0 + 2.0 + QUIET_GAP / 2)  # a round trip: still busy
    assert clock.busy_before == 2.0 and clock.quiet_since is None
    clock.answered(T0 + 3.0)
    clock.asking(T0 + 3.0 + QUIET_GAP * 2)  # a real quiet spell: starts afresh
    assert clock.busy_before == 0.0


def test_clear_empties_the_queue():
    queue: TurnQueue[str] = TurnQueue()
    queue.spend(1.0)
    queue.request("a", BusyClock(), T0)
    queue.clear()
    assert queue.waiting == 0 and queue.pop(T0) is None
