"""The ports tests hand to servers they start: free, outside the kernel's ephemeral range,
never handed out twice, and apart between pytest-xdist workers."""

from __future__ import annotations

import socket

import pytest

from bench import ports


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has handed out no port yet."""
    monkeypatch.setattr(ports, "_cursor", None)
    monkeypatch.setattr(ports, "_mine", None)


def test_ports_are_free_distinct_and_below_the_ephemeral_range(fresh: None) -> None:
    handed = [ports.free_port() for _ in range(200)]
    assert len(set(handed)) == len(handed)
    assert all(ports.FLOOR <= p < ports._ephemeral_start() for p in handed)
    for port in handed[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # raises if taken


def test_a_run_of_ports_is_consecutive_and_not_handed_out_again(fresh: None) -> None:
    first = ports.free_ports(3)
    later = {ports.free_port() for _ in range(50)}
    assert not later & {first, first + 1, first + 2}


def test_a_taken_port_is_skipped(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    free = ports.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        monkeypatch.setattr(ports, "_ports", lambda: iter([taken, free]))
        assert ports.free_port() == free


def test_workers_get_blocks_that_do_not_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    blocks = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        blocks.append(set(ports._block(32768)))
    assert not (blocks[0] & blocks[1] or blocks[1] & blocks[2] or blocks[0] & blocks[2])
    assert min(min(b) for b in blocks) >= ports.FLOOR
    assert max(max(b) for b in blocks) < 32768
