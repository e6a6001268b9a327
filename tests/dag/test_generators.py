"""Seeded DAG generators: determinism, shape, speed, and the HEFT paper's example dataset."""

import math
import re
import time

import numpy as np
import pytest

from dag.generators import (
    TOPCUOGLU_CPOP_MAKESPAN,
    TOPCUOGLU_HEFT_MAKESPAN,
    layered_dag,
    topcuoglu_example,
)


def _fingerprint(profiled):
    dag = profiled.dag
    return (
        [(t, dag[t].deps) for t in dag],
        dict(dag.edge_bytes_map),
        dict(profiled.runtime_ms),
        dict(profiled.output_bytes),
    )


def test_same_seed_same_dag():
    """The same parameters and seed give the same DAG and profiles, bit for bit."""
    assert _fingerprint(layered_dag(500, seed=7)) == _fingerprint(layered_dag(500, seed=7))


def test_rng_and_seed_agree():
    """Passing a Generator seeded with s is the same as passing seed=s."""
    from_rng = layered_dag(200, rng=np.random.default_rng(3))
    assert _fingerprint(from_rng) == _fingerprint(layered_dag(200, seed=3))


def test_different_seed_different_dag():
    """Different seeds give different DAGs."""
    assert _fingerprint(layered_dag(500, seed=1)) != _fingerprint(layered_dag(500, seed=2))


@pytest.mark.parametrize("n_tasks", [1, 2, 7, 100, 2000])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_shape_within_bounds(n_tasks, alpha):
    """Task count is exact; depth is sqrt(n)/alpha levels; widths stay near sqrt(n)*alpha."""
    dag = layered_dag(n_tasks, alpha=alpha, seed=0).dag
    assert len(dag) == n_tasks
    n_levels = min(n_tasks, max(1, round(math.sqrt(n_tasks) / alpha)))
    assert dag.depth == n_levels
    mean_width = n_tasks / n_levels
    assert dag.width <= 1.5 * mean_width + 2
    levels = dag.levels()
    for producer, consumer in dag.edges:
        assert levels[consumer] == levels[producer] + 1


def test_out_degree_ccr_and_runtime_range():
    """Mean out-degree is about out_degree, transfer/compute about ccr, runtimes within beta."""
    profiled = layered_dag(5000, out_degree=4, ccr=2.0, beta=0.5, mean_runtime_ms=50.0, seed=5)
    dag = profiled.dag
    assert 3.6 <= dag.n_edges / (len(dag) - len(dag.sinks)) <= 4.4
    runtimes = np.array(list(profiled.runtime_ms.values()))
    assert runtimes.min() >= 50.0 * 0.75 and runtimes.max() <= 50.0 * 1.25
    transfer_ms = np.array(list(profiled.output_bytes.values())) / 100_000.0
    assert transfer_ms.mean() / runtimes.mean() == pytest.approx(2.0, rel=0.05)
    for producer, consumer in dag.edges[:200]:
        assert dag.edge_bytes(producer, consumer) == profiled.output_bytes[producer]


def test_ccr_zero_means_no_edge_bytes():
    """With ccr=0 no edge carries data."""
    assert not layered_dag(300, ccr=0.0, seed=1).dag.edge_bytes_map


def test_ten_thousand_tasks_quickly():
    """A 10k-task layered DAG is generated in well under the simulator benchmark's budget."""
    start = time.perf_counter()
    profiled = layered_dag(10_000, seed=1)
    assert time.perf_counter() - start < 5.0
    assert len(profiled.dag) == 10_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_tasks": 0},
        {"n_tasks": 10, "alpha": 0},
        {"n_tasks": 10, "out_degree": 0.5},
        {"n_tasks": 10, "ccr": -1},
        {"n_tasks": 10, "beta": 2.5},
        {"n_tasks": 10, "mean_runtime_ms": 0},
        {"n_tasks": 10, "seed": 1, "rng": np.random.default_rng(1)},
    ],
)
def test_bad_parameters_raise(kwargs):
    """Out-of-range parameters, or both seed and rng, raise ValueError."""
    with pytest.raises(ValueError):
        layered_dag(**kwargs)


# -- the HEFT paper's example, checked with a from-scratch HEFT and CPOP ----------------------


def _upward_ranks(example):
    dag, mean = example.dag, {t: float(np.mean(c)) for t, c in example.cost.items()}
    rank = {}
    for t in reversed(dag.topological_order()):
        rank[t] = mean[t] + max(
            (example.comm[t, s] + rank[s] for s in dag.successors(t)), default=0
        )
    return rank


def _downward_ranks(example):
    dag, mean = example.dag, {t: float(np.mean(c)) for t, c in example.cost.items()}
    rank = {}
    for t in dag.topological_order():
        rank[t] = max(
            (rank[p] + mean[p] + example.comm[p, t] for p in dag.predecessors(t)), default=0
        )
    return rank


def _earliest_finish(example, task, proc, finish, where, busy):
    """Insertion-based EFT of `task` on `proc` given the tasks placed so far."""
    ready = max(
        (
            finish[p] + (0 if where[p] == proc else example.comm[p, task])
            for p in example.dag.predecessors(task)
        ),
        default=0.0,
    )
    cost = example.cost[task][proc]
    start = ready
    for slot_start, slot_end in sorted(busy[proc]):
        if start + cost <= slot_start:
            break
        start = max(start, slot_end)
    return start, start + cost


def _place(example, task, proc, finish, where, busy):
    start, end = _earliest_finish(example, task, proc, finish, where, busy)
    finish[task], where[task] = end, proc
    busy[proc].append((start, end))


def heft(example):
    """HEFT: tasks by decreasing upward rank (mean costs), each on its insertion-based EFT processor."""
    rank = _upward_ranks(example)
    # Ties (n3 and n4 both rank 80) keep topological order, as in the paper.
    order = sorted(example.dag.topological_order(), key=lambda t: -round(rank[t], 9))
    finish, where, busy = {}, {}, {p: [] for p in range(example.n_processors)}
    for task in order:
        proc = min(
            range(example.n_processors),
            key=lambda p: _earliest_finish(example, task, p, finish, where, busy)[1],
        )
        _place(example, task, proc, finish, where, busy)
    return max(finish.values()), order


def cpop(example):
    """CPOP: critical-path tasks on the processor fastest for them all, others by EFT."""
    up, down = _upward_ranks(example), _downward_ranks(example)
    priority = {t: up[t] + down[t] for t in example.dag}
    entry = example.dag.sources[0]
    critical = {entry}
    task = entry
    while example.dag.successors(task):
        task = next(
            s for s in example.dag.successors(task) if math.isclose(priority[s], priority[entry])
        )
        critical.add(task)
    cp_proc = min(
        range(example.n_processors), key=lambda p: sum(example.cost[t][p] for t in critical)
    )
    finish, where, busy = {}, {}, {p: [] for p in range(example.n_processors)}
    waiting = {t: len(example.dag.predecessors(t)) for t in example.dag}
    ready = [entry]
    while ready:
        task = max(ready, key=lambda t: priority[t])
        ready.remove(task)
        if task in critical:
            proc = cp_proc
        else:
            proc = min(
                range(example.n_processors),
                key=lambda p: _earliest_finish(example, task, p, finish, where, busy)[1],
            )
        _place(example, task, proc, finish, where, busy)
        for child in example.dag.successors(task):
            waiting[child] -= 1
            if not waiting[child]:
                ready.append(child)
    return max(finish.values())


def test_topcuoglu_dataset_shape():
    """The example has 10 tasks, 15 edges, 3 processors and a cost per task per processor."""
    example = topcuoglu_example()
    assert (len(example.dag), example.dag.n_edges, example.n_processors) == (10, 15, 3)
    assert all(len(costs) == 3 for costs in example.cost.values())
    assert dict(example.dag.edge_bytes_map) == dict(example.comm)


def test_topcuoglu_upward_ranks_match_paper():
    """Upward ranks match the values published with the example (n1: 108, n10: 14.667)."""
    rank = _upward_ranks(topcuoglu_example())
    published = {"n1": 108.0, "n2": 77.0, "n3": 80.0, "n4": 80.0, "n5": 69.0, "n6": 63.333,
                 "n7": 42.667, "n8": 35.667, "n9": 44.333, "n10": 14.667}  # fmt: skip
    for task_id, value in published.items():
        assert rank[task_id] == pytest.approx(value, abs=1e-3)


def test_topcuoglu_heft_makespan_is_80():
    """A straightforward HEFT schedules the example in 80 time units, as in the paper."""
    makespan, order = heft(topcuoglu_example())
    assert makespan == TOPCUOGLU_HEFT_MAKESPAN == 80
    assert order == ["n1", "n3", "n4", "n2", "n5", "n6", "n9", "n7", "n8", "n10"]


def test_topcuoglu_cpop_makespan_is_86():
    """A straightforward CPOP schedules the example in 86 time units, as in the paper."""
    assert cpop(topcuoglu_example()) == TOPCUOGLU_CPOP_MAKESPAN == 86


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"ccr": math.inf}, "ccr=inf must be a finite number"),
        ({"alpha": math.nan}, "alpha=nan must be a finite number"),
        ({"ccr": 1e300}, "above the limit of 9007199254740992 bytes"),
        ({"mean_runtime_ms": 1e10, "ccr": 0}, "is above the limit of 86400000 ms (one day"),
    ],
)
def test_layered_values_beyond_the_limits_are_refused(kwargs, expected):
    """Non-finite parameters, outputs past 2**53 bytes or runtimes past one day raise
    ValueError naming them (no overflow warning, no cast to a negative size)."""
    with pytest.raises(ValueError, match=re.escape(expected)):
        layered_dag(10, seed=1, **kwargs)


def test_layered_task_count_is_bounded():
    """More than MAX_TASKS tasks (a typo) is refused before anything is built."""
    from dag.generators import MAX_TASKS

    with pytest.raises(ValueError, match=f"must be an integer 1..{MAX_TASKS}"):
        layered_dag(MAX_TASKS + 1)
