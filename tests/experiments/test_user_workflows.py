"""Workflows from the user's own code (``flow.py:BUILDER``, ``package.module:BUILDER``) through
`load_workflow` and every `faasdag` command, and the one-line errors of bad specs."""

import logging
import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
from lambda_local_cli import lambda_local

import experiments.user_workflows as user_workflows
from experiments.cli import main
from experiments.errors import UsageError
from experiments.sweep import _workflow
from experiments.user_workflows import UserWorkflow, is_user_spec
from experiments.workflows import load_workflow
from traces.io import TraceSet

ROOT = Path(__file__).resolve().parents[2]

#: A fan-out/fan-in with nested list/dict arguments, a task returning None and a size hint.
FLOW = '''
"""A user's workflow: split, square each part, a task returning None, then a fan-in."""
from dag.lang import build, task


@task
def split(n):
    return list(range(n))


@task
def square(xs, i, *, offset=0):
    return {"i": i, "value": xs[i] ** 2 + offset}


@task
def nothing(part):
    return None


@task(output_bytes=1000)
def total(parts, extra, offset):
    assert extra["none"] is None and extra["pair"][0] is None
    return {"n": len(parts), "offset": offset, "sum": sum(p["value"] for p in parts)}


def fan(n: int = 4, offset: int = 0):
    xs = split(n)
    parts = [square(xs, i, offset=offset) for i in range(n)]
    side = nothing(parts[0])
    return {"total": total(parts, {"none": side, "pair": [side, parts[-1]]}, offset),
            "side": side}


WORKFLOW = fan(3)
BUILT = build(fan(2))
'''

CHECK = """

def check_fan(outputs):
    total = outputs["total"]
    expected = sum(i * i + total["offset"] for i in range(total["n"]))
    assert outputs["side"] is None, "side output is not None"
    assert total["sum"] == expected, f"sum {total['sum']} != {expected}"
"""

FAILING_CHECK = """

def check_fan(outputs):
    assert False, "the sum is wrong on purpose"
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Each test imports its own modules: sys.path, PYTHONPATH, sys.modules and the caches of
    loaded workflows are put back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    if "PYTHONPATH" in os.environ:
        monkeypatch.setenv("PYTHONPATH", os.environ["PYTHONPATH"])
    else:
        monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setattr(user_workflows, "_loaded", {})
    _workflow.cache_clear()
    yield
    _workflow.cache_clear()
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def flow(tmp_path):
    """A user module with a check function."""
    return write(tmp_path, "userflow_checked.py", FLOW + CHECK)


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- loading --------------------------------------------------------------------------------


def test_spec_forms_are_told_apart():
    """Files and module:name specs are user code; examples, layered and WfFormat are not."""
    assert is_user_spec("path/to/flow.py:make")
    assert is_user_spec("flow.py:make:n=4,k=2")
    assert is_user_spec("pkg.mod:make:n=4")
    assert is_user_spec("flow.py")
    for other in ("gemm", "gemm:n=256,blocks=2", "layered:n=5", "layered:n", "runs/x.json"):
        assert not is_user_spec(other), other


def test_profiles_are_measured_by_one_run(flow):
    """Every task gets a measured runtime and output size; a size hint wins over the measure."""
    spec = f"{flow}:fan:n=3,offset=2"
    loaded = load_workflow(spec)
    assert isinstance(loaded, UserWorkflow)
    assert loaded.params == {"n": 3, "offset": 2} and loaded.dag.name == spec
    assert set(loaded.runtime_ms) == set(loaded.dag) == set(loaded.output_bytes)
    assert all(ms >= 0 for ms in loaded.runtime_ms.values())
    assert loaded.output_bytes["total-0"] == 1000
    assert loaded.output_bytes["nothing-0"] == len(pickle.dumps(None, protocol=5))
    assert loaded.dag.edge_bytes("square-0", "nothing-0") == loaded.output_bytes["square-0"]
    assert load_workflow(spec) is loaded  # measured once per spec


def test_check_function_checks_results(flow):
    """``check_fan`` receives the filled outputs; a wrong result fails naming the spec."""
    loaded = load_workflow(f"{flow}:fan:n=3")
    results = loaded.workflow.run_local()
    loaded.check(results)
    with pytest.raises(AssertionError, match="check_fan"):
        loaded.check({**results, "total-0": {"n": 3, "offset": 0, "sum": -1}})


def test_parameters_are_read_as_the_builders_types(tmp_path):
    """A value takes its default's type, else its annotation's, else a guessed type."""
    path = write(
        tmp_path,
        "userflow_typed.py",
        """
        from dag.lang import task

        @task
        def one(x):
            return x

        def typed(n=1, scale=1.0, flag=False, name="a", count: int = None, guess=None, **more):
            return one([n, scale, flag, name, count, guess, more])
        """,
    )
    spec = f"{path}:typed:n=3,scale=2,flag=yes,name=7,count=5,guess=2.5,other=true"
    assert load_workflow(spec).params == {
        "n": 3,
        "scale": 2.0,
        "flag": True,
        "name": "7",
        "count": 5,
        "guess": 2.5,
        "other": True,
    }


def test_module_level_workflow_objects(flow):
    """An attribute that already is refs or a built Workflow is the workflow itself."""
    assert len(load_workflow(f"{flow}:WORKFLOW").dag) == 1 + 3 + 1 + 1
    built = load_workflow(f"{flow}:BUILT")
    assert len(built.dag) == 1 + 2 + 1 + 1 and built.dag.name == f"{flow}:BUILT"


# -- the commands ---------------------------------------------------------------------------


def test_compare_plan_and_simulate_a_file_builder(flow, capsys):
    """`compare`, `plan` and `simulate` take ``flow.py:BUILDER:key=value``."""
    spec = f"{flow}:fan:n=3"
    assert main(["compare", spec, "--planners", "uniform,wukong", "--seeds", "1"]) == 0
    printed = capsys.readouterr().out
    assert "uniform" in printed and "wukong" in printed
    assert main(["plan", spec, "--planner", "heft"]) == 0
    printed = capsys.readouterr().out
    assert all(t in printed for t in ("split-0", "square-2", "nothing-0", "total-0"))
    assert main(["simulate", spec, "--planner", "wukong"]) == 0
    assert "total-0" in capsys.readouterr().out


def test_run_config_names_the_file_relative_to_itself(flow, tmp_path, monkeypatch, capsys):
    """A TOML config's ``flow.py:BUILDER`` is found next to the config, from any folder."""
    config = write(
        tmp_path / "exp",
        "mine.toml",
        f"""
        workflows = ["../{flow.name}:fan:n=3"]
        planners = ["uniform", "wukong"]
        [outputs]
        plots = false
        """,
    )
    monkeypatch.chdir(tmp_path.parent)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    runs = TraceSet.read(out).runs
    assert len(runs) == 2 and all(w.endswith(f"{flow.name}:fan:n=3") for w in runs["workflow"])


def test_package_module_builder(tmp_path, monkeypatch, capsys):
    """``package.module:BUILDER:key=value`` imports the module from sys.path."""
    root = tmp_path / "site"
    write(root, "userpkg_flows/__init__.py", "")
    write(root, "userpkg_flows/fans.py", FLOW + CHECK)
    monkeypatch.syspath_prepend(str(root))
    loaded = load_workflow("userpkg_flows.fans:fan:n=2")
    assert isinstance(loaded, UserWorkflow) and len(loaded.dag) == 1 + 2 + 1 + 1
    assert main(["plan", "userpkg_flows.fans:fan:n=2", "--planner", "uniform"]) == 0


def test_execute_local_runs_and_checks(flow, tmp_path, redis_url, capsys):
    """`execute --backend local` runs a user workflow for real and checks it with check_fan."""
    out = tmp_path / "real"
    code = main([
        "execute", f"{flow}:fan:n=3", "--backend", "local", "--planners", "uniform,wukong",
        "--redis-url", redis_url, "--out", str(out), "--no-plots",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note" not in captured.err
    traces = TraceSet.read(out)
    assert len(traces.runs) == 2 and set(traces.runs["backend"]) == {"local"}
    assert len(traces.tasks) == 2 * 6


def test_execute_without_check_says_so_once(tmp_path, redis_url, capsys):
    """Without ``check_fan`` the workflow runs, and one stderr line says it was not checked."""
    path = write(tmp_path, "userflow_unchecked.py", FLOW)
    code = main([
        "execute", f"{path}:fan:n=2", "--backend", "local", "--planners", "uniform,wukong",
        "--redis-url", redis_url, "--out", str(tmp_path / "real"), "--no-plots",
    ])  # fmt: skip
    assert code == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note" in line]
    assert notes == [
        f"faasdag: note: workflow '{path}:fan:n=2' has no check_fan(); its results were not checked"
    ]


def test_execute_failing_check_fails_the_cell(tmp_path, redis_url, capsys):
    """A check that raises makes the cell a failed one (exit 1, named on stderr)."""
    path = write(tmp_path, "userflow_wrong.py", FLOW + FAILING_CHECK)
    code = main([
        "execute", f"{path}:fan:n=2", "--backend", "local", "--planners", "wukong",
        "--redis-url", redis_url, "--out", str(tmp_path / "real"), "--no-plots",
    ])  # fmt: skip
    assert code == 1
    assert "check_fan() failed: the sum is wrong on purpose" in capsys.readouterr().err


# -- errors: exit 2, one line naming the culprit -------------------------------------------

BROKEN = {
    "userflow_syntax.py": "def fan(:\n    pass\n",
    "userflow_imports.py": "import userflow_no_such_dependency\n",
    "userflow_misc.py": """
        from dag.lang import task

        NUMBER = 3

        @task
        def boom_task(x):
            return x / 0

        def other():
            return 3

        def boom():
            raise RuntimeError("kaput")

        def needs(k):
            return boom_task(k)

        def divides():
            return boom_task(1)
        """,
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{tmp}/userflow_absent.py:fan", "userflow_absent.py' does not exist"),
        ("{tmp}/userflow_syntax.py:fan", "syntax error in {tmp}/userflow_syntax.py, line 1"),
        ("{tmp}/userflow_imports.py:fan", "No module named 'userflow_no_such_dependency'"),
        ("{tmp}/userflow_misc.py:nope", "{tmp}/userflow_misc.py has no attribute 'nope'"),
        ("{tmp}/userflow_misc.py:NUMBER", "userflow_misc.py:NUMBER is an int, expected"),
        ("{tmp}/userflow_misc.py:other", "other() in {tmp}/userflow_misc.py returned an int"),
        (
            "{tmp}/userflow_misc.py:boom",
            "boom() in {tmp}/userflow_misc.py raised RuntimeError: kaput ({tmp}/",
        ),
        ("{tmp}/userflow_misc.py:needs", "needs() in {tmp}/userflow_misc.py needs parameter(s) k"),
        ("{tmp}/userflow_misc.py:needs:k=1,j=2", "has no parameter 'j'; it takes k"),
        ("{tmp}/userflow_misc.py:boom_task", "userflow_misc.py:boom_task is a @task function"),
        ("{tmp}/userflow_misc.py:divides", "task 'boom_task-0' raised ZeroDivisionError"),
        ("{tmp}/userflow_misc.py", "names the Python file"),
        ("{tmp}/userflow_misc.py:n=1", "'n=1' is not a builder name"),
        ("userflow_no_such_pkg.flows:fan", "no module named 'userflow_no_such_pkg'"),
    ],
)
def test_bad_user_spec_is_one_line_exit_2(spec, expected, tmp_path, capsys):
    """Each broken spec exits 2 with one stderr line naming the file or module and attribute."""
    for name, text in BROKEN.items():
        write(tmp_path, name, text)
    spec = spec.format(tmp=tmp_path)
    assert main(["plan", spec, "--planner", "uniform"]) == 2
    line = one_error_line(capsys)
    assert expected.format(tmp=tmp_path) in line, line


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("n=abc", "parameter n='abc' is not a valid int"),
        ("bogus=1", "fan() in {flow} has no parameter 'bogus'; it takes n, offset"),
        ("n=1,n=2", "parameter 'n' given twice"),
    ],
)
def test_bad_parameters_are_named(params, expected, flow, capsys):
    """A bad value, an unknown keyword or a repeated one exits 2 naming it."""
    assert main(["plan", f"{flow}:fan:{params}", "--planner", "uniform"]) == 2
    assert expected.format(flow=flow) in one_error_line(capsys)


def test_parameters_to_a_workflow_object_are_refused(flow, capsys):
    """A module-level workflow takes no parameters."""
    assert main(["plan", f"{flow}:WORKFLOW:n=2", "--planner", "uniform"]) == 2
    assert "is a workflow object, not a builder" in one_error_line(capsys)


def test_config_names_the_key_of_a_bad_user_workflow(flow, tmp_path, capsys):
    """In a TOML config the one line names the config key and the missing attribute."""
    config = write(tmp_path, "bad.toml", f'workflows = ["{flow.name}:nope"]\n')
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert "key 'workflows'" in line and "no attribute 'nope'" in line


def test_a_stem_taken_by_another_module_is_refused(tmp_path, capsys):
    """A file whose stem names an existing module (here json) would shadow it: refused."""
    path = write(tmp_path, "json.py", FLOW)
    assert main(["plan", f"{path}:fan", "--planner", "uniform"]) == 2
    assert "would be module 'json'" in one_error_line(capsys)


def test_a_task_failing_while_measuring_logs_no_traceback(tmp_path, caplog):
    """The failing task is reported in the one error line, not as a logged worker traceback."""
    path = write(tmp_path, "userflow_quiet.py", BROKEN["userflow_misc.py"])
    with pytest.raises(UsageError, match="task 'boom_task-0' raised ZeroDivisionError"):
        load_workflow(f"{path}:divides")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_execute_on_lambda_local_imports_the_file_by_its_stem(
    flow, tmp_path, redis_url, monkeypatch
):
    """Lambda workers started with the file's folder on PYTHONPATH unpickle its task functions
    as module ``userflow_checked`` and run the workflow, which check_fan then checks."""
    monkeypatch.setenv("FAASDAG_REDIS_URL", redis_url)
    with lambda_local(str(flow.parent)) as endpoint:
        out = tmp_path / "lambda"
        code = main([
            "execute", f"{flow}:fan:n=2", "--backend", "lambda", "--endpoint-url", endpoint,
            "--configs", "1024", "--out", str(out), "--no-plots",
        ])  # fmt: skip
        assert code == 0
        assert TraceSet.read(out).runs["backend"].tolist() == ["lambda"]


def test_editing_the_workflow_code_makes_new_cells(tmp_path):
    """A cell's id covers the user file's content: edited code is not mistaken for finished
    cells of the old code, while an unchanged file keeps its ids."""
    from experiments.config import parse_config

    flow = tmp_path / "edited_flow.py"
    flow.write_text("from dag.lang import task\n\n@task\ndef one():\n    return 1\n\nwf = one()\n")
    spec = f"{flow}:wf"

    def ids():
        experiment = parse_config({"workflows": [spec], "planners": ["wukong"]}).with_inputs()
        return [cell.cell_id for cell in experiment.cells()]

    first = ids()
    assert ids() == first
    flow.write_text(flow.read_text() + "# edited\n")
    assert ids() != first
