"""The planner interface and what-if evaluation of a plan by simulation.

A planner turns (DAG, predictor, platform, candidate configs) into a `Plan`. Every plan it returns
carries a `PredictedTimeline` in ``plan.predicted``: the result of running `sim.simulate.simulate`
on *predicted* profiles for exactly that plan. No planner owns a timing formula for the final
timeline; a planner may use classic estimates (ranks, EFT) to decide, but each decision that
depends on how a plan will run is checked by simulating it, and the stored prediction is the last
simulation of the returned plan.

What a planner accepts as `predictor` (normalised once by `predicted_profiles`):

- a fitted predictor (`traces.BaselinePredictor`, `traces.LearnedPredictor`, ...): profiles come
  from ``traces.make_profiles(dag, "predict", predictor=...)``;
- a `ProfilesPredictor`: a predictor that already knows the DAG's profiles, e.g. the modelled
  runtimes of an example workflow or a layered DAG (``ProfilesPredictor.from_profiled(w)``);
- a `traces.TaskProfiles` of the same DAG (wrapped in a `ProfilesPredictor`);
- a callable ``dag -> profiles``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dag.graph import DAG
from dag.plan import Optimization, Placement, Plan
from dag.resources import ResourceConfig
from sim.estimates import PlatformEstimates
from sim.platform import Platform
from sim.simulate import SimResult, simulate
from traces.profiles import FixedProfiles, TaskProfiles, make_profiles

#: Candidate configs when a caller gives none, MB (cpus by the Lambda rule).
DEFAULT_CONFIGS: tuple[ResourceConfig, ...] = tuple(ResourceConfig(m) for m in (1024, 2048, 4096))
#: Per-task columns of a predicted timeline, all taken from the simulated tasks table.
TIMELINE_COLUMNS = (
    "worker_id",
    "memory_mb",
    "cpus",
    "startup",
    "startup_ms",
    "ready_ms",
    "start_ms",
    "inputs_done_ms",
    "exec_done_ms",
    "end_ms",
    "download_ms",
    "exec_ms",
    "upload_ms",
    "dc_ms",
)


class PlannerError(ValueError):
    """A planner was given something it cannot plan with: an unknown name or parameter, a bad
    value, no configs, or a predictor of the wrong kind."""


# -- predictors -------------------------------------------------------------------------------


class ProfilesPredictor:
    """A predictor that already knows the task profiles of one DAG (no fitting).

    Planners ask a predictor for the profiles of a DAG (`profiles_for`); this one hands back the
    profiles it was given, e.g. the modelled runtimes and output sizes that come with an example
    workflow or a generated layered DAG.

    Parameters
    ----------
    profiles : TaskProfiles-like
        Anything with ``exec_ms(task_id, config)`` and ``output_bytes(task_id)``.
    dag : DAG, optional
        The DAG the profiles describe (default ``profiles.dag`` when it has one); `profiles_for`
        refuses another DAG.
    """

    def __init__(self, profiles: Any, dag: DAG | None = None):
        if not (hasattr(profiles, "exec_ms") and hasattr(profiles, "output_bytes")):
            raise PlannerError(
                f"ProfilesPredictor needs exec_ms(task_id, config) and output_bytes(task_id); "
                f"got {type(profiles).__name__}"
            )
        self.profiles = profiles
        self.dag = dag if dag is not None else getattr(profiles, "dag", None)

    @classmethod
    def from_profiled(cls, profiled: Any, **kwargs: Any) -> ProfilesPredictor:
        """From anything with ``dag``, ``runtime_ms`` and ``output_bytes`` (a `ProfiledDAG`, an
        `ExampleWorkflow`): `FixedProfiles` with those values; `kwargs` go to FixedProfiles."""
        profiles = FixedProfiles(profiled.dag, profiled.runtime_ms, profiled.output_bytes, **kwargs)
        return cls(profiles, profiled.dag)

    def profiles_for(self, dag: DAG) -> Any:
        """The profiles, if they describe `dag`.

        Raises
        ------
        PlannerError
            If the profiles belong to another DAG.
        """
        if self.dag is not None and self.dag is not dag and self.dag != dag:
            raise PlannerError(
                f"ProfilesPredictor holds profiles of DAG {self.dag.name or self.dag.dag_hash!r}, "
                f"asked for DAG {dag.name or dag.dag_hash!r}"
            )
        return self.profiles


def predicted_profiles(dag: DAG, predictor: Any) -> Any:
    """Predicted profiles of `dag` from any accepted kind of predictor (see module docstring).

    Raises
    ------
    PlannerError
        If `predictor` is None or of no accepted kind.
    """
    if predictor is None:
        raise PlannerError("a planner needs a predictor (fitted predictor or ProfilesPredictor)")
    if hasattr(predictor, "profiles_for"):
        return predictor.profiles_for(dag)
    if isinstance(predictor, TaskProfiles):
        return ProfilesPredictor(predictor).profiles_for(dag)
    if hasattr(predictor, "exec_ms_many") or hasattr(predictor, "fit"):
        return make_profiles(dag, "predict", predictor=predictor)
    if callable(predictor):
        return predictor(dag)
    raise PlannerError(
        f"cannot predict with {type(predictor).__name__}: expected a fitted predictor, a "
        "ProfilesPredictor, a TaskProfiles or a callable dag -> profiles"
    )


# -- predicted timelines ----------------------------------------------------------------------


@dataclass(frozen=True)
class PredictedTimeline:
    """The predicted run of one plan: a simulation of it on predicted profiles.

    Attributes
    ----------
    tasks : pandas.DataFrame or None
        Indexed by task id (topological order); columns `TIMELINE_COLUMNS` straight from the
        simulated tasks table (startup kind and ms, download / exec / upload ms, earliest start
        ``start_ms``, completion ``end_ms``, ...) plus ``critical`` (bool): on the realised
        critical path. None in a makespan-only timeline (``Context.evaluate(plan,
        tables=False)``), which `with_tables` completes from the same run; every plan a
        planner returns carries the table.
    makespan_ms : float
    cost_usd : float
        Predicted total cost.
    cost : dict
        The simulator's cost breakdown (USD and quantities billed).
    critical_path : tuple of str
        Realised critical path of the simulated run.
    n_cold, n_workers : int
        Cold starts and worker invocations of the simulated run.
    platform : str
        Name of the platform simulated.
    seed : int or None
        Seed of the simulated run.
    n_simulations : int
        Simulations the planner ran to decide (this one included).
    planner_estimate_ms : float or None
        The planner's own schedule length, where it has one (HEFT, CPOP), for comparison.
    """

    tasks: pd.DataFrame | None
    makespan_ms: float
    cost_usd: float
    cost: Mapping[str, float]
    critical_path: tuple[str, ...]
    n_cold: int
    n_workers: int
    platform: str
    seed: int | None
    n_simulations: int = 1
    planner_estimate_ms: float | None = None
    estimates: Any = field(default=None, repr=False, compare=False)
    _result: SimResult | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_result(
        cls, result: SimResult, platform: Platform, seed: int | None, **extra: Any
    ) -> PredictedTimeline:
        """The timeline of one `SimResult` (makespan-only if the result has no tables)."""
        return cls(
            tasks=_timeline_tasks(result) if result.has_tables else None,
            makespan_ms=float(result.makespan_ms),
            cost_usd=float(result.cost["total_usd"]),
            cost=dict(result.cost),
            critical_path=tuple(result.critical_path),
            n_cold=int(result.n_cold),
            n_workers=int(result.n_workers),
            platform=platform.name,
            seed=seed,
            _result=None if result.has_tables else result,
            **extra,
        )

    def with_tables(self) -> PredictedTimeline:
        """This timeline with its ``tasks`` table, built from the same simulated run when it
        is makespan-only (no simulation again); self when it has the table."""
        if self.tasks is not None:
            return self
        if self._result is None:
            raise ValueError("this timeline has no tasks table and no run to build it from")
        return replace(self, tasks=_timeline_tasks(self._result.with_tables()), _result=None)

    def task(self, task_id: str) -> dict[str, Any]:
        """The predicted row of one task as a dict."""
        return {"task_id": task_id, **self.tasks.loc[task_id].to_dict()}

    def slack_ms(self, dag: DAG) -> dict[str, float]:
        """Per task, how much later it could end without delaying the simulated makespan,
        estimated from the timeline (consumers' starts, backwards); 0 on the critical path."""
        end = dict(zip(self.tasks.index, self.tasks["end_ms"], strict=True))
        start = dict(zip(self.tasks.index, self.tasks["start_ms"], strict=True))
        slack: dict[str, float] = {}
        for task_id in reversed(dag.topological_order()):
            consumers = dag.successors(task_id)
            if consumers:
                value = min(slack[c] + max(start[c] - end[task_id], 0.0) for c in consumers)
            else:
                value = self.makespan_ms - end[task_id]
            slack[task_id] = max(value, 0.0)
        for task_id in self.critical_path:
            slack[task_id] = 0.0
        return slack


def _timeline_tasks(result: SimResult) -> pd.DataFrame:
    """The per-task table of a timeline, from a result with tables."""
    originals = result.tasks[~result.tasks["duplicated"]]  # a task-dup copy is extra work
    tasks = originals.set_index("task_id")[list(TIMELINE_COLUMNS)].copy()
    tasks["critical"] = tasks.index.isin(result.critical_path)
    return tasks


def evaluate(
    dag: DAG,
    plan: Plan,
    profiles: Any,
    platform: Platform | str = "aws-lambda",
    seed: int | None = 0,
    *,
    tables: bool = True,
    **extra: Any,
) -> PredictedTimeline:
    """What-if: simulate `plan` on `profiles` and return its `PredictedTimeline`.

    With ``tables=False`` the timeline is makespan-only: no ``tasks`` table (makespan, cost,
    critical path, workers and cold starts are there); `PredictedTimeline.with_tables`
    completes it from the same run.
    """
    platform = as_platform(platform)
    # The workers' run-time decisions (task-dup, clustering) use these same predictions, in
    # this simulation and wherever the plan later runs.
    estimates = PlatformEstimates(profiles, platform)
    result = simulate(dag, plan, profiles, platform, seed, estimates=estimates, tables=tables)
    return PredictedTimeline.from_result(result, platform, seed, estimates=estimates, **extra)


def as_platform(platform: Platform | str) -> Platform:
    """A Platform from a Platform, a preset name or a TOML path."""
    return platform if isinstance(platform, Platform) else Platform.preset(platform)


def as_configs(configs: Iterable[ResourceConfig | int | str] | None) -> tuple[ResourceConfig, ...]:
    """Sorted distinct configs from configs, MB ints or ``"MB[/cpus]"`` strings.

    Raises
    ------
    PlannerError
        If there are none, or one cannot be read (named).
    """
    if configs is None:
        return DEFAULT_CONFIGS
    if isinstance(configs, ResourceConfig | int | str):
        configs = [configs]
    out = set()
    for config in configs:
        try:
            if isinstance(config, ResourceConfig):
                out.add(config)
            elif isinstance(config, int) and not isinstance(config, bool):
                out.add(ResourceConfig(config))
            else:
                out.add(ResourceConfig.parse(str(config)))
        except ValueError as exc:
            raise PlannerError(f"bad resource config {config!r}: {exc}") from None
    if not out:
        raise PlannerError("a planner needs at least one resource config")
    return tuple(sorted(out))


# -- planning context -------------------------------------------------------------------------


class Context:
    """Everything one planning call works with, and its what-if evaluations (counted).

    Parameters
    ----------
    dag : DAG
    profiles : TaskProfiles-like
        Predicted profiles of `dag`.
    platform : Platform
    configs : tuple of ResourceConfig
        Candidate configs, ascending.
    seed : int or None
        Seed of every simulation.
    planner : str
        Spec of the planner, written into each plan.
    """

    def __init__(self, dag, profiles, platform, configs, seed, planner):
        self.dag = dag
        self.profiles = profiles
        self.platform = platform
        self.configs = configs
        self.seed = seed
        self.planner = planner
        self.n_simulations = 0
        self._order = dag.topological_order()

    @property
    def largest(self) -> ResourceConfig:
        return self.configs[-1]

    def exec_ms(self, config: ResourceConfig) -> dict[str, float]:
        """Predicted exec ms of every task at `config`."""
        exec_of = self.profiles.exec_ms
        return {t: float(exec_of(t, config)) for t in self._order}

    def output_bytes(self) -> dict[str, int]:
        """Predicted output bytes of every task."""
        out = self.profiles.output_bytes
        return {t: int(out(t)) for t in self._order}

    def transfer_ms(self, nbytes: int | np.ndarray, config: ResourceConfig):
        """Time of one transfer alone on idle links, by the platform's network model: a store
        round trip plus bytes over the slower of the worker's and the store's link (ms).
        A decision aid only; timelines come from simulation."""
        return self.platform.ideal_transfer_ms(config, nbytes)

    def transfer_ms_of(self, nbytes: Mapping[str, int], config: ResourceConfig) -> dict[str, float]:
        """`transfer_ms` of each task's bytes (task id -> ms), computed as one array."""
        sizes = np.fromiter(nbytes.values(), dtype=float, count=len(nbytes))
        times = np.broadcast_to(self.transfer_ms(sizes, config), sizes.shape)
        return dict(zip(nbytes, times.tolist(), strict=True))

    def startup_estimate_ms(self) -> float:
        """Extra latency of starting a new (warm) worker: the invoke call plus a warm start."""
        return self.platform.invoke_latency_ms + self.platform.warm_start_ms

    def make_plan(
        self,
        placements: Mapping[str, Placement],
        optimizations: Iterable[Optimization] = (),
        order: Mapping[str, float] | None = None,
    ) -> Plan:
        return Plan(placements, optimizations, planner=self.planner, order=order)

    def evaluate(self, plan: Plan, *, tables: bool = True, **extra: Any) -> PredictedTimeline:
        """Simulate `plan` on the predicted profiles (counted in `n_simulations`).

        ``tables=False``: a makespan-only timeline, for a trial that may be discarded; the
        planner's plan gets its table in `finish` (from the same run).
        """
        self.n_simulations += 1
        return evaluate(
            self.dag,
            plan,
            self.profiles,
            self.platform,
            self.seed,
            tables=tables,
            n_simulations=self.n_simulations,
            **extra,
        )

    def finish(self, plan: Plan, timeline: PredictedTimeline | None = None, **extra: Any) -> Plan:
        """`plan` with its predicted timeline attached (simulated now unless given; a
        makespan-only timeline gets its tasks table from the run it came from)."""
        if timeline is None:
            timeline = self.evaluate(plan, **extra)
        else:
            timeline = replace(timeline.with_tables(), n_simulations=self.n_simulations, **extra)
        return plan.with_predicted(timeline, planner=self.planner).validate(self.dag)


# -- the interface ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One planner parameter: how to read it from text, its default and what it means."""

    parse: Callable[[str], Any]
    default: Any
    doc: str
    check: Callable[[Any], bool] = field(default=lambda _value: True)
    expect: str = ""


class Planner:
    """Base of all planners: parameters by name, predictor normalisation, the plan contract.

    Subclasses set `name`, `PARAMS` and implement ``_plan(ctx) -> Plan`` returning a plan whose
    `predicted` is filled through ``ctx.finish``.

    Parameters
    ----------
    **params
        Values for the planner's `PARAMS` (already typed, or text as in a spec string).

    Raises
    ------
    PlannerError
        For an unknown parameter (the message lists the allowed ones) or a bad value.
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[Mapping[str, Param]] = {}

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            raise PlannerError(
                f"planner {self.name!r} has no parameter {unknown[0]!r}; "
                f"allowed: {', '.join(self.PARAMS) or 'none'}"
            )
        self.params: dict[str, Any] = {}
        for key, param in self.PARAMS.items():
            value = params.get(key, param.default)
            if isinstance(value, str):
                try:
                    value = param.parse(value)
                except (ValueError, PlannerError) as exc:
                    raise PlannerError(
                        f"planner {self.name!r}: parameter {key}={value!r} is not valid: {exc}"
                    ) from None
            if value is not None and not param.check(value):
                raise PlannerError(
                    f"planner {self.name!r}: parameter {key}={value!r} must be {param.expect}"
                )
            self.params[key] = value

    @property
    def spec(self) -> str:
        """``name`` plus the parameters that differ from their defaults, as a spec string."""
        given = [
            f"{key}={_format(value)}"
            for key, value in self.params.items()
            if value != self.PARAMS[key].default
        ]
        return f"{self.name}:{','.join(given)}" if given else self.name

    def __repr__(self) -> str:
        return f"<Planner {self.spec}>"

    def plan(
        self,
        dag: DAG,
        predictor: Any,
        platform: Platform | str = "aws-lambda",
        configs: Sequence[ResourceConfig | int | str] | None = None,
        *,
        seed: int | None = 0,
    ) -> Plan:
        """Plan `dag`; the plan's `predicted` is its simulated `PredictedTimeline`.

        Parameters
        ----------
        dag : DAG
        predictor : fitted predictor, ProfilesPredictor, TaskProfiles or callable
            Source of predicted profiles (see the module docstring).
        platform : Platform or str, default "aws-lambda"
        configs : sequence of ResourceConfig (or MB ints / "MB[/cpus]" strings), optional
            Candidate configs; default `DEFAULT_CONFIGS`. A planner's own ``configs`` parameter
            takes precedence.
        seed : int or None, default 0
            Seed of every simulation the planner runs.

        Returns
        -------
        Plan
            Validated against `dag`, named by `spec`.

        Raises
        ------
        PlannerError
            On a bad predictor or configs.
        """
        own = self.params.get("configs")
        ctx = Context(
            dag,
            predicted_profiles(dag, predictor),
            as_platform(platform),
            as_configs(own if own is not None else configs),
            seed,
            self.spec,
        )
        return self._plan(ctx)

    def _plan(self, ctx: Context) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError


def _format(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(_format(v) for v in value)
    if isinstance(value, ResourceConfig):
        return (
            str(value.memory_mb)
            if value == ResourceConfig(value.memory_mb)
            else (f"{value.memory_mb}/{value.cpus:g}")
        )
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- parameter readers ------------------------------------------------------------------------


def parse_config(text: str) -> ResourceConfig:
    """``"2048"`` or ``"2048/1.5"`` as a ResourceConfig."""
    return ResourceConfig.parse(text)


def parse_configs(text: str) -> tuple[ResourceConfig, ...]:
    """A comma list of configs, e.g. ``"1024,2048,4096"``."""
    items = [item for item in str(text).split(",") if item.strip()]
    if not items:
        raise PlannerError("empty config list")
    return tuple(sorted({ResourceConfig.parse(item) for item in items}))


def is_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def is_non_negative(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
