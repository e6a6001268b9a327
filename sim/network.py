"""Network and store: transfers between workers and the shared store (Redis), and its latencies.

Every worker has its own link, and the store has one link that all transfers share; each link is
a `ProcessorSharing` server in bytes per ms. A transfer's two ends also work (CPU-ms per byte,
per direction), on the host's CPUs when containers share them.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Hashable
from typing import Any, Literal

import simpy

from dag.resources import ResourceConfig
from sim.host import Host
from sim.platform import Platform
from sim.sharing import ProcessorSharing

Direction = Literal["up", "down"]


class Network:
    """Transfers between workers and the store, each link shared fairly (processor sharing).

    A transfer of ``nbytes`` first pays the store's per-operation latency (`store_op_ms`), then
    its bytes are offered to the worker's link and to the store's link at the same time; it
    completes when both have served all its bytes. Approximation: the two shares are not coupled,
    so a transfer limited by one link still takes its full fair share of the other (the slower
    share dominates its time; the faster link's other users are served a little pessimistically).
    Each link carries uploads and downloads alike (one capacity per link, not full duplex).
    Beside the links, the transfer's two ends work too (serialising, socket copies: the
    platform's per-direction ``upload_bytes_per_ms`` / ``download_bytes_per_ms``): a job of
    the shared host's CPUs, or a floor on the transfer's time when it has CPUs of its own.
    Measured on one machine, concurrent transfers are bound by that work, not by one store link
    (``benchmarks/store_transfers.py``).

    Parameters
    ----------
    env : simpy.Environment
        The simulation clock (ms).
    platform : Platform
        Bandwidths (bytes/ms) and latencies (ms).
    host : Host, optional
        Where the latencies' work runs (default: the platform's ``host_cpus``).

    Attributes
    ----------
    store_link : ProcessorSharing
        The store's link, bytes per ms.
    bytes_up, bytes_down : int
        Bytes moved to and from the store.
    n_transfers : int
        Transfers made.
    n_store_ops : int
        Store commands: every transfer (one GET or SET) plus every `store_op`.
    n_publishes : int
        Pub/sub messages published.
    """

    def __init__(
        self, env: simpy.Environment, platform: Platform, host: Host | None = None
    ) -> None:
        self.env = env
        self.platform = platform
        self.host = host if host is not None else Host.of(env, platform)
        self.store_link = ProcessorSharing(env, platform.store_bandwidth_bytes_per_ms, name="store")
        self._links: dict[Hashable, tuple[ResourceConfig, ProcessorSharing]] = {}
        self.bytes_up = 0
        self.bytes_down = 0
        self.n_transfers = 0
        self.n_store_ops = 0
        self.n_publishes = 0
        self._alone_busy_until: dict[Hashable, float] = {}

    def link(self, worker_key: Hashable, config: ResourceConfig) -> ProcessorSharing:
        """The link of worker ``worker_key``, created on first use with its config's bandwidth.

        Raises
        ------
        ValueError
            If the worker's link already exists for another config.
        """
        known = self._links.get(worker_key)
        if known is None:
            bandwidth = self.platform.link_bytes_per_ms(config)
            known = (config, ProcessorSharing(self.env, bandwidth, name=f"link {worker_key}"))
            self._links[worker_key] = known
        elif known[0] != config:
            raise ValueError(
                f"worker {worker_key!r} has a link for {known[0]}, asked again with {config}"
            )
        return known[1]

    def transfer(
        self,
        worker_key: Hashable,
        config: ResourceConfig,
        nbytes: int,
        direction: Direction = "down",
        *,
        latency: bool = True,
    ) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: move ``nbytes`` between the worker and the store; return elapsed ms.

        ``latency=False`` skips the per-operation latency (a command pipelined behind another,
        e.g. the later chunks of a stream).

        Use as ``ms = yield from network.transfer(worker_id, config, nbytes, "up")``.

        Raises
        ------
        ValueError
            If nbytes is not an int >= 0 or direction is not "up" or "down".
        """
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(
                f"transfer for worker {worker_key!r}: nbytes={nbytes!r} must be an int >= 0"
            )
        if direction not in ("up", "down"):
            raise ValueError(
                f"transfer for worker {worker_key!r}: direction={direction!r} is not 'up' or 'down'"
            )
        worker_link = self.link(worker_key, config)
        start_ms = self.env.now
        self.n_transfers += 1
        self.n_store_ops += 1
        if direction == "up":
            self.bytes_up += nbytes
        else:
            self.bytes_down += nbytes
        if latency and self.platform.store_op_ms > 0:
            yield self.host.work(self.platform.store_op_ms)
        if nbytes > 0:
            # Both links serve the bytes at once; waiting on each in turn is waiting for both.
            on_worker_link = worker_link.serve(nbytes)
            on_host = self._copy_work(nbytes, direction)
            yield self.store_link.serve(nbytes)
            yield on_worker_link
            if on_host is not None:
                yield on_host
        return self.env.now - start_ms

    def _copy_work(self, nbytes: int, direction: Direction) -> simpy.Event | None:
        """The work of moving `nbytes` at the transfer's two ends (serialising, socket copies),
        done beside the links: CPU of a shared host, or a floor on the transfer's time with
        CPUs of its own; None when the platform sets no such work."""
        rate = self.platform.own_transfer_rate(direction)
        if rate is None:
            # Presets without per-direction rates: a shared host's CPU at the store's bandwidth.
            if not self.host.shared:
                return None
            rate = self.platform.store_bandwidth_bytes_per_ms
        if math.isinf(rate):
            return None
        return self.host.work(nbytes / rate)

    def transfer_alone(
        self,
        worker_key: Hashable,
        config: ResourceConfig,
        nbytes: int,
        direction: Direction = "down",
        *,
        latency: bool = True,
    ) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: a transfer that has its worker's link to itself until it ends (a
        worker performs its transfers one after another); returns its ms.

        Same timing as `transfer`, with fewer events: the worker's link is a plain delay, only
        the store's shared link runs as a processor-sharing server.

        Raises
        ------
        RuntimeError
            If the worker's link is still busy with an earlier transfer.
        """
        now = self.env.now
        if self._alone_busy_until.get(worker_key, -math.inf) > now + 1e-9 or (
            worker_key in self._links and self._links[worker_key][1].n_active
        ):
            raise RuntimeError(f"transfer on worker {worker_key!r} while its link is busy")
        self.n_transfers += 1
        self.n_store_ops += 1
        if direction == "up":
            self.bytes_up += nbytes
        else:
            self.bytes_down += nbytes
        delay = self.platform.store_op_ms if latency else 0.0
        if delay > 0:
            yield self.host.work(delay)
            delay = self.env.now - now
        bandwidth = self.platform.link_bytes_per_ms(config)
        link_ms = 0.0 if math.isinf(bandwidth) else nbytes / bandwidth
        start = self.env.now
        self._alone_busy_until[worker_key] = start + link_ms
        store_ms = 0.0
        if nbytes > 0:
            on_store = self.store_link.serve(nbytes)
            on_host = self._copy_work(nbytes, direction)
            store_ms = yield on_store
            if on_host is not None:
                store_ms = max(store_ms, (yield on_host))
        wait_ms = start + link_ms - self.env.now
        if wait_ms > 1e-12:
            yield self.env.timeout(wait_ms)
        return delay + max(link_ms, store_ms)

    def store_op(self) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: one small store command (INCR, SETNX, EXISTS); return elapsed ms."""
        self.n_store_ops += 1
        start_ms = self.env.now
        if self.platform.store_op_ms > 0:
            yield self.host.work(self.platform.store_op_ms)
        return self.env.now - start_ms

    def publish(self) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: publish one message; returns once subscribers have it (elapsed ms)."""
        self.n_publishes += 1
        start_ms = self.env.now
        if self.platform.pubsub_ms > 0:
            yield self.host.work(self.platform.pubsub_ms)
        return self.env.now - start_ms

    def ideal_transfer_ms(
        self, config: ResourceConfig, nbytes: int, direction: Direction | None = None
    ) -> float:
        """Time of a transfer alone on idle links (see `Platform.ideal_transfer_ms`), ms."""
        return float(self.platform.ideal_transfer_ms(config, nbytes, direction))
