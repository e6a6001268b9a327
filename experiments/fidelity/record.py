"""Step 1, recording: real runs of every (workflow, planner) cell on the local Lambda emulator.

A cell's plan is its planner on the workflow's modelled profiles (`plan_cell`), on the preset
in its warm regime (`warm_regime`). Each cell runs in steady state: `WARMUP_RUNS` unrecorded
runs of its plan start its processes, `WARMUP_ROUNDS` unrecorded rounds follow, and before
each recorded run the pools are topped up (`Bench.prewarm`, `POOL_MARGIN` spare) so that no
run starts cold. A round runs every planner's plan once, in an order rotated by one per round,
so the machine's drift falls on every planner alike. `record_with_overheads` also measures the
worker overheads and the host's CPUs between the rounds (for
`runtime.calibrate.refit_overheads`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from typing import Any

from experiments.fidelity.config import FidelityConfig

log = logging.getLogger(__name__)

#: Unrecorded runs of a cell's plan before its recorded ones.
WARMUP_RUNS = 2
#: Unrecorded rounds of every cell, as the recorded rounds run them, before those. Without one
#: the recorded rounds got steadily faster: over seven validations the first was 4-22% slower
#: than its cells' means and the fifth 1-10% faster, in exec, transfers and store round trips
#: alike; with one, over four validations, no steady trend was left (rounds within -6..+8%).
WARMUP_ROUNDS = 1
#: Idle workers per config beyond a warm-up run's count, topped up before each recorded run.
POOL_MARGIN = 2
#: How long each pre-warm ping holds its container, ms: long enough for all pings to overlap.
PREWARM_HOLD_MS = 300.0
#: Attempts of one real run whose trace rows the schema rejects (see `Bench.run`).
RUN_ATTEMPTS = 3


def plan_cell(workflow: str, planner: str, configs: Sequence[int], platform: Any) -> tuple:
    """(example, plan) of one cell: the planner on the workflow's modelled profiles."""
    from dag.examples import build_example
    from dag.resources import ResourceConfig
    from planners import ProfilesPredictor, get_planner

    example = build_example(workflow)
    predictor = ProfilesPredictor.from_profiled(example)
    plan = get_planner(planner).plan(
        example.dag, predictor, platform, [ResourceConfig(m) for m in configs]
    )
    return example, plan


def warm_regime(platform: Any) -> Any:
    """`platform` with every start-up warm: what runs on warm pools see."""
    return platform.with_overrides(
        cold_start_median_ms=platform.warm_start_ms, cold_start_sigma=0.0, cold_start_min_ms=0.0
    )


class Bench:
    """The local emulator (one function per memory size) and a Redis, for real runs.

    Parameters
    ----------
    configs : iterable of int
        Memory sizes, MB.
    redis_url : str, optional
        Default: a private redis-server started here.
    """

    def __init__(self, configs: Iterable[int], redis_url: str | None = None):
        self.configs = tuple(configs)
        self.redis_url = redis_url
        self._stack = ExitStack()
        self.emulator: Any = None
        self.n_rejected = 0
        self._client: Any = None

    def __enter__(self) -> Bench:
        from threadpoolctl import threadpool_limits

        from runtime.lambda_backend import backend_environment
        from runtime.lambda_local import LambdaEmulator
        from runtime.local_redis import local_redis

        # This process checks results with numpy (gemm's check multiplies matrices): with a
        # BLAS pool of the machine's size, its idle threads spin after each check and take
        # CPU from the next run's workers (~50 CPU-ms per gemm run on 2 cores). The workers'
        # own pools are sized by the emulator.
        self._stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        if self.redis_url is None:
            self.redis_url = self._stack.enter_context(local_redis()).url
        self.emulator = self._stack.enter_context(
            LambdaEmulator(max_concurrency=32, keep_alive_s=600.0)
        )
        for memory_mb in self.configs:
            self.emulator.add_function(
                f"faasdag-{memory_mb}",
                memory_mb,
                # A container makes the runs' Lambda client when it starts, not in a run.
                environment=backend_environment(
                    self.emulator.endpoint_url, redis_url=self.redis_url
                ),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def prewarm(
        self, memory_mb: int, n: int, imports: Sequence[str] = (), *, every: bool = False
    ) -> None:
        """Top the pool of `memory_mb` up to at least `n` idle workers, each ready to invoke.

        Sends `n` concurrent warm-up pings that hold their container `PREWARM_HOLD_MS` (so they
        reach `n` distinct containers) and import `imports` (the workflow's task modules), as
        in a container that ran the workflow; a new container makes the runs' Lambda client
        when it starts (its function's environment names the backend).
        With `every`, pings every idle container too (at least `n`), even if enough are idle.
        """
        from runtime.lambda_backend import release_connection, warmup_payload

        function = self.emulator.functions[f"faasdag-{memory_mb}"]
        if every:
            n = max(n, len(function.idle))
        elif len(function.idle) >= n:
            return
        if self._client is None:
            from runtime.lambda_backend import lambda_client

            self._client = lambda_client(
                self.emulator.endpoint_url, max_attempts=1, read_timeout_s=120.0
            )
        warmup = warmup_payload(hold_ms=PREWARM_HOLD_MS, imports=list(imports))
        payload = json.dumps(warmup).encode()

        def ping() -> None:
            release_connection(self._client.invoke(FunctionName=function.name, Payload=payload))

        threads = [threading.Thread(target=ping, daemon=True) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        deadline = time.monotonic() + 5.0  # each container asks for its next event
        while len(function.idle) < n and time.monotonic() < deadline:
            time.sleep(0.005)

    def run(self, example: Any, plan: Any, **labels: Any) -> Any:
        """One real run of `plan`; returns the RunResult (checked against direct numpy)."""
        from runtime.calibrate import paused_gc
        from runtime.client import run
        from traces.schema import TraceSchemaError

        for attempt in range(RUN_ATTEMPTS):
            try:
                with paused_gc():  # the emulator's threads live in this process
                    result = run(
                        example,
                        plan,
                        backend="lambda",
                        endpoint_url=self.emulator.endpoint_url,
                        redis_url=self.redis_url,
                        timeout_s=300.0,
                    )
            except TraceSchemaError as err:
                # Known runtime issue: a task row now and then has end_ms before ready_ms.
                self.n_rejected += 1
                log.warning("run rejected (attempt %d): %s", attempt + 1, err)
                if attempt + 1 == RUN_ATTEMPTS:
                    raise
                continue
            example.check(result.results)
            return result
        raise AssertionError("unreachable")


def _task_modules(*workflows: Any) -> list[str]:
    """The modules of the task functions of `workflows` (what a warm container has imported)."""
    return sorted({spec.fn.__module__ for w in workflows for spec in w.specs.values()})


def record(
    config: FidelityConfig,
    *,
    redis_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Run every cell of `config` for real on the local emulator; returns the TraceSet.

    Per workflow: each planner's plan, then `WARMUP_RUNS` warm-up runs of it (not recorded:
    they start the processes the plan needs and load the workflow's modules in them); then
    `WARMUP_ROUNDS` unrecorded and ``repetitions`` recorded rounds, each running every
    planner's plan once, in an order rotated by one per round. Interleaving the planners
    spreads this machine's speed drift (its state changes every few seconds) over all of them
    alike, instead of giving each planner its own stretch of time, which would bias their
    ranking. Before each recorded run the pools are topped up
    to the warm-up's workers per config plus `POOL_MARGIN` (invocations that pile up
    differently would otherwise start a cold process now and then), the new containers with
    the workflow's modules imported. The runs table carries the cell in ``config`` (JSON:
    workflow, planner, configs, repetition, preset) and the plan's predicted makespan on the
    warm preset.
    """
    return _record(config, redis_url, progress, overheads=False)[0]


def record_with_overheads(
    config: FidelityConfig,
    *,
    redis_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, list[Any]]]:
    """`record`, and each round also runs the calibration's no-op workflows once
    (`runtime.calibrate.overhead_workflows`, on the first memory size's function) and measures
    the host's parallelism (`runtime.calibrate.measure_host_parallelism`); returns the TraceSet
    and those samples, for `runtime.calibrate.refit_overheads`: worker overheads and CPUs
    measured over the recorded runs' own stretch of time."""
    return _record(config, redis_url, progress, overheads=True)


def _record(
    config: FidelityConfig,
    redis_url: str | None,
    progress: Callable[[str], None] | None,
    *,
    overheads: bool,
) -> tuple[Any, dict[str, list[Any]]]:
    from runtime.calibrate import (
        DEFAULT_MEMORY_MB,
        measure_host_parallelism,
        measure_overhead_run,
        overhead_workflows,
    )
    from sim.platform import Platform
    from traces.io import TraceSet

    platform = warm_regime(Platform.preset(config.preset))
    overhead_cells = overhead_workflows() if overheads else {}
    samples: dict[str, list[Any]] = (
        {"worker_setup_ms": [], "host_parallelism": []} if overheads else {}
    )
    samples.update({f"overhead_{name}": [] for name in overhead_cells})
    overhead_mb = DEFAULT_MEMORY_MB[0]
    configs = tuple(config.configs)
    if overhead_cells and overhead_mb not in configs:
        configs += (overhead_mb,)
    parts = []
    with Bench(configs, redis_url) as bench:
        url = bench.emulator.endpoint_url
        for workflow in config.workflows:
            cells = {}
            for planner in config.planners:
                example, plan = plan_cell(workflow, planner, config.configs, platform)
                needed: dict[int, int] = {}
                for _ in range(WARMUP_RUNS):  # processes started and workflow modules loaded
                    warmup = bench.run(example, plan)
                    for memory_mb, n in warmup.workers["memory_mb"].value_counts().items():
                        needed[int(memory_mb)] = max(needed.get(int(memory_mb), 0), int(n))
                cells[planner] = (example, plan, needed)
            # Every container may serve the workflow and the no-op workflows alike: each has
            # imported both (a container first started by one would import the other mid-run).
            modules = _task_modules(example.workflow, *(w for w, _ in overhead_cells.values()))

            def overhead_run(name: str, modules: list[str] = modules) -> tuple[Any, Any]:
                overhead, overhead_plan = overhead_cells[name]
                bench.prewarm(overhead_mb, len(overhead_plan.workers()) + POOL_MARGIN, modules)
                return measure_overhead_run(overhead, overhead_plan, url, bench.redis_url)

            if overhead_cells:
                for memory_mb in configs:
                    bench.prewarm(memory_mb, 0, modules, every=True)
                for name in overhead_cells:
                    overhead_run(name)  # warm-up
            planners = list(config.planners)
            for rep in range(-WARMUP_ROUNDS, config.repetitions):  # rounds < 0: not recorded
                for planner in planners[rep % len(planners) :] + planners[: rep % len(planners)]:
                    example, plan, needed = cells[planner]
                    for memory_mb, n in needed.items():  # steady state: no run starts cold
                        bench.prewarm(memory_mb, n + POOL_MARGIN, modules)
                    result = bench.run(example, plan)
                    if rep < 0:
                        continue
                    cell = {
                        "workflow": workflow,
                        "planner": planner,
                        "configs": list(config.configs),
                        "repetition": rep,
                        "preset": config.preset,
                    }
                    result.runs["config"] = json.dumps(cell, sort_keys=True)
                    result.runs["planner"] = planner
                    result.runs["predicted_makespan_ms"] = plan.predicted.makespan_ms
                    result.tasks["planner"] = planner
                    parts.append(result.traces())
                    if progress is not None:
                        progress(
                            f"{workflow} {planner} #{rep}: {result.makespan_ms:.1f} ms, "
                            f"{int(result.runs['n_cold'].iloc[0])} cold"
                        )
                if rep < 0:
                    continue  # the samples describe the recorded rounds' stretch of time
                for name in overhead_cells:
                    row, setups = overhead_run(name)
                    samples[f"overhead_{name}"].append(row)
                    samples["worker_setup_ms"].extend(setups)
                if overhead_cells:
                    samples["host_parallelism"].append(measure_host_parallelism())
    return TraceSet.concat(parts), samples
