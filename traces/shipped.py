"""Trace sets shipped with faasdag: real runs of the example workflows, recorded by faasdag.

Each folder under ``traces/data`` is a `TraceSet` (Parquet, schema-checked on read) of one example
workflow run for real on the local Lambda emulator (warm pools, 2-core machine) under several
planners and memory sizes. ``python -m experiments.fidelity record`` regenerates them.

    >>> from traces.shipped import list_shipped, load_shipped
    >>> traces = load_shipped("gemm")
    >>> profiles = make_profiles(dag, "replay", traces=traces)
"""

from __future__ import annotations

from pathlib import Path

from traces.io import TraceSet

DATA = Path(__file__).resolve().parent / "data"


def list_shipped() -> list[str]:
    """Names of the shipped trace sets (folders under ``traces/data``), sorted."""
    if not DATA.is_dir():
        return []
    return sorted(p.name for p in DATA.iterdir() if (p / "runs.parquet").is_file())


def shipped_path(name: str) -> Path:
    """Folder of shipped trace set `name` (usable as ``traces = "..."`` in a config).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the shipped ones.
    """
    known = list_shipped()
    if name not in known:
        raise ValueError(f"no shipped trace set {name!r}; shipped: {', '.join(known) or 'none'}")
    return DATA / name


def load_shipped(name: str | None = None) -> TraceSet:
    """The shipped trace set `name`, or all of them concatenated when `name` is None.

    Raises
    ------
    ValueError
        For an unknown name.
    TraceSchemaError
        If a file breaks the schema.
    """
    names = list_shipped() if name is None else [name]
    return TraceSet.concat([TraceSet.read(shipped_path(n)) for n in names])
