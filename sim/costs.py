"""The bill of a run: compute (GB-seconds), per-request fees and store usage, in USD."""

from __future__ import annotations

import math
from typing import Any

from dag.resources import ResourceConfig
from sim.platform import Platform

BYTES_PER_GB = 2**30

# A duration a few ulps over a multiple of the granularity (e.g. 0.1 + 0.2) is not billed one
# more unit.
_ROUND_EPS = 1e-9


class CostLedger:
    """Accumulates what a platform bills for one run, in USD.

    Compute is billed per invocation: its duration (start-up included) is rounded up to the
    platform's billing granularity (ms), times the config's memory in GB (1024 MB), gives
    GB-seconds at `price_per_gb_s`; each invocation also pays `price_per_request`. The store bills
    bytes moved (`store_price_per_gb_transferred`, GB = 2**30 bytes) and commands
    (`store_price_per_op`). Memory alone sets the price; cpus do not.

    Parameters
    ----------
    platform : Platform
        Prices and billing granularity.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.gb_s = 0.0
        self.idle_gb_s = 0.0
        self.billed_ms = 0.0
        self.n_requests = 0
        self.store_bytes = 0
        self.n_store_ops = 0

    def billed_duration_ms(self, duration_ms: float) -> float:
        """``duration_ms`` rounded up to the billing granularity, ms."""
        granularity = self.platform.billing_granularity_ms
        units = math.ceil(duration_ms / granularity - _ROUND_EPS)
        return max(0, units) * granularity

    def invocation(self, config: ResourceConfig, duration_ms: float) -> float:
        """Bill one invocation of ``config`` that was busy ``duration_ms``; return its billed ms.

        Raises
        ------
        ValueError
            If duration_ms is negative, NaN or infinite.
        """
        if isinstance(duration_ms, bool) or not isinstance(duration_ms, int | float):
            raise ValueError(f"invocation of {config}: duration_ms={duration_ms!r} is not a number")
        if not math.isfinite(duration_ms) or duration_ms < 0:
            raise ValueError(
                f"invocation of {config}: duration_ms={duration_ms!r} must be finite and >= 0"
            )
        billed_ms = self.billed_duration_ms(duration_ms)
        self.billed_ms += billed_ms
        self.gb_s += config.memory_gb * billed_ms / 1000.0
        self.n_requests += 1
        return billed_ms

    def idle(self, config: ResourceConfig, idle_ms: float) -> None:
        """Bill `idle_ms` of a pre-warmed container kept idle for a later invocation (GB-s
        only, no request fee; not rounded)."""
        if not (math.isfinite(idle_ms) and idle_ms >= 0):
            raise ValueError(f"idle time of {config}: idle_ms={idle_ms!r} must be finite and >= 0")
        self.idle_gb_s += config.memory_gb * idle_ms / 1000.0
        self.gb_s += config.memory_gb * idle_ms / 1000.0

    def store_transfer(self, nbytes: int) -> None:
        """Bill ``nbytes`` moved to or from the store.

        Raises
        ------
        ValueError
            If nbytes is not an int >= 0.
        """
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"store transfer nbytes={nbytes!r} must be an int >= 0")
        self.store_bytes += nbytes

    def store_op(self, n: int = 1) -> None:
        """Bill ``n`` store commands.

        Raises
        ------
        ValueError
            If n is not an int >= 0.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"store op count n={n!r} must be an int >= 0")
        self.n_store_ops += n

    def breakdown(self) -> dict[str, float]:
        """The bill so far: USD per component and in total, plus the quantities billed.

        Returns
        -------
        dict
            ``compute_usd``, ``requests_usd``, ``store_usd``, ``total_usd``, ``gb_s``,
            ``n_requests``, ``billed_ms``, ``store_bytes``, ``n_store_ops``.
        """
        p = self.platform
        compute_usd = self.gb_s * p.price_per_gb_s
        requests_usd = self.n_requests * p.price_per_request
        store_usd = (
            self.store_bytes / BYTES_PER_GB * p.store_price_per_gb_transferred
            + self.n_store_ops * p.store_price_per_op
        )
        return {
            "compute_usd": compute_usd,
            "requests_usd": requests_usd,
            "store_usd": store_usd,
            "total_usd": compute_usd + requests_usd + store_usd,
            "gb_s": self.gb_s,
            "n_requests": self.n_requests,
            "billed_ms": self.billed_ms,
            "store_bytes": self.store_bytes,
            "n_store_ops": self.n_store_ops,
        }


def bill_recorded(
    workers: Any, platform: Platform, *, store_bytes: int = 0, n_store_ops: int = 0
) -> dict[str, float]:
    """The bill of a recorded run: this cost model applied to its own billed time and store use.

    Each worker row is one invocation of its config for its ``billed_ms`` (start-up to end, as
    the recorder measured it), billed like a simulated invocation, so a real run's cost
    compares with a simulated one's on the same prices and rounding.

    Parameters
    ----------
    workers : DataFrame
        A `workers` trace table (memory_mb, cpus, billed_ms, ...).
    platform : Platform
        Prices and billing granularity.
    store_bytes, n_store_ops : int
        Bytes moved to and from the store, and store commands (publishes included).

    Returns
    -------
    dict
        As `CostLedger.breakdown`.
    """
    ledger = CostLedger(platform)
    for row in workers.itertuples(index=False):
        ledger.invocation(ResourceConfig(int(row.memory_mb), float(row.cpus)), float(row.billed_ms))
    ledger.store_transfer(int(store_bytes))
    ledger.store_op(int(n_store_ops))
    return ledger.breakdown()
