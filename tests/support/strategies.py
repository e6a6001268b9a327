"""Hypothesis strategies shared by the test suite: random DAGs with profiles."""

from __future__ import annotations

from hypothesis import strategies as st

from dag import DAG, Task

FUNCTIONS = ("load", "map", "reduce", "merge")


@st.composite
def dags(draw, min_tasks: int = 1, max_tasks: int = 20, max_deps: int = 3) -> DAG:
    """A random DAG: task i may depend on up to `max_deps` earlier tasks; ids shuffled."""
    n = draw(st.integers(min_tasks, max_tasks))
    ids = draw(st.permutations([f"t{i}" for i in range(n)]))
    tasks = []
    sizes = {}
    for i in range(n):
        earlier = list(range(i))
        deps = (
            draw(st.lists(st.sampled_from(earlier), max_size=max_deps, unique=True))
            if earlier
            else []
        )
        function = draw(st.sampled_from(FUNCTIONS))
        tasks.append(Task(ids[i], function, tuple(ids[d] for d in deps)))
        for d in deps:
            sizes[(ids[d], ids[i])] = draw(st.integers(0, 10**9))
    order = draw(st.permutations(range(n)))
    return DAG([tasks[i] for i in order], sizes)
