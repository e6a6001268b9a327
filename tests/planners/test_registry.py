"""Planner registry: names, spec strings and parameter checks."""

import pytest

from dag import ResourceConfig
from planners import PLANNERS, PlannerError, get_planner, parse_spec


def test_registry_lists_every_planner():
    """PLANNERS names the eight planners of the issue."""
    assert set(PLANNERS) == {
        "uniform",
        "non-uniform",
        "wukong",
        "heft",
        "cpop",
        "dask",
        "cost-min",
        "octo",
        "deadline",
    }


def test_spec_with_config_list():
    """Items without '=' continue the previous value, so config lists need no quoting."""
    planner = get_planner("non-uniform:configs=1024,2048,4096,tolerance=0.02")
    assert planner.params["configs"] == tuple(ResourceConfig(m) for m in (1024, 2048, 4096))
    assert planner.params["tolerance"] == 0.02


def test_spec_round_trips():
    """A planner's spec rebuilds an equal planner."""
    planner = get_planner("dask:workers=3,config=2048")
    assert get_planner(planner.spec).params == planner.params


def test_unknown_planner_names_known_ones():
    """An unknown name raises ValueError naming it and the known planners."""
    with pytest.raises(ValueError, match=r"'magic'.*uniform.*heft"):
        get_planner("magic")


def test_unknown_parameter_names_allowed_ones():
    """An unknown parameter raises ValueError naming it and the allowed ones."""
    with pytest.raises(ValueError, match=r"'speed'.*allowed: configs, tolerance, max_sims"):
        get_planner("non-uniform:speed=3")


def test_bad_value_is_named():
    """A value that does not parse or is out of range raises, naming the parameter."""
    with pytest.raises(PlannerError, match="tolerance"):
        get_planner("non-uniform:tolerance=lots")
    with pytest.raises(PlannerError, match="workers"):
        get_planner("heft:workers=0")


def test_malformed_spec():
    """A value before any key, or a key twice, is refused."""
    with pytest.raises(PlannerError, match="not key=value"):
        parse_spec("uniform:2048")
    with pytest.raises(PlannerError, match="twice"):
        parse_spec("dask:workers=2,workers=3")
