"""Network and store: transfers between workers and the shared store (Redis), and its latencies.

Every worker has its own link, and the store has one link that all transfers share (a
`ProcessorSharing` server in bytes per ms). A worker performs its transfers one after another,
as the real drivers do, so its link serves one transfer at a time. A transfer's two ends also
work (CPU-ms per byte, per direction), on the host's CPUs when containers share them.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Hashable
from typing import Any, Literal

import simpy
from simpy.events import Timeout

from dag.resources import ResourceConfig
from sim.host import Host
from sim.platform import Platform
from sim.sharing import ProcessorSharing

Direction = Literal["up", "down"]


class Network:
    """Transfers between workers and the store: the store's link shared fairly (processor
    sharing), each worker's link serving one transfer at a time.

    A transfer of ``nbytes`` first pays the store's per-operation latency (`store_op_ms`), then
    its bytes cross the worker's link (``nbytes`` over the link's bandwidth, which follows the
    worker's memory) and the store's link at the same time; it completes when both have served
    all its bytes. A worker performs its transfers one after another, as the real drivers do
    (one connection, one thread), so a transfer on a worker whose link is still busy is a bug
    of the caller. Each link carries uploads and downloads alike (one capacity per link, not
    full duplex). Beside the links, the transfer's two ends work too (serialising, socket
    copies: the platform's per-direction ``upload_bytes_per_ms`` / ``download_bytes_per_ms``):
    a job of the shared host's CPUs, or a floor on the transfer's time when it has CPUs of its
    own. Measured on one machine, concurrent transfers are bound by that work, not by one store
    link (``benchmarks/store_transfers.py``).

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
    bytes_payload : int
        Bytes sent inside invocation payloads (to the platform's API, not the store).
    """

    def __init__(
        self, env: simpy.Environment, platform: Platform, host: Host | None = None
    ) -> None:
        self.env = env
        self.platform = platform
        self.host = host if host is not None else Host.of(env, platform)
        self.store_link = ProcessorSharing(env, platform.store_bandwidth_bytes_per_ms, name="store")
        self._configs: dict[Hashable, ResourceConfig] = {}
        self.bytes_up = 0
        self.bytes_down = 0
        self.n_transfers = 0
        self.n_store_ops = 0
        self.n_publishes = 0
        self.bytes_payload = 0
        self._link_busy_until: dict[Hashable, float] = {}
        self._link_bandwidth: dict[ResourceConfig, float] = {}  # bytes/ms per config
        self._copy_rate = {d: self._copy_rate_of(d) for d in ("up", "down")}
        self._op_ms = platform.store_op_ms
        self._pubsub_ms = platform.pubsub_ms
        self._own_cpus = not self.host.shared  # latencies are plain delays, no host CPU work

    def _copy_rate_of(self, direction: Direction) -> float | None:
        """Bytes per ms of the ends' work in `direction`, None when there is no such work."""
        rate = self.platform.own_transfer_rate(direction)
        if rate is None:
            # Presets without per-direction rates: a shared host's CPU at the store's bandwidth.
            if not self.host.shared:
                return None
            rate = self.platform.store_bandwidth_bytes_per_ms
        if math.isinf(rate):
            return None
        return rate

    def _copy_work(self, nbytes: int, direction: Direction) -> simpy.Event | None:
        """The work of moving `nbytes` at the transfer's two ends (serialising, socket copies),
        done beside the links: CPU of a shared host, or a floor on the transfer's time with
        CPUs of its own; None when the platform sets no such work."""
        rate = self._copy_rate[direction]
        return None if rate is None else self.host.work(nbytes / rate)

    def _bandwidth(self, config: ResourceConfig) -> float:
        """The link bandwidth of a worker of `config`, bytes per ms (cached per config)."""
        found = self._link_bandwidth.get(config)
        if found is None:
            found = self._link_bandwidth[config] = self.platform.link_bytes_per_ms(config)
        return found

    def transfer(
        self,
        worker_key: Hashable,
        config: ResourceConfig,
        nbytes: int,
        direction: Direction = "down",
        *,
        latency: bool = True,
        command: bool = True,
    ) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: move ``nbytes`` between the worker and the store; return elapsed ms.

        ``latency=False`` skips the per-operation latency (a command pipelined behind another,
        e.g. the later chunks of a stream). ``command=False`` moves bytes that ride on another
        command (an output carried by a published message): not counted as a transfer or a
        store command, and with no latency of its own.

        Use as ``ms = yield from network.transfer(worker_id, config, nbytes, "up")``.

        Raises
        ------
        ValueError
            If nbytes is not an int >= 0, direction is not "up" or "down", or the worker
            transferred before with another config.
        RuntimeError
            If the worker's link is still busy with an earlier transfer.
        """
        known = self._configs.get(worker_key)
        if (
            nbytes.__class__ is not int
            or nbytes < 0
            or (direction != "up" and direction != "down")
            or known is None
            or (known is not config and known != config)
        ):
            self._check(worker_key, config, nbytes, direction)
        env = self.env
        now = env._now
        busy = self._link_busy_until
        if busy.get(worker_key, -math.inf) > now + 1e-9:
            raise RuntimeError(f"transfer on worker {worker_key!r} while its link is busy")
        busy[worker_key] = math.inf  # until its bytes are on their way
        if command:
            self.n_transfers += 1
            self.n_store_ops += 1
        if direction == "up":
            self.bytes_up += nbytes
        else:
            self.bytes_down += nbytes
        if command and latency and self._op_ms > 0:
            yield Timeout(env, self._op_ms) if self._own_cpus else self.host.work(self._op_ms)
        bandwidth = self._bandwidth(config)
        link_ms = 0.0 if bandwidth == math.inf else nbytes / bandwidth
        start = env._now
        busy[worker_key] = start + link_ms
        if nbytes > 0:
            # The store's link, the worker's and the ends' work serve the bytes at once:
            # waiting on each in turn is waiting for all.
            on_store = self.store_link.serve(nbytes)
            rate = self._copy_rate[direction]
            on_host = None if rate is None else self.host.work(nbytes / rate)
            yield on_store
            if on_host is not None:
                yield on_host
        wait_ms = start + link_ms - env._now
        if wait_ms > 1e-12:
            yield Timeout(env, wait_ms)
        return env._now - now

    def _check(
        self, worker_key: Hashable, config: ResourceConfig, nbytes: int, direction: str
    ) -> None:
        """Raise ValueError naming the worker for a bad size or direction, or a config other
        than the one the worker transferred with before (a worker's link is fixed)."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(
                f"transfer for worker {worker_key!r}: nbytes={nbytes!r} must be an int >= 0"
            )
        if direction not in ("up", "down"):
            raise ValueError(
                f"transfer for worker {worker_key!r}: direction={direction!r} is not 'up' or 'down'"
            )
        known = self._configs.setdefault(worker_key, config)
        if known != config:
            raise ValueError(
                f"worker {worker_key!r} has a link for {known}, asked again with {config}"
            )
        self._configs[worker_key] = config  # an equal config: the next check is by identity

    def send_payload(
        self, worker_key: Hashable, config: ResourceConfig, nbytes: int
    ) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: send ``nbytes`` of an invocation payload (inputs carried by an
        Invoke) from the worker to the platform's API; returns elapsed ms.

        The bytes cross the worker's link (not the store's) while the sender does the work of
        serialising them (the platform's upload rate, as for a transfer); the invocation's own
        latency is paid by the caller.

        Raises
        ------
        ValueError, RuntimeError
            As `transfer`.
        """
        self._check(worker_key, config, nbytes, "up")
        now = self.env.now
        if self._link_busy_until.get(worker_key, -math.inf) > now + 1e-9:
            raise RuntimeError(f"payload sent by worker {worker_key!r} while its link is busy")
        self.bytes_payload += nbytes
        bandwidth = self._bandwidth(config)
        link_ms = 0.0 if math.isinf(bandwidth) else nbytes / bandwidth
        self._link_busy_until[worker_key] = now + link_ms
        on_host = self._copy_work(nbytes, "up") if nbytes > 0 else None
        if on_host is not None:
            yield on_host
        wait_ms = now + link_ms - self.env.now
        if wait_ms > 1e-12:
            yield self.env.timeout(wait_ms)
        return self.env.now - now

    def store_command(self) -> simpy.Event | None:
        """One small store command (INCR, SETNX, EXISTS), counted: the event its round trip
        takes (a plain timeout when the host is not shared), None when it takes no time."""
        self.n_store_ops += 1
        if self._op_ms <= 0:
            return None
        return Timeout(self.env, self._op_ms) if self._own_cpus else self.host.work(self._op_ms)

    def publish_message(self) -> simpy.Event | None:
        """One published message, counted: the event until subscribers have it, None when
        delivery takes no time."""
        self.n_publishes += 1
        return self.host.work(self._pubsub_ms) if self._pubsub_ms > 0 else None

    def store_op(self) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: one small store command (INCR, SETNX, EXISTS); return elapsed ms."""
        start_ms = self.env.now
        latency = self.store_command()
        if latency is not None:
            yield latency
        return self.env.now - start_ms

    def publish(self) -> Generator[simpy.Event, Any, float]:
        """SimPy process body: publish one message; returns once subscribers have it (elapsed ms)."""
        start_ms = self.env.now
        latency = self.publish_message()
        if latency is not None:
            yield latency
        return self.env.now - start_ms

    def ideal_transfer_ms(
        self, config: ResourceConfig, nbytes: int, direction: Direction | None = None
    ) -> float:
        """Time of a transfer alone on idle links (see `Platform.ideal_transfer_ms`), ms."""
        return float(self.platform.ideal_transfer_ms(config, nbytes, direction))
