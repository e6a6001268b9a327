"""Experiment configs: valid ones expand to their sweep; invalid ones fail before anything runs,
with one line naming the key (exit status 2 from `faasdag run`)."""

import json
import re

import pytest

from experiments.cli import main
from experiments.config import ConfigError, Experiment, load_config, parse_config

SMALL = 'workflows = ["gemm:n=256,blocks=2"]\nplanners = ["uniform", "heft"]\nseeds = 2\n'


def _write(tmp_path, text):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


def test_valid_config_expands_to_the_product(tmp_path):
    """Workflows x planners x overrides x seeds cells, each with a distinct stable id."""
    path = _write(
        tmp_path,
        SMALL + '[platform]\npreset = "aws-lambda"\nkeep_alive_ms = [0, 600000]\n',
    )
    experiment = load_config(path)
    cells = experiment.cells()
    assert len(cells) == 1 * 2 * 2 * 2
    assert len({c.cell_id for c in cells}) == len(cells)
    assert [c.cell_id for c in load_config(path).cells()] == [c.cell_id for c in cells]
    assert {dict(c.overrides)["keep_alive_ms"] for c in cells} == {0, 600000}


def test_cells_change_id_when_the_files_they_read_change(tmp_path):
    """A cell's id covers the content of its trace folder and of its preset TOML: re-recorded
    traces or a re-calibrated preset make new cells (a resumed results folder recomputes them),
    unchanged files keep the ids."""
    from sim.platform import preset_file
    from traces.shipped import load_shipped

    traces = tmp_path / "traces"
    load_shipped("gemm").write(traces)
    preset = tmp_path / "mine.toml"
    preset.write_bytes(preset_file("local").read_bytes())
    path = _write(
        tmp_path,
        'workflows = ["gemm:n=384,blocks=3"]\nplanners = ["heft"]\nprofiles = "replay"\n'
        f'traces = "{traces}"\nplatform = "{preset}"\n',
    )

    def ids():
        return [c.cell_id for c in load_config(path).cells()]

    before = ids()
    assert ids() == before
    kept = load_config(path).to_json()  # as a results folder keeps it (experiment.json)
    recorded = load_shipped("gemm")
    recorded.tasks["exec_ms"] *= 1.5
    recorded.write(traces, overwrite=True)
    after_traces = ids()
    assert after_traces != before
    recalibrated = re.sub(r"^host_cpus = .*$", "host_cpus = 4.0", preset.read_text(), flags=re.M)
    assert recalibrated != preset.read_text()
    preset.write_text(recalibrated)
    assert ids() != after_traces
    # The folder still names the cells it ran (faasdag report reads them back) ...
    assert [c.cell_id for c in Experiment.from_json(kept).cells()] == before
    # ... and a folder from before digests keeps its old ids.
    legacy = json.loads(kept)
    del legacy["inputs"]
    assert "inputs" not in Experiment.from_json(json.dumps(legacy)).cells()[0].key


def test_all_planners_come_from_the_registry():
    """planners = "all" expands to every registered planner, at run time."""
    from planners import PLANNERS

    experiment = parse_config({"workflows": "gemm:n=256,blocks=2", "planners": "all"})
    assert experiment.planners == tuple(PLANNERS)


def test_seeds_count_or_list():
    """seeds = N means 0..N-1; a list is taken as given."""
    assert parse_config({"workflows": "svd", "seeds": 3}).seeds == (0, 1, 2)
    assert parse_config({"workflows": "svd", "seeds": [7, 9]}).seeds == (7, 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SMALL + "planer = 'heft'\n", "unknown key 'planer' (did you mean 'planners'?)"),
        ('workflows = ["svd"]\nplanners = ["heft", "nope"]\n', "key 'planners' entry 'nope'"),
        ('workflows = ["svd"]\nseeds = "five"\n', "key 'seeds' must be"),
        ('workflows = ["svd"]\nprofiles = "magic"\n', "key 'profiles' = 'magic' is not one of"),
        ('workflows = ["missing/wf.json"]\n', "key 'workflows' entry"),
        ('workflows = ["svd"]\ntraces = "no/such/folder"\n', "key 'traces'"),
        ('workflows = ["svd"]\nprofiles = "replay"\n', "needs key 'traces'"),
        ('workflows = ["svd"]\n[platform]\nkeepalive = 1\n', "unknown key 'platform.keepalive'"),
        ('workflows = ["svd"]\n[platform]\npreset = "moon"\n', "key 'platform.preset'"),
        ('workflows = ["svd"]\nconfigs = [1024, true]\n', "key 'configs'"),
        ('workflows = ["svd"]\n[outputs]\nformats = ["gif"]\n', "key 'outputs.formats'"),
        ("workflows = [", "not valid TOML"),
    ],
)
def test_invalid_config_fails_before_running(tmp_path, capsys, text, expected):
    """`faasdag run` exits 2 with one line naming the key, and writes nothing."""
    path = _write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("faasdag: error: ")
    assert expected in captured.err
    assert not out.exists()


def test_unknown_planner_lists_the_known_ones():
    """The error for an unknown planner lists the allowed values."""
    with pytest.raises(ConfigError, match="known: uniform"):
        parse_config({"workflows": "svd", "planners": ["fastest"]})


def test_missing_config_file(tmp_path, capsys):
    """A config path that does not exist is named in one line."""
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml' does not exist" in capsys.readouterr().err


def test_quickstart_config_is_the_advertised_one():
    """The quickstart compares all planners on three examples at aws-lambda, 5 seeds each."""
    from experiments.quickstart import quickstart_experiment
    from planners import PLANNERS

    experiment = quickstart_experiment()
    assert len(experiment.workflows) == 3
    assert experiment.planners == tuple(PLANNERS)
    assert experiment.platforms == ("aws-lambda",)
    assert experiment.seeds == (0, 1, 2, 3, 4)


def test_shipped_traces_by_name():
    """traces = "shipped:NAME" reads a trace set shipped in traces/data; an unknown name fails
    naming the key and the shipped sets."""
    from pathlib import Path

    from traces.shipped import shipped_path

    experiment = load_config(Path(__file__).parents[2] / "experiments/quickstart_recorded.toml")
    assert Path(experiment.traces) == shipped_path("gemm")
    with pytest.raises(ConfigError, match="traces.*gemm"):
        parse_config(
            {
                "workflows": "gemm",
                "profiles": "replay",
                "traces": "shipped:nope",
                "predictor": "learned",
            }
        )


@pytest.mark.parametrize("name", ["../escape", "a/b", "a\\b", "..", ".", "", " ", "tab\there"])
def test_name_must_be_a_plain_folder_name(name):
    """A name with a path separator, '..', control characters or nothing in it is refused
    (results go to results/NAME, never outside results/)."""
    with pytest.raises(ConfigError, match="key 'name' .* must be a plain folder name"):
        parse_config({"name": name, "workflows": "svd"})


def test_replication_count_and_plan_seed_are_bounded():
    """seeds above MAX_SEEDS (or a list that long) and a negative plan_seed are refused."""
    from experiments.config import MAX_SEEDS

    with pytest.raises(ConfigError, match="key 'seeds'"):
        parse_config({"workflows": "svd", "seeds": 10**18})
    with pytest.raises(ConfigError, match="key 'seeds'"):
        parse_config({"workflows": "svd", "seeds": list(range(MAX_SEEDS + 1))})
    with pytest.raises(ConfigError, match="key 'plan_seed' = -1 must be >= 0"):
        parse_config({"workflows": "svd", "plan_seed": -1})


def _wfformat_file(tmp_path, drop):
    """A WfFormat file of a three-task chain with `drop` applied to its document."""
    from dag import DAG, Task
    from dag.wfformat import to_wfformat

    dag = DAG([Task("a", "f"), Task("b", "f", ("a",)), Task("c", "f", ("b",))], {("a", "b"): 5})
    doc = to_wfformat(dag, {"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 5, "b": 7, "c": 9})
    drop(doc)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _drop_execution_entry(doc):
    doc["workflow"]["execution"]["tasks"].pop(1)


def _drop_output_files(doc):
    doc["workflow"]["specification"]["tasks"][1].pop("outputFiles")


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (_drop_execution_entry, "task 'b' has no runtime (no entry in workflow.execution.tasks)"),
        (_drop_output_files, "task 'b' has no output size (no outputFiles)"),
    ],
    ids=["execution-entry", "outputFiles"],
)
def test_model_profiles_need_every_runtime_and_output_size(tmp_path, drop, expected):
    """With profiles 'model', a WfFormat task without an execution entry or outputFiles is
    refused naming the task and the missing entry (never simulated as taking 0)."""
    path = _wfformat_file(tmp_path, drop)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config({"workflows": path})


def test_replay_needs_every_task_recorded(tmp_path):
    """profiles 'replay' with a trace folder that does not record the workflow is refused."""
    with pytest.raises(ConfigError, match="key 'profiles' = 'replay' for workflow 'svd'"):
        parse_config({"workflows": "svd", "profiles": "replay", "traces": "shipped:gemm"})


def test_trace_durations_above_one_day_are_refused(tmp_path):
    """A trace folder recording an exec time above one day is refused naming file and column."""
    from traces.io import TraceSet
    from traces.shipped import shipped_path

    traces = TraceSet.read(shipped_path("gemm"))
    tasks = traces.tasks.copy()
    tasks.loc[0, "exec_ms"] = 1e10
    TraceSet(tasks, traces.workers, traces.runs).write(tmp_path / "traces")
    with pytest.raises(ConfigError, match=r"tasks.parquet: column 'exec_ms', row 0: .*one day"):
        parse_config(
            {"workflows": "svd", "profiles": "predict", "traces": str(tmp_path / "traces")}
        )


def test_damaged_experiment_json_is_refused_naming_the_key():
    """An experiment.json whose values lost their types is refused by from_json (ValueError)."""
    text = parse_config({"workflows": "svd"}).to_json()
    data = json.loads(text)
    data["seeds"] = ["0"]
    with pytest.raises(ValueError, match="'seeds'"):
        Experiment.from_json(json.dumps(data))
    data = json.loads(text)
    data["formats"] = ["gif"]
    with pytest.raises(ValueError, match="'formats'"):
        Experiment.from_json(json.dumps(data))
