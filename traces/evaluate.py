"""Scoring predictors on held-out traces: MAPE per component and quantile coverage.

Components: ``exec`` (exec_ms at the recorded config), ``output`` (output_bytes from
input_bytes), ``transfer`` (download_ms of download_bytes and upload_ms of output_bytes, where
recorded), ``startup`` (startup_ms of warm and cold starts). MAPE skips rows whose actual value is
0. Coverage is the share of held-out exec times at or below the predicted q-quantile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from traces.io import TraceSet
from traces.predictors import run_order, tasks_frame

COMPONENTS = ("exec", "output", "transfer", "startup")


def _mape(actual: np.ndarray, predicted: np.ndarray) -> tuple[int, float]:
    ok = actual != 0
    if not ok.any():
        return 0, float("nan")
    return int(ok.sum()), float(
        np.mean(np.abs(predicted[ok] - actual[ok]) / np.abs(actual[ok])) * 100
    )


def evaluate(predictor, train, test, q: float = 0.9, *, refit: bool = True) -> pd.DataFrame:
    """Fit a clone of `predictor` on `train` and score it on `test`.

    Parameters
    ----------
    predictor : predictor
        Left untouched; a clone is fitted (unless `refit` is False: then it is used as fitted).
    train, test : TraceSet or tasks DataFrame
    q : float
        Quantile whose coverage of held-out exec times is reported.

    Returns
    -------
    DataFrame
        One row per component: ``component``, ``n`` (rows scored), ``mape_pct``, ``q`` and
        ``coverage`` (exec only; NaN elsewhere).
    """
    model = clone(predictor).fit(train) if refit else predictor
    df = tasks_frame(test)
    functions = df["function"].to_numpy(dtype=object)
    x = df["input_bytes"].to_numpy()
    mem = df["memory_mb"].to_numpy()
    cpus = df["cpus"].to_numpy()
    rows = []
    actual = df["exec_ms"].to_numpy(dtype=float)
    n, mape = _mape(actual, model.exec_ms_many(functions, x, mem, cpus))
    upper = model.exec_ms_many(functions, x, mem, cpus, q=q)
    coverage = float(np.mean(actual <= upper)) if len(actual) else float("nan")
    rows.append(("exec", n, mape, q, coverage))
    n, mape = _mape(
        df["output_bytes"].to_numpy(dtype=float),
        model.output_bytes_many(functions, x).astype(float),
    )
    rows.append(("output", n, mape, q, np.nan))
    acts, preds = [], []
    for direction, nbytes, ms in (
        ("download", "download_bytes", "download_ms"),
        ("upload", "output_bytes", "upload_ms"),
    ):
        ok = (df[nbytes].to_numpy() > 0) & (df[ms].to_numpy() > 0)
        acts.append(df[ms].to_numpy(dtype=float)[ok])
        preds.append(
            model.transfer_ms_many(df[nbytes].to_numpy()[ok], mem[ok], cpus[ok], direction)
        )
    n, mape = _mape(np.concatenate(acts), np.concatenate(preds))
    rows.append(("transfer", n, mape, q, np.nan))
    acts, preds = [], []
    kinds = df["startup"].to_numpy(dtype=object)
    for kind in ("warm", "cold"):
        ok = kinds == kind
        acts.append(df["startup_ms"].to_numpy(dtype=float)[ok])
        preds.append(model.startup_ms_many(mem[ok], cpus[ok], kind))
    n, mape = _mape(np.concatenate(acts), np.concatenate(preds))
    rows.append(("startup", n, mape, q, np.nan))
    return pd.DataFrame(rows, columns=["component", "n", "mape_pct", "q", "coverage"])


def learning_curve(
    predictor,
    traces: TraceSet | pd.DataFrame,
    n_train_runs: Sequence[int] = (1, 2, 4, 8, 16),
    *,
    n_test_runs: int = 1,
    q: float = 0.9,
) -> pd.DataFrame:
    """Error against the number of training runs.

    The last `n_test_runs` runs (in recorded order) are held out; for each n, the predictor is
    fitted on the n runs just before them.

    Returns
    -------
    DataFrame
        `evaluate`'s columns plus ``n_train_runs``; sizes larger than the history are skipped.
    """
    df = tasks_frame(traces)
    run_idx, names = run_order(df["run_id"])
    n_runs = len(names)
    if n_runs <= n_test_runs:
        raise ValueError(f"learning_curve needs more than {n_test_runs} runs, got {n_runs}")
    first_test = n_runs - n_test_runs
    test = df[run_idx >= first_test]
    frames = []
    for n in n_train_runs:
        if not 1 <= n <= first_test:
            continue
        train = df[(run_idx >= first_test - n) & (run_idx < first_test)]
        frames.append(evaluate(predictor, train, test, q).assign(n_train_runs=n))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
