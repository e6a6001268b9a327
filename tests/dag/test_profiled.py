"""ProfiledDAG: profile validation and summary."""

import math

import pytest

from dag import DAG, Task
from dag.profiled import ProfiledDAG


def _chain() -> DAG:
    return DAG([Task("a", "load"), Task("b", "map", ("a",))], name="chain")


@pytest.mark.parametrize(
    ("runtime_ms", "output_bytes", "expected"),
    [
        ({"zz": 1.0}, {}, "unknown task 'zz'"),
        ({"a": -1.0}, {}, "task 'a': runtime_ms -1.0"),
        ({"a": math.inf}, {}, "task 'a': runtime_ms inf"),
        ({}, {"b": 1.5}, "task 'b': output_bytes 1.5 is not a whole number"),
        ({}, {"b": "3"}, "task 'b': output_bytes '3' is not a number"),
        ({"a": 1e10}, {}, "task 'a': runtime_ms 10000000000.0 is above the limit of 86400000 ms"),
        ({}, {"b": 2**60}, f"task 'b': output_bytes {2**60} is above the limit of {2**53} bytes"),
    ],
)
def test_bad_profile_raises_naming_task(runtime_ms, output_bytes, expected):
    """A profile with an unknown task or a bad value raises ValueError naming the task."""
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        ProfiledDAG(_chain(), runtime_ms, output_bytes)


def test_summary_and_name():
    """The name defaults to the DAG's; the summary has the runtime critical path when known."""
    profiled = ProfiledDAG(_chain(), {"a": 2, "b": 3.5}, {"a": 10})
    assert profiled.name == "chain"
    assert profiled.summary()["critical_path_ms"] == 5.5
    assert "critical_path_ms" not in ProfiledDAG(_chain()).summary()
    assert isinstance(profiled.runtime_ms["a"], float) and profiled.output_bytes["a"] == 10


def test_summary_leaves_out_the_critical_path_when_a_runtime_is_missing():
    """With a task's runtime unknown, the summary counts it instead of taking it as 0."""
    summary = ProfiledDAG(_chain(), {"a": 5.0}, {"a": 1, "b": 2}).summary()
    assert "critical_path_ms" not in summary
    assert summary["tasks_without_runtime"] == "1 (first 'b')"
    assert "tasks_without_output_size" not in summary
