"""Predictors of task times and sizes fitted on the tasks table, and the octoflows baseline.

A predictor answers, per function: exec time at a resource config (optionally an SLA quantile),
output size from input size, transfer time of a number of bytes, and container startup time.
Each scalar query has a vectorised ``*_many`` twin taking arrays, which planners and the
benchmarks use. Unseen functions never raise: they get a documented fallback and an
`UnseenFunctionWarning`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from dag.graph import DAG, TaskHints
from dag.resources import ResourceConfig
from traces.io import TraceSet

#: Default exec-time scaling with vCPUs: exec_ms ∝ cpus ** DEFAULT_CPU_EXPONENT. It matches the
#: octoflows memory power law (1024 / memory_mb) ** 0.3, since Lambda cpus grow with memory.
DEFAULT_CPU_EXPONENT = -0.3
#: Store bandwidth used when traces hold no transfers: 100 MB/s, in bytes per ms.
DEFAULT_BANDWIDTH_BYTES_PER_MS = 1e5
#: Startup times used when traces hold none, in ms.
DEFAULT_STARTUP_MS: Mapping[str, float] = {"none": 0.0, "warm": 5.0, "cold": 300.0}
#: Effective sample count at which `confidence` reaches 0.5.
CONFIDENCE_HALF_N = 10.0
DIRECTIONS = ("download", "upload")
STARTUP_KINDS = ("none", "warm", "cold")
FIT_COLUMNS = (
    "run_id",
    "function",
    "memory_mb",
    "cpus",
    "input_bytes",
    "exec_ms",
    "output_bytes",
    "download_bytes",
    "download_ms",
    "upload_ms",
    "startup",
    "startup_ms",
)


class UnseenFunctionWarning(UserWarning):
    """A predictor was asked about a function it has no samples of and used its fallback."""


def tasks_frame(data: TraceSet | pd.DataFrame) -> pd.DataFrame:
    """The tasks table of `data` (a TraceSet or a tasks DataFrame), checked for fit columns.

    Raises
    ------
    ValueError
        Naming the first column a predictor needs that the frame lacks.
    """
    frame = data.tasks if isinstance(data, TraceSet) else data
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a TraceSet or a tasks DataFrame, got {type(data).__name__}")
    missing = [c for c in FIT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"tasks frame lacks column {missing[0]!r} needed to fit a predictor")
    return frame


def hints_by_function(hints: Mapping[str, TaskHints] | DAG | None) -> dict[str, TaskHints]:
    """Function name -> TaskHints, from a mapping or from the hinted tasks of a DAG."""
    if hints is None:
        return {}
    if isinstance(hints, DAG):
        return {t.function: t.hints for t in hints.tasks.values() if t.hints is not None}
    return dict(hints)


def run_order(run_ids: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per-row run index (0 = oldest) by first appearance, and the run ids in that order."""
    codes, uniques = pd.factorize(run_ids, sort=False)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _broadcast(*arrays: Any) -> list[np.ndarray]:
    return list(np.broadcast_arrays(*[np.asarray(a) for a in arrays]))


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"transfer direction {direction!r}; expected one of {DIRECTIONS}")


def _check_kind(kind: str) -> None:
    if kind not in STARTUP_KINDS:
        raise ValueError(f"startup kind {kind!r}; expected one of {STARTUP_KINDS}")


def _check_q(q: float | None) -> None:
    if q is not None and not 0.0 < q < 1.0:
        raise ValueError(f"quantile q={q!r} must be in (0, 1)")


def _check_sizes(name: str, values: np.ndarray) -> None:
    bad = np.flatnonzero(~(values >= 0))
    if bad.size:
        raise ValueError(f"{name}[{int(bad[0])}]={values[bad[0]]!r} must be a size >= 0")


def group_positions(codes: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """(code, positions) for each distinct code in `codes`, positions ascending."""
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.diff(sorted_codes)) + 1
    for chunk in np.split(order, bounds):
        if chunk.size:
            yield int(codes[chunk[0]]), chunk


class PredictorBase(BaseEstimator):
    """Scalar queries on top of the vectorised ``*_many`` methods every predictor implements."""

    def exec_ms(
        self, function: str, input_bytes: int, config: ResourceConfig, q: float | None = None
    ) -> float:
        """Exec time in ms of `function` on `input_bytes` at `config`; the q-quantile if given."""
        return float(
            self.exec_ms_many([function], [input_bytes], [config.memory_mb], [config.cpus], q=q)[0]
        )

    def output_bytes(self, function: str, input_bytes: int, q: float | None = None) -> int:
        """Output size in bytes of `function` on `input_bytes`; the q-quantile if given."""
        return int(self.output_bytes_many([function], [input_bytes], q=q)[0])

    def transfer_ms(self, nbytes: int, config: ResourceConfig, direction: str) -> float:
        """Time in ms to move `nbytes` between a worker of `config` and the store."""
        return float(
            self.transfer_ms_many([nbytes], [config.memory_mb], [config.cpus], direction)[0]
        )

    def startup_ms(self, config: ResourceConfig, kind: str) -> float:
        """Container start time in ms of a `kind` ('none', 'warm', 'cold') start at `config`."""
        return float(self.startup_ms_many([config.memory_mb], [config.cpus], kind)[0])

    def confidence(self, function: str) -> float:
        """How much history backs answers about `function`: n / (n + 10), 0 when unseen."""
        n = self.n_samples(function)
        return n / (n + CONFIDENCE_HALF_N)

    def _warn_unseen(self, names: Iterable[str], fallback: str) -> None:
        for name in names:
            warnings.warn(
                f"{type(self).__name__}: no samples of function {name!r}; {fallback}",
                UnseenFunctionWarning,
                stacklevel=3,
            )

    # Subclasses implement: fit, n_samples, exec_ms_many, output_bytes_many, transfer_ms_many,
    # startup_ms_many, cpu_exponent.


class BaselinePredictor(PredictorBase):
    """The octoflows predictor, as a reference: linear exec time, power-law memory scaling.

    Exec time is ``rate * input_bytes * (1024 / memory_mb) ** memory_power`` where ``rate``
    (ms per byte, normalised to 1024 MB) is the mean over the `n_neighbors` samples of the
    function nearest in input size; output size is the mean output/input ratio times the input;
    transfers use the mean download throughput (both directions); startups the mean recorded
    per kind. Quantiles scale the point estimate by the pooled quantile of actual/predicted
    exec ratios seen in training. Unseen functions: output = input and exec = 0, with an
    `UnseenFunctionWarning`.

    Parameters
    ----------
    memory_power : float, default 0.3
        Exponent of the memory scaling law.
    n_neighbors : int, default 5
        Samples averaged for the ms-per-byte rate.
    random_state : int or None
        Unused (the baseline draws nothing); kept for the common predictor signature.
    """

    def __init__(self, *, memory_power: float = 0.3, n_neighbors: int = 5, random_state=None):
        self.memory_power = memory_power
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def fit(self, tasks: TraceSet | pd.DataFrame, hints=None) -> BaselinePredictor:
        """Learn per-function rates and ratios from a tasks table; `hints` is ignored."""
        if not (self.n_neighbors >= 1 and math.isfinite(self.memory_power)):
            raise ValueError("BaselinePredictor needs n_neighbors >= 1 and a finite memory_power")
        df = tasks_frame(tasks)
        codes, names = pd.factorize(df["function"], sort=False)
        x = df["input_bytes"].to_numpy(dtype=float)
        scale = (1024.0 / df["memory_mb"].to_numpy(dtype=float)) ** self.memory_power
        norm = df["exec_ms"].to_numpy(dtype=float) / scale
        out = df["output_bytes"].to_numpy(dtype=float)
        self.functions_ = {str(name): i for i, name in enumerate(names)}
        self.counts_ = np.bincount(codes, minlength=len(names)).astype(float)
        self.rate_tables_: list[tuple[np.ndarray, np.ndarray]] = []
        self.mean_exec_norm_ = np.zeros(len(names))
        self.output_ratio_ = np.zeros(len(names))
        self.mean_output_ = np.zeros(len(names))
        for code, pos in group_positions(codes):
            xs, ns, os_ = x[pos], norm[pos], out[pos]
            self.mean_exec_norm_[code] = ns.mean()
            self.mean_output_[code] = os_.mean()
            nz = xs > 0
            self.output_ratio_[code] = (os_[nz] / xs[nz]).mean() if nz.any() else np.nan
            order = np.argsort(xs[nz], kind="stable")
            rates = (ns[nz] / xs[nz])[order]
            self.rate_tables_.append(
                (np.log(xs[nz][order]), np.concatenate([[0.0], np.cumsum(rates)]))
            )
        dl_b = df["download_bytes"].to_numpy(dtype=float)
        dl_ms = df["download_ms"].to_numpy(dtype=float)
        ok = (dl_b > 0) & (dl_ms > 0)
        self.throughput_bytes_per_ms_ = (
            float((dl_b[ok] / dl_ms[ok]).mean()) if ok.any() else DEFAULT_BANDWIDTH_BYTES_PER_MS
        )
        startup = df.loc[df["startup"] != "none"].groupby("startup", observed=True)["startup_ms"]
        self.startup_means_ = {str(k): float(v) for k, v in startup.mean().items()}
        self.n_rows_fit_ = len(df)
        self.exec_ratios_ = np.array([1.0])
        predicted = self.exec_ms_many(
            df["function"].to_numpy(dtype=object),
            x,
            df["memory_mb"].to_numpy(),
            df["cpus"].to_numpy(),
        )
        actual = df["exec_ms"].to_numpy(dtype=float)
        ok = predicted > 0
        self.exec_ratios_ = np.sort(actual[ok] / predicted[ok]) if ok.any() else np.array([1.0])
        return self

    def n_samples(self, function: str) -> float:
        """Number of training rows of `function` (0 when unseen)."""
        check_is_fitted(self)
        code = self.functions_.get(function)
        return 0.0 if code is None else float(self.counts_[code])

    def cpu_exponent(self, function: str) -> float:
        """Exec-time exponent on cpus implied by the memory power law: ``-memory_power``."""
        check_is_fitted(self)
        return -float(self.memory_power)

    def _codes(self, functions: np.ndarray) -> np.ndarray:
        return np.fromiter(
            (self.functions_.get(f, -1) for f in functions), np.int64, len(functions)
        )

    def exec_ms_many(
        self, functions, input_bytes, memory_mb, cpus, q: float | None = None
    ) -> np.ndarray:
        """Vectorised `exec_ms`: arrays (or scalars) broadcast together; returns ms."""
        check_is_fitted(self)
        _check_q(q)
        functions, x, mem, _ = _broadcast(functions, input_bytes, memory_mb, cpus)
        x = x.astype(float)
        _check_sizes("input_bytes", x)
        codes = self._codes(functions.ravel()).reshape(functions.shape)
        result = np.zeros(x.shape)
        k = self.n_neighbors
        for code, pos in group_positions(codes.ravel()):
            if code < 0:
                self._warn_unseen(sorted(set(functions.ravel()[pos])), "exec_ms = 0")
                continue
            lx, cum = self.rate_tables_[code]
            xs = x.ravel()[pos]
            values = np.full(xs.shape, self.mean_exec_norm_[code])
            if lx.size and (xs > 0).any():
                n = lx.size
                m = min(k, n)
                idx = np.searchsorted(lx, np.log(np.maximum(xs, 1.0)))
                lo = np.clip(idx - m // 2, 0, n - m)
                rate = (cum[lo + m] - cum[lo]) / m
                values = np.where(xs > 0, rate * xs, values)
            result.ravel()[pos] = values
        result *= (1024.0 / mem.astype(float)) ** self.memory_power
        if q is not None:
            result *= float(np.quantile(self.exec_ratios_, q))
        return result

    def output_bytes_many(self, functions, input_bytes, q: float | None = None) -> np.ndarray:
        """Vectorised `output_bytes`; `q` is ignored (the baseline has no output spread)."""
        check_is_fitted(self)
        _check_q(q)
        functions, x = _broadcast(functions, input_bytes)
        x = x.astype(float)
        _check_sizes("input_bytes", x)
        codes = self._codes(functions.ravel()).reshape(functions.shape)
        result = x.copy()
        for code, pos in group_positions(codes.ravel()):
            if code < 0:
                self._warn_unseen(sorted(set(functions.ravel()[pos])), "output_bytes = input_bytes")
                continue
            xs = x.ravel()[pos]
            ratio = self.output_ratio_[code]
            values = (
                xs * ratio if np.isfinite(ratio) else np.full(xs.shape, self.mean_output_[code])
            )
            result.ravel()[pos] = np.where(xs > 0, values, self.mean_output_[code])
        return np.round(result).astype(np.int64)

    def transfer_ms_many(self, nbytes, memory_mb, cpus, direction: str) -> np.ndarray:
        """Vectorised `transfer_ms`: bytes / mean download throughput."""
        check_is_fitted(self)
        _check_direction(direction)
        nbytes, _, _ = _broadcast(nbytes, memory_mb, cpus)
        nbytes = nbytes.astype(float)
        _check_sizes("nbytes", nbytes)
        return nbytes / self.throughput_bytes_per_ms_

    def startup_ms_many(self, memory_mb, cpus, kind: str) -> np.ndarray:
        """Vectorised `startup_ms`: the mean recorded startup of that kind (defaults if none)."""
        check_is_fitted(self)
        _check_kind(kind)
        memory_mb, _ = _broadcast(memory_mb, cpus)
        value = 0.0 if kind == "none" else self.startup_means_.get(kind, DEFAULT_STARTUP_MS[kind])
        return np.full(memory_mb.shape, value, dtype=float)
