"""Workflows from the user's own code: a builder in a Python file or module, named by a spec.

A user workflow spec names a file or an importable module, an attribute of it, and optional
parameters, like an example's ``name:key=value,...``:

- ``path/to/flow.py:ATTR`` or ``path/to/flow.py:ATTR:key=value,...`` (a file, by path);
- ``package.module:ATTR`` or ``package.module:ATTR:key=value,...`` (a module on ``sys.path``).

Rules a user can rely on:

1. ``ATTR`` is a builder, a function returning the workflow: the outputs of ``@task`` calls
   (one `TaskRef`, or refs nested in lists, tuples and dicts) or a built `dag.lang.Workflow`.
   It may also be a module-level workflow object itself (refs or a `Workflow`), which takes no
   parameters.
2. Parameters are the builder's keyword arguments. A value is read as the type of the
   parameter's default (``int``, ``float``, ``bool``: true/false/yes/no/on/off/1/0, ``str``),
   else as its annotation when that is one of those, else as an int, a float, ``true`` /
   ``false``, or the text itself. Values cannot hold commas. An unknown keyword, a missing
   required one or a bad value fails naming it.
3. A file is imported under its stem (``flow.py`` is module ``flow``, a Python name not taken
   by another module), its folder first on ``sys.path`` and this process's ``PYTHONPATH``, so
   task functions pickle by module and name (`dag.lang.TaskFunction`) for ``--backend local``
   and worker processes started from here. Lambda functions import the module
   too: start ``faasdag lambda-local`` with the folder on ``PYTHONPATH``, or deploy the
   workflow (``faasdag deploy SPEC``), which packages the module with the functions.
4. Profiles are measured, not modelled: the workflow runs once in this process with the
   in-process driver (`runtime.inprocess.run_in_process`, every task on one worker of 1769 MB,
   one task at a time), and each task's ``exec_ms`` (its runtime at 1 vCPU) and
   ``output_bytes`` (pickled size) come from that run's trace; an ``@task(output_bytes=...)``
   hint wins over the measured size. A process measures a spec once and keeps it (worker
   processes forked later, as ``faasdag run --jobs``, share it); a separate process, such as
   a Dask worker, measures again, so its times differ by the noise of one run.
5. A check: if the module defines ``check_ATTR(outputs)`` (``outputs`` is the builder's
   structure filled with results, as `Workflow.result` gives), ``faasdag execute`` calls it
   after each real run, and an exception fails the cell. Without one the results are not
   checked, and ``execute`` says so once per workflow (`unchecked_note`).
6. Every bad spec raises `UsageError` with one line naming the file or module, the attribute
   and what was expected: a missing file, a syntax error (with file and line), an import that
   fails inside the module, a missing attribute, one that is not a workflow or a builder
   returning something else, a builder or task that raises (with the line in the file), bad
   parameters.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dag.graph import DAG
from dag.lang import TaskFunction, Workflow, build
from experiments.errors import UsageError

__all__ = [
    "UserWorkflow",
    "is_user_spec",
    "load_user_workflow",
    "relocate",
    "source_digest",
    "unchecked_note",
]

logger = logging.getLogger(__name__)

#: Config of the one worker that measures a user workflow's profiles (one vCPU).
MEASURE_MEMORY_MB = 1769

_NAME = r"[A-Za-z_]\w*"
_FILE_SPEC = re.compile(r"^(?P<file>.+?\.py)(?::(?P<attr>[^:]*))?(?::(?P<params>.*))?$", re.S)
_MODULE_SPEC = re.compile(
    rf"^(?P<module>{_NAME}(?:\.{_NAME})*):(?P<attr>{_NAME})(?::(?P<params>.*))?$", re.S
)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_EXPECTED_VALUE = (
    "@task outputs (TaskRefs, nested in lists, tuples or dicts) or a dag.lang.Workflow"
)
_EXPECTED = f"a builder function returning {_EXPECTED_VALUE}, or such a workflow object"

_loaded: dict[str, UserWorkflow] = {}  # spec -> its workflow, measured once per process


@dataclass(frozen=True, eq=False)
class UserWorkflow:
    """A workflow from the user's code, with profiles measured by running it once.

    Has the interface of an example workflow (`dag.examples.ExampleWorkflow`).

    Attributes
    ----------
    spec : str
        The spec as given (stripped); also the DAG's name.
    source : str
        The file path or the module name the spec names.
    attr : str
        The builder's (or workflow object's) name in the module.
    params : dict
        The parameters given, converted.
    workflow : Workflow
        The built workflow; its DAG's edges carry `output_bytes`.
    dag : DAG
        Same as ``workflow.dag``.
    runtime_ms : dict of task id to float
        Measured exec time at 1 vCPU (one run in this process).
    output_bytes : dict of task id to int
        Measured pickled size of each output, or its ``@task(output_bytes=...)`` hint.
    checker : callable or None
        The module's ``check_<attr>(outputs)``, if it has one.
    """

    spec: str
    source: str
    attr: str
    params: dict[str, Any]
    workflow: Workflow
    dag: DAG
    runtime_ms: dict[str, float]
    output_bytes: dict[str, int]
    checker: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def check_name(self) -> str:
        """Name of the check function the module may define, ``check_<attr>``."""
        return f"check_{self.attr}"

    def check(self, results: Mapping[str, Any]) -> None:
        """Check task results with the module's ``check_<attr>(outputs)``; without one, only
        that every output is there.

        Raises
        ------
        AssertionError
            If an output is missing or the check raises AssertionError; the message names the
            spec and the check.
        Exception
            Whatever else the check raises.
        """
        try:
            outputs = self.workflow.result(results)
        except KeyError as err:
            raise AssertionError(f"{self.spec}: {err.args[0]}") from None
        if self.checker is None:
            logger.info("%s: no %s(); results not checked", self.spec, self.check_name)
            return
        try:
            self.checker(outputs)
        except AssertionError as err:
            text = str(err) or "an assert without a message"
            raise AssertionError(f"{self.spec}: {self.check_name}() failed: {text}") from None

    def summary(self) -> dict[str, Any]:
        """`DAG.summary` with the measured runtimes (critical path in ms)."""
        return self.dag.summary(self.runtime_ms)


def is_user_spec(spec: str) -> bool:
    """Whether `spec` names user code: a ``.py`` file, or ``module:attr`` where ``module`` is
    neither ``layered`` nor an example workflow and ``attr`` is a name (not ``key=value``)."""
    spec = spec.strip()
    if _FILE_SPEC.match(spec):
        return True
    match = _MODULE_SPEC.match(spec)
    return match is not None and match["module"] not in _reserved_names()


def relocate(spec: str, resolve: Callable[[str], str]) -> str:
    """`spec` with the file of a ``.py`` spec replaced by ``resolve(file)`` (other specs as
    they are): how a config resolves a file relative to its own folder."""
    match = _FILE_SPEC.match(spec.strip())
    if match is None:
        return spec
    return resolve(match["file"]) + spec.strip()[len(match["file"]) :]


def source_digest(spec: str) -> str:
    """A digest of the source file a user spec names ("" for other specs, or a module that
    cannot be found): part of a cell's id, so editing the workflow's code makes new cells
    instead of reusing results of the old code. Only that file counts, not what it imports."""
    spec = spec.strip()
    match = _FILE_SPEC.match(spec)
    if match is not None:
        path: Path | None = Path(match["file"]).expanduser()
    else:
        module = _MODULE_SPEC.match(spec)
        if module is None or module["module"] in _reserved_names():
            return ""
        try:
            found = importlib.util.find_spec(module["module"])
        except (ImportError, ValueError):
            found = None
        path = _origin(found.origin) if found is not None else None
    if path is None or not path.is_file():
        return ""
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def unchecked_note(workflow: Any) -> str | None:
    """The line saying a user workflow's results go unchecked (None if it has a check or is
    not a user workflow)."""
    if not isinstance(workflow, UserWorkflow) or workflow.checker is not None:
        return None
    return (
        f"workflow {workflow.spec!r} has no {workflow.check_name}(); its results were not checked"
    )


def load_user_workflow(spec: str) -> UserWorkflow:
    """The workflow a user spec names, built and measured (once per spec in this process).

    Parameters
    ----------
    spec : str
        ``FILE.py:ATTR[:key=value,...]`` or ``package.module:ATTR[:key=value,...]``.

    Returns
    -------
    UserWorkflow

    Raises
    ------
    UsageError
        One line naming the file or module, the attribute and what was expected (see the
        module docstring, rule 6).
    """
    spec = spec.strip()
    if spec in _loaded:
        return _loaded[spec]
    file_match = _FILE_SPEC.match(spec)
    if file_match is not None:
        if not file_match["attr"]:
            raise UsageError(
                f"workflow spec {spec!r} names the Python file {file_match['file']!r} but no "
                f"builder: write {file_match['file']}:BUILDER[:key=value,...]"
            )
        attr, params_text = file_match["attr"].strip(), file_match["params"] or ""
        if not re.fullmatch(_NAME, attr):
            raise UsageError(
                f"workflow spec {spec!r}: {attr!r} is not a builder name; write "
                f"{file_match['file']}:BUILDER[:key=value,...]"
            )
        module, source = _import_file(spec, file_match["file"]), file_match["file"]
    else:
        match = _MODULE_SPEC.match(spec)
        if match is None:
            raise UsageError(f"workflow spec {spec!r} is not FILE.py:BUILDER or module:BUILDER")
        module, source = _import_module(spec, match["module"]), match["module"]
        attr, params_text = match["attr"], match["params"] or ""
    from experiments.workflows import split_params  # it dispatches user specs to this module

    raw = split_params(spec, params_text)
    where = f"workflow spec {spec!r}"
    if not hasattr(module, attr):
        raise UsageError(f"{where}: {source} has no attribute {attr!r}{_candidates(module)}")
    target = getattr(module, attr)
    workflow, params = _built(spec, source, module, attr, target, raw)
    checker = getattr(module, f"check_{attr}", None)
    if checker is not None and not callable(checker):
        raise UsageError(f"{where}: {source}:check_{attr} is {_kind(checker)}, expected a function")
    runtime_ms, output_bytes = _measure(where, module, workflow)
    workflow = workflow.with_output_bytes(output_bytes)
    loaded = UserWorkflow(
        spec=spec,
        source=source,
        attr=attr,
        params=params,
        workflow=workflow,
        dag=workflow.dag,
        runtime_ms=runtime_ms,
        output_bytes=output_bytes,
        checker=checker,
    )
    _loaded[spec] = loaded
    return loaded


# -- importing ------------------------------------------------------------------------------


def _reserved_names() -> set[str]:
    try:
        from dag.examples import EXAMPLES
    except ImportError:
        return {"layered"}
    return {"layered", *EXAMPLES}


def _import_file(spec: str, file: str) -> ModuleType:
    """The module of `file`, imported under its stem with its folder on the paths."""
    path = Path(file).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UsageError(f"workflow spec {spec!r}: file {file!r} {what}")
    path = path.resolve()
    name = path.stem
    if not name.isidentifier():
        raise UsageError(
            f"workflow spec {spec!r}: file {file!r} cannot be imported by name ({name!r} is "
            "not a Python name); rename it, e.g. to my_flow.py"
        )
    existing = sys.modules.get(name)
    if existing is not None:
        if _origin(getattr(existing, "__file__", None)) == path:
            return existing
        raise UsageError(
            f"workflow spec {spec!r}: file {file!r} would be module {name!r}, which is "
            f"already {_module_where(existing)}; rename the file"
        )
    try:  # before its folder joins sys.path: would it hide another module of that name?
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is not None and _origin(found.origin) != path:
        raise UsageError(
            f"workflow spec {spec!r}: file {file!r} would be module {name!r}, which is "
            f"already {found.origin or 'a namespace package'}; rename the file"
        )
    _add_path(str(path.parent))
    loader_spec = importlib.util.spec_from_file_location(name, path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException as error:
        sys.modules.pop(name, None)
        if isinstance(error, KeyboardInterrupt):
            raise
        raise UsageError(f"workflow spec {spec!r}: {_import_failure(error, file, path)}") from None
    return module


def _import_module(spec: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            hint = ""
            if "." not in name:
                hint = f" (nor an example workflow: {', '.join(sorted(_reserved_names()))})"
            raise UsageError(
                f"workflow spec {spec!r}: no module named {error.name!r} on sys.path{hint}"
            ) from None
        raise UsageError(f"workflow spec {spec!r}: {_import_failure(error, name)}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        raise UsageError(f"workflow spec {spec!r}: {_import_failure(error, name)}") from None


def _import_failure(error: BaseException, source: str, file: Path | None = None) -> str:
    if isinstance(error, SyntaxError):
        where = f"{error.filename or source}, line {error.lineno}"
        return f"syntax error in {where}: {error.msg}"
    return f"importing {source} raised {_error_text(error)}{_line_in(error, file)}"


def _origin(file: str | None) -> Path | None:
    try:
        return Path(file).resolve() if file else None
    except OSError:
        return None


def _module_where(module: ModuleType) -> str:
    file = getattr(module, "__file__", None)
    return f"imported from {file}" if file else "a built-in module"


def _add_path(folder: str) -> None:
    """Put `folder` first on sys.path and on PYTHONPATH (for processes started later)."""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([folder, *paths])


# -- building -------------------------------------------------------------------------------


def _built(
    spec: str, source: str, module: ModuleType, attr: str, target: Any, raw: dict[str, str]
) -> tuple[Workflow, dict[str, Any]]:
    """The named workflow, built (a builder called with `raw` converted), named `spec`."""
    where = f"workflow spec {spec!r}"
    if isinstance(target, TaskFunction):
        raise UsageError(
            f"{where}: {source}:{attr} is a @task function (calling it makes one task); "
            f"expected {_EXPECTED}"
        )
    params: dict[str, Any] = {}
    if isinstance(target, Workflow) or not callable(target):
        if raw:
            raise UsageError(
                f"{where}: {source}:{attr} is a workflow object, not a builder; it takes no "
                "parameters "
                f"(got {', '.join(raw)})"
            )
        value = target
    else:
        params = _converted(where, f"{attr}() in {source}", target, raw)
        try:
            value = target(**params)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            raise UsageError(
                f"{where}: {attr}() in {source} raised {_error_text(error)}"
                f"{_line_in(error, _file(module))}"
            ) from None
    if isinstance(value, Workflow):
        dag = DAG(value.dag.tasks.values(), value.dag.edge_bytes_map, name=spec)
        return Workflow(dag, value.specs, value.outputs, value.ref_ids), params
    try:
        return build(value, name=spec), params
    except (TypeError, ValueError):
        if callable(target):
            raise UsageError(
                f"{where}: {attr}() in {source} returned {_kind(value)}, expected {_EXPECTED_VALUE}"
            ) from None
        raise UsageError(
            f"{where}: {source}:{attr} is {_kind(value)}, expected {_EXPECTED}"
        ) from None


def _converted(where: str, call: str, builder: Any, raw: dict[str, str]) -> dict[str, Any]:
    """`raw` converted to the builder's parameter types, checked against its signature."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        signature = None
    if signature is None:
        return {key: _guess(text) for key, text in raw.items()}
    params = signature.parameters
    keywords = {
        name: p for name, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    out: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in keywords and not takes_any:
            takes = ", ".join(keywords) or "no parameters"
            raise UsageError(f"{where}: {call} has no parameter {key!r}; it takes {takes}")
        out[key] = _value(f"{where}: {call}", key, text, keywords.get(key))
    missing = [
        name
        for name, p in params.items()
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in out
    ]
    if missing:
        given = ",".join(f"{name}=VALUE" for name in missing)
        raise UsageError(f"{where}: {call} needs parameter(s) {', '.join(missing)}: add :{given}")
    return out


def _value(where: str, key: str, text: str, parameter: inspect.Parameter | None) -> Any:
    """`text` read as the parameter's type (its default's, else its annotation's), or guessed."""
    kind: Any = None
    if parameter is not None:
        default, annotation = parameter.default, parameter.annotation
        if type(default) in (bool, int, float, str):
            kind = type(default)
        elif annotation in (bool, int, float, str):
            kind = annotation
        elif annotation in ("bool", "int", "float", "str"):
            kind = {"bool": bool, "int": int, "float": float, "str": str}[annotation]
    if kind is None:
        return _guess(text)
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise UsageError(f"{where}: parameter {key}={text!r} is not a bool (true or false)")
    try:
        return kind(text)
    except ValueError:
        raise UsageError(
            f"{where}: parameter {key}={text!r} is not a valid {kind.__name__}"
        ) from None


def _guess(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


# -- measuring ------------------------------------------------------------------------------


def _measure(
    where: str, module: ModuleType, workflow: Workflow
) -> tuple[dict[str, float], dict[str, int]]:
    """(runtime_ms, output_bytes) of each task from one in-process run on one worker."""
    from dag.plan import Placement, Plan
    from dag.resources import ResourceConfig
    from runtime.inprocess import log as driver_log
    from runtime.inprocess import run_in_process

    config = ResourceConfig(MEASURE_MEMORY_MB)
    plan = Plan({t: Placement("measure", config) for t in workflow.dag}, planner="measure")
    failed: list[tuple[str, BaseException]] = []

    def call(task_id: str, inputs: Mapping[str, Any]) -> Any:
        try:
            return workflow.specs[task_id].call(inputs)
        except BaseException as error:
            failed.append((task_id, error))
            raise

    def quiet(record: logging.LogRecord) -> bool:
        return False  # a failing task is reported below in one line, not as a logged traceback

    driver_log.addFilter(quiet)
    try:
        result = run_in_process(workflow.dag, plan, call)
    except KeyboardInterrupt:
        raise
    except Exception as error:
        if failed:
            task_id, cause = failed[0]
            raise UsageError(
                f"{where}: task {task_id!r} raised {_error_text(cause)}"
                f"{_line_in(cause, _file(module))} while measuring its profiles (one run in "
                "this process)"
            ) from None
        raise UsageError(f"{where}: measuring its profiles failed: {_error_text(error)}") from None
    finally:
        driver_log.removeFilter(quiet)
    runtime_ms: dict[str, float] = {}
    output_bytes: dict[str, int] = {}
    for row in result.task_rows:
        runtime_ms[row["task_id"]] = float(row["exec_ms"])
        output_bytes[row["task_id"]] = int(row["output_bytes"])
    order = workflow.dag.topological_order()
    for task_id in order:
        hints = workflow.dag[task_id].hints
        if hints is not None and hints.output_bytes is not None:
            output_bytes[task_id] = int(hints.output_bytes)
    return {t: runtime_ms[t] for t in order}, {t: output_bytes[t] for t in order}


# -- messages -------------------------------------------------------------------------------


def _error_text(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _file(module: ModuleType) -> Path | None:
    return _origin(getattr(module, "__file__", None))


def _line_in(error: BaseException, file: Path | None) -> str:
    """`` (file, line N)`` of the deepest frame of `error` in `file` (in any file when `file`
    is None), or ``""``."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        if file is None or _origin(frame.filename) == file:
            return f" ({frame.filename}, line {frame.lineno})"
    return ""


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _candidates(module: ModuleType) -> str:
    """``; it has NAME, ...`` listing the module's own builders and workflow objects."""
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or name.startswith("check_") or isinstance(value, TaskFunction):
            continue
        own = getattr(value, "__module__", None) == module.__name__
        if isinstance(value, Workflow) or (inspect.isfunction(value) and own):
            names.append(name)
    return f"; it has {', '.join(names)}" if names else "; it defines no builder function"
