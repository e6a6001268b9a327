"""Example workflows written as real numpy code with the `@task` language.

Each builder takes keyword parameters (sizes, a `seed`) and returns an `ExampleWorkflow`:
the built workflow, a modelled runtime and output size per task (cost model in
`dag.examples.base`) and a check of results against a direct numpy computation. Building is
lazy: input data is generated inside source tasks from the seed, so a large size builds
instantly.

    >>> example = build_example("gemm:n=512,blocks=2")
    >>> example.check(example.workflow.run_local())
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from dag.examples.base import ExampleWorkflow, model_runtime_ms
from dag.examples.gemm import gemm
from dag.examples.image_pipeline import image_pipeline
from dag.examples.montage_like import montage_like
from dag.examples.svd import svd
from dag.examples.text_analysis import text_analysis
from dag.examples.tree_reduction import tree_reduction

__all__ = [
    "APPROX_TASKS",
    "EXAMPLES",
    "MAX_TASKS",
    "ExampleWorkflow",
    "build_example",
    "example_params",
    "model_runtime_ms",
]

#: Registry: workflow name -> builder taking keyword parameters with defaults.
EXAMPLES: Mapping[str, Callable[..., ExampleWorkflow]] = MappingProxyType(
    {
        "tree_reduction": tree_reduction,
        "gemm": gemm,
        "svd": svd,
        "image_pipeline": image_pipeline,
        "text_analysis": text_analysis,
        "montage_like": montage_like,
    }
)


#: Most tasks an example may build: a size typo (``tree_reduction:n=1000000000``) is refused
#: up front instead of building for hours.
MAX_TASKS = 1_000_000

#: About how many tasks each example builds from its parameters (within a factor of two),
#: checked against `MAX_TASKS` before building.
APPROX_TASKS: Mapping[str, Callable[[Mapping[str, Any]], int]] = MappingProxyType(
    {
        "tree_reduction": lambda p: 2 * p["n"],
        "gemm": lambda p: 2 * p["blocks"] ** 3,
        "svd": lambda p: 3 * p["blocks"],
        "image_pipeline": lambda p: 4 * p["tiles"] ** 2,
        "text_analysis": lambda p: 2 * p["chunks"] + 5,
        "montage_like": lambda p: 5 * p["grid"] ** 2,
    }
)


def example_params(name: str) -> dict[str, Any]:
    """Parameters of example `name` with their defaults.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if name not in EXAMPLES:
        raise ValueError(f"unknown example workflow {name!r}; known: {', '.join(EXAMPLES)}")
    return {
        p.name: p.default
        for p in inspect.signature(EXAMPLES[name]).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def _convert(name: str, key: str, text: str, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(
            f"example {name!r}: parameter {key}={text!r} is not a valid {kind.__name__}"
        ) from None
    return text


def build_example(spec: str) -> ExampleWorkflow:
    """Build an example from ``name`` or ``name:key=value,key=value`` (e.g. ``gemm:n=2000``).

    Raises
    ------
    ValueError
        For an unknown workflow name, an unknown or repeated parameter, a malformed item, a
        bad value, or sizes that would build more than `MAX_TASKS` tasks; the message names
        the culprit and what is allowed.
    """
    if not isinstance(spec, str):
        raise ValueError(f"example spec must be a string like 'gemm:n=256', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    defaults = example_params(name)
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise ValueError(f"example {name!r}: parameter {item!r} is not key=value")
        if key not in defaults:
            raise ValueError(
                f"example {name!r} has no parameter {key!r}; allowed: {', '.join(defaults)}"
            )
        if key in params:
            raise ValueError(f"example {name!r}: parameter {key!r} given twice")
        params[key] = _convert(name, key, value, defaults[key])
    try:
        n_tasks = APPROX_TASKS[name]({**defaults, **params})
    except TypeError:  # a size of the wrong type: the builder names it
        n_tasks = 0
    if n_tasks > MAX_TASKS:
        raise ValueError(
            f"example {name!r} with {', '.join(f'{k}={v}' for k, v in params.items())} "
            f"would build about {n_tasks:.3g} tasks; at most {MAX_TASKS:,}"
        )
    return EXAMPLES[name](**params)
