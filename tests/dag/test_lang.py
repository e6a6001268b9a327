"""The @task language: lazy refs, build, argument templates and local runs."""

import pickle
from collections import namedtuple
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dag import DAG, TaskHints
from dag.lang import Placeholder, TaskFunction, TaskRef, build, task


@task
def source(i):
    return ("value", i)


@task
def nothing():
    return None


@task
def echo(*args, **kwargs):
    return args, kwargs


@task
def add(a, b):
    return a + b


@task(io="power", io_exponent=1.5, output_bytes=1000)
def sized(x):
    return x


def test_call_returns_ref():
    """Calling a decorated function returns a TaskRef and runs nothing."""
    calls = []

    @task
    def record(x):
        calls.append(x)

    ref = record(1)
    assert isinstance(ref, TaskRef)
    assert calls == []


def test_original_function_exposed():
    """The decorated object exposes the original function and its name."""
    assert isinstance(add, TaskFunction)
    assert add.fn(2, 3) == 5
    assert add.__name__ == "add"


def test_hints_from_decorator():
    """Decorator keywords become TaskHints on the DAG task."""
    wf = build(sized(1))
    assert wf.dag["sized-0"].hints == TaskHints(io="power", io_exponent=1.5, output_bytes=1000)
    assert build(add(1, 2)).dag["add-0"].hints is None


def test_output_bytes_hint_sizes_edges():
    """An output_bytes hint sets the bytes of every edge out of the task."""
    s = sized(1)
    wf = build([add(s, 1), add(s, 2)])
    assert wf.dag.edge_bytes("sized-0", "add-0") == 1000
    assert wf.dag.edge_bytes("sized-0", "add-1") == 1000


def test_bad_hint_names_function():
    """Invalid hints raise ValueError naming the function."""
    with pytest.raises(ValueError, match="bad_hint"):

        @task(io="power")
        def bad_hint(x):
            return x


def test_non_callable_rejected():
    """@task on something that is not callable raises TypeError."""
    with pytest.raises(TypeError, match="expects a function"):
        task(42)


def test_wrong_arguments_name_function():
    """Arguments that do not fit the signature raise TypeError naming the function."""
    with pytest.raises(TypeError, match="add"):
        add(1, 2, 3)


def test_uncalled_task_function_argument_rejected():
    """Passing a task function instead of calling it raises TypeError naming it."""
    with pytest.raises(TypeError, match="source"):
        echo(source)


def test_ref_in_set_rejected():
    """A reference hidden in a set raises TypeError, as it could not be substituted."""
    with pytest.raises(TypeError, match="set"):
        echo({source(1)})


def test_ref_as_dict_key_rejected():
    """A reference used as a dict key raises TypeError."""
    with pytest.raises(TypeError, match="dict key"):
        echo({source(1): 1})


def test_build_without_refs_rejected():
    """build() of an empty structure raises ValueError."""
    with pytest.raises(ValueError, match="no task references"):
        build([])


def test_build_non_ref_output_rejected():
    """build() of a plain value raises TypeError naming it."""
    with pytest.raises(TypeError, match="42"):
        build([source(1), 42])


def test_ids_and_function_names():
    """Task ids are <name>-<n> in discovery order; function is module.qualname."""
    wf = build(add(source(1), source(2)))
    assert list(wf.dag.topological_order()) == ["source-0", "source-1", "add-0"]
    assert wf.dag["add-0"].function == f"{add.fn.__module__}.add"
    assert wf.dag["add-0"].deps == ("source-0", "source-1")


def test_name_override_prefixes_ids():
    """task(name=...) sets the id prefix but not the function name."""

    @task(name="mProject")
    def project(x):
        return x

    wf = build(project(1))
    assert list(wf.dag) == ["mProject-0"]
    assert wf.dag["mProject-0"].function.endswith("project")


def test_same_ref_twice_is_one_task():
    """A ref used twice is one task and one dependency."""
    s = source(1)
    wf = build(echo(s, [s, {"k": s}]))
    assert len(wf.dag) == 2
    assert wf.dag["echo-0"].deps == ("source-0",)
    assert wf.result(wf.run_local()) == ((("value", 1), [("value", 1), {"k": ("value", 1)}]), {})


def test_equal_calls_are_distinct_tasks():
    """Two calls with equal arguments are two tasks."""
    wf = build([source(1), source(1)])
    assert list(wf.dag) == ["source-0", "source-1"]


def test_none_result_flows_to_consumer():
    """A task returning None passes None to its consumers (not treated as missing)."""
    wf = build(echo(nothing(), x=nothing()))
    results = wf.run_local()
    assert results["nothing-0"] is None
    assert results["echo-0"] == ((None,), {"x": None})


def test_call_reports_missing_upstream():
    """TaskSpec.call names the missing upstream task; None counts as present."""
    wf = build(echo(nothing()))
    spec = wf.specs["echo-0"]
    assert spec.call({"nothing-0": None}) == ((None,), {})
    with pytest.raises(KeyError, match="nothing-0"):
        spec.call({})


def test_several_sinks_and_output_structure():
    """build() accepts a dict of refs; outputs holds ids and result() refills it."""
    a, b = source(1), source(2)
    wf = build({"sum": add(a, b), "pair": (a, b)}, name="two")
    assert wf.dag.name == "two"
    assert set(wf.dag.sinks) == {"add-0"}
    assert wf.outputs == {"sum": "add-0", "pair": ("source-0", "source-1")}
    assert wf.result(wf.run_local()) == {
        "sum": ("value", 1, "value", 2),
        "pair": (("value", 1), ("value", 2)),
    }


def test_independent_sinks():
    """Unconnected outputs are separate sinks of one DAG."""
    wf = build([add(source(1), source(2)), source(3)])
    assert set(wf.dag.sinks) == {"add-0", "source-2"}


def test_template_holds_placeholders():
    """Spec argument templates replace each ref by a Placeholder naming its task."""
    wf = build(echo(source(1), 7, key=[source(2)]))
    spec = wf.specs["echo-0"]
    assert spec.args == (Placeholder("source-0"), 7)
    assert spec.kwargs == {"key": [Placeholder("source-1")]}
    assert spec.fn is echo.fn


def test_namedtuple_arguments_rebuilt():
    """Refs inside namedtuples are substituted and the namedtuple type kept."""
    Pair = namedtuple("Pair", "left right")
    wf = build(echo(Pair(source(1), 2)))
    ((pair,), _) = wf.run_local()["echo-0"]
    assert type(pair) is Pair
    assert pair == Pair(("value", 1), 2)


def test_arguments_copied_at_call():
    """Mutating an argument list after the call changes neither deps nor the value passed."""
    items = [source(1)]
    ref = echo(items)
    items.append(source(2))
    wf = build(ref)
    assert wf.dag["echo-0"].deps == ("source-0",)
    assert wf.run_local()["echo-0"] == (([("value", 1)],), {})


def test_dag_hash_stable_across_builds():
    """Building the same workflow twice gives equal DAGs and dag_hash."""

    def make():
        leaves = [source(i) for i in range(4)]
        return build(add(add(leaves[0], leaves[1]), add(leaves[2], leaves[3])))

    first, second = make(), make()
    assert first.dag == second.dag
    assert first.dag.dag_hash == second.dag.dag_hash


def test_long_chain_builds():
    """A chain deeper than the recursion limit builds and runs (discovery is iterative)."""
    ref = source(0)
    for _ in range(3000):
        ref = echo(ref)
    wf = build(ref)
    assert len(wf.dag) == 3001
    assert wf.dag.depth == 3001


def test_task_id_of_ref():
    """Workflow.task_id maps a ref to its id and rejects foreign refs."""
    s = source(1)
    wf = build(add(s, s))
    assert wf.task_id(s) == "source-0"
    with pytest.raises(KeyError):
        wf.task_id(source(2))


def test_with_output_bytes_sizes_edges():
    """with_output_bytes sets edge (u, v) to output_bytes[u] and keeps the structure."""
    wf = build(add(source(1), source(2)))
    sized_wf = wf.with_output_bytes({"source-0": 10, "source-1": 20})
    assert sized_wf.dag.edge_bytes("source-1", "add-0") == 20
    assert sized_wf.dag.dag_hash == wf.dag.dag_hash
    with pytest.raises(KeyError, match="nope"):
        wf.with_output_bytes({"nope": 1})


def test_spec_pickles_by_reference():
    """A TaskSpec of a module-level task pickles and still runs."""
    from dag.examples.tree_reduction import add as example_add
    from dag.examples.tree_reduction import generate

    wf = build(example_add(generate(0, 0, 3), generate(0, 1, 3)))
    spec = pickle.loads(pickle.dumps(wf.specs["add-0"]))
    assert spec.task is example_add
    assert spec.call({"generate-0": 1, "generate-1": 2}) == 3


def test_local_task_refuses_pickle():
    """A task defined inside a function explains why it cannot be pickled."""

    @task
    def local(x):
        return x

    with pytest.raises(pickle.PicklingError, match="module level"):
        pickle.dumps(local)


# -- property: nested references ------------------------------------------------------------

N_SOURCES = 5


@dataclass(frozen=True)
class Use:
    """Marks, in a drawn argument shape, a use of source ref `index`."""

    index: int


def nested(leaves):
    """Random nesting of lists, tuples and dicts over `leaves`."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=4).map(tuple),
            st.dictionaries(st.text(max_size=3), children, max_size=4),
        ),
        max_leaves=20,
    )


LEAVES = st.one_of(
    st.integers(0, N_SOURCES - 1).map(Use),
    st.integers(-5, 5),
    st.text(max_size=3),
    st.none(),
)


def materialise(shape, refs, values):
    """Turn a drawn shape into (argument with refs, expected value with results, ref order)."""
    if isinstance(shape, Use):
        return refs[shape.index], values[shape.index]
    if isinstance(shape, list):
        pairs = [materialise(item, refs, values) for item in shape]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(shape, tuple):
        pairs = [materialise(item, refs, values) for item in shape]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    if isinstance(shape, dict):
        pairs = {k: materialise(v, refs, values) for k, v in shape.items()}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    return shape, shape


def ref_order(shape, seen):
    if isinstance(shape, Use):
        seen.setdefault(shape.index)
    elif isinstance(shape, list | tuple):
        for item in shape:
            ref_order(item, seen)
    elif isinstance(shape, dict):
        for item in shape.values():
            ref_order(item, seen)
    return seen


@settings(max_examples=150, deadline=None)
@given(
    args=st.lists(nested(LEAVES), max_size=3),
    kwargs=st.dictionaries(st.sampled_from(["p", "q", "r"]), nested(LEAVES), max_size=3),
)
def test_nested_references_property(args, kwargs):
    """Nested refs give exactly the referenced deps, in first-appearance order, and call() gets the results."""
    refs = [nothing() if i == 0 else source(i) for i in range(N_SOURCES)]
    values = [None] + [("value", i) for i in range(1, N_SOURCES)]
    arg_refs, arg_values = materialise(tuple(args), refs, values)
    kw_pairs = {k: materialise(v, refs, values) for k, v in kwargs.items()}
    consumer = echo(*arg_refs, **{k: p[0] for k, p in kw_pairs.items()})
    wf = build(consumer)
    order = ref_order(tuple(args), {})
    for v in kwargs.values():
        ref_order(v, order)
    consumer_id = wf.task_id(consumer)
    assert wf.dag[consumer_id].deps == tuple(wf.task_id(refs[i]) for i in order)
    assert len(wf.dag) == len(order) + 1
    assert wf.run_local()[consumer_id] == (arg_values, {k: p[1] for k, p in kw_pairs.items()})


def test_dag_is_a_dag():
    """build() returns a dag.DAG."""
    assert isinstance(build(source(1)).dag, DAG)
