"""The FaaS platform's parameters (`Platform`): start-ups, keep-alive, concurrency, links, prices.

Presets are TOML files (``sim/presets/``, or a path); any field may be overridden. The warm
pools that use these parameters are in `sim.pools`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dag.limits import MAX_DURATION_MS, duration_limit_text
from dag.resources import ResourceConfig


def preset_file(name: str | Path) -> Any | None:
    """The TOML a preset name or path loads from (a file or package resource), None if none."""
    known = _known_presets()
    text = str(name)
    if text in known:
        return known[text]
    if text.endswith(".toml") and Path(text).is_file():
        return Path(text)
    return None


def _known_presets() -> dict[str, Any]:
    folder = resources.files("sim") / "presets"
    return {
        entry.name.removesuffix(".toml"): entry
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """Parameters of a FaaS platform and its store: start-up times, limits, bandwidth, prices.

    The defaults are the ``ideal`` platform (no overheads, infinite bandwidth, no limits) with
    AWS Lambda prices; presets in ``sim/presets/*.toml`` set every field.

    Parameters
    ----------
    name : str
        Label, e.g. the preset name.
    cold_start_median_ms, cold_start_sigma, cold_start_min_ms : float
        A cold start takes ``max(min, median * exp(sigma * Z))`` ms, Z standard normal (lognormal
        with that median and log-space sigma; sigma at most 4), capped at one day.
    warm_start_ms : float
        Start-up of an invocation that finds an idle container of its config, ms.
    keep_alive_ms : float
        How long an idle container stays warm after its last release, ms (inf allowed).
    concurrency_limit : int or None
        Account-wide limit on busy containers; None is unlimited (TOML: ``"unlimited"`` or inf).
    invoke_latency_ms : float
        Latency of the Invoke API call before the platform starts looking for a container, ms.
    store_op_ms : float
        Round-trip latency of one store (Redis) command, ms.
    pubsub_ms : float
        Latency from a publish to its delivery to subscribers, ms.
    store_bandwidth_bytes_per_ms : float
        The store's link, shared by every transfer, bytes per ms (inf allowed).
    upload_bytes_per_ms, download_bytes_per_ms : float or None
        What one transfer's own two ends (serialising, socket copies at the worker and at the
        store) move per ms in each direction, alone on an idle machine. It is CPU work: on a
        shared host (finite `host_cpus`) it competes with every other job; with CPUs of its
        own a transfer simply takes at least that long. None (presets calibrated before
        2026-11-28): on a shared host that work is ``bytes / store_bandwidth_bytes_per_ms``.
    link_bytes_per_ms_per_gb, link_min_bytes_per_ms, link_max_bytes_per_ms : float
        A worker's network link: ``per_gb * memory_gb`` clamped to [min, max], bytes per ms.
    price_per_gb_s, price_per_request : float
        Compute price, USD per GB-second of billed duration, and USD per invocation.
    store_price_per_gb_transferred, store_price_per_op : float
        Store prices, USD per GB (2**30 bytes) moved and USD per command.
    billing_granularity_ms : float
        Billed durations are rounded up to a multiple of this, ms.
    worker_setup_ms : float
        Work of a worker between its start-up and its first effect (connect to the store, load
        the run's context), ms.
    task_overhead_ms : float
        The worker's own work per task beside the task's function and transfers (scheduling,
        bookkeeping, (de)serialising small values), ms, spent before the task executes.
    invocation_cpu_ms : float
        CPU-ms the platform spends per invocation beside the invoker's call and the worker's
        own work (API server, runtime client, log shipping); it only takes CPUs from the others,
        so it matters only with finite `host_cpus`.
    host_cpus : float
        CPUs of the one machine every container runs on (a local emulator), shared by tasks and
        by the platform's local work (`sim.host.Host`); inf (clouds) gives each container its
        own. With a finite value, times above are CPU-ms on an idle machine.
    host_quantum_ms : float
        With finite `host_cpus`: the time slice its CPUs hand out in turn, ms (Linux's
        scheduler; see `sim.host`); 0 shares them processor-style, every job slowed alike.

    Every duration above (the ``_ms`` fields but `keep_alive_ms`, which is only compared with
    the clock) is at most `dag.limits.MAX_DURATION_MS`, one day, so the simulated clock keeps
    sub-microsecond steps.

    Raises
    ------
    ValueError
        If a value is not a number or is out of range (NaN, or infinite where that makes no
        sense, or above its limit); the message names the field and the limit.
    """

    name: str = "custom"
    cold_start_median_ms: float = 0.0
    cold_start_sigma: float = 0.0
    cold_start_min_ms: float = 0.0
    warm_start_ms: float = 0.0
    keep_alive_ms: float = math.inf
    concurrency_limit: int | None = None
    invoke_latency_ms: float = 0.0
    store_op_ms: float = 0.0
    pubsub_ms: float = 0.0
    store_bandwidth_bytes_per_ms: float = math.inf
    upload_bytes_per_ms: float | None = None
    download_bytes_per_ms: float | None = None
    link_bytes_per_ms_per_gb: float = math.inf
    link_min_bytes_per_ms: float = 0.0
    link_max_bytes_per_ms: float = math.inf
    price_per_gb_s: float = 0.0000166667
    price_per_request: float = 0.0000002
    store_price_per_gb_transferred: float = 0.0
    store_price_per_op: float = 0.0
    billing_granularity_ms: float = 1.0
    worker_setup_ms: float = 0.0
    task_overhead_ms: float = 0.0
    invocation_cpu_ms: float = 0.0
    host_cpus: float = math.inf
    host_quantum_ms: float = 0.0

    # field -> (lowest value, whether inf is allowed, whether the lowest value is allowed)
    _RANGES = {
        "cold_start_median_ms": (0.0, False, True),
        "cold_start_sigma": (0.0, False, True),
        "cold_start_min_ms": (0.0, False, True),
        "warm_start_ms": (0.0, False, True),
        "keep_alive_ms": (0.0, True, True),
        "invoke_latency_ms": (0.0, False, True),
        "store_op_ms": (0.0, False, True),
        "pubsub_ms": (0.0, False, True),
        "store_bandwidth_bytes_per_ms": (0.0, True, False),
        "upload_bytes_per_ms": (0.0, True, False),
        "download_bytes_per_ms": (0.0, True, False),
        "link_bytes_per_ms_per_gb": (0.0, True, False),
        "link_min_bytes_per_ms": (0.0, False, True),
        "link_max_bytes_per_ms": (0.0, True, False),
        "price_per_gb_s": (0.0, False, True),
        "price_per_request": (0.0, False, True),
        "store_price_per_gb_transferred": (0.0, False, True),
        "store_price_per_op": (0.0, False, True),
        "billing_granularity_ms": (0.0, False, False),
        "worker_setup_ms": (0.0, False, True),
        "task_overhead_ms": (0.0, False, True),
        "invocation_cpu_ms": (0.0, False, True),
        "host_cpus": (0.0, True, False),
        "host_quantum_ms": (0.0, False, True),
    }
    # fields of _RANGES that may also be None
    _OPTIONAL = frozenset({"upload_bytes_per_ms", "download_bytes_per_ms"})
    # field -> lowest value when positive: a slower link or a smaller CPU share would stretch
    # any transfer or task past the clock's range (a unit mistake: bytes per s, say).
    _LOWEST_RATE = {
        "store_bandwidth_bytes_per_ms": (1.0, "1 byte per ms"),
        "upload_bytes_per_ms": (1.0, "1 byte per ms"),
        "download_bytes_per_ms": (1.0, "1 byte per ms"),
        "link_bytes_per_ms_per_gb": (1.0, "1 byte per ms per GB"),
        "link_max_bytes_per_ms": (1.0, "1 byte per ms"),
        "host_cpus": (0.01, "0.01 CPU"),
    }
    # field -> (highest value, how a message names it): durations stay within the float
    # clock's resolution (dag.limits); a sigma of 4 already spreads cold starts by 700x
    # between median and 95th percentile, and keeps exp(sigma * Z) far from overflowing.
    _HIGHEST = {
        **{
            key: (MAX_DURATION_MS, duration_limit_text())
            for key in _RANGES
            if key.endswith("_ms") and "_per_" not in key and key != "keep_alive_ms"
        },
        "cold_start_sigma": (4.0, "4"),
    }

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Platform name={self.name!r} must be a non-empty string")
        for key, (low, inf_ok, low_ok) in self._RANGES.items():
            value = getattr(self, key)
            if value is None and key in self._OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"Platform {key}={value!r} is not a number")
            bad = (
                math.isnan(value)
                or (math.isinf(value) and not inf_ok)
                or value < low
                or (value == low and not low_ok)
            )
            if bad:
                bound = ">=" if low_ok else ">"
                extra = " (inf allowed)" if inf_ok else ", finite"
                raise ValueError(f"Platform {key}={value!r} must be {bound} {low:g}{extra}")
            if key in self._HIGHEST and value > self._HIGHEST[key][0]:
                raise ValueError(f"Platform {key}={value!r} is above {self._HIGHEST[key][1]}")
            if key in self._LOWEST_RATE and value < self._LOWEST_RATE[key][0]:
                raise ValueError(
                    f"Platform {key}={value!r} is below {self._LOWEST_RATE[key][1]} "
                    "(too slow for the simulated clock; see dag.limits)"
                )
            object.__setattr__(self, key, float(value))
        limit = self.concurrency_limit
        if limit == "unlimited" or (isinstance(limit, float) and limit == math.inf):
            limit = None
        if limit is not None:
            if isinstance(limit, float) and limit.is_integer():
                limit = int(limit)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(
                    f"Platform concurrency_limit={self.concurrency_limit!r} must be an int >= 1 "
                    "or None/'unlimited'"
                )
        object.__setattr__(self, "concurrency_limit", limit)
        if self.link_min_bytes_per_ms > self.link_max_bytes_per_ms:
            raise ValueError(
                f"Platform link_min_bytes_per_ms={self.link_min_bytes_per_ms!r} exceeds "
                f"link_max_bytes_per_ms={self.link_max_bytes_per_ms!r}"
            )

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the parameters, as accepted by `from_dict` and `with_overrides`."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, name: str | None = None) -> Platform:
        """Build a platform from a flat mapping of parameters (e.g. a parsed TOML table).

        Raises
        ------
        ValueError
            If a key is unknown (the message names it and lists the known keys) or a value is bad.
        """
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"unknown platform key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(cls.field_names())}"
            )
        values = dict(data)
        if name is not None:
            values.setdefault("name", name)
        return cls(**values)

    @classmethod
    def preset(cls, name: str | Path) -> Platform:
        """Load a preset by name (``"aws-lambda"``, ``"ideal"``) or from a path to a TOML file.

        Raises
        ------
        ValueError
            If the name is neither a known preset nor an existing ``.toml`` file (the message lists
            the known presets), or the file has an unknown key or a bad value (named).
        """
        text = str(name)
        source = preset_file(text)
        if source is None:
            raise ValueError(
                f"unknown platform preset {text!r}; known presets: "
                f"{', '.join(sorted(_known_presets()))} (or a path to a .toml file)"
            )
        label = text if text in _known_presets() else Path(text).stem
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"platform preset {text!r} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(data, name=label)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"platform preset {text!r}: {exc}") from None

    @classmethod
    def preset_names(cls) -> list[str]:
        """Names of the presets shipped in ``sim/presets/``."""
        return sorted(_known_presets())

    def with_overrides(self, **overrides: Any) -> Platform:
        """A copy with some parameters replaced.

        Raises
        ------
        ValueError
            If a key is unknown (named) or a new value is bad.
        """
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise ValueError(
                f"unknown platform key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(self.field_names())}"
            )
        return dataclasses.replace(self, **overrides)

    # -- derived quantities -------------------------------------------------------------------

    def link_bytes_per_ms(self, config: ResourceConfig) -> float:
        """Network bandwidth of a worker of this config, bytes per ms (grows with memory)."""
        scaled = self.link_bytes_per_ms_per_gb * config.memory_gb
        return min(max(scaled, self.link_min_bytes_per_ms), self.link_max_bytes_per_ms)

    def own_transfer_rate(self, direction: str | None = None) -> float | None:
        """What a transfer's own ends move per ms `direction` (``"up"``, ``"down"``; None: the
        rate at which an upload and a download of the same bytes take as long as they do
        together), bytes per ms; None when neither direction is set."""
        if direction not in (None, "up", "down"):
            raise ValueError(f"direction={direction!r} is not 'up', 'down' or None")
        rates = {"up": self.upload_bytes_per_ms, "down": self.download_bytes_per_ms}
        if direction is not None:
            return rates[direction]
        known = [r for r in rates.values() if r is not None]
        if not known:
            return None
        return len(known) / sum(1.0 / r for r in known)

    def ideal_transfer_ms(self, config: ResourceConfig, nbytes, direction: str | None = None):
        """Time of one transfer alone on idle links and an idle machine: the store's command
        latency plus bytes over the slowest of the worker's link, the store's link and the
        transfer's own rate (`own_transfer_rate`), ms (`nbytes` may be an array)."""
        bandwidth = min(self.link_bytes_per_ms(config), self.store_bandwidth_bytes_per_ms)
        own = self.own_transfer_rate(direction)
        if own is not None:
            bandwidth = min(bandwidth, own)
        if math.isinf(bandwidth):
            return self.store_op_ms + 0.0 * np.asarray(nbytes, dtype=float)
        return self.store_op_ms + np.asarray(nbytes, dtype=float) / bandwidth

    def sample_cold_start_ms(self, config: ResourceConfig, rng: np.random.Generator) -> float:
        """Draw one cold start, ms: ``max(min, median * exp(sigma * Z))``.

        Exactly one standard normal is drawn per call, whatever the parameters, so the random
        stream stays aligned across platforms. ``config`` is accepted so that start-up may depend
        on the config later; today every config draws from the same distribution.
        """
        del config
        z = float(rng.standard_normal())
        drawn = self.cold_start_median_ms * math.exp(self.cold_start_sigma * z)
        # The far tail is capped where every input duration is (dag.limits): the clock's
        # resolution, not a model of start-ups (at aws-lambda's sigma it takes Z > 35).
        return min(MAX_DURATION_MS, max(self.cold_start_min_ms, drawn))
