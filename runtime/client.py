"""The client API: run a workflow for real with `run` (plan, store, invoke roots, await sinks).

The client is a worker-logic driver too: it runs `worker.branch.run_client` through the Redis
driver, so it starts the initial workers and waits for the sinks exactly as the simulator
models it (subscribe, check existence, then wait: a completion is never missed). A task
exception reaches it as `RemoteTaskError` with the remote traceback; a run that stalls (a dead
worker) ends in `WorkerLost` after `timeout_s`, naming the workers that never reported back.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dag.graph import DAG
from dag.lang import Workflow, build
from dag.plan import Placement, Plan
from dag.resources import ResourceConfig
from runtime.backends import Backend, LocalBackend, backend_for
from runtime.errors import RemoteTaskError, WorkerLost
from runtime.events import LOG_NAME, EventLog, Replayed, replay
from runtime.redis_driver import (
    CONTEXT_KEY,
    RedisDriver,
    RunContext,
    RunRef,
    TaskCall,
    WorkflowCall,
    client_for,
    encode_context,
    inline_context,
)
from runtime.store import RedisStore, RunFailed, loads
from traces.io import TraceSet
from traces.schema import frame_from_rows, make_frame
from worker.branch import await_sinks, restart, run_client
from worker.estimates import TabulatedEstimates
from worker.recording import TraceRecorder
from worker.schedule import Schedule

log = logging.getLogger(__name__)

DEFAULT_CONFIG = ResourceConfig(1769)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class RunResult:
    """What a real run produced: sink results and the trace tables.

    Attributes
    ----------
    run_id : str
    results : dict
        Sink task id -> value.
    value : object
        The workflow's outputs structure filled with results (None for a bare DAG).
    tasks, workers, runs : DataFrame
        Trace-schema tables (times in ms from run start).
    makespan_ms : float
    invocations : list of Invoke
        Every invocation, the client's first.
    uploads : list of str
        Every stored key (``out:<task>``).
    n_store_commands, n_publishes : int
        Store commands (transfers, counters, markers) and publishes the run performed.
    """

    run_id: str
    results: dict[str, Any]
    value: Any
    tasks: pd.DataFrame
    workers: pd.DataFrame
    runs: pd.DataFrame
    makespan_ms: float
    invocations: list[Any] = field(repr=False, default_factory=list)
    uploads: list[str] = field(repr=False, default_factory=list)
    n_store_commands: int = 0
    n_publishes: int = 0

    def traces(self) -> TraceSet:
        return TraceSet(self.tasks, self.workers, self.runs)


def flexible_plan(dag: DAG, config: ResourceConfig = DEFAULT_CONFIG) -> Plan:
    """Every task on a flexible (WUKONG) worker of `config`: the default when no plan is given."""
    return Plan({t: Placement(None, config) for t in dag}, planner="flexible")


def _resolve_target(target: Any, call: TaskCall | None) -> tuple[DAG, TaskCall, Workflow | None]:
    workflow = getattr(target, "workflow", None)  # an ExampleWorkflow
    if isinstance(workflow, Workflow):
        target = workflow
    if isinstance(target, DAG):
        if call is None:
            raise TypeError("run() of a bare DAG needs call=(task_id, inputs) -> value")
        return target, call, None
    if not isinstance(target, Workflow):
        target = build(target)
    return target.dag, call or WorkflowCall(target.specs), target


def _resolve_plan(
    dag: DAG, plan: Plan | None, planner: Any, predictor: Any, config: ResourceConfig
) -> Plan:
    if plan is not None and planner is not None:
        raise TypeError("run() takes a plan or a planner, not both")
    if plan is not None:
        return plan
    if planner is None:
        return flexible_plan(dag, config)
    if hasattr(planner, "plan"):
        if predictor is None:
            raise TypeError(f"planner {planner!r} needs predictor=...")
        return planner.plan(dag, predictor)
    return planner(dag)


def _resolve_backend(backend: Any, options: Mapping[str, Any]) -> Backend:
    if isinstance(backend, str):
        if backend == "local":
            return LocalBackend()
        if backend == "lambda":
            return backend_for({"kind": "lambda", **options})
        raise ValueError(f"unknown backend {backend!r}; known: local, lambda")
    if isinstance(backend, dict):
        return backend_for(backend)
    return backend


def run(
    target: Any,
    plan: Plan | None = None,
    *,
    planner: Any = None,
    predictor: Any = None,
    config: ResourceConfig = DEFAULT_CONFIG,
    estimates: Any = None,
    call: TaskCall | None = None,
    backend: Any = "local",
    redis_url: str = DEFAULT_REDIS_URL,
    timeout_s: float = 600.0,
    wait_timeout_s: float = 900.0,
    settle_timeout_s: float = 10.0,
    retries: int = 1,
    inline_context_bytes: int = 64 * 1024,
    keep: bool = False,
    run_id: str | None = None,
    on_settled: Callable[[], None] | None = None,
    **backend_options: Any,
) -> RunResult:
    """Run a workflow for real: plan it, store its context, invoke the roots, await the sinks.

    Parameters
    ----------
    target : task refs (an outputs structure), Workflow, ExampleWorkflow or DAG
        What to run; a DAG needs `call`.
    plan : Plan, optional
        The plan to run. Without a plan or a planner, every task is flexible at 1769 MB.
    planner : Planner or callable, optional
        ``planner.plan(dag, predictor)`` or ``planner(dag)`` makes the plan.
    predictor : optional
        For a `planners` planner.
    config : ResourceConfig
        Config of the default all-flexible plan (default 1769 MB, one vCPU).
    estimates : worker.estimates.Estimates, optional
        Task estimates the worker's optimizations decide with (task-dup, clustering).
    call : callable (task_id, inputs) -> value, optional
        How to run a task (default: the workflow's task functions). Must pickle (cloudpickle).
    backend : "local", "lambda", a descriptor dict or a backend object
        Who runs the workers: threads of this process, or AWS Lambda (``endpoint_url=...``
        reaches the local emulator).
    redis_url : str
        The store (``redis://``, ``rediss://``, password in the URL); workers must reach it.
    timeout_s : float
        Longest the client waits for one sink before raising `WorkerLost` (default 600).
    wait_timeout_s : float
        Longest a worker waits for one input (default 900, Lambda's maximum duration).
    settle_timeout_s : float
        After the sinks, how long to wait for the remaining workers' trace logs.
    retries : int
        How often a stalled run re-invokes its lost workers (started, never ended) before
        giving up with `WorkerLost`; a retry reads back the outputs its lost attempt stored, so
        no task's effect is applied twice (default 1).
    inline_context_bytes : int
        Payloads carry the run context inline up to this size; beyond it, a Redis key.
    keep : bool
        Keep the run's keys in Redis (default: delete them when the run ends).
    run_id : str, optional
        Default: a fresh random id.
    on_settled : callable, optional
        Called once every worker has ended (its log read back), before the client builds the
        traces: where a measurement of the run itself ends (e.g. CPU counters).
    **backend_options
        For ``backend="lambda"``: ``endpoint_url``, ``region_name``, ``prefix``.

    Returns
    -------
    RunResult

    Raises
    ------
    RemoteTaskError
        A task raised (the message has the remote traceback) or a worker failed.
    WorkerLost
        No progress to the sinks within `timeout_s`, after `retries` re-invocations.
    StoreLost
        Redis lost the run's keys (restarted or flushed) mid-run.
    """
    dag, task_call, workflow = _resolve_target(target, call)
    plan = _resolve_plan(dag, plan, planner, predictor, config)
    if estimates is None:  # decide at run time with the predictions the planner used
        estimates = getattr(plan.predicted, "estimates", None)
    if estimates is not None:  # plain tables: workers need not import what made them
        configs = {plan[t].config for t in dag}
        estimates = TabulatedEstimates.tabulate(estimates, dag.topological_order(), configs)
    # Workers get the plan without its predicted timeline (frames of the simulator).
    schedule = Schedule.build(dag, plan.with_predicted(None), estimates)
    the_backend = _resolve_backend(backend, backend_options)
    run_id = run_id or uuid.uuid4().hex[:16]
    store = RedisStore(client_for(redis_url), run_id)
    context = RunContext(schedule, task_call)
    blob = encode_context(context)

    t0_epoch = time.time()
    store.begin()
    store.put_blob(CONTEXT_KEY, blob)
    ref = RunRef(
        run_id=run_id,
        redis_url=redis_url,
        t0_epoch=t0_epoch,
        backend=the_backend.descriptor,
        wait_timeout_s=wait_timeout_s,
        context_inline=inline_context(blob, inline_context_bytes),
    )
    events = EventLog()
    driver = RedisDriver(context, store, the_backend, ref, events, wait_timeout_s=timeout_s)
    try:
        try:
            results = _await_with_retries(
                driver, schedule, store, events, the_backend, ref, run_id, retries
            )
        except RunFailed as failed:
            _settle(store, events, 0.5)
            raise RemoteTaskError(failed.failure) from None
        finally:
            driver.close()
        replayed = _settle(store, events, settle_timeout_s)
        if on_settled is not None:
            on_settled()
    finally:
        if not keep:
            store.cleanup()

    recorder = TraceRecorder(schedule)
    replay(recorder, [events.events, *replayed.logs])
    labels = {
        "run_id": run_id,
        "workflow": dag.name or "",
        "dag_hash": dag.dag_hash,
        "planner": plan.planner or "",
        "backend": the_backend.descriptor["kind"],
    }
    tasks = frame_from_rows("tasks", recorder.task_rows(), labels, "real tasks")
    workers = frame_from_rows("workers", recorder.worker_rows(), labels, "real workers")
    makespan_ms = recorder.makespan_ms()
    runs = make_frame(
        "runs",
        [
            {
                **labels,
                "makespan_ms": makespan_ms,
                "n_workers": len(workers),
                "n_cold": int((workers["startup"] == "cold").sum()),
                "bytes_up": int(tasks.loc[tasks["upload_ms"] > 0, "output_bytes"].sum())
                if len(tasks)
                else 0,
                "bytes_down": int(tasks["download_bytes"].sum()) if len(tasks) else 0,
            }
        ],
    )
    value = workflow.result(results) if workflow is not None else None
    return RunResult(
        run_id=run_id,
        results=results,
        value=value,
        tasks=tasks,
        workers=workers,
        runs=runs,
        makespan_ms=makespan_ms,
        invocations=replayed.invocations,
        uploads=replayed.uploads,
        n_store_commands=recorder.n_store_commands,
        n_publishes=recorder.n_publishes,
    )


@dataclass
class _Settled(Replayed):
    logs: list[list[tuple[Any, ...]]] = field(default_factory=list)


def _await_with_retries(driver, schedule, store, events, backend, ref, run_id, retries):
    """Run the client logic; when it stalls, re-invoke every lost worker (claimed, never
    ended) as its next attempt and wait again, up to `retries` times."""
    logic = run_client(schedule)
    for attempt in range(retries + 1):
        try:
            return driver.run(logic, None)
        except TimeoutError as err:
            replayed = _settle(store, events, 0.5)
            lost = sorted(
                worker_id
                for worker_id, claim in store.started().items()
                if worker_id not in replayed.ended and tuple(claim or ())[1:] == ("invoke",)
            )
            if attempt == retries or not lost:
                raise WorkerLost(
                    f"run {run_id!r} stalled: {err}; workers started that never reported "
                    f"back: {lost or 'none'}"
                ) from None
            log.warning("run %s: re-invoking lost workers %s", run_id, lost)
            for worker_id in lost:
                invocation = restart(schedule, worker_id, attempt + 1)
                backend.invoke(ref.payload(invocation, ref.now_ms()), invocation.config)
            logic = await_sinks(schedule)
    raise AssertionError("unreachable")


def _settle(store: RedisStore, events: EventLog, timeout_s: float) -> _Settled:
    """Read worker logs until every invoked worker has ended, or `timeout_s` passes."""
    logs: list[list[tuple[Any, ...]]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        for blob in store.read_log(LOG_NAME, len(logs)):
            logs.append(loads(blob, LOG_NAME))
        replayed = _structure([events.events, *logs])
        invoked = {i.worker_id for i in replayed.invocations}
        if invoked <= replayed.ended or time.monotonic() >= deadline:
            if not invoked <= replayed.ended:
                log.warning(
                    "run %s: no trace log from workers %s",
                    store.run_id,
                    sorted(invoked - replayed.ended),
                )
            return _Settled(
                replayed.invocations, replayed.uploads, replayed.ended, replayed.n_logs, logs
            )
        time.sleep(0.02)


class _NullRecorder:
    def worker_started(self, *args: Any, **kwargs: Any) -> None: ...

    def worker_ended(self, *args: Any) -> None: ...

    def effect(self, *args: Any) -> None: ...


def _structure(logs: list[list[tuple[Any, ...]]]) -> Replayed:
    return replay(_NullRecorder(), logs)  # type: ignore[arg-type]
