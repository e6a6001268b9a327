"""Example workflows: results match direct numpy computations; spec parsing; lazy builds."""

import time

import numpy as np
import pytest

from dag import DAG
from dag.examples import APPROX_TASKS, EXAMPLES, ExampleWorkflow, build_example, example_params

NAMES = sorted(EXAMPLES)


@pytest.fixture(scope="module")
def runs():
    """Every example at its default size, run locally once: {name: (example, results)}."""
    out = {}
    for name in NAMES:
        example = build_example(name)
        out[name] = (example, example.workflow.run_local())
    return out


@pytest.mark.parametrize("name", NAMES)
def test_local_run_passes_check(runs, name):
    """Running the example in topological order gives results that pass its check."""
    example, results = runs[name]
    example.check(results)


def corrupt(value):
    """A copy of a result changed in one place (first array element, number or list item)."""
    if isinstance(value, np.ndarray):
        bad = value.copy()
        flat = bad.reshape(-1)
        flat[0] = ~flat[0] if bad.dtype == bool else flat[0] + 1.0
        return bad
    if isinstance(value, dict):
        key = next(iter(value))
        return {**value, key: corrupt(value[key])}
    if isinstance(value, list):
        return value[1:]
    if isinstance(value, int | float):
        return value + 1
    raise TypeError(f"cannot corrupt {type(value).__name__}")


@pytest.mark.parametrize("name", NAMES)
def test_check_catches_corrupted_sink(runs, name):
    """A corrupted sink result fails the check with an AssertionError naming the workflow."""
    example, results = runs[name]
    (sink,) = example.dag.sinks
    bad = {**results, sink: corrupt(results[sink])}
    with pytest.raises(AssertionError, match=name):
        example.check(bad)


@pytest.mark.parametrize("name", NAMES)
def test_check_reports_missing_result(runs, name):
    """Results without the sink fail the check naming the missing task."""
    example, results = runs[name]
    (sink,) = example.dag.sinks
    partial = {k: v for k, v in results.items() if k != sink}
    with pytest.raises(AssertionError, match=sink):
        example.check(partial)


@pytest.mark.parametrize("name", NAMES)
def test_costs_cover_every_task(name):
    """runtime_ms and output_bytes have a positive entry per task and edges carry output bytes."""
    example = build_example(name)
    assert isinstance(example, ExampleWorkflow)
    assert example.dag is example.workflow.dag
    assert isinstance(example.dag, DAG)
    assert set(example.runtime_ms) == set(example.dag) == set(example.output_bytes)
    assert all(ms > 0 for ms in example.runtime_ms.values())
    assert all(n > 0 for n in example.output_bytes.values())
    for producer, consumer in example.dag.edges:
        assert example.dag.edge_bytes(producer, consumer) == example.output_bytes[producer]
    summary = example.summary()
    assert summary["tasks"] == len(example.dag)
    assert summary["critical_path_ms"] > 0


def test_all_examples_fast():
    """Building and running all six examples at default size takes under 3 s."""
    start = time.perf_counter()
    for name in NAMES:
        example = build_example(name)
        example.check(example.workflow.run_local())
    assert time.perf_counter() - start < 3.0


def test_spec_parses_params():
    """name:key=value,... sets the builder's parameters with their default's type."""
    example = build_example("gemm:n=64, blocks=2")
    assert example.params == {"n": 64, "blocks": 2, "seed": 0}
    assert len(example.dag) == 2 * 4 + 8 + 4 + 1
    montage = build_example("montage_like:grid=2,overlap=0.5")
    assert montage.params["overlap"] == 0.5
    assert montage.dag.name == montage.spec


def test_small_non_default_sizes_pass_check():
    """Uneven blocks and odd leaf counts still compute the right result."""
    for spec in [
        "tree_reduction:n=5,length=7",
        "gemm:n=10,blocks=3",
        "svd:rows=20,cols=6,blocks=5",
        "image_pipeline:size=17,tiles=3",
        "text_analysis:chunks=3,words=50,vocabulary=30,k=3",
        "montage_like:grid=2,size=9,overlap=0.4",
        "montage_like:grid=1",
        "tree_reduction:n=1",
    ]:
        example = build_example(spec)
        example.check(example.workflow.run_local())


def test_seed_changes_data_not_structure():
    """A different seed gives the same DAG structure but different results."""
    a, b = build_example("tree_reduction:seed=1"), build_example("tree_reduction:seed=2")
    assert a.dag.dag_hash == b.dag.dag_hash
    ra, rb = a.workflow.run_local(), b.workflow.run_local()
    with pytest.raises(AssertionError):
        a.check(rb)
    a.check(ra)


@pytest.mark.parametrize(
    ("spec", "culprit"),
    [
        ("nosuch", "'nosuch'.*known: .*gemm"),
        ("gemm:size=3", "'size'.*allowed: n, blocks, seed"),
        ("gemm:n=abc", "n='abc'.*int"),
        ("gemm:n=2.5", "n='2.5'.*int"),
        ("gemm:n", "'n' is not key=value"),
        ("gemm:n=4,n=8", "'n' given twice"),
        ("gemm:blocks=0", "gemm: blocks=0"),
        ("gemm:n=4,blocks=8", "blocks=8 must be <= n=4"),
        ("montage_like:overlap=x", "overlap='x'.*float"),
        ("montage_like:overlap=1.5", "overlap=1.5"),
        ("svd:rows=2,blocks=4", "rows=2"),
        ("tree_reduction:seed=-1", "seed=-1"),
    ],
)
def test_bad_spec_names_culprit(spec, culprit):
    """A bad spec raises ValueError naming the unknown name, parameter or value."""
    with pytest.raises(ValueError, match=culprit):
        build_example(spec)


def test_large_spec_builds_instantly():
    """A large size builds without generating data: gemm n=2000 in well under a second."""
    start = time.perf_counter()
    example = build_example("gemm:n=2000,blocks=4")
    assert time.perf_counter() - start < 0.5
    assert example.output_bytes[example.dag.sinks[0]] == 2000 * 2000 * 8


def test_example_params_lists_defaults():
    """example_params gives each builder's keyword parameters and defaults."""
    assert example_params("gemm") == {"n": 256, "blocks": 4, "seed": 0}
    for name in NAMES:
        assert "seed" in example_params(name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_approx_tasks_is_within_a_factor_of_two(name):
    """APPROX_TASKS[name] is within a factor of two of the tasks built, at two sizes."""
    size = {
        "tree_reduction": "n",
        "gemm": "blocks",
        "svd": "blocks",
        "image_pipeline": "tiles",
        "text_analysis": "chunks",
        "montage_like": "grid",
    }[name]
    for value in (4, 8):
        params = {**example_params(name), size: value}
        if name == "svd":
            params["rows"] = max(params["rows"], value)
        built = EXAMPLES[name](**params)
        estimate = APPROX_TASKS[name](params)
        assert len(built.dag) / 2 <= estimate <= 2 * len(built.dag)


def test_sizes_beyond_max_tasks_are_refused_before_building():
    """A size that would build more than MAX_TASKS tasks raises ValueError at once."""
    with pytest.raises(ValueError, match=r"about 2e\+09 tasks; at most 1,000,000"):
        build_example("tree_reduction:n=1000000000")
