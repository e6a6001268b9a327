"""What every example workflow shares: the result record, the cost model and the checks.

Cost model (documented here, used by every example): a task's runtime at 1 vCPU is

    runtime_ms = BASE_MS + flops / FLOPS_PER_MS + bytes_touched / BYTES_PER_MS

i.e. 1 GFLOP/s of arithmetic and 1 GB/s of memory traffic per vCPU plus 1 ms of interpreter
and call overhead. `flops` and `bytes_touched` are counted by each example from the sizes of
its blocks (e.g. ``2 * m * n * k`` for a matrix product), never measured. A task's modelled
output size is the payload it returns (``ndarray.nbytes`` for arrays, an estimate for Python
containers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Every example draws its data with numpy.random, which numpy loads lazily at first use (~8 ms).
# Loading it with the examples puts that cost in a container's import of the workflow (its init,
# or a warm-up ping's "imports"), not in the first task a warm container runs.
import numpy.random  # noqa: F401

from dag.graph import DAG
from dag.lang import TaskRef, Workflow, build

BASE_MS = 1.0
FLOPS_PER_MS = 1e6
BYTES_PER_MS = 1e6
FLOAT_BYTES = 8


def model_runtime_ms(flops: float = 0.0, bytes_touched: float = 0.0) -> float:
    """Modelled runtime in ms at 1 vCPU of a task doing `flops` and touching `bytes_touched`."""
    return BASE_MS + flops / FLOPS_PER_MS + bytes_touched / BYTES_PER_MS


class CostBook:
    """Modelled runtime and output size of each task ref, noted while a builder calls tasks."""

    def __init__(self) -> None:
        self._costs: dict[TaskRef, tuple[float, int]] = {}

    def note(
        self, ref: TaskRef, *, output_bytes: int, flops: float = 0.0, bytes_touched: float = 0.0
    ) -> TaskRef:
        """Record the cost of `ref` and return it, so calls can be wrapped inline."""
        self._costs[ref] = (model_runtime_ms(flops, bytes_touched), int(output_bytes))
        return ref

    def cost(self, ref: TaskRef) -> tuple[float, int]:
        """(runtime_ms, output_bytes) of `ref`."""
        return self._costs[ref]


@dataclass(frozen=True, eq=False)
class ExampleWorkflow:
    """An example workflow at one size: the built workflow, its modelled costs and its check.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"gemm"``.
    params : dict
        Every builder parameter, defaults filled in.
    workflow : Workflow
        From `dag.lang.build`; its DAG carries edge bytes from `output_bytes`.
    dag : DAG
        Same as ``workflow.dag``; named by `spec`.
    runtime_ms : dict of task id to float
        Modelled runtime at 1 vCPU (see the module's cost model).
    output_bytes : dict of task id to int
        Modelled output size.
    checker : callable
        Takes the outputs structure (``workflow.result(results)``); raises AssertionError.
    """

    name: str
    params: dict[str, Any]
    workflow: Workflow
    dag: DAG
    runtime_ms: dict[str, float]
    output_bytes: dict[str, int]
    checker: Callable[[Any], None] = field(repr=False)

    @property
    def spec(self) -> str:
        """Canonical spec string, ``name:key=value,...`` with every parameter."""
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in self.params.items())

    def check(self, results: Mapping[str, Any]) -> None:
        """Compare task results with a direct numpy computation.

        Raises
        ------
        AssertionError
            If an output is missing or differs; the message names the workflow and the output.
        """
        try:
            outputs = self.workflow.result(results)
        except KeyError as err:
            raise AssertionError(f"{self.spec}: {err.args[0]}") from None
        try:
            self.checker(outputs)
        except AssertionError as err:
            raise AssertionError(f"{self.spec}: {err}") from None

    def summary(self) -> dict[str, Any]:
        """`DAG.summary` with the modelled runtimes (critical path in ms)."""
        return self.dag.summary(self.runtime_ms)


def make_example(
    name: str,
    params: dict[str, Any],
    outputs: Any,
    book: CostBook,
    checker: Callable[[Any], None],
) -> ExampleWorkflow:
    """Build `outputs` into an `ExampleWorkflow` with costs from `book`."""
    spec = f"{name}:" + ",".join(f"{k}={v}" for k, v in params.items())
    workflow = build(outputs, name=spec)
    runtime_ms: dict[str, float] = {}
    output_bytes: dict[str, int] = {}
    for ref, task_id in workflow.ref_ids.items():
        runtime_ms[task_id], output_bytes[task_id] = book.cost(ref)
    workflow = workflow.with_output_bytes(output_bytes)
    order = workflow.dag.topological_order()
    return ExampleWorkflow(
        name=name,
        params=dict(params),
        workflow=workflow,
        dag=workflow.dag,
        runtime_ms={t: runtime_ms[t] for t in order},
        output_bytes={t: output_bytes[t] for t in order},
        checker=checker,
    )


def require_int(workflow: str, param: str, value: Any, minimum: int) -> int:
    """`value` as an int >= `minimum`.

    Raises
    ------
    ValueError
        Naming the workflow and the parameter.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{workflow}: {param}={value!r} must be an integer")
    if value < minimum:
        raise ValueError(f"{workflow}: {param}={value!r} must be >= {minimum}")
    return int(value)


def split_bounds(total: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous ranges covering ``0..total``, sizes differing by at most one."""
    cuts = [total * i // parts for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def assert_close(what: str, actual: Any, expected: np.ndarray, *, rtol: float = 1e-7) -> None:
    """Assert `actual` is an array of `expected`'s shape and allclose to it."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape}, expected {expected.shape}"
    )
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    if not np.allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, 1.0)):
        worst = float(np.max(np.abs(actual - expected)))
        raise AssertionError(f"{what}: differs from the direct computation by up to {worst:.3g}")


def assert_equal(what: str, actual: Any, expected: Any) -> None:
    """Assert exact equality (arrays elementwise, other values with ==)."""
    if isinstance(expected, np.ndarray):
        actual = np.asarray(actual)
        assert actual.shape == expected.shape, (
            f"{what}: shape {actual.shape}, expected {expected.shape}"
        )
        mismatched = int(np.count_nonzero(actual != expected))
        assert mismatched == 0, f"{what}: {mismatched} elements differ from the direct computation"
    else:
        assert actual == expected, f"{what}: got {actual!r}, expected {expected!r}"
