"""Several channels to one orchestrator target, each call given to the least busy one.

A gRPC channel keeps one HTTP/2 connection per replica, and the kernel hands a connection,
not a call, to one of the workers sharing a port with ``SO_REUSEPORT``: on one channel,
every call a gateway sends to a replica lands on the same worker. `ChannelPool` holds
`size` channels to the same target, each with subchannels of its own (grpc's local
subchannel pool: no two channels share a connection), so each replica sees `size`
connections, which the kernel spreads over its workers by a hash of their ports.

That hash spreads connections unevenly (8 connections over 2 workers often split 6/2, or
7/1), so calls are not dealt in strict turns, which would give every connection the same
rate and hold the worker with more connections to the others' pace. Each call goes to the
channel with the fewest calls in flight, the next one in turn among equals: a worker that
falls behind keeps its calls longer, its channels look busier, and new calls go elsewhere.
Each channel keeps its own round robin over replicas, health checks and drain behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Generic, TypeVar

import grpc

__all__ = ["ChannelPool", "PooledStub"]

S = TypeVar("S")

LOCAL_SUBCHANNELS = ("grpc.use_local_subchannel_pool", 1)
"""The channel option giving a channel subchannels (connections) of its own."""


class ChannelPool:
    """`channels` to one target; `pick` chooses the one a new call goes to."""

    __slots__ = ("_in_flight", "_turn", "channels")

    def __init__(self, channels: Sequence[grpc.aio.Channel]) -> None:
        if not channels:
            raise ValueError("a channel pool needs at least one channel")
        self.channels = tuple(channels)
        self._in_flight = [0] * len(self.channels)
        self._turn = 0

    @classmethod
    def open(cls, size: int, channel: Callable[[int], grpc.aio.Channel]) -> ChannelPool:
        """`size` channels made by `channel(index)`, which must give each one its own
        subchannels (`LOCAL_SUBCHANNELS`)."""
        return cls([channel(i) for i in range(max(size, 1))])

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Calls started and not yet done, per channel."""
        return tuple(self._in_flight)

    def pick(self) -> int:
        """The channel with the fewest calls in flight, looking from the next in turn."""
        counts = self._in_flight
        n = len(counts)
        best = start = self._turn
        self._turn = start + 1 if start + 1 < n else 0
        least = counts[start]
        i = start
        for _ in range(n - 1):
            if not least:
                break
            i = i + 1 if i + 1 < n else 0
            if counts[i] < least:
                best, least = i, counts[i]
        return best

    def started(self, index: int, call: Any) -> Any:
        """Count `call` on channel `index` until it is done; returns it."""
        self._in_flight[index] += 1
        call.add_done_callback(partial(self._done, index))
        return call

    def _done(self, index: int, _call: object) -> None:
        self._in_flight[index] -= 1

    def stub(self, factory: Callable[[grpc.aio.Channel], S]) -> S | PooledStub[S]:
        """A stub (``factory(channel)``, a generated ``...Stub`` class) over every channel,
        each call dealt by `pick`; with one channel, that channel's own stub (nothing to
        deal, nothing to count)."""
        if len(self.channels) == 1:
            return factory(self.channels[0])
        return PooledStub(self, [factory(channel) for channel in self.channels])

    async def close(self) -> None:
        """Close every channel, cancelling the calls still running on them."""
        for channel in self.channels:
            await channel.close()


class _Dealt:
    """One method of a pooled stub: calls the same method of the chosen channel's stub."""

    __slots__ = ("_methods", "_pool")

    def __init__(self, pool: ChannelPool, methods: list[Callable[..., Any]]) -> None:
        self._pool = pool
        self._methods = methods

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        pool = self._pool
        index = pool.pick()
        return pool.started(index, self._methods[index](*args, **kwargs))


class PooledStub(Generic[S]):
    """Every method of a generated stub, each call dealt over the pool's channels; called
    as the stub is (``stub.Chat(request, timeout=..., metadata=...)``) and answering with
    the chosen channel's call object."""

    def __init__(self, pool: ChannelPool, stubs: list[S]) -> None:
        for name in vars(stubs[0]):
            setattr(self, name, _Dealt(pool, [getattr(s, name) for s in stubs]))

    def __getattr__(self, name: str) -> Any:  # for type checkers: methods are set per stub
        raise AttributeError(name)
