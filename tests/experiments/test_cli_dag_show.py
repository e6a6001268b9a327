"""`faasdag dag show`: summaries on good input, exit 2 on bad input."""

import json

import pytest

from dag import DAG, Task
from dag.wfformat import write_wfformat
from experiments.cli import main


def _shown(capsys, argv):
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_show_wfformat_file(tmp_path, capsys):
    """A WfFormat file the test writes is summarised with its runtime critical path, and the
    tasks without an output size (no outputFiles) are counted."""
    dag = DAG(
        [
            Task("a", "load"),
            Task("b", "map", ("a",)),
            Task("c", "map", ("a",)),
            Task("d", "reduce", ("b", "c")),
        ],
        {("a", "b"): 10, ("a", "c"): 10},
    )
    path = write_wfformat(dag, tmp_path / "wf.json", {"a": 1.0, "b": 2.0, "c": 5.0, "d": 1.0})
    shown = _shown(capsys, ["dag", "show", str(path)])
    assert shown == {
        "tasks": "4",
        "edges": "4",
        "sources": "1",
        "sinks": "1",
        "depth": "3",
        "width": "2",
        "critical_path_ms": "7.0",
        "tasks_without_output_size": "3 (first 'b')",
    }


def test_show_layered_spec(capsys):
    """A generated layered DAG spec is summarised."""
    shown = _shown(capsys, ["dag", "show", "layered:n=50,seed=1"])
    assert shown["tasks"] == "50" and shown["depth"] == "7"
    assert float(shown["critical_path_ms"]) > 0


def _cyclic(tmp_path):
    doc = {
        "name": "loop",
        "schemaVersion": "1.5",
        "workflow": {
            "specification": {
                "tasks": [
                    {"name": "a", "id": "a", "parents": ["b"], "children": ["b"]},
                    {"name": "b", "id": "b", "parents": ["a"], "children": ["a"]},
                ]
            }
        },
    }
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD_INPUTS = {
    "missing-file": (lambda tmp: str(tmp / "absent.json"), "no such file"),
    "malformed-json": (lambda tmp: _write(tmp, "bad.json", "{nope"), "malformed JSON"),
    "missing-fields": (
        lambda tmp: _write(tmp, "empty.json", '{"schemaVersion": "1.5"}'),
        "missing required field 'name'",
    ),
    "cycle": (_cyclic, "cycle"),
    "unknown-workflow": (lambda tmp: "no_such_workflow", "no_such_workflow"),
    "layered-bad-value": (lambda tmp: "layered:n=ten", "n='ten'"),
    "layered-unknown-param": (lambda tmp: "layered:n=10,depth=3", "unknown parameter(s) depth"),
    "layered-no-n": (lambda tmp: "layered:seed=1", "needs n="),
    "layered-out-of-range": (lambda tmp: "layered:n=10,beta=5", "beta=5.0"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    """Bad input exits 2 and prints one line on stderr naming the problem, nothing on stdout."""
    make, expected = BAD_INPUTS[case]
    status = main(["dag", "show", make(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("faasdag: error: ")
    assert expected in err
