"""The workflow DAG: tasks, their dependencies and per-edge data sizes.

A `DAG` is immutable once built and validated on construction (unique ids, known dependencies,
no cycle). Everything structural the other layers ask about (topological order, levels,
critical path, the structure hash) is answered here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx

from dag.limits import MAX_BYTES, bytes_limit_text

IO_RELATIONS = ("linear", "power", "constant")

Weight = Mapping[str, float] | Callable[[str], float] | float
EdgeWeight = Mapping[tuple[str, str], float] | Callable[[str, str], float] | float


class DAGError(ValueError):
    """A DAG is malformed: a duplicate id, an unknown dependency, or a cycle."""


class CycleError(DAGError):
    """The dependencies form a cycle; `cycle` lists the tasks of one, in order."""

    def __init__(self, cycle: list[str]):
        self.cycle = list(cycle)
        shown = " -> ".join([*self.cycle, self.cycle[0]])
        super().__init__(f"DAG has a cycle: {shown}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskHints:
    """What a workflow author knows about a function's I/O, for predictors.

    Parameters
    ----------
    io : str
        How output size and exec time grow with input bytes: ``"linear"``, ``"power"``
        (with `io_exponent`) or ``"constant"``.
    io_exponent : float, optional
        Exponent of the power law; 1.0 for linear, 0.0 for constant.
    output_bytes : int, optional
        Expected output size in bytes, when known up front.
    """

    io: str = "linear"
    io_exponent: float | None = None
    output_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.io not in IO_RELATIONS:
            raise ValueError(f"TaskHints io={self.io!r}; expected one of {IO_RELATIONS}")
        if self.io_exponent is None:
            exponent = {"linear": 1.0, "constant": 0.0}.get(self.io)
            if exponent is None:
                raise ValueError("TaskHints io='power' needs io_exponent")
            object.__setattr__(self, "io_exponent", exponent)
        if not math.isfinite(self.io_exponent):
            raise ValueError(f"TaskHints io_exponent={self.io_exponent!r} is not finite")
        if self.output_bytes is not None and self.output_bytes < 0:
            raise ValueError(f"TaskHints output_bytes={self.output_bytes!r} is negative")


@dataclass(frozen=True, slots=True)
class Task:
    """One node of a workflow: an id, the function it runs, and the tasks it reads from.

    Parameters
    ----------
    id : str
        Unique within its DAG.
    function : str
        Name of the code the task runs; tasks of one function share predictors and code.
    deps : tuple of str
        Ids of the tasks whose outputs this task reads, in argument order, without repeats.
    hints : TaskHints, optional
        I/O hints from the `@task` decorator.
    """

    id: str
    function: str
    deps: tuple[str, ...] = ()
    hints: TaskHints | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise DAGError(f"task id {self.id!r} must be a non-empty string")
        if not isinstance(self.function, str) or not self.function:
            raise DAGError(
                f"task {self.id!r}: function {self.function!r} must be a non-empty string"
            )
        deps = tuple(self.deps)
        if len(set(deps)) != len(deps):
            raise DAGError(f"task {self.id!r} lists a dependency twice: {deps}")
        if self.id in deps:
            raise CycleError([self.id])
        object.__setattr__(self, "deps", deps)


def _weight_getter(weight: Weight | None, default: float) -> Callable[[str], float]:
    if weight is None:
        return lambda _task_id: default
    if callable(weight):
        return weight
    if isinstance(weight, Mapping):
        return lambda task_id: weight.get(task_id, default)
    value = float(weight)
    return lambda _task_id: value


def _edge_weight_getter(weight: EdgeWeight | None) -> Callable[[str, str], float]:
    if weight is None:
        return lambda _u, _v: 0.0
    if callable(weight):
        return weight
    if isinstance(weight, Mapping):
        return lambda u, v: weight.get((u, v), 0.0)
    value = float(weight)
    return lambda _u, _v: value


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


class DAG:
    """An immutable, validated workflow DAG.

    Parameters
    ----------
    tasks : iterable of Task
        The tasks; their ``deps`` define the edges (dependency -> task).
    edge_bytes : mapping of (producer, consumer) to int, optional
        Bytes the consumer reads from the producer. Missing edges read 0 bytes.
    name : str
        The workflow's name, for reports.

    Raises
    ------
    DAGError
        On a duplicate task id, a dependency on an unknown task, edge bytes for an edge that does
        not exist, or a size that is negative or above `dag.limits.MAX_BYTES`.
    CycleError
        If the dependencies form a cycle; the message lists the tasks of one cycle.
    """

    __slots__ = (
        "name",
        "_tasks",
        "_succ",
        "_order",
        "_edge_bytes",
        "_levels",
        "_hash",
    )

    def __init__(
        self,
        tasks: Iterable[Task],
        edge_bytes: Mapping[tuple[str, str], int] | None = None,
        *,
        name: str = "",
    ):
        self.name = name
        by_id: dict[str, Task] = {}
        for task in tasks:
            if not isinstance(task, Task):
                raise DAGError(f"DAG expects Task objects, got {task!r}")
            if task.id in by_id:
                raise DAGError(f"duplicate task id {task.id!r}")
            by_id[task.id] = task
        succ: dict[str, list[str]] = {task_id: [] for task_id in by_id}
        for task in by_id.values():
            for dep in task.deps:
                if dep not in by_id:
                    raise DAGError(f"task {task.id!r} depends on unknown task {dep!r}")
                succ[dep].append(task.id)
        self._tasks = MappingProxyType(by_id)
        self._succ = {task_id: tuple(children) for task_id, children in succ.items()}
        self._order = self._kahn_order()
        sizes: dict[tuple[str, str], int] = {}
        for (producer, consumer), nbytes in (edge_bytes or {}).items():
            if (
                producer not in by_id
                or consumer not in by_id
                or producer not in by_id[consumer].deps
            ):
                raise DAGError(
                    f"edge_bytes names edge {producer!r} -> {consumer!r}, not in the DAG"
                )
            if isinstance(nbytes, float) and not math.isfinite(nbytes):
                raise DAGError(f"edge {producer!r} -> {consumer!r}: bytes {nbytes!r} is not finite")
            if int(nbytes) != nbytes or nbytes < 0:
                raise DAGError(
                    f"edge {producer!r} -> {consumer!r}: bytes {nbytes!r} must be an integer >= 0"
                )
            if nbytes > MAX_BYTES:
                raise DAGError(
                    f"edge {producer!r} -> {consumer!r}: bytes {nbytes!r} is above "
                    f"{bytes_limit_text()}"
                )
            if nbytes:
                sizes[(producer, consumer)] = int(nbytes)
        self._edge_bytes = MappingProxyType(sizes)
        self._levels: dict[str, int] | None = None
        self._hash: str | None = None

    def __reduce__(self):
        # Read-only mapping views do not pickle; rebuilding re-validates, which is cheap.
        return (_rebuild_dag, (list(self._tasks.values()), dict(self._edge_bytes), self.name))

    # -- construction helpers -------------------------------------------------------------

    def _kahn_order(self) -> tuple[str, ...]:
        indegree = {task_id: len(task.deps) for task_id, task in self._tasks.items()}
        ready = [task_id for task_id, n in indegree.items() if n == 0]
        order: list[str] = []
        while ready:
            next_ready: list[str] = []
            for task_id in ready:
                order.append(task_id)
                for child in self._succ[task_id]:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        next_ready.append(child)
            ready = next_ready
        if len(order) != len(self._tasks):
            raise CycleError(self._find_cycle({t for t, n in indegree.items() if n > 0}))
        return tuple(order)

    def _find_cycle(self, stuck: set[str]) -> list[str]:
        # Every stuck task has a stuck dependency, so walking deps must revisit a task.
        start = min(stuck)
        seen: dict[str, int] = {}
        path: list[str] = []
        current = start
        while current not in seen:
            seen[current] = len(path)
            path.append(current)
            current = next(dep for dep in self._tasks[current].deps if dep in stuck)
        cycle = path[seen[current] :]
        cycle.reverse()  # deps point backwards; report in execution direction
        return cycle

    # -- mapping-like access --------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, Task]:
        """Read-only mapping of task id to Task, in insertion order."""
        return self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __getitem__(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise KeyError(f"unknown task id {task_id!r}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DAG):
            return NotImplemented
        return dict(self._tasks) == dict(other._tasks) and dict(self._edge_bytes) == dict(
            other._edge_bytes
        )

    def __hash__(self) -> int:
        return hash(self.dag_hash)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<DAG{label}: {len(self)} tasks, {self.n_edges} edges>"

    # -- structure ------------------------------------------------------------------------

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """All edges (producer, consumer), consumers in topological order."""
        return tuple((dep, task_id) for task_id in self._order for dep in self._tasks[task_id].deps)

    @property
    def n_edges(self) -> int:
        return sum(len(task.deps) for task in self._tasks.values())

    def predecessors(self, task_id: str) -> tuple[str, ...]:
        """Tasks whose output `task_id` reads, in argument order."""
        return self[task_id].deps

    def successors(self, task_id: str) -> tuple[str, ...]:
        """Tasks that read `task_id`'s output."""
        self[task_id]
        return self._succ[task_id]

    def topological_order(self) -> tuple[str, ...]:
        """Task ids such that every task comes after all of its dependencies (deterministic)."""
        return self._order

    @property
    def sources(self) -> tuple[str, ...]:
        """Tasks with no dependencies."""
        return tuple(t for t in self._order if not self._tasks[t].deps)

    @property
    def sinks(self) -> tuple[str, ...]:
        """Tasks nobody reads from: the workflow's results."""
        return tuple(t for t in self._order if not self._succ[t])

    def levels(self) -> Mapping[str, int]:
        """Level of each task: 0 for sources, else 1 + the highest level of its dependencies."""
        if self._levels is None:
            levels: dict[str, int] = {}
            for task_id in self._order:
                deps = self._tasks[task_id].deps
                levels[task_id] = 1 + max(levels[d] for d in deps) if deps else 0
            self._levels = levels
        return MappingProxyType(self._levels)

    @property
    def depth(self) -> int:
        """Number of tasks on the longest chain (number of levels); 0 for an empty DAG."""
        return 1 + max(self.levels().values()) if self._tasks else 0

    @property
    def width(self) -> int:
        """Most tasks on one level: the widest parallelism of a level-by-level execution."""
        counts: dict[int, int] = {}
        for level in self.levels().values():
            counts[level] = counts.get(level, 0) + 1
        return max(counts.values(), default=0)

    def edge_bytes(self, producer: str, consumer: str) -> int:
        """Bytes `consumer` reads from `producer` (0 when unknown).

        Raises
        ------
        KeyError
            If there is no such edge.
        """
        if producer not in self[consumer].deps:
            raise KeyError(f"no edge {producer!r} -> {consumer!r}")
        return self._edge_bytes.get((producer, consumer), 0)

    @property
    def edge_bytes_map(self) -> Mapping[tuple[str, str], int]:
        """Known per-edge sizes in bytes (edges absent here read 0 bytes)."""
        return self._edge_bytes

    def critical_path(
        self, task_weight: Weight | None = None, edge_weight: EdgeWeight | None = None
    ) -> tuple[float, tuple[str, ...]]:
        """Longest path by task weights plus edge weights.

        Parameters
        ----------
        task_weight : mapping, callable or number, optional
            Per-task weight (e.g. exec ms); tasks missing from a mapping weigh 0.
            Default: 1 per task, so the length is the depth.
        edge_weight : mapping, callable or number, optional
            Per-edge weight keyed by (producer, consumer) (e.g. transfer ms); default 0.

        Returns
        -------
        (length, path)
            The path length and its task ids from a source to a sink; ties go to the earlier
            task in topological order. ``(0.0, ())`` for an empty DAG.
        """
        weight_of = _weight_getter(task_weight, 1.0 if task_weight is None else 0.0)
        edge_of = _edge_weight_getter(edge_weight)
        finish: dict[str, float] = {}
        best_dep: dict[str, str | None] = {}
        for task_id in self._order:
            start, via = 0.0, None
            for dep in self._tasks[task_id].deps:
                arrival = finish[dep] + float(edge_of(dep, task_id))
                if via is None or arrival > start:
                    start, via = arrival, dep
            finish[task_id] = start + float(weight_of(task_id))
            best_dep[task_id] = via
        if not finish:
            return 0.0, ()
        end = max(self._order, key=lambda t: finish[t])
        path = [end]
        while (via := best_dep[path[-1]]) is not None:
            path.append(via)
        return finish[end], tuple(reversed(path))

    # -- identity ---------------------------------------------------------------------------

    @property
    def dag_hash(self) -> str:
        """Structure hash: same for the same workflow rebuilt or with renamed ids.

        Each task is labelled by its function plus the labels of its ancestors (upward pass)
        and of its descendants (downward pass); the hash is over the sorted labels, so it is
        independent of ids and insertion order and changes when an edge or a function changes.
        Edge sizes and hints are data, not structure, and do not enter it.
        """
        if self._hash is None:
            up: dict[str, str] = {}
            for task_id in self._order:
                task = self._tasks[task_id]
                up[task_id] = _digest(task.function, *sorted(up[d] for d in task.deps))
            down: dict[str, str] = {}
            for task_id in reversed(self._order):
                children = sorted(down[c] for c in self._succ[task_id])
                down[task_id] = _digest(self._tasks[task_id].function, *children)
            both = {t: _digest(up[t], down[t]) for t in self._order}
            # One refinement round so siblings with equal labels but different neighbours differ.
            refined = sorted(
                _digest(
                    both[t],
                    "<",
                    *sorted(both[d] for d in self._tasks[t].deps),
                    ">",
                    *sorted(both[c] for c in self._succ[t]),
                )
                for t in self._order
            )
            self._hash = _digest("faasdag-dag-v1", *refined)
        return self._hash

    # -- conversion -----------------------------------------------------------------------

    def to_networkx(self) -> nx.DiGraph:
        """A DiGraph with node attrs ``function``, ``hints``, and edge attr ``nbytes``."""
        graph = nx.DiGraph(name=self.name)
        for task_id in self._order:
            task = self._tasks[task_id]
            graph.add_node(task_id, function=task.function, hints=task.hints)
        for producer, consumer in self.edges:
            graph.add_edge(producer, consumer, nbytes=self._edge_bytes.get((producer, consumer), 0))
        return graph

    @classmethod
    def from_networkx(cls, graph: nx.DiGraph, *, name: str | None = None) -> DAG:
        """Build a DAG from a DiGraph as written by `to_networkx`.

        Nodes without a ``function`` attribute use their id as function name; argument order of
        deps follows the order of in-edges.
        """
        tasks = []
        sizes: dict[tuple[str, str], int] = {}
        for node, attrs in graph.nodes(data=True):
            deps = tuple(str(p) for p in graph.predecessors(node))
            tasks.append(
                Task(str(node), str(attrs.get("function", node)), deps, attrs.get("hints"))
            )
            for producer in graph.predecessors(node):
                nbytes = graph.edges[producer, node].get("nbytes", 0)
                if nbytes:
                    sizes[(str(producer), str(node))] = nbytes
        return cls(tasks, sizes, name=graph.graph.get("name", "") if name is None else name)

    def relabel(self, mapping: Mapping[str, str] | Callable[[str], str]) -> DAG:
        """The same DAG with task ids renamed (functions, edges and sizes kept)."""
        rename = mapping if callable(mapping) else mapping.__getitem__
        tasks = [
            Task(rename(t.id), t.function, tuple(rename(d) for d in t.deps), t.hints)
            for t in self._tasks.values()
        ]
        sizes = {(rename(u), rename(v)): n for (u, v), n in self._edge_bytes.items()}
        return DAG(tasks, sizes, name=self.name)

    def summary(self, runtime_ms: Weight | None = None) -> dict[str, Any]:
        """Shape figures: tasks, edges, sources, sinks, depth, width, critical_path_ms.

        `critical_path_ms` is the longest path by `runtime_ms` alone (no transfers); it is
        omitted when no runtimes are given.
        """
        summary: dict[str, Any] = {
            "tasks": len(self),
            "edges": self.n_edges,
            "sources": len(self.sources),
            "sinks": len(self.sinks),
            "depth": self.depth,
            "width": self.width,
        }
        if runtime_ms is not None:
            summary["critical_path_ms"] = round(self.critical_path(runtime_ms)[0], 3)
        return summary


def _rebuild_dag(tasks: list[Task], edge_bytes: dict[tuple[str, str], int], name: str) -> DAG:
    return DAG(tasks, edge_bytes, name=name)
