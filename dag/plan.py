"""Plans: where each task runs (worker id and resource config) and which optimizations apply.

A plan is declarative. It says *what* a planner decided; the worker state machine (`worker/`)
gives each optimization flag its behaviour, once, for the simulator and the real executor alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dag.graph import DAG
from dag.resources import ResourceConfig

#: Optimization flags a plan may carry, with the parameters each understands.
OPTIMIZATIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # A warm-up invocation of `config` at `at_ms` from run start.
        "pre-warm": frozenset({"config", "at_ms"}),
        # Download each remote input as soon as it is uploaded.
        "pre-load": frozenset(),
        # Run a slow remote upstream locally when predicted to win.
        "task-dup": frozenset({"min_gain_ms"}),
        # Write the output in chunks that a running consumer reads as they arrive.
        "output-streaming": frozenset({"chunk_bytes"}),
        # WUKONG: run small or large-input fan-out children on the current worker.
        "fan-out-clustering": frozenset({"max_exec_ms", "min_input_bytes"}),
        # WUKONG: a large-output upstream completes the fan-in itself instead of uploading.
        "fan-in-clustering": frozenset({"min_output_bytes"}),
        # WUKONG: run local downstream work before uploading a large output.
        "delayed-io": frozenset({"min_output_bytes"}),
        # Run the small sub-DAG below a fan-out in this invocation instead of a worker per task.
        "inline-subdag": frozenset({"max_exec_ms"}),
        # A small output travels in the invocation payload or the completion message.
        "small-results-inline": frozenset({"max_bytes"}),
    }
)

#: Largest ``max_bytes`` of small-results-inline: a value carried in an invocation payload is
#: base64-encoded (4/3) next to an inline run context (at most 64 KiB), and an asynchronous
#: Lambda invocation refuses a payload above 256 KB.
MAX_INLINE_BYTES = 96 * 1024


def _is_duration_ms(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _is_inline_bytes(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INLINE_BYTES


#: (flag, parameter) -> (check of its value, what the value must be): a bad value is refused
#: when the flag is made, naming the flag and the parameter.
PARAM_CHECKS: Mapping[tuple[str, str], tuple[Callable[[Any], bool], str]] = MappingProxyType(
    {
        ("inline-subdag", "max_exec_ms"): (_is_duration_ms, "a finite number of ms >= 0"),
        ("small-results-inline", "max_bytes"): (
            _is_inline_bytes,
            f"an integer number of bytes in 0..{MAX_INLINE_BYTES}",
        ),
    }
)


class PlanError(ValueError):
    """A plan does not fit its DAG: a task unplaced or unknown, or a worker with two configs."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one task runs.

    Parameters
    ----------
    worker_id : str or None
        Tasks with the same worker id run on one worker instance. ``None`` means a flexible
        (WUKONG-style) worker: whichever worker makes the task ready runs it.
    config : ResourceConfig
        Memory/CPU size of that worker.
    """

    worker_id: str | None
    config: ResourceConfig

    def __post_init__(self) -> None:
        if not isinstance(self.config, ResourceConfig):
            raise PlanError(f"placement config {self.config!r} is not a ResourceConfig")
        if self.worker_id is not None and (
            not isinstance(self.worker_id, str) or not self.worker_id
        ):
            raise PlanError(
                f"placement worker_id {self.worker_id!r} must be a non-empty str or None"
            )


@dataclass(frozen=True, slots=True)
class Optimization:
    """One optimization flag with its parameters, for some tasks (``tasks=None``: all tasks).

    Raises
    ------
    PlanError
        For an unknown optimization name, a parameter it does not understand, or a parameter
        value `PARAM_CHECKS` refuses.
    """

    name: str
    tasks: frozenset[str] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZATIONS:
            raise PlanError(
                f"unknown optimization {self.name!r}; known: {', '.join(sorted(OPTIMIZATIONS))}"
            )
        unknown = set(self.params) - OPTIMIZATIONS[self.name]
        if unknown:
            raise PlanError(
                f"optimization {self.name!r} has unknown parameter(s) {sorted(unknown)}; "
                f"allowed: {sorted(OPTIMIZATIONS[self.name])}"
            )
        for key, value in self.params.items():
            check = PARAM_CHECKS.get((self.name, key))
            if check is not None and not check[0](value):
                raise PlanError(f"optimization {self.name!r}: {key}={value!r} must be {check[1]}")
        if self.tasks is not None:
            object.__setattr__(self, "tasks", frozenset(self.tasks))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __reduce__(self):
        return (Optimization, (self.name, self.tasks, dict(self.params)))

    def applies_to(self, task_id: str) -> bool:
        return self.tasks is None or task_id in self.tasks

    def __hash__(self) -> int:
        return hash((self.name, self.tasks, tuple(sorted(self.params.items(), key=repr))))


class Plan:
    """A planner's decision for one DAG: a placement per task plus optimization flags.

    Parameters
    ----------
    placements : mapping of task id to Placement
    optimizations : iterable of Optimization
    planner : str
        Name (with parameters) of the planner that made it.
    predicted : object, optional
        The predicted timeline the planner got from simulating this plan (filled by
        `planners`); opaque to `dag`.
    order : mapping of task id to float, optional
        Priority of each task: a fixed worker runs its tasks by increasing priority (e.g. a
        list scheduler's start times) instead of the DAG's topological order. It must increase
        along every edge, which keeps the run free of deadlock.
    """

    __slots__ = ("_placements", "optimizations", "planner", "predicted", "order")

    def __init__(
        self,
        placements: Mapping[str, Placement],
        optimizations: Iterable[Optimization] = (),
        *,
        planner: str = "",
        predicted: Any = None,
        order: Mapping[str, float] | None = None,
    ):
        self._placements = MappingProxyType(dict(placements))
        self.optimizations = tuple(optimizations)
        self.planner = planner
        self.predicted = predicted
        self.order = None if order is None else MappingProxyType(dict(order))

    def __reduce__(self):
        order = None if self.order is None else dict(self.order)
        return (
            _rebuild_plan,
            (dict(self._placements), self.optimizations, self.planner, self.predicted, order),
        )

    @property
    def placements(self) -> Mapping[str, Placement]:
        return self._placements

    def __getitem__(self, task_id: str) -> Placement:
        try:
            return self._placements[task_id]
        except KeyError:
            raise PlanError(f"plan has no placement for task {task_id!r}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return (
            dict(self._placements) == dict(other._placements)
            and self.optimizations == other.optimizations
            and (None if self.order is None else dict(self.order))
            == (None if other.order is None else dict(other.order))
        )

    def __repr__(self) -> str:
        flags = ",".join(sorted({o.name for o in self.optimizations})) or "none"
        return f"<Plan {self.planner or '?'}: {len(self._placements)} tasks, {len(self.workers())} workers, opts={flags}>"

    def enabled(self, name: str, task_id: str) -> Optimization | None:
        """The optimization `name` that applies to `task_id`, or None."""
        for opt in self.optimizations:
            if opt.name == name and opt.applies_to(task_id):
                return opt
        return None

    def workers(self) -> dict[str, ResourceConfig]:
        """Fixed worker ids and their configs (flexible tasks are not listed)."""
        return {p.worker_id: p.config for p in self._placements.values() if p.worker_id is not None}

    def with_optimizations(self, optimizations: Iterable[Optimization]) -> Plan:
        """The same placements and order with these optimizations instead (no prediction)."""
        return Plan(self._placements, optimizations, planner=self.planner, order=self.order)

    def with_predicted(self, predicted: Any, *, planner: str | None = None) -> Plan:
        """The same plan carrying `predicted` (and optionally another planner name)."""
        return Plan(
            self._placements,
            self.optimizations,
            planner=self.planner if planner is None else planner,
            predicted=predicted,
            order=self.order,
        )

    def validate(self, dag: DAG) -> Plan:
        """Check the plan fits `dag`; returns self.

        Raises
        ------
        PlanError
            If a task is unplaced, a placement names an unknown task, a worker id has two
            configs, or an optimization names an unknown task.
        """
        for task_id in dag:
            if task_id not in self._placements:
                raise PlanError(f"plan has no placement for task {task_id!r}")
        for task_id in self._placements:
            if task_id not in dag:
                raise PlanError(f"plan places unknown task {task_id!r}")
        configs: dict[str, tuple[str, ResourceConfig]] = {}
        for task_id, placement in self._placements.items():
            if placement.worker_id is None:
                continue
            seen = configs.setdefault(placement.worker_id, (task_id, placement.config))
            if seen[1] != placement.config:
                raise PlanError(
                    f"worker {placement.worker_id!r} has two configs: {seen[1]} for task "
                    f"{seen[0]!r} and {placement.config} for task {task_id!r}"
                )
        for opt in self.optimizations:
            for task_id in sorted(opt.tasks or ()):
                if task_id not in dag:
                    raise PlanError(f"optimization {opt.name!r} names unknown task {task_id!r}")
        if self.order is not None:
            missing = [t for t in dag if t not in self.order]
            if missing:
                raise PlanError(f"plan order has no priority for task {missing[0]!r}")
            for producer, consumer in dag.edges:
                if not self.order[producer] < self.order[consumer]:
                    raise PlanError(
                        f"plan order runs task {consumer!r} (priority {self.order[consumer]}) "
                        f"no later than its input {producer!r} ({self.order[producer]})"
                    )
        return self


def _rebuild_plan(placements, optimizations, planner, predicted, order=None) -> Plan:
    return Plan(placements, optimizations, planner=planner, predicted=predicted, order=order)
