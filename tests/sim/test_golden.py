"""The engine reproduces its frozen results bit for bit (tests/support/golden_traces.py).

Every example workflow under every planner and two seeds (plus the shared-host and ideal
platforms, plans with every optimization flag on, and the benchmark's layered shape): the plan,
the planner's predicted timeline and the simulated tasks, workers and runs tables hash exactly
as recorded by the engine before it was made faster. Floats are compared by their exact repr:
the faster engine performs the same arithmetic in the same order and SimPy processes the same
events in the same order, so no tolerance is needed (none of the changes reorders a float sum).
"""

import json

import pytest
from golden_traces import GOLDEN_FILE, cases

GOLDEN = json.loads(GOLDEN_FILE.read_text())
CASES = dict(cases())


def test_golden_file_covers_every_case():
    """The golden file holds exactly the cases the generator defines."""
    assert sorted(GOLDEN) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_simulated_traces_match_golden(name):
    """Plan, predicted timeline and simulated tables hash as recorded."""
    got = CASES[name]()
    want = GOLDEN[name]
    assert got["makespan_ms"] == want["makespan_ms"]
    assert got == want
