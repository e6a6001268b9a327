"""The client API: run a workflow for real with `run` (plan, store, invoke roots, await sinks).

The client is a worker-logic driver too: it runs `worker.branch.run_client` through the Redis
driver, so it starts the initial workers and waits for the sinks exactly as the simulator
models it (subscribe, check existence, then wait: a completion is never missed). Between waits
it watches the workers' heartbeats (`Watch`): a worker whose heartbeat expired is re-invoked as
a new attempt, and the old attempt is fenced off. A task exception reaches it as
`RemoteTaskError` with the remote traceback; a run that cannot finish ends in `WorkerLost`,
naming the workers.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import redis

from dag.graph import DAG
from dag.lang import Workflow, build
from dag.plan import Placement, Plan
from dag.resources import ResourceConfig
from planners.base import as_platform
from runtime.backends import Backend, LocalBackend, backend_for
from runtime.errors import RemoteTaskError, RunFailed, StoreError
from runtime.events import EventLog, replay
from runtime.live import DEFAULT_EVENTS_MAXLEN, LivePublisher, start_publisher
from runtime.live_source import StreamSource, describe_run, store_description
from runtime.liveness import DEFAULT_HEARTBEAT_TTL_S, LogReader, Watch
from runtime.redis_driver import (
    CONTEXT_KEY,
    REDIS_URL_ENV,
    RedisDriver,
    RunContext,
    RunRef,
    TaskCall,
    WorkflowCall,
    client_for,
    encode_context,
    inline_context,
)
from runtime.store import DEFAULT_TTL_S, RedisStore
from sim.costs import bill_recorded
from traces.io import TraceSet
from traces.schema import frame_from_rows, make_frame
from worker.estimates import TabulatedEstimates
from worker.recording import CLIENT, TraceRecorder
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
        Task id -> value of every task the outputs structure names (intermediate tasks too)
        and every sink.
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


def _resolve_backend(backend: Any, options: Mapping[str, Any], redis_url: str) -> Backend:
    if isinstance(backend, str):
        if backend == "local":
            return LocalBackend(redis_url)
        if backend == "lambda":
            return backend_for({"kind": "lambda", **options})
        raise ValueError(f"unknown backend {backend!r}; known: local, lambda")
    if isinstance(backend, dict):
        if backend.get("kind") == "local":
            return LocalBackend(redis_url)
        return backend_for(backend)
    return backend


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + netloc))


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
    redis_url: str | None = None,
    timeout_s: float | None = None,
    wait_timeout_s: float = 900.0,
    settle_timeout_s: float = 10.0,
    retries: int = 1,
    heartbeat_ttl_s: float = DEFAULT_HEARTBEAT_TTL_S,
    start_timeout_s: float = 60.0,
    check_interval_s: float = 1.0,
    ttl_s: float = DEFAULT_TTL_S,
    inline_context_bytes: int = 64 * 1024,
    keep: bool = False,
    run_id: str | None = None,
    on_settled: Callable[[], None] | None = None,
    platform: Any = "aws-lambda",
    events: bool = True,
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN,
    dashboard: Any = None,
    **backend_options: Any,
) -> RunResult:
    """Run a workflow for real: plan it, store its context, invoke the roots, await the sinks.

    Every run has a unique id and its keys live under it, each with a ttl; when the run ends,
    fails or is interrupted it is cancelled (workers still running stop at their next write)
    and, unless `keep`, its keys are deleted. A worker is re-invoked only when its heartbeat has
    expired (it died), never because it is slow; the retry is a new attempt, and the old
    attempt's writes are refused from then on, so each output is written once.

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
    redis_url : str, optional
        The store (``redis://``, ``rediss://``, password in the URL); default
        ``FAASDAG_REDIS_URL`` of the environment, else ``redis://127.0.0.1:6379/0``. Lambda
        workers read it from their function's environment, never from a payload.
    timeout_s : float, optional
        Longest the client waits with no progress (no worker starting or ending, no sink
        stored) before raising `WorkerLost`; default: the longest configured timeout of the
        plan's functions (900 s for local threads), as no worker can run longer.
    wait_timeout_s : float
        Longest a worker waits for one input (default 900, Lambda's maximum duration).
    settle_timeout_s : float
        After the sinks, how long to wait for the remaining workers' trace logs.
    retries : int
        How often one lost worker (its heartbeat expired, or it never started) is re-invoked,
        as a new attempt that reads back the outputs its lost attempt stored (default 1).
    heartbeat_ttl_s : float
        A worker's heartbeat expires this long after its last refresh (default 10 s): how soon
        a dead worker is noticed.
    start_timeout_s : float
        An invoked worker whose heartbeat never appears within this time is lost (default 60).
    check_interval_s : float
        How often the client checks liveness while it waits (default 1 s).
    ttl_s : float
        Every key of the run expires after this long (default 24 h), whatever happens.
    inline_context_bytes : int
        Payloads carry the run context inline up to this size; beyond it, a Redis key.
    keep : bool
        Keep the run's keys in Redis (until their ttl) instead of deleting them when it ends.
    run_id : str, optional
        Default: a fresh random id.
    on_settled : callable, optional
        Called once every worker has ended (its log read back), before the client builds the
        traces: where a measurement of the run itself ends (e.g. CPU counters).
    platform : Platform or str
        Whose prices bill the run (`sim.costs.bill_recorded` on its workers' billed time and
        its store use); a preset name or TOML path, default ``"aws-lambda"``.
    events : bool
        Publish the run's live events (`runtime.live`) to its bounded stream, for a dashboard
        (default True).
    events_maxlen : int
        The stream keeps about this many entries, each a batch of at most 64 events of one
        worker (default 20,000).
    dashboard : True, or an object with ``follow(source)``, optional
        Show the run live: True serves this process's dashboard (`dashboard.serve`; its URL
        is logged), an object (a `dashboard.Dashboard`) is handed the run's `StreamSource`.
        Needs `events`.
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
        No progress within `timeout_s`, or a lost worker after `retries` re-invocations.
    StoreLost
        Redis lost the run's keys (restarted or flushed) mid-run.
    StoreError
        Redis cannot be reached (the message names it, without its password).
    RunIdInUse
        `run_id` names a run that is live in this Redis.
    """
    dag, task_call, workflow = _resolve_target(target, call)
    plan = _resolve_plan(dag, plan, planner, predictor, config)
    if estimates is None:  # decide at run time with the predictions the planner used
        estimates = getattr(plan.predicted, "estimates", None)
    if estimates is not None:  # plain tables: workers need not import what made them
        configs = {plan[t].config for t in dag}
        estimates = TabulatedEstimates.tabulate(estimates, dag.topological_order(), configs)
    # Workers get the plan without its predicted timeline (frames of the simulator).
    outputs = workflow.output_ids() if workflow is not None else ()
    schedule = Schedule.build(dag, plan.with_predicted(None), estimates, outputs)
    redis_url = redis_url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    the_backend = _resolve_backend(backend, backend_options, redis_url)
    run_id = run_id or uuid.uuid4().hex[:16]
    store = RedisStore(client_for(redis_url), run_id, ttl_s=ttl_s)
    context = RunContext(schedule, task_call)
    blob = encode_context(context)
    if timeout_s is None:
        configs = {plan[t].config for t in dag}
        timeout_s = max(the_backend.function_timeout_s(c) for c in configs)

    labels = {
        "run_id": run_id,
        "workflow": dag.name or "",
        "dag_hash": dag.dag_hash,
        "planner": plan.planner or "",
        "backend": the_backend.descriptor["kind"],
    }
    the_platform = as_platform(platform)
    if dashboard and not events:
        raise TypeError("run(dashboard=...) needs events=True: the dashboard follows them")
    events_maxlen = events_maxlen if events else 0

    t0_epoch = time.time()
    try:
        store.begin()
    except redis.RedisError as err:
        raise StoreError(f"Redis at {redacted(redis_url)} cannot be reached: {err}") from None
    live = None
    try:
        store.put_blob(CONTEXT_KEY, blob)
        ref = RunRef(
            run_id=run_id,
            t0_epoch=t0_epoch,
            backend=the_backend.descriptor,
            wait_timeout_s=wait_timeout_s,
            context_inline=inline_context(blob, inline_context_bytes),
            ttl_s=ttl_s,
            heartbeat_ttl_s=heartbeat_ttl_s,
            events_maxlen=events_maxlen,
        )
        if events_maxlen:
            description = describe_run(run_id, dag, plan, labels, the_platform, t0_epoch)
            live = _start_live(store, ref, description, dashboard, redis_url)
        events = EventLog()
        logs = LogReader(store)
        driver = RedisDriver(
            context, store, the_backend, ref, events, wait_timeout_s=check_interval_s, live=live
        )
        watch = Watch(
            store, logs, schedule, the_backend, ref,
            retries=retries, timeout_s=timeout_s, start_timeout_s=start_timeout_s,
        )  # fmt: skip
        watch.live = live
        try:
            results = watch.await_sinks(driver)
        except RunFailed as failed:
            raise RemoteTaskError(failed.failure) from None
        except redis.ConnectionError as err:
            raise StoreError(
                f"run {run_id!r}: Redis at {redacted(redis_url)} was lost mid-run: {err}"
            ) from None
        finally:
            driver.close()
        replayed = logs.settle(events, settle_timeout_s)
        if on_settled is not None:
            on_settled()
        _end_live(live, "ok")
    except BaseException as error:
        _end_live(live, "failed", error)
        raise
    finally:
        _end(store, keep)

    recorder = TraceRecorder(schedule)
    replay(recorder, [events.events, *logs.logs])
    tasks = frame_from_rows("tasks", recorder.task_rows(), labels, "real tasks")
    workers = frame_from_rows("workers", recorder.worker_rows(), labels, "real workers")
    makespan_ms = recorder.makespan_ms()
    bytes_up = int(tasks.loc[tasks["upload_ms"] > 0, "output_bytes"].sum()) if len(tasks) else 0
    bytes_down = int(tasks["download_bytes"].sum()) if len(tasks) else 0
    cost = bill_recorded(
        workers,
        the_platform,
        store_bytes=bytes_up + bytes_down,
        n_store_ops=recorder.n_store_commands + recorder.n_publishes,
    )
    runs = make_frame(
        "runs",
        [
            {
                **labels,
                "makespan_ms": makespan_ms,
                "cost_compute_usd": cost["compute_usd"],
                "cost_requests_usd": cost["requests_usd"],
                "cost_store_usd": cost["store_usd"],
                "cost_usd": cost["total_usd"],
                "n_workers": len(workers),
                "n_cold": int((workers["startup"] == "cold").sum()),
                "bytes_up": bytes_up,
                "bytes_down": bytes_down,
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


def _start_live(
    store: RedisStore, ref: RunRef, description: dict[str, Any], dashboard: Any, redis_url: str
) -> LivePublisher | None:
    """Store the run's description, announce its start, and hand its stream to `dashboard`."""
    store_description(store, description)
    live = start_publisher(store, CLIENT, 0, ref.events_maxlen, ref.now_ms)
    if live is None:
        return None
    live.emit("run_started", 0.0, n_tasks=len(description["tasks"]))
    live.flush()
    if dashboard:
        if dashboard is True:
            from dashboard.server import default_dashboard  # bokeh: loaded only when asked

            dashboard = default_dashboard()
            log.warning("run %s: dashboard at %s", ref.run_id, dashboard.url)
        dashboard.follow(StreamSource(client_for(redis_url), ref.run_id))
    return live


def _end_live(live: LivePublisher | None, status: str, error: BaseException | None = None) -> None:
    """Announce the run's end (before it is cancelled: its stream stays readable until it is
    cleaned up); a failure to send is logged, never raised over the run's own outcome."""
    if live is None:
        return
    fields: dict[str, Any] = {"status": status}
    if error is not None:
        fields["error"] = f"{type(error).__name__}: {error}"[:2000]
    try:
        live.emit("run_ended", **fields)
        live.send_with(live.store.add_events, close=True)
    except Exception as err:  # the store is gone or the run cancelled: the outcome stands
        log.info("run %s: end event not sent (%s)", live.store.run_id, err)


def _end(store: RedisStore, keep: bool) -> None:
    """Cancel the run (workers still running stop at their next write) and, unless `keep`,
    delete its keys; a Redis that is gone is logged, not raised over the run's own error."""
    try:
        store.cancel()
        if not keep:
            store.cleanup()
    except redis.RedisError as err:
        log.warning("run %s: could not cancel or clean up (%s); its keys expire", store.run_id, err)
