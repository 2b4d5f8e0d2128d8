"""A worker's background delivery: the next piece is received while the last is verified
and written, without sharing a buffer and without losing the delivery's error."""

from __future__ import annotations

import threading

import pytest

from app.download.source import SourceFailed
from app.download.swarm import _Delivery


class _Worker:
    address = "192.0.2.1:6699"


class _Swarm:
    """Records what it was given; ``gate`` holds a delivery until the test opens it."""

    def __init__(self) -> None:
        self.delivered: list[tuple[int, bytes]] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        self.fail_on: int | None = None
        self.useful = True

    def deliver(self, worker, index: int, offset: int, piece: memoryview) -> bool:
        self.started.set()
        assert self.gate.wait(10)
        if index == self.fail_on:
            raise SourceFailed(f"piece {index} failed verification", corrupt=True)
        self.delivered.append((index, bytes(piece)))
        return self.useful


def test_the_next_piece_is_received_into_the_other_buffer_while_one_is_delivered():
    swarm = _Swarm()
    delivery = _Delivery(swarm, _Worker())
    first = delivery.buffer(4)
    first[:] = b"AAAA"
    assert delivery.hand_over(0, 0, first)
    assert swarm.started.wait(10)
    second = delivery.buffer(4)  # piece 0 is still being delivered
    second[:] = b"BBBB"
    swarm.gate.set()
    assert delivery.hand_over(1, 4, second)
    delivery.close()
    assert swarm.delivered == [(0, b"AAAA"), (1, b"BBBB")]


def test_a_corrupt_piece_found_in_the_background_stops_the_worker_at_the_next_piece():
    swarm = _Swarm()
    swarm.fail_on = 0
    swarm.gate.set()
    delivery = _Delivery(swarm, _Worker())
    delivery.hand_over(0, 0, delivery.buffer(4))
    with pytest.raises(SourceFailed) as failed:
        delivery.hand_over(1, 4, delivery.buffer(4))
    assert failed.value.corrupt
    delivery.close()
    assert swarm.delivered == []  # the piece after the corrupt one was not delivered


def test_close_waits_for_the_piece_in_flight_and_raises_its_error():
    swarm = _Swarm()
    swarm.fail_on = 3
    delivery = _Delivery(swarm, _Worker())
    delivery.hand_over(3, 0, delivery.buffer(4))
    assert swarm.started.wait(10)
    swarm.gate.set()
    with pytest.raises(SourceFailed):
        delivery.close()
    assert not any(t.name.startswith("deliver 192.0.2.1") for t in threading.enumerate())


def test_a_delivery_that_finds_nothing_useful_left_is_told_to_the_worker():
    swarm = _Swarm()
    swarm.gate.set()
    swarm.useful = False
    delivery = _Delivery(swarm, _Worker())
    assert delivery.hand_over(0, 0, delivery.buffer(4))
    assert delivery.hand_over(1, 4, delivery.buffer(4)) is False
    assert delivery.settle() is False
    delivery.close()
    assert [index for index, _ in swarm.delivered] == [0, 1]
