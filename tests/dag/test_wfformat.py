"""WfFormat 1.5 reader and writer: round trips, a real-style instance, errors, schema validity."""

import json
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import dags

from dag import DAG, Task
from dag.profiled import ProfiledDAG
from dag.wfformat import WfFormatError, WfInstance, read_wfformat, to_wfformat, write_wfformat

SCHEMA = Path("/work/shared/data/wfformat/wfcommons-schema.json")
if not SCHEMA.exists():  # CI lays shared/ beside the clone
    SCHEMA = Path(__file__).resolve().parents[3] / "shared/data/wfformat/wfcommons-schema.json"


@st.composite
def profiled_dags(draw, with_outputs: bool = True) -> ProfiledDAG:
    """A random DAG with runtimes for some tasks and output bytes >= what consumers read."""
    dag = draw(dags())
    runtimes = st.floats(0, 1e7, allow_nan=False, allow_infinity=False)
    runtime_ms = {t: draw(runtimes) for t in dag if draw(st.booleans())}
    output_bytes = {}
    if with_outputs:
        for t in dag:
            if draw(st.booleans()):
                reads = [dag.edge_bytes(t, c) for c in dag.successors(t)]
                output_bytes[t] = max(reads, default=0) + draw(st.integers(0, 10**6))
    return ProfiledDAG(dag, runtime_ms, output_bytes, "random")


def assert_same_profiles(read: ProfiledDAG, written: ProfiledDAG) -> None:
    assert read.dag == written.dag
    assert list(read.dag) == list(written.dag)
    assert {t: read.dag[t].deps for t in read.dag} == {t: written.dag[t].deps for t in written.dag}
    assert read.runtime_ms.keys() == written.runtime_ms.keys()
    for task_id, ms in written.runtime_ms.items():
        assert math.isclose(read.runtime_ms[task_id], ms, rel_tol=1e-12, abs_tol=1e-9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiled_dags())
def test_round_trip_preserves_tasks_edges_sizes_runtimes(written):
    """Writing then reading keeps task ids, functions, deps, edge bytes, runtimes, outputs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_wfformat(written, Path(tmp) / "wf.json")
        read = read_wfformat(path)
    assert_same_profiles(read, written)
    assert dict(read.dag.edge_bytes_map) == dict(written.dag.edge_bytes_map)
    for task_id, nbytes in written.output_bytes.items():
        assert read.output_bytes[task_id] == nbytes
    assert read.name == "random"


@settings(max_examples=30, deadline=None)
@given(profiled_dags(with_outputs=False))
def test_round_trip_without_outputs_infers_largest_read(written):
    """Without output bytes, a producer is read back as writing what its largest consumer reads."""
    read = read_wfformat(to_wfformat(written))
    assert_same_profiles(read, written)
    for task_id in written.dag:
        reads = [written.dag.edge_bytes(task_id, c) for c in written.dag.successors(task_id)]
        if any(reads):
            assert read.output_bytes[task_id] == max(reads)
        else:
            assert task_id not in read.output_bytes


def test_round_trip_keeps_cores_and_memory(tmp_path):
    """A WfInstance's cores and memory survive a write and a read."""
    dag = DAG([Task("a", "load"), Task("b", "map", ("a",))], {("a", "b"): 5})
    instance = WfInstance(
        dag, {"a": 1.5, "b": 2.0}, {"a": 9}, "wf", cores={"a": 2.0, "b": 1.0}, memory_bytes={"b": 7}
    )
    read = read_wfformat(write_wfformat(instance, tmp_path / "wf.json"))
    assert dict(read.cores) == {"a": 2.0, "b": 1.0}
    assert dict(read.memory_bytes) == {"b": 7}
    assert dict(read.output_bytes) == {"a": 9}


def real_style_instance() -> dict:
    """A small instance laid out like a WfCommons trace: files, parents, children, execution."""
    files = {
        "raw.dat": 1000,
        "index.db": 50,
        "split.0": 300,
        "split.1": 200,
        "meta.txt": 10,
        "part.0": 40,
        "part.1": 60,
        "final.out": 7,
    }
    tasks = [
        (
            "split_ID0001",
            [],
            ["map_ID0002", "map_ID0003"],
            ["raw.dat"],
            ["split.0", "split.1", "meta.txt"],
        ),
        (
            "map_ID0002",
            ["split_ID0001"],
            ["merge_ID0004"],
            ["split.0", "meta.txt", "index.db"],
            ["part.0"],
        ),
        (
            "map_ID0003",
            ["split_ID0001"],
            ["merge_ID0004"],
            ["split.1", "meta.txt", "index.db"],
            ["part.1"],
        ),
        ("merge_ID0004", ["map_ID0002", "map_ID0003"], [], ["part.0", "part.1"], ["final.out"]),
    ]
    return {
        "name": "toy-trace",
        "description": "made by the test",
        "createdAt": "2024-01-01T00:00:00Z",
        "schemaVersion": "1.5",
        "author": {"name": "test", "email": "test@example.org"},
        "workflow": {
            "specification": {
                "tasks": [
                    {
                        "name": task_id,
                        "id": task_id,
                        "parents": parents,
                        "children": children,
                        "inputFiles": inputs,
                        "outputFiles": outputs,
                    }
                    for task_id, parents, children, inputs, outputs in tasks
                ],
                "files": [{"id": f, "sizeInBytes": n} for f, n in files.items()],
            },
            "execution": {
                "makespanInSeconds": 10.0,
                "executedAt": "2024-01-01T00:00:00Z",
                "tasks": [
                    {
                        "id": "split_ID0001",
                        "runtimeInSeconds": 1.5,
                        "command": {"program": "splitter"},
                    },
                    {
                        "id": "map_ID0002",
                        "runtimeInSeconds": 2.0,
                        "coreCount": 2,
                        "memoryInBytes": 4096,
                    },
                    {"id": "map_ID0003", "runtimeInSeconds": 2.5},
                    {
                        "id": "merge_ID0004",
                        "runtimeInSeconds": 0.25,
                        "command": {"arguments": ["-x"]},
                    },
                ],
                "machines": [{"nodeName": "node-1"}],
            },
        },
    }


def test_real_style_instance_reads(tmp_path):
    """A trace-style file gives the expected tasks, edge bytes, outputs, runtimes and functions."""
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(real_style_instance()))
    wf = read_wfformat(path)
    assert len(wf.dag) == 4 and wf.dag.n_edges == 4 and wf.name == "toy-trace"
    assert dict(wf.dag.edge_bytes_map) == {
        ("split_ID0001", "map_ID0002"): 310,
        ("split_ID0001", "map_ID0003"): 210,
        ("map_ID0002", "merge_ID0004"): 40,
        ("map_ID0003", "merge_ID0004"): 60,
    }
    assert dict(wf.output_bytes) == {
        "split_ID0001": 510,
        "map_ID0002": 40,
        "map_ID0003": 60,
        "merge_ID0004": 7,
    }
    assert dict(wf.runtime_ms) == {
        "split_ID0001": 1500.0,
        "map_ID0002": 2000.0,
        "map_ID0003": 2500.0,
        "merge_ID0004": 250.0,
    }
    functions = {t: wf.dag[t].function for t in wf.dag}
    assert functions == {
        "split_ID0001": "splitter",
        "map_ID0002": "map",
        "map_ID0003": "map",
        "merge_ID0004": "merge",
    }
    assert wf.cores["map_ID0002"] == 2 and wf.cores["map_ID0003"] == 1
    assert dict(wf.memory_bytes) == {"map_ID0002": 4096}
    assert wf.summary()["critical_path_ms"] == 4250.0


def test_category_names_the_function():
    """Without a command program, a task's category is its function."""
    doc = real_style_instance()
    doc["workflow"]["specification"]["tasks"][3]["category"] = "reduce"
    assert read_wfformat(doc).dag["merge_ID0004"].function == "reduce"


def test_children_alone_give_the_dependencies():
    """A file listing only children reads as the same DAG as one listing both sides."""
    doc = real_style_instance()
    for task in doc["workflow"]["specification"]["tasks"]:
        del task["parents"]
    assert read_wfformat(doc).dag == read_wfformat(real_style_instance()).dag


def _mutate(change):
    doc = real_style_instance()
    change(doc)
    return doc


def _spec_task(doc, index):
    return doc["workflow"]["specification"]["tasks"][index]


BAD_DOCS = {
    "missing-name": (lambda d: d.pop("name"), "missing required field 'name'"),
    "old-version": (lambda d: d.update(schemaVersion="1.4"), "schemaVersion '1.4'"),
    "missing-task-id": (
        lambda d: _spec_task(d, 1).pop("id"),
        "task #1: missing required field 'id'",
    ),
    "missing-parents": (
        lambda d: (_spec_task(d, 2).pop("parents"), _spec_task(d, 2).pop("children")),
        "task 'map_ID0003': missing required field 'parents'",
    ),
    "unknown-parent": (
        lambda d: _spec_task(d, 3)["parents"].append("ghost_ID9"),
        "parent 'ghost_ID9' is not a task",
    ),
    "parents-disagree": (
        lambda d: _spec_task(d, 0)["children"].pop(),
        "does not list it as a child",
    ),
    "cycle": (
        lambda d: (
            _spec_task(d, 0)["parents"].append("merge_ID0004"),
            _spec_task(d, 3)["children"].append("split_ID0001"),
        ),
        "cycle",
    ),
    "negative-size": (
        lambda d: d["workflow"]["specification"]["files"][0].update(sizeInBytes=-1),
        "file 'raw.dat': sizeInBytes -1 is negative",
    ),
    "unknown-file": (
        lambda d: _spec_task(d, 3)["inputFiles"].append("nowhere.dat"),
        "names file 'nowhere.dat'",
    ),
    "negative-runtime": (
        lambda d: d["workflow"]["execution"]["tasks"][2].update(runtimeInSeconds=-2),
        "execution task 'map_ID0003': runtimeInSeconds -2",
    ),
    "missing-runtime": (
        lambda d: d["workflow"]["execution"]["tasks"][2].pop("runtimeInSeconds"),
        "execution task 'map_ID0003': missing required field 'runtimeInSeconds'",
    ),
    "unknown-execution-task": (
        lambda d: d["workflow"]["execution"]["tasks"].append({"id": "x", "runtimeInSeconds": 1}),
        "execution task 'x' is not a task",
    ),
    "tasks-not-list": (
        lambda d: d["workflow"]["specification"].update(tasks={}),
        "field 'tasks' is dict, expected list",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCS))
def test_malformed_instance_raises_one_line_naming_file(tmp_path, case):
    """Each malformed instance raises WfFormatError: one line naming the file and the problem."""
    change, expected = BAD_DOCS[case]
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(_mutate(change)))
    with pytest.raises(WfFormatError) as info:
        read_wfformat(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_file_raises(tmp_path):
    """A path that does not exist raises WfFormatError naming it."""
    with pytest.raises(WfFormatError, match="no such file"):
        read_wfformat(tmp_path / "absent.json")


def test_malformed_json_raises_with_position(tmp_path):
    """Text that is not JSON raises WfFormatError with the line and column."""
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n  "schemaVersion": }')
    with pytest.raises(WfFormatError, match=r"broken.json: malformed JSON at line 2 column"):
        read_wfformat(path)


def _diamond() -> DAG:
    return DAG(
        [
            Task("a", "load"),
            Task("b", "map", ("a",)),
            Task("c", "map", ("a",)),
            Task("d", "reduce", ("b", "c")),
        ],
        {("a", "b"): 100, ("a", "c"): 40, ("c", "d"): 7},
    )


BAD_WRITES = {
    "bad-id": (
        lambda: (DAG([Task("a b", "f")]), {}),
        "task id 'a b' has characters WfFormat does not allow",
    ),
    "output-below-read": (
        lambda: (_diamond(), {"output_bytes": {"a": 99}}),
        "output_bytes 99 is less than the 100 bytes",
    ),
    "negative-output": (lambda: (_diamond(), {"output_bytes": {"d": -1}}), "output_bytes -1"),
    "nan-runtime": (lambda: (_diamond(), {"runtime_ms": {"b": math.nan}}), "runtime_ms nan"),
    "unknown-task": (lambda: (_diamond(), {"runtime_ms": {"zz": 1.0}}), "unknown task 'zz'"),
    "cores-without-runtime": (lambda: (_diamond(), {"cores": {"a": 2}}), "no runtime_ms"),
}


@pytest.mark.parametrize("case", sorted(BAD_WRITES))
def test_bad_write_raises_and_leaves_nothing(tmp_path, case):
    """A DAG that cannot be written raises WfFormatError and leaves no file, not even a temp."""
    make, expected = BAD_WRITES[case]
    dag, kwargs = make()
    with pytest.raises(WfFormatError, match="wf.json: ") as info:
        write_wfformat(dag, tmp_path / "wf.json", **kwargs)
    assert expected in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_file(tmp_path):
    """A failed write leaves an existing file at the path untouched."""
    path = tmp_path / "wf.json"
    path.write_text("old")
    with pytest.raises(WfFormatError):
        write_wfformat(_diamond(), path, output_bytes={"a": 1})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["wf.json"]


def test_write_into_missing_directory_raises(tmp_path):
    """Writing into a directory that does not exist raises WfFormatError naming the path."""
    with pytest.raises(WfFormatError, match="cannot write"):
        write_wfformat(_diamond(), tmp_path / "no" / "wf.json")


def test_consumers_reading_different_sizes_share_nested_parts():
    """A producer read in part by one consumer and whole by another writes nested parts."""
    doc = to_wfformat(_diamond(), output_bytes={"a": 150})
    files = {f["id"]: f["sizeInBytes"] for f in doc["workflow"]["specification"]["files"]}
    assert files == {"a/out.0": 40, "a/out.1": 60, "a/out.2": 50, "c/out.0": 7}
    tasks = {t["id"]: t for t in doc["workflow"]["specification"]["tasks"]}
    assert tasks["b"]["inputFiles"] == ["a/out.0", "a/out.1"]
    assert tasks["c"]["inputFiles"] == ["a/out.0"]
    assert "outputFiles" not in tasks["d"]


@pytest.mark.skipif(not SCHEMA.exists(), reason="WfFormat schema file not available")
def test_writer_output_validates_against_schema():
    """Every document the writer makes validates against the WfFormat 1.5 JSON schema."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    validator.validate(to_wfformat(read_wfformat(real_style_instance())))

    @settings(max_examples=25, deadline=None)
    @given(profiled_dags())
    def check(written):
        validator.validate(to_wfformat(written))

    check()


@pytest.mark.parametrize("side", ["parents", "children"])
def test_task_listing_itself_is_a_cycle_naming_it(tmp_path, side):
    """A task naming itself as its own parent (or child) is refused, one line naming the task."""

    def change(doc):
        _spec_task(doc, 1)[side].append(_spec_task(doc, 1)["id"])

    path = tmp_path / "self.json"
    path.write_text(json.dumps(_mutate(change)))
    one = "parent" if side == "parents" else "child"
    with pytest.raises(WfFormatError) as info:
        read_wfformat(path)
    assert str(info.value) == (f"{path}: task 'map_ID0002' lists itself as its own {one} (a cycle)")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["workflow"]["execution"]["tasks"][0].update(runtimeInSeconds=1e7),
            "runtimeInSeconds 10000000.0 is above the limit of 86400 s (one day",
        ),
        (
            lambda d: d["workflow"]["specification"]["files"][0].update(sizeInBytes=2**60),
            f"sizeInBytes {2**60} is above the limit of {2**53} bytes",
        ),
    ],
    ids=["runtime", "size"],
)
def test_values_beyond_the_clock_limits_are_refused(tmp_path, change, expected):
    """A runtime above one day or a file above 2**53 bytes is refused, naming the limit."""
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_mutate(change)))
    with pytest.raises(WfFormatError, match=re.escape(expected)):
        read_wfformat(path)


def test_missing_execution_entry_and_output_files_stay_unknown():
    """A task without an execution entry has no runtime, one without outputFiles no output
    size: neither is read as 0."""

    def change(doc):
        doc["workflow"]["execution"]["tasks"].pop(0)
        _spec_task(doc, 3).pop("outputFiles")

    wf = read_wfformat(_mutate(change))
    assert "split_ID0001" not in wf.runtime_ms and "merge_ID0004" not in wf.output_bytes
    summary = wf.summary()
    assert "critical_path_ms" not in summary
    assert summary["tasks_without_runtime"] == "1 (first 'split_ID0001')"
    assert summary["tasks_without_output_size"] == "1 (first 'merge_ID0004')"
