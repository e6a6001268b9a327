"""Resolve what a user names on the command line or in a config into a profiled workflow.

A workflow spec is one of:

- a WfFormat 1.5 file: an existing path, or anything ending in ``.json``;
- a generated DAG: ``layered:n=1000,seed=1,alpha=1.0,out_degree=3,ccr=1.0,beta=0.5``;
- an example workflow: ``NAME`` or ``NAME:key=value,...`` (see `dag.examples`);
- the user's own code: ``path/to/flow.py:BUILDER[:key=value,...]`` or
  ``package.module:BUILDER[:key=value,...]``, profiles measured by one run in this process
  (see `experiments.user_workflows`).

Every bad spec raises `experiments.cli.UsageError` with one line naming the problem.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dag.generators import layered_dag
from dag.wfformat import WfFormatError, read_wfformat
from experiments.errors import UsageError

# layered_dag parameters a spec may set, and how to read their values.
_LAYERED_PARAMS = {
    "n": int,
    "seed": int,
    "alpha": float,
    "out_degree": float,
    "ccr": float,
    "beta": float,
    "mean_runtime_ms": float,
    "bandwidth_bytes_per_ms": float,
}


def _is_file_spec(spec: str) -> bool:
    if spec.endswith(".json") or os.path.exists(spec):
        return True
    head = spec.partition(":")[0]
    return "/" in head or os.sep in head


def parse_params(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,...`` into the name and its raw parameter strings.

    Raises
    ------
    UsageError
        If the name is empty, a parameter lacks ``=`` or a key is repeated.
    """
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"workflow spec {spec!r} has no workflow name")
    return name, split_params(spec, rest)


def split_params(spec: str, text: str) -> dict[str, str]:
    """The raw ``key=value`` strings of a spec's comma-separated parameter text.

    Raises
    ------
    UsageError
        If a parameter lacks ``=`` or a key is repeated (naming `spec`).
    """
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"workflow spec {spec!r}: parameter {item!r} is not key=value")
        if key in params:
            raise UsageError(f"workflow spec {spec!r}: parameter {key!r} given twice")
        params[key] = value.strip()
    return params


def _layered(spec: str, raw: dict[str, str]) -> Any:
    unknown = sorted(set(raw) - set(_LAYERED_PARAMS))
    if unknown:
        raise UsageError(
            f"workflow spec {spec!r}: unknown parameter(s) {', '.join(unknown)}; "
            f"layered takes {', '.join(_LAYERED_PARAMS)}"
        )
    if "n" not in raw:
        raise UsageError(f"workflow spec {spec!r}: layered needs n=NUMBER_OF_TASKS")
    kwargs: dict[str, Any] = {}
    for key, text in raw.items():
        try:
            kwargs[key] = _LAYERED_PARAMS[key](text)
        except ValueError:
            kind = _LAYERED_PARAMS[key].__name__
            raise UsageError(
                f"workflow spec {spec!r}: {key}={text!r} is not a valid {kind}"
            ) from None
    n_tasks = kwargs.pop("n")
    try:
        return layered_dag(n_tasks, name=spec, **kwargs)
    except ValueError as error:
        raise UsageError(f"workflow spec {spec!r}: {error}") from None


def _example(spec: str, name: str) -> Any:
    try:
        from dag.examples import EXAMPLES, build_example
    except ImportError:
        raise UsageError(
            f"unknown workflow {name!r}: not a file, and example workflows are unavailable"
        ) from None
    try:
        return build_example(spec)
    except ValueError as error:
        hint = "" if name in EXAMPLES else " (or layered:n=N,seed=S, or a WfFormat .json file)"
        raise UsageError(f"workflow {spec!r}: {error}{hint}") from None


def load_workflow(spec: str) -> Any:
    """The workflow a spec names, with its profiles.

    Parameters
    ----------
    spec : str
        A WfFormat file, ``layered:n=...,seed=...``, an example workflow spec, or user code
        (``flow.py:BUILDER[:key=value,...]``, ``package.module:BUILDER[:...]``).

    Returns
    -------
    object
        With ``.dag``, ``.runtime_ms``, ``.output_bytes`` and ``.summary()``: a `WfInstance`,
        a `ProfiledDAG`, an example workflow or a `UserWorkflow` (which run for real too).

    Raises
    ------
    UsageError
        On a missing or malformed file (missing fields, cycles, unknown ids), an unknown
        workflow, or a bad parameter; one line naming the problem.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("empty workflow spec: give a WfFormat file or a workflow name")
    spec = spec.strip()
    from experiments.user_workflows import is_user_spec, load_user_workflow

    if is_user_spec(spec):
        return load_user_workflow(spec)
    if _is_file_spec(spec):
        try:
            return read_wfformat(Path(spec))
        except WfFormatError as error:
            raise UsageError(str(error)) from None
    name, raw = parse_params(spec)
    if name == "layered":
        return _layered(spec, raw)
    return _example(spec, name)
