"""Step 1, microbenchmarks of the machine: the CPUs it gives busy processes, and what faasdag's
own worker costs in CPU.

- the machine's CPUs (`measure_host_parallelism`): emulator workers, Redis and the client share
  them, so the simulator runs every task and overhead on one shared host. Measured (as many
  busy processes as the machine has CPUs, against one alone), not read off the CPU count: a
  VM's vCPUs may share physical cores or be descheduled, and this one gave 1.4-2.0 of its 2
  within minutes;
- faasdag's own CPU per task, per invocation and per store command (`bench_worker_overheads`):
  the busy CPU (`_busy_cpu_ms`) of real runs of no-op workflows (`overhead_workflows`), one
  ``[cpu_ms, n_tasks, n_workers, n_store_commands, n_publishes]`` row per run
  (`measure_overhead_run`), which `runtime.calibrate.fit.fit_worker_overheads` solves.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dag.lang import task
from runtime.calibrate.fit import _median, host_cpus
from runtime.calibrate.microbench import DEFAULT_MEMORY_MB

#: The no-op workflows of `overhead_workflows`, by name.
OVERHEAD_WORKFLOWS = ("chain", "chain2", "fanout", "relay")


#: Iterations of the pure-Python loop `measure_host_parallelism` times (~0.1 s alone).
PARALLEL_LOOP = 2_000_000


def _spin(ready: Any, done: Any) -> None:
    ready.wait()
    total = 0
    for i in range(PARALLEL_LOOP):
        total += i * i
    done.put(total)


def busy_wall_s(processes: int) -> float:
    """Seconds until the last of `processes` processes, started together once all are up,
    finishes the same pure-Python loop."""
    import multiprocessing

    # Not fork: this process runs the emulator's threads (a forked child could inherit a lock
    # one of them held). The fork server starts once and has this module loaded.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    ready, done = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=_spin, args=(ready, done)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    ready.wait()  # process start-up is not timed
    start = time.perf_counter()
    for _ in range(processes):
        done.get()
    elapsed = time.perf_counter() - start
    for worker in workers:
        worker.join()
    return elapsed


def measure_host_parallelism(processes: int | None = None, repeats: int = 3) -> float:
    """The CPUs `processes` busy processes get together (default: as many as `host_cpus`):
    ``processes * t(1) / t(processes)``, the loop timed alone and in each of them, medians of
    `repeats` alternations (the machine's speed drifts between single timings)."""
    k = processes or host_cpus()
    alone, together = [], []
    for _ in range(repeats):
        alone.append(busy_wall_s(1))
        together.append(busy_wall_s(k))
    return k * _median(alone) / _median(together)


@task
def noop(*inputs: Any) -> int:
    """A task that does nothing (the overhead benchmark's task function)."""
    return 0


def _busy_cpu_ms() -> float:
    """CPU-ms used so far by this process (all its threads) and the live threads of its child
    processes (the emulator's workers, a private redis-server); Linux, ns-precise.

    Machine-wide counters tick every 10 ms, too coarse for runs that use tens of ms.
    """
    own_ms = time.process_time() * 1000.0  # first, so the scan below is not counted
    children_ns = 0
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                ppid = stat.read().rsplit(")", 1)[1].split()[1]
            if ppid != me:
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as sched:
                    children_ns += int(sched.read().split()[0])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
    return own_ms + children_ns / 1e6


def overhead_workflows(n_chain: int = 100, n_fanout: int = 16) -> dict[str, Any]:
    """(workflow, plan) per benchmark: a chain of `n_chain` no-ops on one worker, one of twice
    that, a fan-out of `n_fanout` one-task workers between a root and a sink, and a relay (a
    chain of `n_chain` alternating between two workers: every edge is a store round trip)."""
    from dag.lang import build
    from dag.plan import Placement, Plan
    from dag.resources import ResourceConfig

    def chain(length: int, name: str) -> Any:
        ref = noop()
        for _ in range(length - 1):
            ref = noop(ref)
        return build(ref, name=name)

    config = ResourceConfig(DEFAULT_MEMORY_MB[0])
    out: dict[str, Any] = {}
    for name, length in (("chain", n_chain), ("chain2", 2 * n_chain)):
        workflow = chain(length, name)
        placements = {t: Placement("w0", config) for t in workflow.dag.topological_order()}
        out[name] = (workflow, Plan(placements, planner="calibrate"))
    root = noop()
    sink = noop([noop(root) for _ in range(n_fanout)])
    workflow = build(sink, name="fanout")
    order = workflow.dag.topological_order()  # the root first, the sink last
    placements = {}
    for i, task_id in enumerate(order):
        ends = task_id in (order[0], order[-1])
        placements[task_id] = Placement("w0" if ends else f"w{i}", config)
    out["fanout"] = (workflow, Plan(placements, planner="calibrate"))
    workflow = chain(n_chain, "relay")
    order = workflow.dag.topological_order()
    placements = {t: Placement(f"w{i % 2}", config) for i, t in enumerate(order)}
    out["relay"] = (workflow, Plan(placements, planner="calibrate"))
    return out


def bench_worker_overheads(
    endpoint_url: str, redis_url: str, *, n_chain: int = 100, n_fanout: int = 16, repeats: int = 5
) -> dict[str, list[float]]:
    """What faasdag's own worker costs on an idle machine, from real runs of no-op workflows.

    Samples (ms): ``worker_setup_ms`` (a warm worker's handler start to its first task) and,
    per workflow (``overhead_chain``, ``overhead_chain2``, ``overhead_fanout``,
    ``overhead_relay``), one ``[cpu_ms, n_tasks, n_workers, n_store_commands, n_publishes]`` row
    per run (`measure_overhead_run`), from which `fit_platform` solves the CPU per task, per
    invocation and per store command. The workers run the first memory size's function
    (``faasdag-<MB>``).
    """
    cells = overhead_workflows(n_chain, n_fanout)
    samples: dict[str, list[Any]] = {"worker_setup_ms": []}
    samples.update({f"overhead_{name}": [] for name in cells})
    for name, (workflow, plan) in cells.items():
        for rep in range(repeats + 1):
            row, setups = measure_overhead_run(workflow, plan, endpoint_url, redis_url)
            if rep == 0:
                continue  # the warm-up run starts the processes
            samples[f"overhead_{name}"].append(row)
            samples["worker_setup_ms"].extend(setups)
    return samples


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection in this process inside the block (restored after).

    The emulator serves invocations from this process's threads: a full collection of a
    large client heap (100-200 ms) during a measured run would stall them all.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def measure_overhead_run(
    workflow: Any, plan: Any, endpoint_url: str, redis_url: str
) -> tuple[list[float], list[float]]:
    """One real run of a no-op workflow of `overhead_workflows` on the emulator at
    `endpoint_url`: its ``[cpu_ms, n_tasks, n_workers, n_store_commands, n_publishes]`` row and
    its workers' setup times (handler start to first task, ms).

    The CPU-ms (`_busy_cpu_ms`: this process, the emulator's workers, a private Redis) are
    counted until the run settles, not during the client's trace building.
    """
    from runtime.client import run

    counters: list[float] = [_busy_cpu_ms()]
    with paused_gc():
        result = run(
            workflow,
            plan,
            backend="lambda",
            endpoint_url=endpoint_url,
            redis_url=redis_url,
            on_settled=lambda: counters.append(_busy_cpu_ms()),
        )
    tasks, workers = result.tasks, result.workers
    row = [
        counters[1] - counters[0],
        float(len(tasks)),
        float(len(workers)),
        float(result.n_store_commands),
        float(result.n_publishes),
    ]
    first = tasks.sort_values("start_ms").groupby("worker_id").head(1)
    ready = workers.set_index("worker_id")["ready_ms"]
    setups = [
        float(start - ready[w])
        for w, start in zip(first["worker_id"], first["start_ms"], strict=True)
    ]
    return row, setups
