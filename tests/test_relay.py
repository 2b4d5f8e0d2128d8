"""The index server's relay port with plain sockets: pairing, tokens, addresses, limits."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from app.network import protocol as p
from server_app.relay import OFF_MESSAGE, Relay, RelayRefused, RelaySettings
from tests.waiting import poll

TOKEN = "ab" * 16
OTHER = "cd" * 16
HERE = "127.0.0.1"


@pytest.fixture
def relay():
    relays: list[Relay] = []

    def make(**options: object) -> Relay:
        settings = RelaySettings(enabled=True, host=HERE, port=0, **options)  # type: ignore[arg-type]
        made = Relay(settings)
        made.start()
        relays.append(made)
        return made

    yield make
    for made in relays:
        made.stop()


def arrive(relay: Relay, token: str, extra: bytes = b"") -> socket.socket:
    sock = socket.create_connection((HERE, relay.port), timeout=5)
    sock.sendall(p.encode(p.Relayed(token=token)) + extra)
    return sock


def read_exactly(sock: socket.socket, count: int, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < count and time.monotonic() < deadline:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_by_relay(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True once the relay closed ``sock`` (end of input or a reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait_for(condition, timeout: float = 5.0) -> bool:
    return poll(condition, timeout)


def test_two_connections_with_one_token_are_piped_both_ways(relay):
    r = relay()
    r.expect(TOKEN, f"{HERE}:5000", f"{HERE}:6000")
    # Bytes sent right behind the line (a TLS ClientHello) wait for the partner, not lost.
    downloader = arrive(r, TOKEN, b"hello holder")
    holder = arrive(r, TOKEN)
    assert read_exactly(holder, 12) == b"hello holder"
    holder.sendall(b"x" * 100_000)
    assert read_exactly(downloader, 100_000) == b"x" * 100_000
    assert wait_for(lambda: r.running() == 1)
    # Counted once sent: the last chunk may be counted just after the peer has it.
    assert wait_for(lambda: r.snapshot()[0].bytes == 100_012)
    assert r.snapshot()[0].downloader == f"{HERE}:5000"
    downloader.close()  # either side closing ends the relay
    assert closed_by_relay(holder)
    assert wait_for(lambda: r.running() == 0)
    assert r.relayed_total == 1
    holder.close()


def test_a_token_is_single_use_and_an_unknown_one_is_closed(relay):
    r = relay()
    stranger = arrive(r, OTHER)
    assert closed_by_relay(stranger)
    r.expect(TOKEN, f"{HERE}:5000", f"{HERE}:6000")
    a, b = arrive(r, TOKEN), arrive(r, TOKEN)
    assert wait_for(lambda: r.running() == 1)
    third = arrive(r, TOKEN)
    assert closed_by_relay(third)
    for sock in (a, b, third, stranger):
        sock.close()


def test_junk_instead_of_relayed_is_closed(relay):
    r = relay()
    sock = socket.create_connection((HERE, r.port), timeout=5)
    sock.sendall(b'{"op":"DOWNLOAD","hash":"x"}\n')
    assert closed_by_relay(sock)
    sock.close()


def test_a_connection_from_another_address_cannot_take_the_token(relay):
    r = relay()
    # The index knows the holder at 10.9.9.9: a second connection from here is refused.
    r.expect(TOKEN, f"{HERE}:5000", "10.9.9.9:6000")
    first = arrive(r, TOKEN)
    # Each arrival has its own thread: the intruder comes once the first one waits.
    assert wait_for(lambda: r.half_paired() == 1)
    intruder = arrive(r, TOKEN)
    assert closed_by_relay(intruder)
    assert r.running() == 0 and r.awaited() == 1
    assert r.refused_total == 1
    first.close()
    intruder.close()


def test_a_lone_connection_is_closed_when_its_token_expires(relay):
    r = relay(pair_timeout=0.3)
    r.expect(TOKEN, f"{HERE}:5000", f"{HERE}:6000")
    started = time.monotonic()
    lone = arrive(r, TOKEN)
    assert closed_by_relay(lone, timeout=3.0)
    assert time.monotonic() - started < 2.0
    assert r.awaited() == 0
    lone.close()


def test_off_is_refused_with_the_clear_message():
    r = Relay(RelaySettings(enabled=False, host=HERE, port=0))
    with pytest.raises(RelayRefused) as refused:
        r.expect(TOKEN, f"{HERE}:1", f"{HERE}:2")
    assert refused.value.message == OFF_MESSAGE
    assert "does not relay" in OFF_MESSAGE


def test_the_cap_counts_awaited_and_running_relays_and_says_busy(relay):
    r = relay(max_relays=1)
    r.expect(TOKEN, f"{HERE}:5000", f"{HERE}:6000")
    with pytest.raises(RelayRefused) as refused:
        r.expect(OTHER, f"{HERE}:5001", f"{HERE}:6001")
    assert refused.value.code is p.ErrorCode.BUSY and refused.value.retry_after
    a, b = arrive(r, TOKEN), arrive(r, TOKEN)
    assert wait_for(lambda: r.running() == 1)
    with pytest.raises(RelayRefused):
        r.expect(OTHER, f"{HERE}:5001", f"{HERE}:6001")
    a.close()
    b.close()
    assert wait_for(lambda: r.running() == 0)
    r.expect(OTHER, f"{HERE}:5001", f"{HERE}:6001")  # room again


def test_the_per_transfer_rate_holds(relay):
    r = relay(rate=100_000)
    r.expect(TOKEN, f"{HERE}:5000", f"{HERE}:6000")
    a, b = arrive(r, TOKEN), arrive(r, TOKEN)
    assert wait_for(lambda: r.running() == 1)
    started = time.monotonic()
    b.sendall(b"y" * 200_000)
    assert read_exactly(a, 200_000, timeout=10) == b"y" * 200_000
    took = time.monotonic() - started
    # 200 kB at 100 kB/s, less a 64 KiB burst: at least about 1.3 s.
    assert took >= 1.2, took
    a.close()
    b.close()


def test_stop_ends_running_relays(relay):
    r = relay()
    r.expect(TOKEN, f"{HERE}:5000", f"{HERE}:6000")
    a, b = arrive(r, TOKEN), arrive(r, TOKEN)
    assert wait_for(lambda: r.running() == 1)
    r.stop()
    assert closed_by_relay(a) and closed_by_relay(b)
    a.close()
    b.close()


def test_the_command_line_switches_the_relay_on_with_its_limits():
    from server_app.__main__ import parse_args

    args = parse_args(["--relay", "--relay-port", "0", "--relay-rate", "2M", "--max-relays", "3"])
    assert args.relay_settings == RelaySettings(
        enabled=True, host="0.0.0.0", port=0, rate=2_000_000, max_relays=3
    )
    assert parse_args([]).relay_settings.enabled is False  # off by default
    with pytest.raises(SystemExit):
        parse_args(["--relay", "--relay-total-rate", "fast"])


def test_a_side_that_pauses_reading_does_not_end_the_relay(relay):
    """Each direction used to set the shared sockets' timeouts: a downloader that paused
    reading for half a second (a rate limit, a disk write) cut the relay."""
    r = relay()
    r.expect(TOKEN, f"{HERE}:5000", f"{HERE}:6000")
    downloader = arrive(r, TOKEN)
    holder = arrive(r, TOKEN)
    assert wait_for(lambda: r.running() == 1)
    payload = bytes(range(256)) * 40_000  # 10 MB: more than the sockets' buffers
    sender = threading.Thread(target=holder.sendall, args=(payload,), daemon=True)
    sender.start()
    paused = threading.Event()
    assert not paused.wait(1.0)  # the downloader reads nothing for a second
    assert read_exactly(downloader, len(payload)) == payload
    sender.join(10)
    assert r.running() == 1
    downloader.close()
    holder.close()


def test_one_asker_cannot_hold_every_relay(relay):
    r = relay(max_relays=8)
    tokens = [f"{n:032x}" for n in range(3)]
    r.expect(tokens[0], "10.0.0.1:5000", "10.0.0.9:6000")
    r.expect(tokens[1], "10.0.0.1:5000", "10.0.0.8:6000")
    with pytest.raises(RelayRefused) as refused:
        r.expect(tokens[2], "10.0.0.1:5000", "10.0.0.7:6000")
    assert refused.value.code is p.ErrorCode.BUSY
    r.expect(tokens[2], "10.0.0.2:5000", "10.0.0.7:6000")  # another asker still gets one


def test_connections_that_never_say_relayed_are_capped_per_address(relay):
    from server_app.relay import MAX_ARRIVING_PER_IP

    r = relay()
    silent = [
        socket.create_connection((HERE, r.port), timeout=5) for _ in range(MAX_ARRIVING_PER_IP)
    ]
    assert wait_for(lambda: sum(r._arriving.values()) == MAX_ARRIVING_PER_IP)
    one_more = socket.create_connection((HERE, r.port), timeout=5)
    assert closed_by_relay(one_more)  # at once, not after the line's deadline
    for sock in [*silent, one_more]:
        sock.close()
