"""load_workflow: WfFormat files, layered specs and example specs, with UsageError on bad input."""

import pytest

from dag import DAG, Task
from dag.profiled import ProfiledDAG
from dag.wfformat import WfInstance, write_wfformat
from experiments.errors import UsageError
from experiments.workflows import load_workflow, parse_params


def test_file_spec_reads_wfformat(tmp_path):
    """An existing path is read as WfFormat."""
    path = write_wfformat(DAG([Task("a", "f"), Task("b", "g", ("a",))]), tmp_path / "x.wf")
    loaded = load_workflow(str(path))
    assert isinstance(loaded, WfInstance) and list(loaded.dag) == ["a", "b"]


def test_layered_spec_matches_generator():
    """``layered:n=...,seed=...`` gives the same DAG as calling the generator."""
    from dag.generators import layered_dag

    loaded = load_workflow("layered:n=120,seed=4,alpha=2,ccr=0.5")
    assert isinstance(loaded, ProfiledDAG)
    assert loaded.dag == layered_dag(120, seed=4, alpha=2.0, ccr=0.5).dag


def test_example_spec_goes_to_examples():
    """Any other name is resolved by dag.examples.build_example."""
    examples = pytest.importorskip("dag.examples")
    name = next(iter(examples.EXAMPLES))
    assert len(load_workflow(name).dag) == len(examples.build_example(name).dag)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "empty workflow spec"),
        ("missing/dir/wf", "no such file"),
        (":n=3", "has no workflow name"),
        ("layered:n", "is not key=value"),
        ("layered:n=3,n=4", "given twice"),
    ],
)
def test_bad_spec_raises_usage_error(spec, expected):
    """Bad specs raise UsageError naming the problem."""
    with pytest.raises(UsageError, match=expected):
        load_workflow(spec)


def test_parse_params():
    """Specs split into a name and raw key=value strings."""
    assert parse_params(" gemm : n=2000, blocks=4 ") == ("gemm", {"n": "2000", "blocks": "4"})
    assert parse_params("svd") == ("svd", {})
