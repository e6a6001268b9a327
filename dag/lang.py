"""The `@task` workflow language: lazy calls of Python functions that build a DAG.

Calling a function decorated with `task` does not run it: it returns a `TaskRef`, a promise of
the result. Arguments may hold other refs, nested to any depth in lists, tuples (namedtuples
too) and dicts, beside plain values. `build` walks the refs reachable from the outputs and
returns a `Workflow`: the `DAG`, one `TaskSpec` per task (the function and an argument template
where each ref is a `Placeholder` naming the upstream task id) and the shape of the outputs.

Rules:

- A ref is one task however often it is used; two calls with equal arguments are two tasks.
- A task's dependencies are the distinct refs in its arguments, in order of first appearance.
- Containers in arguments are copied (not their contents) at call time, so mutating a list
  after the call changes neither the task nor the DAG.
- ``None`` is a valid task result; a result is missing only when its key is absent.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dag.graph import DAG, Task, TaskHints

__all__ = ["Placeholder", "TaskFunction", "TaskRef", "TaskSpec", "Workflow", "build", "task"]


@dataclass(frozen=True, slots=True)
class Placeholder:
    """Stands, in a `TaskSpec` argument template, for the result of task `task_id`."""

    task_id: str


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _rebuild(value: Any, leaf: Callable[[Any], Any], where: str) -> Any:
    """Copy the list/tuple/dict skeleton of `value`, mapping every other value through `leaf`.

    Refs inside any other container (a set, a list subclass) raise TypeError naming `where`,
    because they could not be found again when the task runs.
    """
    kind = type(value)
    if kind is list:
        return [_rebuild(item, leaf, where) for item in value]
    if kind is tuple:
        return tuple(_rebuild(item, leaf, where) for item in value)
    if _is_namedtuple(value):
        return kind(*(_rebuild(item, leaf, where) for item in value))
    if kind is dict:
        out = {}
        for key, item in value.items():
            if isinstance(key, TaskRef):
                raise TypeError(f"{where}: a task reference cannot be a dict key ({key!r})")
            out[key] = _rebuild(item, leaf, where)
        return out
    if isinstance(value, list | tuple | dict | set | frozenset) and _holds_ref(value):
        raise TypeError(
            f"{where}: task references may only be nested in list, tuple, namedtuple and dict, "
            f"found one inside a {kind.__name__}"
        )
    return leaf(value)


def _holds_ref(value: Any) -> bool:
    if isinstance(value, TaskRef):
        return True
    if isinstance(value, dict):
        return any(_holds_ref(k) or _holds_ref(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_ref(item) for item in value)
    return False


def _substitute(value: Any, results: Mapping[str, Any]) -> Any:
    """Replace each `Placeholder` in a template by its task's result (containers are rebuilt)."""
    kind = type(value)
    if kind is Placeholder:
        return results[value.task_id]
    if kind is list:
        return [_substitute(item, results) for item in value]
    if kind is tuple:
        return tuple(_substitute(item, results) for item in value)
    if _is_namedtuple(value):
        return kind(*(_substitute(item, results) for item in value))
    if kind is dict:
        return {key: _substitute(item, results) for key, item in value.items()}
    return value


class TaskFunction:
    """A Python function made lazy by `@task`: calling it returns a `TaskRef`.

    Attributes
    ----------
    fn : callable
        The original function; call it directly to run it eagerly.
    hints : TaskHints or None
        I/O hints given to the decorator.
    function : str
        ``module.qualname`` of `fn`; the DAG's task function name.
    label : str
        Short name used in task ids (`fn.__name__` unless overridden).
    """

    def __init__(self, fn: Callable[..., Any], hints: TaskHints | None, label: str):
        self.fn = fn
        self.hints = hints
        self.function = f"{fn.__module__}.{fn.__qualname__}"
        self.label = label
        try:
            self._signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have no signature
            self._signature = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> TaskRef:
        where = f"task {self.function}"
        if self._signature is not None:
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as err:
                raise TypeError(f"{where}: {err}") from None
        deps: dict[TaskRef, None] = {}

        def leaf(value: Any) -> Any:
            if isinstance(value, TaskRef):
                deps.setdefault(value)
            elif isinstance(value, TaskFunction):
                raise TypeError(
                    f"{where}: argument is the task function {value.function} itself; "
                    f"call it to pass its result"
                )
            return value

        frozen_args = _rebuild(args, leaf, where)
        frozen_kwargs = _rebuild(kwargs, leaf, where)
        return TaskRef(self, frozen_args, frozen_kwargs, tuple(deps))

    def __repr__(self) -> str:
        return f"<task {self.function}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle by reference: the module attribute *is* this object, not `fn`.
        if "<locals>" in self.__qualname__:
            raise pickle.PicklingError(
                f"task {self.function} is defined inside a function and cannot be pickled; "
                f"define it at module level"
            )
        return _import_task_function, (self.fn.__module__, self.__qualname__)


def _import_task_function(module: str, qualname: str) -> TaskFunction:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, TaskFunction):
        raise pickle.UnpicklingError(f"{module}.{qualname} is not a @task function")
    return target


class TaskRef:
    """A lazy call of a task function: the promise of one task's result.

    Refs compare and hash by identity. `deps` are the distinct refs found in the arguments, in
    order of first appearance.
    """

    __slots__ = ("task", "args", "kwargs", "deps")

    def __init__(
        self,
        task: TaskFunction,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deps: tuple[TaskRef, ...],
    ):
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.deps = deps

    def __repr__(self) -> str:
        return f"<TaskRef {self.task.label} at {id(self):#x}>"

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(
            f"a TaskRef of {self.task.function} is a lazy result and cannot be iterated; "
            f"pass it to another task instead"
        )


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    io: str | None = None,
    io_exponent: float | None = None,
    output_bytes: int | None = None,
    name: str | None = None,
) -> Any:
    """Make a function lazy: calls return `TaskRef`s that `build` turns into a workflow.

    Usable bare (``@task``) or with hints (``@task(io="power", io_exponent=1.5)``).

    Parameters
    ----------
    fn : callable
        The function (given when used bare).
    io, io_exponent, output_bytes : optional
        `TaskHints` fields. `output_bytes` also sets the bytes of the edges out of the task.
    name : str, optional
        Prefix of the task ids; defaults to the function's ``__name__``.

    Returns
    -------
    TaskFunction, or a decorator making one.

    Raises
    ------
    TypeError
        If `fn` is not callable.
    ValueError
        If the hints are invalid; the message names the function.
    """

    def decorate(func: Callable[..., Any]) -> TaskFunction:
        if isinstance(func, TaskFunction):
            raise TypeError(f"@task applied twice to {func.function}")
        if not callable(func):
            raise TypeError(f"@task expects a function, got {func!r}")
        qualname = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
        hints = None
        if io is not None or io_exponent is not None or output_bytes is not None:
            try:
                hints = TaskHints(
                    io=io or "linear", io_exponent=io_exponent, output_bytes=output_bytes
                )
            except ValueError as err:
                raise ValueError(f"@task on {qualname}: {err}") from None
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"@task on {qualname}: name {name!r} must be a non-empty string")
        label = name if name is not None else getattr(func, "__name__", "task")
        label = label.strip("<>") or "task"
        return TaskFunction(func, hints, label)

    if fn is None:
        return decorate
    return decorate(fn)


@dataclass(frozen=True, slots=True, eq=False)
class TaskSpec:
    """How to run one task: its function and an argument template with `Placeholder`s.

    Attributes
    ----------
    task_id : str
    task : TaskFunction
    args : tuple
        Positional argument template.
    kwargs : mapping
        Keyword argument template.
    deps : tuple of str
        Upstream task ids, in order of first appearance in the arguments.
    """

    task_id: str
    task: TaskFunction
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    deps: tuple[str, ...]

    @property
    def fn(self) -> Callable[..., Any]:
        """The original (eager) function."""
        return self.task.fn

    def call(self, results: Mapping[str, Any]) -> Any:
        """Run the function with each placeholder replaced by ``results[task_id]``.

        Raises
        ------
        KeyError
            If `results` lacks an upstream task (``None`` is a result, not a missing one).
        """
        missing = [dep for dep in self.deps if dep not in results]
        if missing:
            raise KeyError(f"task {self.task_id!r} needs results of {missing}, which are missing")
        args = _substitute(self.args, results)
        kwargs = {key: _substitute(value, results) for key, value in self.kwargs.items()}
        return self.task.fn(*args, **kwargs)


@dataclass(frozen=True, eq=False)
class Workflow:
    """A built workflow: the DAG, a `TaskSpec` per task and the shape of the outputs.

    Attributes
    ----------
    dag : DAG
    specs : mapping of task id to TaskSpec
    outputs : object
        The structure given to `build`, with each ref replaced by its task id (a str).
    """

    dag: DAG
    specs: Mapping[str, TaskSpec]
    outputs: Any
    ref_ids: Mapping[TaskRef, str] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.dag.name

    def task_id(self, ref: TaskRef) -> str:
        """The id `build` gave to `ref`.

        Raises
        ------
        KeyError
            If `ref` is not part of this workflow.
        """
        try:
            return self.ref_ids[ref]
        except (KeyError, TypeError):
            raise KeyError(f"{ref!r} is not a task of workflow {self.name!r}") from None

    def output_ids(self) -> frozenset[str]:
        """Ids of the tasks whose results the outputs structure holds (intermediate ones too)."""
        found: set[str] = set()

        def walk(value: Any) -> None:
            if type(value) is str:
                found.add(value)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            else:
                for item in value:
                    walk(item)

        walk(self.outputs)
        return frozenset(found)

    def run_local(self) -> dict[str, Any]:
        """Run every task in this process, in topological order; returns {task id: result}."""
        results: dict[str, Any] = {}
        for task_id in self.dag.topological_order():
            results[task_id] = self.specs[task_id].call(results)
        return results

    def result(self, results: Mapping[str, Any]) -> Any:
        """The outputs structure given to `build`, filled with task results.

        Raises
        ------
        KeyError
            If an output task has no result.
        """

        def fill(value: Any) -> Any:
            kind = type(value)
            if kind is str:
                if value not in results:
                    raise KeyError(f"results lack output task {value!r}")
                return results[value]
            if kind is list:
                return [fill(item) for item in value]
            if kind is tuple:
                return tuple(fill(item) for item in value)
            if _is_namedtuple(value):
                return kind(*(fill(item) for item in value))
            return {key: fill(item) for key, item in value.items()}

        return fill(self.outputs)

    def with_output_bytes(self, output_bytes: Mapping[str, int]) -> Workflow:
        """The same workflow with edge (u, v) sized ``output_bytes[u]`` for each listed u.

        Edges out of unlisted tasks keep their bytes.

        Raises
        ------
        KeyError
            For an unknown task id.
        DAGError
            For a negative or non-integer size.
        """
        for task_id in output_bytes:
            if task_id not in self.dag:
                raise KeyError(f"output_bytes names unknown task {task_id!r}")
        sizes = dict(self.dag.edge_bytes_map)
        for producer, consumer in self.dag.edges:
            if producer in output_bytes:
                sizes[(producer, consumer)] = output_bytes[producer]
        dag = DAG(self.dag.tasks.values(), sizes, name=self.dag.name)
        return Workflow(dag, self.specs, self.outputs, self.ref_ids)


def _output_refs(refs: Any, found: list[TaskRef]) -> Any:
    """Check the outputs structure and list its refs; leaves must be refs."""

    def leaf(value: Any) -> Any:
        if not isinstance(value, TaskRef):
            raise TypeError(
                f"build() outputs must be task references (calls of @task functions), got {value!r}"
            )
        found.append(value)
        return value

    return _rebuild(refs, leaf, "build() outputs")


def _discover(roots: list[TaskRef]) -> list[TaskRef]:
    """Refs reachable from `roots`, dependencies first (iterative post-order)."""
    order: list[TaskRef] = []
    seen: set[TaskRef] = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack: list[tuple[TaskRef, Iterator[TaskRef]]] = [(root, iter(root.deps))]
        while stack:
            ref, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                order.append(ref)
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(child.deps)))
    return order


def build(refs: Any, name: str = "") -> Workflow:
    """Build the workflow that computes `refs`.

    Parameters
    ----------
    refs : TaskRef, or list / tuple / dict of them (nested allowed)
        The outputs; several sinks are allowed.
    name : str
        The workflow's (and DAG's) name.

    Returns
    -------
    Workflow
        Task ids are ``<label>-<n>``, numbered per label in discovery order (dependencies
        first, outputs in the order given).

    Raises
    ------
    TypeError
        If an output leaf is not a TaskRef.
    ValueError
        If no refs are given.
    """
    roots: list[TaskRef] = []
    shape = _output_refs(refs, roots)
    if not roots:
        raise ValueError(f"build({name!r}): no task references given; pass the workflow's outputs")
    order = _discover(roots)
    ids: dict[TaskRef, str] = {}
    counters: dict[str, int] = {}
    for ref in order:
        label = ref.task.label
        number = counters.get(label, 0)
        counters[label] = number + 1
        ids[ref] = f"{label}-{number}"

    def placeholder(value: Any) -> Any:
        return Placeholder(ids[value]) if isinstance(value, TaskRef) else value

    tasks: list[Task] = []
    specs: dict[str, TaskSpec] = {}
    sizes: dict[tuple[str, str], int] = {}
    for ref in order:
        task_id = ids[ref]
        deps = tuple(ids[dep] for dep in ref.deps)
        where = f"task {ref.task.function}"
        args = _rebuild(ref.args, placeholder, where)
        kwargs = _rebuild(ref.kwargs, placeholder, where)
        specs[task_id] = TaskSpec(task_id, ref.task, args, kwargs, deps)
        tasks.append(Task(task_id, ref.task.function, deps, ref.task.hints))
        for dep in ref.deps:
            hints = dep.task.hints
            if hints is not None and hints.output_bytes is not None:
                sizes[(ids[dep], task_id)] = hints.output_bytes
    outputs = _rebuild(shape, lambda ref: ids[ref], "build() outputs")
    return Workflow(DAG(tasks, sizes, name=name), specs, outputs, ids)
