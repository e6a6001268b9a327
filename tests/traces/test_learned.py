"""LearnedPredictor on synthetic ground truth: exponents, MAPE vs baseline, recency, quantiles."""

import numpy as np
import pytest

from dag import DAG, ResourceConfig, Task, TaskHints
from traces import BaselinePredictor, LearnedPredictor, evaluate, synthetic_traces
from traces.synthetic import DEFAULT_TRUTH

DRIFT = 0.01


@pytest.fixture(scope="module")
def drifting():
    ts = synthetic_traces(n_runs=40, tasks_per_run=200, drift_per_run=DRIFT, seed=11)
    ids = ts.run_ids
    return ts.select_runs(ids[:35]), ts.select_runs(ids[35:])


def test_recovers_exponents(drifting):
    """Fitted io and cpu exponents are within 10% of the ground truth (drifting traces)."""
    train, _ = drifting
    coef = LearnedPredictor(halflife_runs=None).fit(train).coefficients()
    for name, truth in DEFAULT_TRUTH.items():
        assert coef.loc[name, "io_exponent"] == pytest.approx(truth.io_exponent, rel=0.1)
        assert coef.loc[name, "cpu_exponent"] == pytest.approx(truth.cpu_exponent, rel=0.1)
        assert coef.loc[name, "output_exponent"] == pytest.approx(truth.output_exponent, rel=0.1)


def test_beats_baseline_by_30_percent(drifting):
    """Held-out exec MAPE is at least 30% (relative) lower than the baseline's."""
    train, test = drifting
    learned = evaluate(LearnedPredictor(), train, test).set_index("component")
    base = evaluate(BaselinePredictor(), train, test).set_index("component")
    assert learned.loc["exec", "mape_pct"] <= 0.7 * base.loc["exec", "mape_pct"]


def test_recency_beats_uniform_weights_under_drift(drifting):
    """With drift, recency weighting gives a lower held-out exec MAPE than equal weights."""
    train, test = drifting
    recent = evaluate(LearnedPredictor(), train, test).set_index("component")
    flat = evaluate(LearnedPredictor(halflife_runs=None), train, test).set_index("component")
    assert recent.loc["exec", "mape_pct"] < flat.loc["exec", "mape_pct"]


def test_q90_coverage(drifting):
    """The 0.9 quantile covers 85-95% of held-out exec times."""
    train, test = drifting
    cov = (
        evaluate(LearnedPredictor(), train, test, q=0.9)
        .set_index("component")
        .loc["exec", "coverage"]
    )
    assert 0.85 <= cov <= 0.95


def test_partial_fit_matches_fit(drifting):
    """Fitting run by run with partial_fit gives the same laws as one fit."""
    train, _ = drifting
    whole = LearnedPredictor().fit(train)
    step = LearnedPredictor()
    for run in train.run_ids:
        step.partial_fit(train.select_runs([run]))
    np.testing.assert_allclose(step.coef_exec_, whole.coef_exec_, rtol=1e-9)
    assert step.exec_ms("sort", 10**6, ResourceConfig(2048), q=0.9) == pytest.approx(
        whole.exec_ms("sort", 10**6, ResourceConfig(2048), q=0.9)
    )


def test_hint_sets_prior_exponent():
    """With one sample, the io exponent follows the @task hint instead of the default."""
    one = synthetic_traces(n_runs=1, tasks_per_run=1, seed=0)
    name = one.tasks["function"].iloc[0]
    dag = DAG([Task("a", name, hints=TaskHints(io="power", io_exponent=0.5))])
    hinted = LearnedPredictor().fit(one, hints=dag).coefficients()
    plain = LearnedPredictor().fit(one).coefficients()
    assert hinted.loc[name, "io_exponent"] == pytest.approx(0.5, abs=0.05)
    assert plain.loc[name, "io_exponent"] == pytest.approx(1.0, abs=0.05)


def test_unseen_function_uses_hint_output():
    """An unseen function with an output_bytes hint predicts that size."""
    p = LearnedPredictor().fit(
        synthetic_traces(n_runs=2, tasks_per_run=20), hints={"new": TaskHints(output_bytes=42)}
    )
    with pytest.warns(UserWarning):
        assert p.output_bytes("new", 10**6) == 42
