"""solo_exec_ms: recorded exec times on a shared machine back to each task's time alone."""

import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from traces.contention import solo_exec_ms


def frame(rows):
    return pd.DataFrame(rows, columns=["run_id", "exec_ms", "exec_done_ms"])


def test_two_tasks_that_shared_one_cpu_each_needed_half():
    """Two 100 ms executions over the same interval on one CPU: 50 ms each alone; on two CPUs
    they did not slow each other; another run's rows do not count."""
    tasks = frame([("r", 100.0, 100.0), ("r", 100.0, 100.0), ("other", 100.0, 100.0)])
    assert solo_exec_ms(tasks, 1.0).tolist() == pytest.approx([50.0, 50.0, 100.0])
    assert solo_exec_ms(tasks, 2.0).tolist() == pytest.approx([100.0, 100.0, 100.0])
    assert solo_exec_ms(tasks, math.inf).tolist() == [100.0, 100.0, 100.0]


def test_partial_overlap_is_integrated_piecewise():
    """[0, 100] and [50, 150] on one CPU: 50 ms alone plus 50 ms at half speed = 75 ms each."""
    tasks = frame([("r", 100.0, 100.0), ("r", 100.0, 150.0)])
    assert solo_exec_ms(tasks, 1.0).tolist() == pytest.approx([75.0, 75.0])


@given(
    st.lists(st.tuples(st.floats(0, 500), st.floats(0, 200)), min_size=1, max_size=12),
    st.sampled_from([1.0, 2.0, 3.5]),
)
def test_solo_time_is_at_most_the_recorded_time_and_work_is_conserved(intervals, cpus):
    """Each solo time is in [exec_ms * min(1, cpus / n), exec_ms], and the total never exceeds
    what the CPUs could deliver over the span."""
    tasks = frame([("r", length, start + length) for start, length in intervals])
    solo = solo_exec_ms(tasks, cpus)
    n = len(intervals)
    assert (solo <= tasks["exec_ms"] + 1e-9).all()
    assert (solo >= tasks["exec_ms"] * min(1.0, cpus / n) - 1e-6).all()
    span = tasks["exec_done_ms"].max() - (tasks["exec_done_ms"] - tasks["exec_ms"]).min()
    assert solo.sum() <= cpus * span + 1e-6


def test_missing_column_and_bad_cpus_are_named():
    with pytest.raises(ValueError, match="exec_done_ms"):
        solo_exec_ms(pd.DataFrame({"run_id": [], "exec_ms": []}), 2.0)
    with pytest.raises(ValueError, match="cpus=0"):
        solo_exec_ms(frame([]), 0)
