"""Step 4, the report: how far the simulator's predictions are from the real runs, and how far
the real runs are from each other.

`summarize` turns `validate_traces` rows into a `FidelityReport`: median and 90th percentile
of the per-run makespan and cost errors; Kendall tau (`kendall_tau`) between the planner
rankings by simulated and by real mean makespan per workflow (simulated makespans within
`SIM_TIE` tied); the real runs against their cells' other runs, the least error any one
prediction per cell scores (`error_floor`) and the real rankings' agreement with themselves;
and whether the `TARGETS` are met. `plot_predicted_vs_real` draws simulated against real
makespan with the y = x line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Simulated makespans of two planners within this fraction of each other are a tie in the
#: simulated ranking (`summarize`). Plans that differ only in memory sizes, which the emulator
#: does not turn into CPU, are simulated 0.01-0.1% apart; that order is float noise, not a
#: prediction, and the real runs' own noise is ~8% (median) per run.
SIM_TIE = 0.01
#: Resamples of the real runs behind the real ranking's bootstrap tau (`FidelityReport`).
REAL_TAU_RESAMPLES = 200
#: The fidelity targets a validation is held to (issue 9): median and 90th percentile of the
#: per-run makespan error at most these, mean Kendall tau at least this.
TARGETS = {"median": 0.10, "p90": 0.20, "tau": 0.80}


def kendall_tau(
    a: Sequence[float], b: Sequence[float], *, tie_a: float = 0.0, tie_b: float = 0.0
) -> float:
    """Kendall's tau-b between two score lists (ties handled); NaN when undefined.

    `tie_a` and `tie_b`: two scores of a list whose difference is at most this fraction of the
    larger are a tie (0: only equal scores).

    Raises
    ------
    ValueError
        If the lists differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"kendall_tau of lists of lengths {len(a)} and {len(b)}")

    def order(x: Sequence[float], i: int, j: int, tie: float) -> int:
        if abs(x[i] - x[j]) <= tie * max(abs(x[i]), abs(x[j])):
            return 0
        return 1 if x[i] > x[j] else -1

    concordant = discordant = ties_a = ties_b = 0
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            da = order(a, i, j, tie_a)
            db = order(b, i, j, tie_b)
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif da == db:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator else math.nan


@dataclass
class FidelityReport:
    """Summary of a validation: error quantiles and planner rank agreement.

    Attributes
    ----------
    makespan, cost : dict
        ``median`` and ``p90`` of the per-run relative errors, and ``n`` runs.
    tau : dict of str to float
        Kendall tau-b per workflow (planners ranked by mean makespan, simulated vs real), where
        two planners whose simulated makespans differ by at most `SIM_TIE` are tied in the
        simulated ranking: the simulator does not tell them apart.
    tau_mean : float
    tau_strict : dict of str to float
        The same without that tolerance: every simulated difference, however small, is an order.
    tau_strict_mean : float
    host_cpus : dict of str to float
        Per workflow, the median of the host CPUs its runs were simulated with (fitted, see
        `HOST_FITS`, or the preset's).
    other_rounds : dict
        When the host CPUs followed each run's round (``host_fit="round"``): the makespan
        error's ``median`` and ``p90`` and the mean ``tau`` with the fit on the other rounds
        alone, what the machine's drift from round to round costs the predictions.
    by_cell : DataFrame
        Per (workflow, planner): mean real and simulated makespan, median errors.
    n_cold_runs : int
        Recorded runs that had a cold start (not in steady state).
    run_noise : dict
        The real runs against themselves: ``median`` and ``p90`` of |mean of the cell's other
        runs - run| / run. A prediction of a cell's mean makespan, however exact, scores about
        this; per-run errors much below it are out of reach on this machine.
    floor : dict
        ``median`` and ``p90``: the least that any prediction of one makespan per cell, even
        one chosen knowing every run (`error_floor`), scores on these runs: a lower bound, far
        below what a prediction made without the runs reaches (`run_noise` is that). A target
        missed by the floor too is out of reach of any prediction of the cells.
    real_tau_halves : float
        Mean over workflows of Kendall tau between the planner rankings of the two halves of
        the real runs (alternate runs of each cell): how far reality agrees with itself.
    real_tau_bootstrap : float
        Mean over workflows and `REAL_TAU_RESAMPLES` resamples (each cell's runs drawn with
        replacement, as many as it has) of Kendall tau between the resampled and the recorded
        planner rankings: roughly what a predictor of every cell's expected makespan, however
        exact, would score against rankings measured with this many runs per cell (strict tau;
        it ties nothing). A rough upper estimate: resampling a few runs understates their
        spread, and the recorded gaps between cells overstate the true ones.
    """

    makespan: dict[str, float]
    cost: dict[str, float]
    tau: dict[str, float]
    tau_mean: float
    by_cell: pd.DataFrame = field(repr=False)
    n_cold_runs: int = 0
    run_noise: dict[str, float] = field(default_factory=dict)
    real_tau_halves: float = math.nan
    tau_strict: dict[str, float] = field(default_factory=dict)
    tau_strict_mean: float = math.nan
    host_cpus: dict[str, float] = field(default_factory=dict)
    real_tau_bootstrap: float = math.nan
    floor: dict[str, float] = field(default_factory=dict)
    other_rounds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["by_cell"] = self.by_cell.to_dict(orient="records")
        return out

    def text(self) -> str:
        lines = [
            f"runs: {self.makespan['n']} ({self.n_cold_runs} with a cold start)",
            f"makespan |sim-real|/real: median {self.makespan['median']:.3f}, "
            f"p90 {self.makespan['p90']:.3f}",
            f"cost     |sim-real|/real: median {self.cost['median']:.3f}, p90 {self.cost['p90']:.3f}",
            f"Kendall tau of planner rankings: mean {self.tau_mean:.3f}; "
            + ", ".join(f"{w}: {t:.2f}" for w, t in self.tau.items()),
            f"  (simulated makespans within {SIM_TIE:.0%} are a tie; strict: mean "
            f"{self.tau_strict_mean:.3f}; "
            + ", ".join(f"{w}: {t:.2f}" for w, t in self.tau_strict.items())
            + ")",
        ]
        if self.host_cpus:
            lines.append(
                "host CPUs simulated (median per workflow): "
                + ", ".join(f"{w}: {c:.2f}" for w, c in self.host_cpus.items())
            )
        if self.other_rounds:
            lines.append(
                "with the host CPUs fitted on the other rounds alone (not following the run's "
                f"round): makespan median {self.other_rounds['median']:.3f}, "
                f"p90 {self.other_rounds['p90']:.3f}, tau {self.other_rounds['tau']:.3f}"
            )
        if self.run_noise:
            noise = (
                "real runs against their cell's other runs: median "
                f"{self.run_noise['median']:.3f}, p90 {self.run_noise['p90']:.3f}"
            )
            if self.floor:
                noise += (
                    f"; the least any one prediction per cell scores: median "
                    f"{self.floor['median']:.3f}, p90 {self.floor['p90']:.3f}"
                )
            lines.append(noise)
            lines.append(
                f"tau between halves of the real runs: {self.real_tau_halves:.3f}, "
                f"of resampled runs against all: {self.real_tau_bootstrap:.3f}"
            )
        lines.append(self.targets_text())
        lines += [
            "",
            self.by_cell.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        ]
        return "\n".join(lines)

    def targets_met(self) -> dict[str, bool]:
        """Per target of `TARGETS`: whether this validation meets it."""
        return {
            "median": self.makespan["median"] <= TARGETS["median"],
            "p90": self.makespan["p90"] <= TARGETS["p90"],
            "tau": self.tau_mean >= TARGETS["tau"],
        }

    def targets_text(self) -> str:
        """One line: each target met or missed; beside a missed error, what the real runs
        score against their cells' other runs (`run_noise`) and its `floor`."""
        met = self.targets_met()
        parts = []
        for key in ("median", "p90"):
            sign, verdict = ("<=", "met") if met[key] else (">", "missed")
            part = f"{key} {self.makespan[key]:.3f} {sign} {TARGETS[key]:.2f}: {verdict}"
            beside = []
            if not met[key] and self.run_noise:
                beside.append(f"real runs against their cells' others {self.run_noise[key]:.3f}")
            if not met[key] and self.floor:
                beside.append(f"least any one prediction per cell scores {self.floor[key]:.3f}")
            parts.append(part + (f" ({'; '.join(beside)})" if beside else ""))
        sign, verdict = (">=", "met") if met["tau"] else ("<", "missed")
        parts.append(f"tau {self.tau_mean:.3f} {sign} {TARGETS['tau']:.2f}: {verdict}")
        return "targets: " + "; ".join(parts)


def summarize(frame: pd.DataFrame) -> FidelityReport:
    """Error quantiles and Kendall tau per workflow from `validate_traces` rows."""

    by_cell = (
        frame.groupby(["workflow", "planner"], sort=False)
        .agg(
            real_ms=("real_makespan_ms", "mean"),
            sim_ms=("sim_makespan_ms", "mean"),
            real_sd_ms=("real_makespan_ms", "std"),
            makespan_err=("makespan_error", "median"),
            cost_err=("cost_error", "median"),
        )
        .reset_index()
    )
    tau, tau_strict = {}, {}
    for workflow, group in by_cell.groupby("workflow", sort=False):
        real, sim = list(group["real_ms"]), list(group["sim_ms"])
        tau[workflow] = kendall_tau(real, sim, tie_b=SIM_TIE)
        tau_strict[workflow] = kendall_tau(real, sim)
    host_cpus = (
        frame.groupby("workflow", sort=False)["host_cpus"].median().to_dict()
        if "host_cpus" in frame
        else {}
    )
    return FidelityReport(
        makespan=_quantiles(frame["makespan_error"]),
        cost=_quantiles(frame["cost_error"]),
        tau=tau,
        tau_mean=_finite_mean(tau.values()),
        by_cell=by_cell,
        n_cold_runs=int((frame["n_cold"] > 0).sum()),
        run_noise=_run_noise(frame),
        floor={"median": error_floor(frame, 0.5), "p90": error_floor(frame, 0.9)},
        real_tau_halves=_real_tau_halves(frame),
        real_tau_bootstrap=_real_tau_bootstrap(frame),
        tau_strict=tau_strict,
        tau_strict_mean=_finite_mean(tau_strict.values()),
        host_cpus={str(w): float(c) for w, c in host_cpus.items()},
        other_rounds=_other_rounds_summary(frame),
    )


def _other_rounds_summary(frame: pd.DataFrame) -> dict[str, float]:
    """`FidelityReport.other_rounds` from `validate_traces` rows; empty when every run was
    simulated with the fit on the other rounds (or nothing was fitted)."""
    column = "sim_makespan_other_rounds_ms"
    if column not in frame or frame[column].equals(frame["sim_makespan_ms"]):
        return {}
    # Workflows simulated without a fit (a preset with CPUs of its own) are alike either way.
    frame = frame.assign(**{column: frame[column].fillna(frame["sim_makespan_ms"])})
    real = frame["real_makespan_ms"]
    errors = _quantiles((frame[column] - real).abs() / real)
    means = frame.groupby(["workflow", "planner"], sort=False)[["real_makespan_ms", column]].mean()
    taus = [
        kendall_tau(list(group["real_makespan_ms"]), list(group[column]), tie_b=SIM_TIE)
        for _, group in means.groupby(level="workflow", sort=False)
    ]
    return {"median": errors["median"], "p90": errors["p90"], "tau": _finite_mean(taus)}


def _finite_mean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _quantiles(values: Any) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(values)),
        "p90": float(np.quantile(values, 0.9)),
        "n": int(values.size),
    }


def _run_noise(frame: pd.DataFrame) -> dict[str, float]:
    """Quantiles of |mean of the cell's other real runs - run| / run (cells of >= 2 runs)."""
    real = frame["real_makespan_ms"].astype(float)
    cell = real.groupby([frame["workflow"], frame["planner"]], sort=False)
    n = cell.transform("size")
    others = (cell.transform("sum") - real) / (n - 1)
    errors = ((others - real).abs() / real)[n >= 2]
    return _quantiles(errors) if len(errors) else {}


def error_floor(frame: pd.DataFrame, q: float) -> float:
    """The least `q`-quantile of |prediction - real| / real over the rows of `frame` that any
    prediction of one makespan per (workflow, planner) cell reaches, each cell's value chosen
    knowing all its runs: a lower bound on what a predictor of the cells scores on these runs.

    A prediction ``c`` is within ``t`` of a run ``x`` when ``c / (1 + t) <= x <= c / (1 - t)``,
    so for ``t < 1`` the runs one value can cover lie within a factor ``(1 + t) / (1 - t)``
    of each other. The floor is the least ``t`` at which the cells' best windows together
    cover the ``k`` runs whose errors reach the quantile's lower order statistic (``k = floor(q
    * (n - 1)) + 1``, the quantile of `numpy.quantile` being at least that statistic); found
    by bisection to 1e-9. 1.0 if no ``t < 1`` does (a prediction of 0 is within 1 of any run).
    """
    real = frame["real_makespan_ms"].astype(float)
    ok = np.isfinite(real) & (real > 0)
    if not ok.any():
        return math.nan
    cells = [
        np.sort(runs.to_numpy())
        for _, runs in real[ok].groupby([frame["workflow"][ok], frame["planner"][ok]], sort=False)
    ]
    needed = math.floor(q * (int(ok.sum()) - 1)) + 1

    def covered(t: float) -> int:
        ratio = (1 + t) / (1 - t)
        # Per cell, the most runs in a window [x_i, ratio * x_i] (sorted: a two-pointer count).
        return sum(
            int(
                (
                    np.searchsorted(x, x * ratio * (1 + 1e-12), side="right") - np.arange(x.size)
                ).max()
            )
            for x in cells
        )

    low, high = 0.0, 1.0
    if covered(0.0) >= needed:
        return 0.0
    while high - low > 1e-9:
        mid = (low + high) / 2
        if covered(mid) >= needed:
            high = mid
        else:
            low = mid
    return high


def _real_tau_halves(frame: pd.DataFrame) -> float:
    """Mean over workflows of Kendall tau between the planners' mean real makespans over
    alternate runs of each cell (in recorded order) and over the others."""
    half = frame.groupby(["workflow", "planner"], sort=False).cumcount() % 2
    means = frame.groupby(["workflow", "planner", half], sort=False)["real_makespan_ms"].mean()
    taus = []
    for _workflow, cells in means.groupby(level="workflow", sort=False):
        halves = cells.unstack(level=-1)
        if halves.shape[1] == 2 and not halves.isna().any().any():
            taus.append(kendall_tau(list(halves.iloc[:, 0]), list(halves.iloc[:, 1])))
    return _finite_mean(taus)


def _real_tau_bootstrap(frame: pd.DataFrame, seed: int = 0) -> float:
    """`FidelityReport.real_tau_bootstrap` of `validate_traces` rows (runs without a real
    makespan left out)."""
    rng = np.random.default_rng(seed)
    frame = frame[np.isfinite(frame["real_makespan_ms"].astype(float))]
    per_workflow = []
    for _workflow, rows in frame.groupby("workflow", sort=False):
        cells = [
            runs.to_numpy(dtype=float)
            for _, runs in rows.groupby("planner", sort=False)["real_makespan_ms"]
        ]
        recorded = [float(runs.mean()) for runs in cells]
        taus = [
            kendall_tau(
                [float(rng.choice(runs, size=runs.size).mean()) for runs in cells], recorded
            )
            for _ in range(REAL_TAU_RESAMPLES)
        ]
        per_workflow.append(_finite_mean(taus))
    return _finite_mean(per_workflow)


def plot_predicted_vs_real(frame: pd.DataFrame, path: str | Path) -> Path:
    """Scatter of simulated against real makespan per run, one colour per planner, y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    markers = dict(zip(frame["workflow"].unique(), "osD^v<>", strict=False))
    for (workflow, planner), group in frame.groupby(["workflow", "planner"]):
        ax.scatter(
            group["real_makespan_ms"],
            group["sim_makespan_ms"],
            s=18,
            marker=markers.get(workflow, "o"),
            label=f"{workflow.split(':')[0]} / {planner}",
        )
    top = float(max(frame["real_makespan_ms"].max(), frame["sim_makespan_ms"].max())) * 1.05
    ax.plot([0, top], [0, top], color="black", linewidth=1, label="y = x")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("real makespan (ms)")
    ax.set_ylabel("simulated makespan (ms)")
    ax.set_title("held-out runs: simulated vs real")
    ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target
