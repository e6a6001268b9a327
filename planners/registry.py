"""Planners by name, with parameters in a spec string: ``"non-uniform:configs=1024,2048"``.

A spec is ``name`` or ``name:key=value,key=value``. A value may itself be a comma list (configs):
an item without ``=`` continues the previous value, so ``non-uniform:configs=1024,2048,
tolerance=0.02`` sets configs to ``1024,2048`` and tolerance to 0.02.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from planners.base import Planner, PlannerError
from planners.heft import CpopPlanner, HeftPlanner
from planners.octo import OctoPlanner
from planners.simple import DaskPlanner, UniformPlanner, WukongPlanner
from planners.sizing import CostMinPlanner, DeadlinePlanner, NonUniformPlanner

#: Registry: planner name -> planner class.
PLANNERS: Mapping[str, type[Planner]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            UniformPlanner,
            NonUniformPlanner,
            WukongPlanner,
            HeftPlanner,
            CpopPlanner,
            DaskPlanner,
            CostMinPlanner,
            DeadlinePlanner,
            OctoPlanner,
        )
    }
)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """(name, {key: text value}) of a planner spec.

    Raises
    ------
    PlannerError
        For an empty name, a value before any key, or a key given twice.
    """
    if not isinstance(spec, str):
        raise PlannerError(f"planner spec must be a string like 'uniform', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise PlannerError(f"planner spec {spec!r} has no name; known: {', '.join(PLANNERS)}")
    params: dict[str, str] = {}
    key = None
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            key, _, value = item.partition("=")
            key = key.strip()
            if not key:
                raise PlannerError(f"planner spec {spec!r}: item {item!r} has no key")
            if key in params:
                raise PlannerError(f"planner spec {spec!r}: parameter {key!r} given twice")
            params[key] = value.strip()
        elif key is None:
            raise PlannerError(f"planner spec {spec!r}: item {item!r} is not key=value")
        else:
            params[key] = f"{params[key]},{item}"
    return name, params


def get_planner(spec: str | Planner, **params) -> Planner:
    """The planner named by `spec`, with its parameters (plus `params` given as keywords).

    Raises
    ------
    PlannerError (a ValueError)
        For an unknown planner (the message lists the known ones), an unknown parameter (it
        lists the allowed ones) or a bad value (named).
    """
    if isinstance(spec, Planner):
        return spec
    name, text_params = parse_spec(spec)
    cls = PLANNERS.get(name)
    if cls is None:
        raise PlannerError(f"unknown planner {name!r}; known: {', '.join(PLANNERS)}")
    overlap = sorted(set(text_params) & set(params))
    if overlap:
        raise PlannerError(f"planner {name!r}: parameter {overlap[0]!r} given twice")
    return cls(**text_params, **params)
