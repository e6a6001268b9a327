"""What a plan means for each task, precomputed once per run: a pure function of DAG and plan.

The tables here are read by the worker logic; they hold no state that changes during a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dag.graph import DAG
from dag.plan import Plan
from dag.resources import ResourceConfig
from worker.estimates import Estimates

FLEXIBLE_PREFIX = "flex-"


def output_key(task_id: str) -> str:
    """Store key of a task's output."""
    return f"out:{task_id}"


def counter_key(task_id: str) -> str:
    """Store key of a task's dependency counter."""
    return f"deps:{task_id}"


def started_key(worker_id: str) -> str:
    """Store key set (if absent) by whoever starts a fixed worker, so it starts once."""
    return f"started:{worker_id}"


def done_channel(task_id: str) -> str:
    """Pub/sub channel announcing that a task's output is stored."""
    return f"done:{task_id}"


def claim_key(task_id: str) -> str:
    """Store key set (if absent) by the run of a task whose result counts (task-dup)."""
    return f"claim:{task_id}"


def began_key(task_id: str) -> str:
    """Store key holding when a duplicable task began on its planned worker (ms)."""
    return f"began:{task_id}"


def flexible_worker_id(task_id: str) -> str:
    """Id of the flexible worker started for `task_id` (each flexible task starts at most one)."""
    return f"{FLEXIBLE_PREFIX}{task_id}"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A plan read against its DAG: per-task worker, config, local order, counted dependencies.

    Attributes
    ----------
    dag, plan
        The inputs (the plan is validated against the DAG).
    worker_of : mapping task id -> fixed worker id, or None for a flexible task
    config_of : mapping task id -> ResourceConfig
    local_order : mapping fixed worker id -> its tasks in the plan's order (by default the
        DAG's topological order)
    counted : mapping task id -> the producers that increment its dependency counter: those on
        another worker (all of them for a flexible task). A task whose count reaches
        ``len(counted[t])`` is ready to be started by whoever observed it.
    outputs : frozenset of task ids
        The tasks whose results the client waits for and fetches: the sinks, and any other
        task the caller asked for (its output is then stored like a sink's).
    subdags : mapping task id -> tuple of task ids
        inline-subdag: for each producer whose flag acts, the tasks below it that its worker
        runs itself right after it, in topological order (`worker.optimizations.inline_subdags`).
    subdag_of : mapping task id -> task id
        The producer whose sub-DAG each inlined task belongs to.
    """

    dag: DAG
    plan: Plan
    worker_of: Mapping[str, str | None]
    config_of: Mapping[str, ResourceConfig]
    local_order: Mapping[str, tuple[str, ...]]
    counted: Mapping[str, tuple[str, ...]]
    estimates: Estimates | None = None
    dup_targets: frozenset[str] = frozenset()
    waits_for_inputs: frozenset[str] = frozenset()
    outputs: frozenset[str] = frozenset()
    subdags: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    subdag_of: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(
        cls,
        dag: DAG,
        plan: Plan,
        estimates: Estimates | None = None,
        outputs: Iterable[str] = (),
    ) -> Schedule:
        """Read `plan` against `dag`; `estimates` feed run-time decisions (task-dup, clustering);
        `outputs` names tasks besides the sinks whose results the client fetches.

        Raises
        ------
        PlanError
            If the plan does not fit the DAG.
        ValueError
            If task-dup or inline-subdag is planned without estimates, or `outputs` names a
            task not in the DAG.
        """
        from worker.optimizations import inline_subdags  # it imports this module

        plan.validate(dag)
        outputs = frozenset(outputs)
        unknown = sorted(t for t in outputs if t not in dag)
        if unknown:
            raise ValueError(f"outputs name tasks not in the DAG: {unknown}")
        worker_of = {t: plan[t].worker_id for t in dag}
        config_of = {t: plan[t].config for t in dag}
        local: dict[str, list[str]] = {}
        order = dag.topological_order()
        if plan.order is not None:  # validated to increase along every edge: still topological
            position = {t: i for i, t in enumerate(order)}
            order = sorted(order, key=lambda t: (plan.order[t], position[t]))
        for task_id in order:
            worker_id = worker_of[task_id]
            if worker_id is not None:
                if worker_id.startswith(FLEXIBLE_PREFIX):
                    raise ValueError(
                        f"plan puts task {task_id!r} on worker {worker_id!r}: the prefix "
                        f"{FLEXIBLE_PREFIX!r} is reserved for flexible workers"
                    )
                local.setdefault(worker_id, []).append(task_id)
        counted = {
            t: tuple(
                d
                for d in dag.predecessors(t)
                if worker_of[t] is None or worker_of[d] != worker_of[t]
            )
            for t in dag
        }
        # Upstream tasks a task-dup consumer may run itself: planned on another fixed worker.
        dup_targets = frozenset(
            u
            for c in dag
            if worker_of[c] is not None and plan.enabled("task-dup", c)
            for u in dag.predecessors(c)
            if worker_of[u] is not None and worker_of[u] != worker_of[c]
        )
        if dup_targets and estimates is None:
            raise ValueError("plan enables task-dup, which needs estimates to decide at run time")
        # Flexible fan-ins whose producers may count before uploading must wait for inputs.
        waits = frozenset(
            c
            for c in dag
            if worker_of[c] is None
            and len(counted[c]) > 1
            and any(
                plan.enabled("fan-in-clustering", p) or plan.enabled("delayed-io", p)
                for p in dag.predecessors(c)
            )
        )
        subdags = inline_subdags(dag, plan, worker_of, config_of, estimates)
        return cls(
            dag=dag,
            plan=plan,
            worker_of=MappingProxyType(worker_of),
            config_of=MappingProxyType(config_of),
            local_order=MappingProxyType({w: tuple(ts) for w, ts in local.items()}),
            counted=MappingProxyType(counted),
            estimates=estimates,
            dup_targets=dup_targets,
            waits_for_inputs=waits,
            outputs=outputs | frozenset(dag.sinks),
            subdags=MappingProxyType(subdags),
            subdag_of=MappingProxyType({t: root for root, ts in subdags.items() for t in ts}),
        )

    def is_local(self, worker_id: str, task_id: str) -> bool:
        """Whether `task_id` is planned on the fixed worker `worker_id`."""
        return self.worker_of[task_id] == worker_id

    def initial_workers(self) -> list[tuple[str, ResourceConfig, str]]:
        """(worker id, config, start task) for every worker the client starts: fixed workers
        holding a source task, and one flexible worker per flexible source."""
        starts: list[tuple[str, ResourceConfig, str]] = []
        seen: set[str] = set()
        for task_id in self.dag.sources:
            worker_id = self.worker_of[task_id]
            if worker_id is None:
                starts.append((flexible_worker_id(task_id), self.config_of[task_id], task_id))
            elif worker_id not in seen:
                seen.add(worker_id)
                starts.append((worker_id, self.config_of[task_id], task_id))
        return starts
