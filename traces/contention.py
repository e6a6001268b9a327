"""Task times recorded on a shared machine, turned back into the time each task needs alone.

On the local emulator every worker process shares the machine's few cores, so a task's recorded
``exec_ms`` is stretched by the tasks that ran beside it. A simulator that shares those cores
itself (`sim.host.Host`) needs the unstretched amount, or it counts the contention twice.

Model (the simulator's): the host's ``cpus`` are shared fairly by the tasks executing at each
instant, each served at most one CPU. A task that ran during ``[exec_done_ms - exec_ms,
exec_done_ms]`` while ``n(t)`` tasks of its run executed therefore did
``integral of min(1, cpus / n(t)) dt`` CPU-ms of work: its time alone.

That is processor sharing's inverse. A preset with time slices (``host_quantum_ms``) simulates
the host otherwise (`sim.sharing.RoundRobin`); validation's fitted host CPUs
(`experiments.fidelity.fit_host_cpus`) absorb the difference.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def solo_exec_ms(tasks: pd.DataFrame, cpus: float) -> pd.Series:
    """CPU-ms each task row needed alone, given the tasks of its run that executed beside it.

    Parameters
    ----------
    tasks : DataFrame
        Rows of the tasks table (``run_id``, ``exec_ms``, ``exec_done_ms``), any runs.
    cpus : float
        CPUs the run's tasks shared; inf returns ``exec_ms`` unchanged.

    Returns
    -------
    Series
        Aligned with `tasks`' index, ms, each at most the recorded ``exec_ms``.

    Raises
    ------
    ValueError
        If cpus is not a positive number, or a column is missing (named).
    """
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not cpus > 0:
        raise ValueError(f"solo_exec_ms: cpus={cpus!r} must be a number > 0 (inf allowed)")
    missing = [c for c in ("run_id", "exec_ms", "exec_done_ms") if c not in tasks.columns]
    if missing:
        raise ValueError(f"solo_exec_ms: tasks table lacks column {missing[0]!r}")
    exec_ms = tasks["exec_ms"].astype(float)
    if math.isinf(cpus) or tasks.empty:
        return exec_ms.copy()
    out = pd.Series(np.nan, index=tasks.index, dtype=float)
    for _, run in tasks.groupby("run_id", sort=False):
        ends = run["exec_done_ms"].to_numpy(dtype=float)
        starts = ends - run["exec_ms"].to_numpy(dtype=float)
        edges = np.unique(np.concatenate([starts, ends]))
        if edges.size < 2:
            out.loc[run.index] = run["exec_ms"].to_numpy(dtype=float)
            continue
        left, right = edges[:-1], edges[1:]
        # covers[i, k]: task i executes during segment k
        covers = (starts[:, None] <= left[None, :]) & (ends[:, None] >= right[None, :])
        running = covers.sum(axis=0)
        rate = np.minimum(1.0, cpus / np.maximum(running, 1))
        out.loc[run.index] = (covers * (rate * (right - left))[None, :]).sum(axis=1)
    return out
