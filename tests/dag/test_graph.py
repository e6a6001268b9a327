"""DAG: validation, structure queries, critical path, hashing, networkx round-trip."""

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import dags

from dag import DAG, CycleError, DAGError, Task


def diamond() -> DAG:
    return DAG(
        [
            Task("a", "load"),
            Task("b", "map", ("a",)),
            Task("c", "map", ("a",)),
            Task("d", "reduce", ("b", "c")),
        ],
        {("a", "b"): 100, ("c", "d"): 7},
    )


def test_structure_queries():
    """Sources, sinks, predecessors, successors, depth and width of a diamond."""
    g = diamond()
    assert g.sources == ("a",)
    assert g.sinks == ("d",)
    assert g.predecessors("d") == ("b", "c")
    assert g.successors("a") == ("b", "c")
    assert (g.depth, g.width, len(g), g.n_edges) == (3, 2, 4, 4)


def test_edge_bytes_default_zero():
    """Known edges report their bytes, other edges 0, non-edges raise."""
    g = diamond()
    assert g.edge_bytes("a", "b") == 100
    assert g.edge_bytes("b", "d") == 0
    with pytest.raises(KeyError):
        g.edge_bytes("a", "d")


def test_critical_path_with_edge_weights():
    """Edge weights can move the critical path to another branch."""
    g = diamond()
    weights = {"a": 1, "b": 5, "c": 2, "d": 1}
    assert g.critical_path(weights) == (7.0, ("a", "b", "d"))
    assert g.critical_path(weights, {("a", "c"): 10}) == (14.0, ("a", "c", "d"))


def test_duplicate_id_rejected():
    """Two tasks with one id name the id."""
    with pytest.raises(DAGError, match="'x'"):
        DAG([Task("x", "f"), Task("x", "g")])


def test_unknown_dependency_rejected():
    """A dependency on a missing task names both tasks."""
    with pytest.raises(DAGError, match="'b'.*'ghost'"):
        DAG([Task("a", "f"), Task("b", "f", ("ghost",))])


def test_cycle_names_its_tasks():
    """A cycle error lists exactly the tasks of the cycle."""
    with pytest.raises(CycleError) as info:
        DAG(
            [
                Task("s", "f"),
                Task("a", "f", ("s", "c")),
                Task("b", "f", ("a",)),
                Task("c", "f", ("b",)),
            ]
        )
    assert sorted(info.value.cycle) == ["a", "b", "c"]


def test_negative_edge_bytes_rejected():
    """Negative edge sizes name the edge."""
    with pytest.raises(DAGError, match="'a' -> 'b'"):
        DAG([Task("a", "f"), Task("b", "f", ("a",))], {("a", "b"): -1})


def test_dag_is_immutable():
    """The task mapping cannot be changed after construction."""
    g = diamond()
    with pytest.raises(TypeError):
        g.tasks["e"] = Task("e", "f")  # type: ignore[index]


@given(dags())
def test_topological_order_respects_every_edge(g):
    """Every producer comes before its consumer in topological order."""
    position = {t: i for i, t in enumerate(g.topological_order())}
    assert sorted(position) == sorted(g)
    for producer, consumer in g.edges:
        assert position[producer] < position[consumer]


@given(dags())
def test_networkx_round_trip(g):
    """to_networkx then from_networkx preserves tasks, edges and sizes."""
    back = DAG.from_networkx(g.to_networkx())
    assert back == g
    assert nx.is_directed_acyclic_graph(g.to_networkx())


@given(dags(min_tasks=2), st.data())
def test_any_added_cycle_rejected(g, data):
    """Adding an edge from a task to one of its ancestors is always rejected."""
    order = g.topological_order()
    graph = g.to_networkx()
    candidates = [(u, v) for v in order for u in nx.ancestors(graph, v)]
    if not candidates:
        candidates = [(order[0], order[0])]
    ancestor, descendant = data.draw(st.sampled_from(candidates))
    with pytest.raises(CycleError):
        DAG(
            Task(t.id, t.function, (*t.deps, descendant)) if t.id == ancestor else t
            for t in g.tasks.values()
        )


@given(dags(), st.randoms())
def test_dag_hash_stable_under_rebuild_and_renaming(g, rnd):
    """Rebuilding in another insertion order or renaming ids keeps dag_hash."""
    tasks = list(g.tasks.values())
    rnd.shuffle(tasks)
    assert DAG(tasks).dag_hash == g.dag_hash
    new_ids = [f"n{i}" for i in range(len(g))]
    rnd.shuffle(new_ids)
    renamed = g.relabel(dict(zip(g, new_ids, strict=True)))
    assert renamed.dag_hash == g.dag_hash


@given(dags(min_tasks=2), st.data())
def test_dag_hash_changes_with_an_edge(g, data):
    """Adding or removing one edge changes dag_hash."""
    order = g.topological_order()
    pairs = [(order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))]
    producer, consumer = data.draw(st.sampled_from(pairs))
    tasks = []
    for t in g.tasks.values():
        if t.id == consumer:
            deps = tuple(d for d in t.deps if d != producer)
            if deps == t.deps:
                deps = (*deps, producer)
            t = Task(t.id, t.function, deps)
        tasks.append(t)
    assert DAG(tasks).dag_hash != g.dag_hash


@given(dags(), st.data())
def test_dag_hash_changes_with_a_function(g, data):
    """Changing one task's function changes dag_hash."""
    victim = data.draw(st.sampled_from(list(g)))
    tasks = [
        Task(t.id, t.function + "_v2", t.deps) if t.id == victim else t for t in g.tasks.values()
    ]
    assert DAG(tasks).dag_hash != g.dag_hash


@given(dags())
def test_critical_path_is_a_path_and_bounds_every_chain(g):
    """The critical path follows edges and its length is at least any task's finish."""
    weights = {t: (i % 7) + 1.0 for i, t in enumerate(g)}
    length, path = g.critical_path(weights)
    for producer, consumer in zip(path, path[1:], strict=False):
        assert producer in g.predecessors(consumer)
    assert length == pytest.approx(sum(weights[t] for t in path))
    assert length >= max(weights.values())


@given(dags())
def test_dag_pickles(g):
    """A DAG survives pickling (sweeps ship DAGs to other processes)."""
    import pickle

    back = pickle.loads(pickle.dumps(g))
    assert back == g and back.name == g.name and back.dag_hash == g.dag_hash
