"""WfFormat 1.5 (WfCommons workflow instances): read them into a profiled DAG, write DAGs out.

How a WfFormat instance maps onto faasdag:

- A task's function is its ``command.program`` (execution section) when given, else its
  ``category``, else its id up to the last ``_ID`` (``mProject_ID0000001`` -> ``mProject``).
- Dependencies come from ``parents`` and/or ``children``; when a task lists both sides of an
  edge they must agree.
- The bytes on an edge are the total size of the files the child reads (``inputFiles``) that
  the parent writes (``outputFiles``); a task's output bytes are the total size of its
  ``outputFiles``.
- Runtimes come from the execution section (``runtimeInSeconds``), in ms.

The writer models each producer's output as a few files: one per distinct size its consumers
read, nested, so that a consumer reading b bytes reads exactly the parts that add up to b, and an
extra part when the producer writes more than any consumer reads. Reading the file back gives the
same edges, edge bytes, output bytes and runtimes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dag.graph import DAG, DAGError, Task
from dag.limits import MAX_BYTES, MAX_DURATION_MS, bytes_limit_text
from dag.profiled import ProfiledDAG, check_profile

SCHEMA_VERSION = "1.5"
# What WfFormat 1.5 allows in a parent/child id; file ids may also hold '/' and ':'.
_TASK_ID = re.compile(r"[0-9a-zA-Z\-_.#]+")
# The writer has no real run to report; its execution section carries this start time.
_EXECUTED_AT = "1970-01-01T00:00:00Z"


class WfFormatError(ValueError):
    """A WfFormat file is unreadable or malformed, or a DAG cannot be written as one.

    The message is one line: the file, then the problem (naming the task or file at fault).
    """


@dataclass(frozen=True)
class WfInstance(ProfiledDAG):
    """A WfFormat workflow instance as a profiled DAG.

    Parameters
    ----------
    dag, runtime_ms, output_bytes, name
        As in `ProfiledDAG`: runtimes in ms from ``runtimeInSeconds``, output bytes as the
        total size of each task's ``outputFiles``.
    cores : mapping of task id to float
        ``coreCount`` per task, 1 where the execution section does not say.
    memory_bytes : mapping of task id to int
        ``memoryInBytes`` per task, for the tasks that give it.
    """

    cores: Mapping[str, float] = field(default_factory=dict)
    memory_bytes: Mapping[str, int] = field(default_factory=dict)


# -- reading --------------------------------------------------------------------------------


def read_wfformat(source: str | os.PathLike[str] | Mapping[str, Any]) -> WfInstance:
    """Read a WfFormat 1.5 instance.

    Parameters
    ----------
    source : path or mapping
        A JSON file, or the already parsed document.

    Returns
    -------
    WfInstance

    Raises
    ------
    WfFormatError
        If the file is missing or not JSON, a required field is missing or of the wrong type
        (the message names it and the task), a parent, child or file id is unknown, parents
        and children disagree, the dependencies form a cycle (a task naming itself included),
        or a size or runtime is negative, not finite or above the limits of `dag.limits`
        (one day, 2**53 bytes).
    """
    if isinstance(source, Mapping):
        return _Reader("<WfFormat document>").instance(source)
    label = os.fspath(source)
    return _Reader(label).instance(_load_json(Path(label), label))


def _load_json(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WfFormatError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise WfFormatError(f"{label}: is a directory, not a WfFormat file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise WfFormatError(f"{label}: cannot read: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise WfFormatError(
            f"{label}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Reader:
    """Walks one parsed document; every problem becomes a WfFormatError naming `label`."""

    def __init__(self, label: str):
        self.label = label

    def error(self, problem: str) -> WfFormatError:
        return WfFormatError(f"{self.label}: {problem}")

    def need(self, obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str):
        if key not in obj:
            raise self.error(f"{where}: missing required field {key!r}")
        value = obj[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.error(
                f"{where}: field {key!r} is {type(value).__name__}, expected {_kind(kind)}"
            )
        return value

    def id_list(self, obj: Mapping[str, Any], key: str, where: str) -> list[str]:
        value = self.need(obj, key, list, where)
        for item in value:
            if not isinstance(item, str):
                raise self.error(f"{where}: {key} holds {item!r}, expected string ids")
        return list(dict.fromkeys(value))

    def instance(self, doc: Any) -> WfInstance:
        if not isinstance(doc, Mapping):
            raise self.error("top level is not a JSON object")
        name = self.need(doc, "name", str, "instance")
        version = self.need(doc, "schemaVersion", str, "instance")
        if version != SCHEMA_VERSION:
            raise self.error(
                f"schemaVersion {version!r} is not supported (only {SCHEMA_VERSION!r})"
            )
        workflow = self.need(doc, "workflow", Mapping, "instance")
        spec = self.need(workflow, "specification", Mapping, "workflow")
        sizes = self.files(spec)
        spec_tasks = self.need(spec, "tasks", list, "workflow.specification")
        if not spec_tasks:
            raise self.error("workflow.specification.tasks is empty")
        entries = self.spec_tasks(spec_tasks, sizes)
        deps = self.dependencies(entries)
        execution = self.execution(workflow, entries)

        tasks = []
        edge_bytes: dict[tuple[str, str], int] = {}
        output_bytes: dict[str, int] = {}
        for task_id, entry in entries.items():
            function = execution["program"].get(task_id) or entry["category"] or _id_prefix(task_id)
            try:
                tasks.append(Task(task_id, function, tuple(deps[task_id])))
            except DAGError as error:
                raise self.error(str(error)) from None
            inputs = set(entry["inputs"])
            for parent in deps[task_id]:
                shared = inputs.intersection(entries[parent]["outputs"])
                nbytes = sum(sizes[f] for f in shared)
                if nbytes:
                    edge_bytes[(parent, task_id)] = nbytes
            if entry["has_outputs"]:
                output_bytes[task_id] = sum(sizes[f] for f in entry["outputs"])
        try:
            dag = DAG(tasks, edge_bytes, name=name)
        except DAGError as error:
            raise self.error(str(error)) from None
        try:
            return WfInstance(
                dag,
                execution["runtime_ms"],
                output_bytes,
                name,
                cores={t: execution["cores"].get(t, 1.0) for t in entries},
                memory_bytes=execution["memory_bytes"],
            )
        except ValueError as error:  # e.g. a task's outputFiles adding up past the size limit
            raise self.error(str(error)) from None

    def files(self, spec: Mapping[str, Any]) -> dict[str, int]:
        files = spec.get("files", [])
        if not isinstance(files, list):
            raise self.error("workflow.specification: field 'files' is not a list")
        sizes: dict[str, int] = {}
        for index, entry in enumerate(files):
            if not isinstance(entry, Mapping):
                raise self.error(f"file #{index}: not a JSON object")
            file_id = self.need(entry, "id", str, f"file #{index}")
            nbytes = self.need(entry, "sizeInBytes", (int, float), f"file {file_id!r}")
            if not math.isfinite(nbytes) or int(nbytes) != nbytes:
                raise self.error(f"file {file_id!r}: sizeInBytes {nbytes!r} is not a whole number")
            if nbytes < 0:
                raise self.error(f"file {file_id!r}: sizeInBytes {nbytes!r} is negative")
            if nbytes > MAX_BYTES:
                raise self.error(
                    f"file {file_id!r}: sizeInBytes {nbytes!r} is above {bytes_limit_text()}"
                )
            if sizes.setdefault(file_id, int(nbytes)) != nbytes:
                raise self.error(
                    f"file {file_id!r} is listed twice with sizes {sizes[file_id]} and {nbytes}"
                )
        return sizes

    def spec_tasks(self, spec_tasks: list[Any], sizes: Mapping[str, int]) -> dict[str, dict]:
        entries: dict[str, dict] = {}
        for index, raw in enumerate(spec_tasks):
            if not isinstance(raw, Mapping):
                raise self.error(f"task #{index}: not a JSON object")
            task_id = self.need(raw, "id", str, f"task #{index}")
            where = f"task {task_id!r}"
            if not task_id:
                raise self.error(f"task #{index}: empty id")
            if task_id in entries:
                raise self.error(f"duplicate task id {task_id!r}")
            if "parents" not in raw and "children" not in raw:
                raise self.error(f"{where}: missing required field 'parents' (or 'children')")
            entry: dict[str, Any] = {
                "parents": self.id_list(raw, "parents", where) if "parents" in raw else None,
                "children": self.id_list(raw, "children", where) if "children" in raw else None,
                "category": raw.get("category") if isinstance(raw.get("category"), str) else None,
                "has_outputs": "outputFiles" in raw,
            }
            for key, slot in (("inputFiles", "inputs"), ("outputFiles", "outputs")):
                names = self.id_list(raw, key, where) if key in raw else []
                for file_id in names:
                    if file_id not in sizes:
                        raise self.error(f"{where}: {key} names file {file_id!r}, not in files")
                entry[slot] = names
            entries[task_id] = entry
        return entries

    def dependencies(self, entries: Mapping[str, dict]) -> dict[str, list[str]]:
        deps: dict[str, list[str]] = {}
        for task_id, entry in entries.items():
            for key, one in (("parents", "parent"), ("children", "child")):
                for other in entry[key] or ():
                    if other not in entries:
                        raise self.error(f"task {task_id!r}: {one} {other!r} is not a task")
                    if other == task_id:  # a one-task cycle: Task() would refuse it unnamed
                        raise self.error(
                            f"task {task_id!r} lists itself as its own {one} (a cycle)"
                        )
            deps[task_id] = list(entry["parents"] or ())
        for task_id, entry in entries.items():
            for parent in entry["parents"] or ():
                children = entries[parent]["children"]
                if children is not None and task_id not in children:
                    raise self.error(
                        f"task {task_id!r} lists parent {parent!r}, "
                        f"but {parent!r} does not list it as a child"
                    )
            for child in entry["children"] or ():
                parents = entries[child]["parents"]
                if parents is None:
                    deps[child].append(task_id)
                elif task_id not in parents:
                    raise self.error(
                        f"task {task_id!r} lists child {child!r}, "
                        f"but {child!r} does not list it as a parent"
                    )
        return deps

    def execution(self, workflow: Mapping[str, Any], entries: Mapping[str, dict]) -> dict:
        found: dict[str, dict] = {"runtime_ms": {}, "program": {}, "cores": {}, "memory_bytes": {}}
        if "execution" not in workflow:
            return found
        execution = self.need(workflow, "execution", Mapping, "workflow")
        for index, raw in enumerate(self.need(execution, "tasks", list, "workflow.execution")):
            if not isinstance(raw, Mapping):
                raise self.error(f"execution task #{index}: not a JSON object")
            task_id = self.need(raw, "id", str, f"execution task #{index}")
            where = f"execution task {task_id!r}"
            if task_id not in entries:
                raise self.error(f"{where} is not a task of workflow.specification")
            if task_id in found["runtime_ms"]:
                raise self.error(f"{where} is listed twice")
            seconds = self.need(raw, "runtimeInSeconds", (int, float), where)
            if not math.isfinite(seconds) or seconds < 0:
                raise self.error(f"{where}: runtimeInSeconds {seconds!r} must be finite and >= 0")
            if seconds * 1000.0 > MAX_DURATION_MS:
                raise self.error(
                    f"{where}: runtimeInSeconds {seconds!r} is above the limit of "
                    f"{MAX_DURATION_MS / 1000.0:.0f} s (one day; see dag.limits)"
                )
            found["runtime_ms"][task_id] = float(seconds) * 1000.0
            command = raw.get("command")
            if isinstance(command, Mapping) and isinstance(command.get("program"), str):
                found["program"][task_id] = command["program"] or None
            if "coreCount" in raw:
                cores = raw["coreCount"]
                if not _is_number(cores) or not math.isfinite(cores) or cores < 1:
                    raise self.error(f"{where}: coreCount {cores!r} must be a number >= 1")
                found["cores"][task_id] = float(cores)
            if "memoryInBytes" in raw:
                memory = raw["memoryInBytes"]
                if not _is_number(memory) or not math.isfinite(memory) or memory < 0:
                    raise self.error(f"{where}: memoryInBytes {memory!r} must be a number >= 0")
                found["memory_bytes"][task_id] = int(memory)
        return found


def _kind(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", list: "list", int: "number", float: "number", Mapping: "object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _id_prefix(task_id: str) -> str:
    prefix, marker, _ = task_id.rpartition("_ID")
    return prefix if marker and prefix else task_id


# -- writing --------------------------------------------------------------------------------


def to_wfformat(
    dag: DAG | ProfiledDAG,
    runtime_ms: Mapping[str, float] | None = None,
    output_bytes: Mapping[str, int] | None = None,
    *,
    name: str | None = None,
    cores: Mapping[str, float] | None = None,
    memory_bytes: Mapping[str, int] | None = None,
    description: str = "Written by faasdag",
) -> dict[str, Any]:
    """A DAG, with its profiles when known, as a WfFormat 1.5 document (a dict ready for JSON).

    Parameters
    ----------
    dag : DAG or ProfiledDAG
        The workflow. A `ProfiledDAG` (or `WfInstance`) also supplies the profiles and name
        that are not passed explicitly.
    runtime_ms : mapping of task id to float, optional
        Runtimes in ms. Without any, the document has no execution section.
    output_bytes : mapping of task id to int, optional
        Total bytes each task writes; at least the bytes any consumer reads from it. Tasks
        without a value write exactly what their largest consumer reads.
    name : str, optional
        Instance name; default the profiled or DAG name, else ``"faasdag-workflow"``.
    cores, memory_bytes : mapping of task id to number, optional
        ``coreCount`` and ``memoryInBytes`` per task (only for tasks with a runtime).
    description : str
        The instance description.

    Raises
    ------
    WfFormatError
        If a task id has characters WfFormat does not allow (letters, digits, ``- _ . #``),
        a profile is negative, not finite or names an unknown task, a task's output bytes are
        fewer than a consumer reads from it, or cores or memory are given for a task without
        a runtime.
    """
    return _document(dag, runtime_ms, output_bytes, name, cores, memory_bytes, description, "")


def write_wfformat(
    dag: DAG | ProfiledDAG,
    path: str | os.PathLike[str],
    runtime_ms: Mapping[str, float] | None = None,
    output_bytes: Mapping[str, int] | None = None,
    *,
    name: str | None = None,
    cores: Mapping[str, float] | None = None,
    memory_bytes: Mapping[str, int] | None = None,
    description: str = "Written by faasdag",
) -> Path:
    """Write a DAG as a WfFormat 1.5 JSON file, atomically; see `to_wfformat` for parameters.

    The file is written to a temporary file beside `path` and moved into place, so on any
    error nothing is left behind and an existing file at `path` is untouched.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    WfFormatError
        As `to_wfformat`, or if the file cannot be written (e.g. its directory is missing).
    """
    target = Path(path)
    label = os.fspath(path)
    doc = _document(dag, runtime_ms, output_bytes, name, cores, memory_bytes, description, label)
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise WfFormatError(f"{label}: cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise WfFormatError(f"{label}: cannot write: {error.strerror or error}") from None
        raise
    return target


def _document(
    dag: DAG | ProfiledDAG,
    runtime_ms: Mapping[str, float] | None,
    output_bytes: Mapping[str, int] | None,
    name: str | None,
    cores: Mapping[str, float] | None,
    memory_bytes: Mapping[str, int] | None,
    description: str,
    label: str,
) -> dict[str, Any]:
    prefix = f"{label}: " if label else ""

    def error(problem: str) -> WfFormatError:
        return WfFormatError(prefix + problem)

    if isinstance(dag, ProfiledDAG):
        runtime_ms = dag.runtime_ms if runtime_ms is None else runtime_ms
        output_bytes = dag.output_bytes if output_bytes is None else output_bytes
        name = name or dag.name
        if isinstance(dag, WfInstance):
            cores = dag.cores if cores is None else cores
            memory_bytes = dag.memory_bytes if memory_bytes is None else memory_bytes
        dag = dag.dag
    if not isinstance(dag, DAG):
        raise error(f"expected a DAG, got {type(dag).__name__}")
    try:
        runtime_ms = check_profile(dag, runtime_ms or {}, "runtime_ms", integer=False)
        output_bytes = check_profile(dag, output_bytes or {}, "output_bytes", integer=True)
        cores = check_profile(dag, cores or {}, "cores", integer=False)
        memory_bytes = check_profile(dag, memory_bytes or {}, "memory_bytes", integer=True)
    except ValueError as problem:
        raise error(str(problem)) from None
    for task_id in dag:
        if not _TASK_ID.fullmatch(task_id):
            raise error(
                f"task id {task_id!r} has characters WfFormat does not allow "
                "(letters, digits, '-', '_', '.', '#')"
            )
    for what, values in (("cores", cores), ("memory_bytes", memory_bytes)):
        for task_id in values:
            if task_id not in runtime_ms:
                raise error(f"task {task_id!r}: {what} given but no runtime_ms to write it with")
    for task_id, count in cores.items():
        if count < 1:
            raise error(f"task {task_id!r}: cores {count!r} must be >= 1")

    files: list[dict[str, Any]] = []
    outputs: dict[str, list[str]] = {}
    reads: dict[tuple[str, str], list[str]] = {}
    for task_id in dag:
        levels = sorted({dag.edge_bytes(task_id, child) for child in dag.successors(task_id)} - {0})
        top = levels[-1] if levels else 0
        total = output_bytes.get(task_id)
        if total is not None and total < top:
            raise error(
                f"task {task_id!r}: output_bytes {total} is less than the {top} bytes "
                "a consumer reads from it"
            )
        if total is None and not levels:
            continue  # output size unknown: leave outputFiles out
        part_ids = []
        done = 0
        for nbytes in [*levels, total if total is not None and total > top else None]:
            if nbytes is None:
                continue
            part_ids.append(f"{task_id}/out.{len(part_ids)}")
            files.append({"id": part_ids[-1], "sizeInBytes": nbytes - done})
            done = nbytes
        outputs[task_id] = part_ids
        for child in dag.successors(task_id):
            nbytes = dag.edge_bytes(task_id, child)
            if nbytes:
                reads[(task_id, child)] = part_ids[: levels.index(nbytes) + 1]

    spec_tasks = []
    for task_id, task in dag.tasks.items():
        entry: dict[str, Any] = {
            "name": task_id,
            "id": task_id,
            "category": task.function,
            "parents": list(task.deps),
            "children": list(dag.successors(task_id)),
            "inputFiles": [f for parent in task.deps for f in reads.get((parent, task_id), ())],
        }
        if task_id in outputs:
            entry["outputFiles"] = outputs[task_id]
        spec_tasks.append(entry)

    specification: dict[str, Any] = {"tasks": spec_tasks, "files": files}
    workflow: dict[str, Any] = {"specification": specification}
    if runtime_ms:
        exec_tasks = []
        for task_id in dag:
            if task_id not in runtime_ms:
                continue
            entry = {
                "id": task_id,
                "runtimeInSeconds": runtime_ms[task_id] / 1000.0,
                "command": {"program": dag[task_id].function},
            }
            if task_id in cores:
                count = cores[task_id]
                entry["coreCount"] = int(count) if count.is_integer() else count
            if task_id in memory_bytes:
                entry["memoryInBytes"] = memory_bytes[task_id]
            exec_tasks.append(entry)
        # No run happened: the makespan is the runtime critical path, a lower bound.
        makespan_ms = dag.critical_path(runtime_ms)[0]
        workflow["execution"] = {
            "makespanInSeconds": makespan_ms / 1000.0,
            "executedAt": _EXECUTED_AT,
            "tasks": exec_tasks,
        }
    return {
        "name": name or dag.name or "faasdag-workflow",
        "description": description,
        "schemaVersion": SCHEMA_VERSION,
        "workflow": workflow,
    }
