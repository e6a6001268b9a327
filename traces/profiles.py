"""Task profiles for one simulated run: exec time per config, output and input bytes per task.

A profile is deterministic: the simulator asks it the same question twice and gets the same
answer. Three ways to make one (`make_profiles`):

- ``replay``: the values recorded for the same dag_hash and task id (the latest run, unless a
  run id is given); exec time at another config is scaled by cpus ** cpu_exponent.
- ``predict``: a fitted predictor's point estimates, task sizes propagated down the DAG.
- ``sample``: as predict, but each task's exec time and output size sit at a quantile drawn once
  per task from ``numpy.random.default_rng(seed)``, so recorded variability enters Monte Carlo
  runs; same seed, same profiles, bit for bit.

`FixedProfiles` builds one from given dicts (modelled runtimes at a reference cpus).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from dag.graph import DAG
from dag.resources import ResourceConfig
from traces.io import TraceSet
from traces.predictors import DEFAULT_CPU_EXPONENT

MODES = ("replay", "predict", "sample")
#: Sample-mode quantiles are drawn uniformly from this range (keeps tails finite).
SAMPLE_Q_RANGE = (0.01, 0.99)


class ProfileError(KeyError):
    """A profile cannot be built or queried: a task missing from traces, or an unknown task id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TaskProfiles:
    """Per-task values of one simulated run.

    Parameters
    ----------
    dag : DAG
    functions, input_bytes, output_bytes : mapping of task id -> value
    exec_ms : mapping of task id -> callable(ResourceConfig) -> float
        Exec time in ms of the task at a config.
    """

    def __init__(self, dag: DAG, *, input_bytes, output_bytes, exec_ms):
        self.dag = dag
        self._input = {t: int(v) for t, v in input_bytes.items()}
        self._output = {t: int(v) for t, v in output_bytes.items()}
        self._exec = dict(exec_ms)
        self._cache: dict[tuple[str, ResourceConfig], float] = {}

    def _check(self, task_id: str) -> None:
        if task_id not in self.dag:
            raise ProfileError(f"unknown task id {task_id!r} (DAG {self.dag.dag_hash})")

    def function(self, task_id: str) -> str:
        """The function task `task_id` runs."""
        self._check(task_id)
        return self.dag[task_id].function

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float:
        """Exec time in ms of `task_id` on a worker of `config`."""
        key = (task_id, config)
        value = self._cache.get(key)
        if value is None:
            self._check(task_id)
            value = self._cache[key] = float(self._exec[task_id](config))
        return value

    def output_bytes(self, task_id: str) -> int:
        """Output size of `task_id` in bytes."""
        self._check(task_id)
        return self._output[task_id]

    def input_bytes(self, task_id: str) -> int:
        """Bytes `task_id` reads (all of its inputs)."""
        self._check(task_id)
        return self._input[task_id]

    def to_frame(self, config: ResourceConfig) -> pd.DataFrame:
        """One row per task (topological order): function, input/output bytes, exec at `config`."""
        order = self.dag.topological_order()
        return pd.DataFrame(
            {
                "task_id": list(order),
                "function": [self.dag[t].function for t in order],
                "input_bytes": [self._input[t] for t in order],
                "output_bytes": [self._output[t] for t in order],
                "exec_ms": [self.exec_ms(t, config) for t in order],
            }
        )


def _scaled(exec_ms: float, cpus: float, exponent: float):
    return lambda config: exec_ms * (config.cpus / cpus) ** exponent


def propagate_input_bytes(
    dag: DAG, output_bytes: Mapping[str, int], task_id: str, default: int = 0
) -> int:
    """Input bytes of `task_id`: per upstream edge, the DAG edge bytes when set, else the
    upstream task's output; `default` for a source."""
    deps = dag[task_id].deps
    if not deps:
        return int(default)
    sizes = dag.edge_bytes_map
    return int(sum(sizes.get((d, task_id), output_bytes[d]) for d in deps))


class FixedProfiles(TaskProfiles):
    """Profiles from given runtimes and output sizes (e.g. modelled or WfFormat runtimes).

    Parameters
    ----------
    dag : DAG
    runtime_ms : mapping of task id -> float
        Exec time in ms at `reference_cpus`.
    output_bytes : mapping of task id -> int
    reference_cpus : float, default 1.0
    cpu_exponent : float, default DEFAULT_CPU_EXPONENT (-0.3)
        ``exec_ms(config) = runtime_ms * (config.cpus / reference_cpus) ** cpu_exponent``.
    source_input_bytes : mapping of task id -> int, optional
        Input bytes of source tasks (default 0).

    Raises
    ------
    ProfileError
        If a task of the DAG is missing from `runtime_ms` or `output_bytes`.
    ValueError
        If a runtime or size is negative or not finite.
    """

    def __init__(
        self,
        dag: DAG,
        runtime_ms: Mapping[str, float],
        output_bytes: Mapping[str, int],
        reference_cpus: float = 1.0,
        cpu_exponent: float = DEFAULT_CPU_EXPONENT,
        source_input_bytes: Mapping[str, int] | None = None,
    ):
        if not reference_cpus > 0:
            raise ValueError(f"reference_cpus={reference_cpus!r} must be > 0")
        for name, values in (("runtime_ms", runtime_ms), ("output_bytes", output_bytes)):
            for task_id in dag.topological_order():
                if task_id not in values:
                    raise ProfileError(f"{name} has no value for task {task_id!r}")
                value = float(values[task_id])
                if not (np.isfinite(value) and value >= 0):
                    raise ValueError(f"{name}[{task_id!r}]={values[task_id]!r} must be >= 0")
        sources = source_input_bytes or {}
        inputs = {
            t: propagate_input_bytes(dag, output_bytes, t, sources.get(t, 0))
            for t in dag.topological_order()
        }
        super().__init__(
            dag,
            input_bytes=inputs,
            output_bytes={t: output_bytes[t] for t in dag},
            exec_ms={t: _scaled(float(runtime_ms[t]), reference_cpus, cpu_exponent) for t in dag},
        )


def _replay_rows(dag: DAG, traces: TraceSet | pd.DataFrame, run_id: str | None) -> pd.DataFrame:
    tasks = traces.tasks if isinstance(traces, TraceSet) else traces
    rows = tasks[tasks["dag_hash"] == dag.dag_hash]
    if run_id is None:
        if rows.empty:
            first = next(iter(dag.topological_order()), None)
            raise ProfileError(f"no recorded run of dag_hash {dag.dag_hash} (first task {first!r})")
        run_id = rows["run_id"].iloc[-1]
    rows = rows[rows["run_id"] == run_id]
    # Prefer the original over a duplicate, then the last attempt.
    rows = rows.sort_values(
        ["task_id", "duplicated", "attempt"], ascending=[True, False, True], kind="stable"
    )
    return rows.drop_duplicates("task_id", keep="last").set_index("task_id")


def make_profiles(
    dag: DAG,
    mode: str,
    traces: TraceSet | pd.DataFrame | None = None,
    predictor=None,
    seed: int | None = None,
    *,
    run_id: str | None = None,
    source_input_bytes: Mapping[str, int] | None = None,
    cpu_exponent: float | None = None,
) -> TaskProfiles:
    """Profiles of `dag` for one simulated run.

    Parameters
    ----------
    mode : {'replay', 'predict', 'sample'}
    traces : TraceSet or tasks DataFrame
        Needed for replay. In predict/sample mode, recorded input bytes of source tasks (same
        dag_hash) are used when `source_input_bytes` does not give them.
    predictor : fitted predictor
        Needed for predict and sample; in replay it supplies the cpu exponent.
    seed : int, optional
        Seed of the sample-mode draws.
    run_id : str, optional
        Replay this run (default: the latest recorded run of the DAG).
    cpu_exponent : float, optional
        Replay scaling exponent on cpus; default the predictor's per function, else -0.3.

    Raises
    ------
    ProfileError
        In replay, naming the task and dag_hash of a task with no recorded row.
    ValueError
        On an unknown mode or a missing traces / predictor argument.
    """
    if mode not in MODES:
        raise ValueError(f"profile mode {mode!r}; expected one of {MODES}")
    order = dag.topological_order()
    if mode == "replay":
        if traces is None:
            raise ValueError("replay profiles need traces")
        rows = _replay_rows(dag, traces, run_id)
        missing = [t for t in order if t not in rows.index]
        if missing:
            raise ProfileError(
                f"task {missing[0]!r} has no recorded row for dag_hash {dag.dag_hash}"
                + (f" in run {run_id!r}" if run_id else "")
            )

        def exponent(function: str) -> float:
            if cpu_exponent is not None:
                return cpu_exponent
            if predictor is not None and hasattr(predictor, "cpu_exponent"):
                return predictor.cpu_exponent(function)
            return DEFAULT_CPU_EXPONENT

        return TaskProfiles(
            dag,
            input_bytes={t: rows.at[t, "input_bytes"] for t in order},
            output_bytes={t: rows.at[t, "output_bytes"] for t in order},
            exec_ms={
                t: _scaled(
                    float(rows.at[t, "exec_ms"]),
                    float(rows.at[t, "cpus"]),
                    exponent(dag[t].function),
                )
                for t in order
            },
        )
    if predictor is None:
        raise ValueError(f"{mode} profiles need a fitted predictor")
    sources = dict(source_input_bytes or {})
    if traces is not None:
        recorded = _replay_rows(dag, traces, run_id) if _has_dag(dag, traces) else None
        if recorded is not None:
            for t in dag.sources:
                if t not in sources and t in recorded.index:
                    sources[t] = int(recorded.at[t, "input_bytes"])
    rng = np.random.default_rng(seed)
    inputs: dict[str, int] = {}
    outputs: dict[str, int] = {}
    exec_fns = {}
    for t in order:
        task = dag[t]
        inputs[t] = propagate_input_bytes(dag, outputs, t, sources.get(t, 0))
        q_exec = q_out = None
        if mode == "sample":
            q_exec, q_out = rng.uniform(*SAMPLE_Q_RANGE, size=2)
        if task.hints is not None and task.hints.output_bytes is not None:
            outputs[t] = int(task.hints.output_bytes)
        else:
            outputs[t] = int(predictor.output_bytes(task.function, inputs[t], q=q_out))
        exec_fns[t] = _predicted(predictor, task.function, inputs[t], q_exec)
    return TaskProfiles(dag, input_bytes=inputs, output_bytes=outputs, exec_ms=exec_fns)


def _has_dag(dag: DAG, traces: TraceSet | pd.DataFrame) -> bool:
    tasks = traces.tasks if isinstance(traces, TraceSet) else traces
    return bool((tasks["dag_hash"] == dag.dag_hash).any())


def _predicted(predictor, function: str, input_bytes: int, q: float | None):
    q = None if q is None else float(q)
    return lambda config: predictor.exec_ms(function, input_bytes, config, q=q)
