"""A predictor that learns each function's I/O power laws, its cpu scaling and its spread.

Per function, in log space and by weighted least squares:

    log exec_ms      = a + b * log input_bytes + c * log cpus
    log output_bytes = d + e * log input_bytes

Weights decay by half every `halflife_runs` runs (the newest run weighs 1), so drifting
behaviour is tracked. Slopes are shrunk towards a prior with `prior_strength` pseudo-samples:
the ``@task`` hint's io exponent (else `default_io_exponent`) for b and e, and the cpu exponent
pooled over all functions (else `default_cpu_exponent`) for c; so a function with a handful of
samples still gets sensible answers. Quantiles come from the recency-weighted residuals of the
last `max_residuals` samples of the function (pooled over functions when it has fewer than
`min_quantile_samples`, else a lognormal with sigma `default_sigma`).

Everything the fit needs is kept as decayed sufficient statistics (weighted Gram matrices), so
`partial_fit` with one new run costs time proportional to that run only.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from traces.io import TraceSet
from traces.predictors import (
    DEFAULT_BANDWIDTH_BYTES_PER_MS,
    DEFAULT_CPU_EXPONENT,
    DEFAULT_STARTUP_MS,
    PredictorBase,
    _broadcast,
    _check_direction,
    _check_kind,
    _check_q,
    _check_sizes,
    group_positions,
    hints_by_function,
    tasks_frame,
)

# Columns of the per-function Gram matrix: 1, log input, log cpus, log exec, log output.
_ONE, _LX, _LC, _LE, _LO = range(5)
_BUF = 7  # buffer columns: lx, lc, le, lo, run index, forecast exec / output residual
_MIN_EXEC_MS = 1e-3


def _features(df: pd.DataFrame) -> np.ndarray:
    z = np.empty((len(df), 5))
    z[:, _ONE] = 1.0
    z[:, _LX] = np.log(np.maximum(df["input_bytes"].to_numpy(dtype=float), 1.0))
    z[:, _LC] = np.log(df["cpus"].to_numpy(dtype=float))
    z[:, _LE] = np.log(np.maximum(df["exec_ms"].to_numpy(dtype=float), _MIN_EXEC_MS))
    z[:, _LO] = np.log(np.maximum(df["output_bytes"].to_numpy(dtype=float), 1.0))
    return z


def _quantile_table(residuals: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(residuals, kind="stable")
    r, w = residuals[order], weights[order]
    cum = np.cumsum(w)
    return r, (cum - w / 2) / cum[-1]


class LearnedPredictor(PredictorBase):
    """Per-function power laws in input bytes and cpus, recency-weighted, with quantiles.

    Parameters
    ----------
    halflife_runs : float or None, default 5.0
        Runs after which a sample's weight halves; None weighs all runs equally.
    prior_strength : float, default 1.0
        Pseudo-samples pulling each slope towards its prior.
    default_io_exponent : float, default 1.0
        Prior exponent of exec time and output size on input bytes, without a hint.
    default_cpu_exponent : float, default -0.3
        Prior exponent of exec time on cpus when no function shows cpu variation.
    max_residuals : int, default 512
        Recent samples per function kept for residual quantiles.
    min_quantile_samples : int, default 20
        Fewer samples than this: quantiles use the pooled residuals.
    default_sigma : float, default 0.3
        Log-space spread assumed when there are too few residuals anywhere.
    random_state : int or None
        Unused (the fit is deterministic); kept for the common predictor signature.
    """

    def __init__(
        self,
        *,
        halflife_runs: float | None = 5.0,
        prior_strength: float = 1.0,
        default_io_exponent: float = 1.0,
        default_cpu_exponent: float = DEFAULT_CPU_EXPONENT,
        max_residuals: int = 512,
        min_quantile_samples: int = 20,
        default_sigma: float = 0.3,
        random_state=None,
    ):
        self.halflife_runs = halflife_runs
        self.prior_strength = prior_strength
        self.default_io_exponent = default_io_exponent
        self.default_cpu_exponent = default_cpu_exponent
        self.max_residuals = max_residuals
        self.min_quantile_samples = min_quantile_samples
        self.default_sigma = default_sigma
        self.random_state = random_state

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, tasks: TraceSet | pd.DataFrame, hints=None) -> LearnedPredictor:
        """Fit from scratch on a tasks table (runs ordered by first appearance).

        Parameters
        ----------
        tasks : TraceSet or DataFrame
        hints : mapping of function -> TaskHints, or a DAG whose tasks carry hints, optional
        """
        for attr in [a for a in vars(self) if a.endswith("_")]:
            delattr(self, attr)
        return self.partial_fit(tasks, hints)

    def partial_fit(self, tasks: TraceSet | pd.DataFrame, hints=None) -> LearnedPredictor:
        """Add the runs in `tasks` as the newest ones; cost proportional to their rows.

        A run id seen before keeps its place in the run order.
        """
        if self.halflife_runs is not None and not self.halflife_runs > 0:
            raise ValueError(f"halflife_runs={self.halflife_runs!r} must be > 0 or None")
        if not self.prior_strength > 0:
            raise ValueError(f"prior_strength={self.prior_strength!r} must be > 0")
        df = tasks_frame(tasks)
        if not hasattr(self, "gram_"):
            self._init_state()
        self.hints_.update(hints_by_function(hints))
        # Run order: new run ids go after all known ones, in order of first appearance.
        run_codes, run_names = pd.factorize(df["run_id"], sort=False)
        run_index = np.empty(len(run_names), dtype=np.int64)
        for i, name in enumerate(run_names):
            run_index[i] = self.run_index_.setdefault(str(name), len(self.run_index_))
        row_run = run_index[run_codes]
        decay = 1.0 if self.halflife_runs is None else 0.5 ** (1.0 / self.halflife_runs)
        codes = self._add_functions(df["function"])
        z = _features(df)
        forecast = np.full((len(df), 2), np.nan)
        old = row_run < self.n_runs_
        if old.any():  # more rows of runs already seen: add at their age, no forecast
            pos = np.flatnonzero(old)
            self._accumulate(codes[pos], z[pos], decay ** (self.n_runs_ - 1 - row_run[pos]))
            self._solve_coefs()
        for run, pos in group_positions(np.where(old, -1, row_run)):
            if run < 0:
                continue
            factor = decay ** (run + 1 - self.n_runs_)
            self.gram_ *= factor
            self.transfer_sums_ *= factor
            self.startup_sums_ *= factor
            for acc in self.startup_by_memory_.values():
                acc *= factor
            self.n_runs_ = run + 1
            forecast[pos] = self._forecast_residuals(codes[pos], z[pos])
            self._accumulate(codes[pos], z[pos], np.ones(pos.size))
            self._solve_coefs()
        w = decay ** (self.n_runs_ - 1 - row_run).astype(float)
        self._add_transfers(df, w)
        self._add_startups(df, w)
        buf = np.column_stack([z[:, _LX], z[:, _LC], z[:, _LE], z[:, _LO], row_run, forecast])
        for code, pos in group_positions(codes):
            both = np.concatenate([self.buffers_[code], buf[pos]])
            self.buffers_[code] = both[-self.max_residuals :]
        self.n_rows_fit_ += len(df)
        self._solve_coefs()
        self._residual_tables(decay)
        self.transfer_coef_ = np.array([self._transfer_line(d) for d in range(2)])
        return self

    def _accumulate(self, codes: np.ndarray, z: np.ndarray, w: np.ndarray) -> None:
        n_f = len(self.functions_)
        for i in range(5):
            for j in range(i, 5):
                sums = np.bincount(codes, weights=w * z[:, i] * z[:, j], minlength=n_f)
                self.gram_[:, i, j] += sums
                if i != j:
                    self.gram_[:, j, i] += sums
        self.counts_ += np.bincount(codes, minlength=n_f)

    def _forecast_residuals(self, codes: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Residuals of rows against the model fitted on earlier runs (NaN if none yet)."""
        out = np.full((len(codes), 2), np.nan)
        if not hasattr(self, "coef_exec_"):
            return out
        known = codes < len(self.coef_exec_)
        known[known] = self.counts_[codes[known]] > 0
        c = codes[known]
        b, d, zk = self.coef_exec_[c], self.coef_output_[c], z[known]
        out[known, 0] = zk[:, _LE] - (b[:, 0] + b[:, 1] * zk[:, _LX] + b[:, 2] * zk[:, _LC])
        out[known, 1] = zk[:, _LO] - (d[:, 0] + d[:, 1] * zk[:, _LX])
        return out

    def _init_state(self) -> None:
        self.functions_: dict[str, int] = {}
        self.gram_ = np.zeros((0, 5, 5))
        self.counts_ = np.zeros(0, dtype=np.int64)
        self.buffers_: list[np.ndarray] = []
        self.hints_: dict = {}
        self.run_index_: dict[str, int] = {}
        self.n_runs_ = 0
        self.n_rows_fit_ = 0
        # download / upload: sums of u, u*n, u*n^2, u*y, u*n*y with u = w / y^2.
        self.transfer_sums_ = np.zeros((2, 5))
        # warm / cold: sums of w, w*log(startup_ms).
        self.startup_sums_ = np.zeros((2, 2))
        self.startup_by_memory_: dict[tuple[int, int], np.ndarray] = {}

    def _add_functions(self, functions: pd.Series) -> np.ndarray:
        codes, names = pd.factorize(functions, sort=False)
        mapping = np.empty(len(names), dtype=np.int64)
        for i, name in enumerate(names):
            name = str(name)
            if name not in self.functions_:
                self.functions_[name] = len(self.functions_)
                self.buffers_.append(np.empty((0, _BUF)))
            mapping[i] = self.functions_[name]
        grow = len(self.functions_) - len(self.counts_)
        if grow:
            self.gram_ = np.concatenate([self.gram_, np.zeros((grow, 5, 5))])
            self.counts_ = np.concatenate([self.counts_, np.zeros(grow, dtype=np.int64)])
        self.index_ = pd.Index(list(self.functions_))
        return mapping[codes]

    def _add_transfers(self, df: pd.DataFrame, w: np.ndarray) -> None:
        pairs = (
            (df["download_bytes"].to_numpy(dtype=float), df["download_ms"].to_numpy(dtype=float)),
            (df["output_bytes"].to_numpy(dtype=float), df["upload_ms"].to_numpy(dtype=float)),
        )
        for d, (n, y) in enumerate(pairs):
            ok = (n > 0) & (y > 0)
            n, y, u = n[ok], y[ok], w[ok] / y[ok] ** 2
            self.transfer_sums_[d] += [
                u.sum(),
                (u * n).sum(),
                (u * n * n).sum(),
                (u * y).sum(),
                (u * n * y).sum(),
            ]

    def _add_startups(self, df: pd.DataFrame, w: np.ndarray) -> None:
        kinds = df["startup"].to_numpy(dtype=object)
        ms = df["startup_ms"].to_numpy(dtype=float)
        mem = df["memory_mb"].to_numpy(dtype=np.int64)
        for k, kind in enumerate(("warm", "cold")):
            ok = (kinds == kind) & (ms > 0)
            lw, lm = w[ok], np.log(ms[ok])
            self.startup_sums_[k] += [lw.sum(), (lw * lm).sum()]
            for m in np.unique(mem[ok]):
                sel = mem[ok] == m
                key = (k, int(m))
                acc = self.startup_by_memory_.setdefault(key, np.zeros(2))
                acc += [lw[sel].sum(), (lw[sel] * lm[sel]).sum()]

    def _solve_coefs(self) -> None:
        lam = float(self.prior_strength)
        S = self.gram_
        io_prior = np.array(
            [
                self.hints_[f].io_exponent if f in self.hints_ else self.default_io_exponent
                for f in self.functions_
            ]
        )
        # Pooled cpu exponent: within-function partial covariance of (log cpus, log exec) given
        # (1, log input), summed over functions, shrunk towards the default.
        A = S[:, :2, :2] + np.diag([1e-12, lam])
        B = S[:, :2, 2:4]
        M = S[:, 2:4, 2:4] - np.einsum("fij,fik->fjk", B, np.linalg.solve(A, B))
        self.cpu_exponent_ = float(
            (M[:, 0, 1].sum() + lam * self.default_cpu_exponent) / (M[:, 0, 0].sum() + lam)
        )
        self.coef_exec_ = self._ridge(S, [_ONE, _LX, _LC], _LE, io_prior, self.cpu_exponent_)
        self.coef_output_ = self._ridge(S, [_ONE, _LX], _LO, io_prior, None)
        pooled = S.sum(axis=0, keepdims=True)
        prior = np.array([self.default_io_exponent])
        self.pooled_exec_ = self._ridge(pooled, [_ONE, _LX, _LC], _LE, prior, self.cpu_exponent_)[0]
        self.pooled_output_ = self._ridge(pooled, [_ONE, _LX], _LO, prior, None)[0]

    def _ridge(self, S, cols, target, io_prior, cpu_prior) -> np.ndarray:
        lam = float(self.prior_strength)
        k = len(cols)
        A = S[:, cols][:, :, cols] + np.diag([1e-12] + [lam] * (k - 1))
        rhs = S[:, cols, target].copy()
        rhs[:, 1] += lam * io_prior
        if cpu_prior is not None:
            rhs[:, 2] += lam * cpu_prior
        return np.linalg.solve(A, rhs[..., None])[..., 0]

    def _residual_tables(self, decay: float) -> None:
        """Weighted residual quantile tables: one-run-ahead forecast residuals where there are
        enough (they include the lag behind drift), else in-sample residuals."""
        self.exec_resid_, self.output_resid_ = [], []
        pooled: dict[str, list] = {"e": [], "o": [], "w": [], "fe": [], "fo": [], "fw": []}
        for code, buf in enumerate(self.buffers_):
            lx, lc, le, lo, run, fe, fo = buf.T
            w = decay ** (self.n_runs_ - 1 - run)
            b = self.coef_exec_[code]
            re = le - (b[0] + b[1] * lx + b[2] * lc)
            d = self.coef_output_[code]
            ro = lo - (d[0] + d[1] * lx)
            has = np.isfinite(fe)
            pooled["e"].append(re)
            pooled["o"].append(ro)
            pooled["w"].append(w)
            pooled["fe"].append(fe[has])
            pooled["fo"].append(fo[has])
            pooled["fw"].append(w[has])
            self.exec_resid_.append(self._table(fe[has], w[has], re, w))
            self.output_resid_.append(self._table(fo[has], w[has], ro, w))
        cat = {k: np.concatenate(v) if v else np.empty(0) for k, v in pooled.items()}
        self.pooled_exec_resid_ = self._table(cat["fe"], cat["fw"], cat["e"], cat["w"])
        self.pooled_output_resid_ = self._table(cat["fo"], cat["fw"], cat["o"], cat["w"])

    def _table(self, forecast, fw, insample, w):
        if forecast.size >= self.min_quantile_samples:
            return _quantile_table(forecast, fw)
        if insample.size >= self.min_quantile_samples:
            return _quantile_table(insample, w)
        return None

    def _transfer_line(self, d: int) -> tuple[float, float]:
        """(latency_ms, ms_per_byte) minimising relative error; NaN when no data."""
        s_u, s_un, s_unn, s_uy, s_uny = self.transfer_sums_[d]
        if s_u <= 0:
            return (np.nan, np.nan)
        det = s_u * s_unn - s_un**2
        if det > 1e-12 * s_u * s_unn:
            a = (s_unn * s_uy - s_un * s_uny) / det
            b = (s_u * s_uny - s_un * s_uy) / det
            if a >= 0 and b > 0:
                return (float(a), float(b))
        if s_unn > 0 and s_uny > 0:
            return (0.0, float(s_uny / s_unn))
        return (np.nan, np.nan)

    # -- queries --------------------------------------------------------------------------

    def n_samples(self, function: str) -> float:
        """Recency-weighted sample count of `function` (0 when unseen)."""
        check_is_fitted(self)
        code = self.functions_.get(function)
        return 0.0 if code is None else float(self.gram_[code, _ONE, _ONE])

    def cpu_exponent(self, function: str) -> float:
        """Fitted exponent c of exec_ms ∝ cpus ** c (the pooled one for an unseen function)."""
        check_is_fitted(self)
        code = self.functions_.get(function)
        return self.cpu_exponent_ if code is None else float(self.coef_exec_[code, 2])

    def coefficients(self) -> pd.DataFrame:
        """Fitted laws per function: exec and output intercepts (log) and exponents, samples."""
        check_is_fitted(self)
        return pd.DataFrame(
            {
                "exec_log_intercept": self.coef_exec_[:, 0],
                "io_exponent": self.coef_exec_[:, 1],
                "cpu_exponent": self.coef_exec_[:, 2],
                "output_log_intercept": self.coef_output_[:, 0],
                "output_exponent": self.coef_output_[:, 1],
                "n_samples": self.gram_[:, _ONE, _ONE],
                "n_rows": self.counts_,
            },
            index=pd.Index(list(self.functions_), name="function"),
        )

    def _codes(self, functions: np.ndarray, fallback: str) -> np.ndarray:
        codes = (
            self.index_.get_indexer(functions.ravel())
            if len(self.index_)
            else np.full(functions.size, -1)
        )
        if (codes < 0).any():
            self._warn_unseen(sorted(set(functions.ravel()[codes < 0])), fallback)
        return codes

    def _quantile(self, tables, pooled, codes: np.ndarray, q: float | None) -> np.ndarray:
        if q is None:
            return np.zeros(codes.shape)
        default = self.default_sigma * NormalDist().inv_cdf(q)
        pooled_value = default if pooled is None else float(np.interp(q, pooled[1], pooled[0]))
        per = np.array(
            [pooled_value if t is None else float(np.interp(q, t[1], t[0])) for t in tables]
            + [pooled_value]
        )
        return per[codes]  # code -1 picks the pooled value

    def exec_ms_many(
        self, functions, input_bytes, memory_mb, cpus, q: float | None = None
    ) -> np.ndarray:
        """Vectorised `exec_ms`; unseen functions use the law pooled over all functions."""
        check_is_fitted(self)
        _check_q(q)
        functions, x, _, c = _broadcast(functions, input_bytes, memory_mb, cpus)
        shape = x.shape
        x = x.astype(float).ravel()
        _check_sizes("input_bytes", x)
        codes = self._codes(functions, "using the law pooled over all functions")
        coef = np.vstack([self.coef_exec_, self.pooled_exec_])[codes]
        log = (
            coef[:, 0]
            + coef[:, 1] * np.log(np.maximum(x, 1.0))
            + coef[:, 2] * np.log(c.astype(float).ravel())
        )
        log += self._quantile(self.exec_resid_, self.pooled_exec_resid_, codes, q)
        return np.exp(log).reshape(shape)

    def output_bytes_many(self, functions, input_bytes, q: float | None = None) -> np.ndarray:
        """Vectorised `output_bytes`; unseen functions use their hint's output_bytes if any,
        else the law pooled over all functions."""
        check_is_fitted(self)
        _check_q(q)
        functions, x = _broadcast(functions, input_bytes)
        shape = x.shape
        x = x.astype(float).ravel()
        _check_sizes("input_bytes", x)
        codes = self._codes(functions, "using the law pooled over all functions")
        coef = np.vstack([self.coef_output_, self.pooled_output_])[codes]
        log = coef[:, 0] + coef[:, 1] * np.log(np.maximum(x, 1.0))
        log += self._quantile(self.output_resid_, self.pooled_output_resid_, codes, q)
        out = np.round(np.exp(log))
        if (codes < 0).any():
            flat = functions.ravel()
            for i in np.flatnonzero(codes < 0):
                hint = self.hints_.get(flat[i])
                if hint is not None and hint.output_bytes is not None:
                    out[i] = hint.output_bytes
        return out.astype(np.int64).reshape(shape)

    def transfer_ms_many(self, nbytes, memory_mb, cpus, direction: str) -> np.ndarray:
        """Vectorised `transfer_ms`: latency + bytes * ms_per_byte, fitted per direction
        (the other direction's line, then 100 MB/s, when a direction has no samples)."""
        check_is_fitted(self)
        _check_direction(direction)
        nbytes, _, _ = _broadcast(nbytes, memory_mb, cpus)
        nbytes = nbytes.astype(float)
        _check_sizes("nbytes", nbytes)
        d = 0 if direction == "download" else 1
        a, b = self.transfer_coef_[d]
        if np.isnan(a):
            a, b = self.transfer_coef_[1 - d]
        if np.isnan(a):
            a, b = 0.0, 1.0 / DEFAULT_BANDWIDTH_BYTES_PER_MS
        return np.where(nbytes > 0, a + b * nbytes, 0.0)

    def startup_ms_many(self, memory_mb, cpus, kind: str) -> np.ndarray:
        """Vectorised `startup_ms`: recency-weighted geometric mean per (kind, memory), else
        per kind, else the defaults."""
        check_is_fitted(self)
        _check_kind(kind)
        memory_mb, _ = _broadcast(memory_mb, cpus)
        if kind == "none":
            return np.zeros(memory_mb.shape)
        k = 0 if kind == "warm" else 1
        w, s = self.startup_sums_[k]
        overall = float(np.exp(s / w)) if w > 0 else DEFAULT_STARTUP_MS[kind]
        values = {}
        for m in np.unique(memory_mb):
            acc = self.startup_by_memory_.get((k, int(m)))
            values[int(m)] = (
                float(np.exp(acc[1] / acc[0])) if acc is not None and acc[0] > 0 else overall
            )
        return np.vectorize(values.__getitem__, otypes=[float])(memory_mb.astype(np.int64))
