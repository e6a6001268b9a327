"""Seeded synthetic DAGs: HEFT-style random layered graphs and the HEFT paper's example graph.

Every random draw comes from a `numpy.random.Generator` (pass `seed` or `rng`): the same
parameters and seed give the same DAG and profiles, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from dag.graph import DAG, Task
from dag.limits import MAX_BYTES, bytes_limit_text
from dag.profiled import ProfiledDAG

# Bandwidth under which `ccr` turns transfer ms into bytes: 100 MB/s, a FaaS-to-Redis ballpark.
DEFAULT_BANDWIDTH_BYTES_PER_MS = 100_000.0
LAYERED_FUNCTION = "layered"
#: Most tasks a generated DAG may have: a larger count is a typo that would exhaust memory.
MAX_TASKS = 1_000_000


def _rng(seed: int | None, rng: np.random.Generator | None) -> np.random.Generator:
    if rng is not None and seed is not None:
        raise ValueError("pass either seed or rng, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    return np.random.default_rng(seed)


def _check(name: str, value: float, low: float, high: float = math.inf, *, open_low=False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low < value if open_low else low <= value) and value <= high
    if not ok:
        bounds = (
            (">" if open_low else ">=")
            + f" {low:g}"
            + (f" and <= {high:g}" if high < math.inf else "")
        )
        raise ValueError(f"layered_dag {name}={value!r} must be a finite number {bounds}")


def _level_widths(n_tasks: int, n_levels: int, rng: np.random.Generator) -> np.ndarray:
    """Split n_tasks into n_levels widths >= 1, each around the mean (x0.5..x1.5 before rounding)."""
    weights = rng.uniform(0.5, 1.5, size=n_levels)
    spare = n_tasks - n_levels
    share = weights / weights.sum() * spare
    widths = np.floor(share).astype(np.int64)
    # Largest remainders get the tasks rounding dropped, so the widths sum to n_tasks.
    short = spare - int(widths.sum())
    if short:
        widths[np.argsort(widths - share, kind="stable")[:short]] += 1
    return widths + 1


def layered_dag(
    n_tasks: int,
    *,
    alpha: float = 1.0,
    out_degree: float = 3,
    ccr: float = 1.0,
    beta: float = 0.5,
    mean_runtime_ms: float = 100.0,
    bandwidth_bytes_per_ms: float = DEFAULT_BANDWIDTH_BYTES_PER_MS,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    name: str | None = None,
) -> ProfiledDAG:
    """A random layered DAG in the style of the HEFT paper's generator (Topcuoglu et al. 2002).

    The tasks are split into ``round(sqrt(n_tasks) / alpha)`` levels (at least 1, at most
    `n_tasks`), of random widths around ``sqrt(n_tasks) * alpha`` (each 0.5..1.5 times the
    mean, at least 1). Edges go from each level to the next only, so every task of level
    ``l > 0`` has a parent on level ``l - 1`` and `DAG.levels` gives back the generated levels:
    each task draws ``1..2*out_degree-1`` children (uniformly, mean `out_degree`) on the level
    below, duplicates collapsing, and a task that no one drew gets one random parent.

    Profiles: runtimes are uniform in ``mean_runtime_ms * [1 - beta/2, 1 + beta/2]``; each task
    writes one output that all its consumers read whole, whose transfer time at
    `bandwidth_bytes_per_ms` is ``ccr * mean_runtime_ms`` times an independent factor from the
    same range, so mean transfer ms / mean runtime ms is about `ccr`.

    Parameters
    ----------
    n_tasks : int
        Number of tasks, 1..`MAX_TASKS` (a million).
    alpha : float
        Shape: > 1 gives wide, shallow graphs; < 1 deep, narrow ones. Default 1.
    out_degree : float
        Mean number of children of a non-sink task (capped by the next level's width). Default 3.
    ccr : float
        Communication-to-computation ratio, >= 0. Default 1.
    beta : float
        Runtime heterogeneity, 0..2: the relative width of the runtime range. Default 0.5.
    mean_runtime_ms : float
        Mean task runtime in ms, > 0. Default 100.
    bandwidth_bytes_per_ms : float
        Bandwidth that converts transfer ms into bytes. Default 100 MB/s.
    seed : int, optional
        Seed of a fresh ``numpy.random.default_rng``; or pass `rng` instead.
    rng : numpy.random.Generator, optional
        Generator to draw from (advanced by the call).
    name : str, optional
        Workflow name; default ``"layered-n{n_tasks}"``.

    Returns
    -------
    ProfiledDAG
        Task ids ``t0..t{n-1}`` in level order, all of function ``"layered"``; each edge carries
        its producer's output bytes.

    Raises
    ------
    ValueError
        If a parameter is out of range, or both `seed` and `rng` are given.
    """
    if (
        isinstance(n_tasks, bool)
        or not isinstance(n_tasks, int | np.integer)
        or not 1 <= n_tasks <= MAX_TASKS
    ):
        raise ValueError(f"layered_dag n_tasks={n_tasks!r} must be an integer 1..{MAX_TASKS}")
    n_tasks = int(n_tasks)
    _check("alpha", alpha, 0, open_low=True)
    _check("out_degree", out_degree, 1)
    _check("ccr", ccr, 0)
    _check("beta", beta, 0, 2)
    _check("mean_runtime_ms", mean_runtime_ms, 0, open_low=True)
    _check("bandwidth_bytes_per_ms", bandwidth_bytes_per_ms, 0, open_low=True)
    gen = _rng(seed, rng)

    n_levels = min(n_tasks, max(1, round(math.sqrt(n_tasks) / alpha)))
    widths = _level_widths(n_tasks, n_levels, gen)
    starts = np.concatenate(([0], np.cumsum(widths)))
    max_children = max(1, round(2 * out_degree - 1))

    parents_of: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n_tasks
    deps: list[tuple[str, ...]] = [()] * n_tasks
    ids = [f"t{i}" for i in range(n_tasks)]
    for level in range(1, n_levels):
        above, below = int(widths[level - 1]), int(widths[level])
        # Each task above draws its children; a task below that no one drew gets one parent.
        n_children = np.minimum(gen.integers(1, max_children + 1, size=above), below)
        parent = np.repeat(np.arange(above), n_children)
        child = gen.integers(0, below, size=parent.size)
        orphans = np.setdiff1d(np.arange(below), child, assume_unique=False)
        child = np.concatenate((child, orphans))
        parent = np.concatenate((parent, gen.integers(0, above, size=orphans.size)))
        codes = np.unique(child * above + parent)  # sorted by child, then parent
        child, parent = np.divmod(codes, above)
        split = np.searchsorted(child, np.arange(1, below))
        base_above, base_below = int(starts[level - 1]), int(starts[level])
        for offset, group in enumerate(np.split(parent + base_above, split)):
            parents_of[base_below + offset] = group
    for i in range(n_tasks):
        if parents_of[i].size:
            deps[i] = tuple(ids[p] for p in parents_of[i].tolist())

    spread = (1 - beta / 2, 1 + beta / 2)
    runtimes = mean_runtime_ms * gen.uniform(*spread, size=n_tasks)
    transfer_ms = ccr * mean_runtime_ms * gen.uniform(*spread, size=n_tasks)
    outputs = np.rint(transfer_ms * bandwidth_bytes_per_ms)
    if outputs.max() > MAX_BYTES:  # checked before the cast to int64 could overflow
        raise ValueError(
            f"layered_dag ccr={ccr!r}, mean_runtime_ms={mean_runtime_ms!r} and "
            f"bandwidth_bytes_per_ms={bandwidth_bytes_per_ms!r} give outputs of "
            f"{outputs.max():.3g} bytes, above {bytes_limit_text()}"
        )
    outputs = outputs.astype(np.int64)

    tasks = [Task(ids[i], LAYERED_FUNCTION, deps[i]) for i in range(n_tasks)]
    output_list = outputs.tolist()
    edge_bytes = {
        (ids[p], ids[i]): output_list[p]
        for i in range(n_tasks)
        for p in parents_of[i].tolist()
        if output_list[p]
    }
    label = name or f"layered-n{n_tasks}"
    dag = DAG(tasks, edge_bytes, name=label)
    return ProfiledDAG(
        dag,
        dict(zip(ids, runtimes.tolist(), strict=True)),
        dict(zip(ids, output_list, strict=True)),
        label,
    )


# -- the HEFT paper's example -----------------------------------------------------------------

# Topcuoglu, Hariri, Wu (IEEE TPDS 2002), Fig. 2: computation cost of tasks n1..n10 on
# processors P1, P2, P3, and the communication cost of each edge (paid only across processors).
_TOPCUOGLU_COST = {
    "n1": (14, 16, 9),
    "n2": (13, 19, 18),
    "n3": (11, 13, 19),
    "n4": (13, 8, 17),
    "n5": (12, 13, 10),
    "n6": (13, 16, 9),
    "n7": (7, 15, 11),
    "n8": (5, 11, 14),
    "n9": (18, 12, 20),
    "n10": (21, 7, 16),
}
_TOPCUOGLU_COMM = {
    ("n1", "n2"): 18,
    ("n1", "n3"): 12,
    ("n1", "n4"): 9,
    ("n1", "n5"): 11,
    ("n1", "n6"): 14,
    ("n2", "n8"): 19,
    ("n2", "n9"): 16,
    ("n3", "n7"): 23,
    ("n4", "n8"): 27,
    ("n4", "n9"): 23,
    ("n5", "n9"): 13,
    ("n6", "n8"): 15,
    ("n7", "n10"): 17,
    ("n8", "n10"): 11,
    ("n9", "n10"): 13,
}
# Published results on this graph: HEFT's schedule length and CPOP's.
TOPCUOGLU_HEFT_MAKESPAN = 80
TOPCUOGLU_CPOP_MAKESPAN = 86


@dataclass(frozen=True)
class CostedDAG:
    """A DAG with per-processor computation costs and per-edge communication costs.

    Parameters
    ----------
    dag : DAG
        The structure; its edge bytes equal the communication costs (one byte per time unit).
    cost : mapping of task id to tuple of float
        Computation cost of each task on each of the `n_processors` processors.
    comm : mapping of (producer, consumer) to float
        Cost of an edge when its two tasks run on different processors (0 on the same one).
    n_processors : int
        Number of processors.
    """

    dag: DAG
    cost: MappingProxyType
    comm: MappingProxyType
    n_processors: int


def topcuoglu_example() -> CostedDAG:
    """The 10-task, 3-processor example graph of the HEFT paper (Topcuoglu et al. 2002, Fig. 2).

    HEFT schedules it in 80 time units and CPOP in 86 (`TOPCUOGLU_HEFT_MAKESPAN`,
    `TOPCUOGLU_CPOP_MAKESPAN`): a fixed dataset for testing planners.
    """
    deps: dict[str, list[str]] = {task_id: [] for task_id in _TOPCUOGLU_COST}
    for producer, consumer in _TOPCUOGLU_COMM:
        deps[consumer].append(producer)
    tasks = [Task(task_id, task_id, tuple(parents)) for task_id, parents in deps.items()]
    dag = DAG(tasks, dict(_TOPCUOGLU_COMM), name="topcuoglu2002-fig2")
    return CostedDAG(
        dag,
        MappingProxyType(dict(_TOPCUOGLU_COST)),
        MappingProxyType(dict(_TOPCUOGLU_COMM)),
        3,
    )
