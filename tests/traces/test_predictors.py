"""Predictors: the shared contract, the baseline's octoflows rules, small and unseen data."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from dag import ResourceConfig
from traces import BaselinePredictor, LearnedPredictor, UnseenFunctionWarning, synthetic_traces
from traces.schema import make_frame

PREDICTORS = [BaselinePredictor, LearnedPredictor]
CFG = ResourceConfig(1769)


@pytest.fixture(scope="module")
def traces():
    return synthetic_traces(n_runs=6, tasks_per_run=60, seed=7)


@pytest.mark.parametrize("cls", PREDICTORS)
def test_fit_returns_self(cls, traces):
    """fit returns the estimator itself."""
    p = cls()
    assert p.fit(traces) is p


@pytest.mark.parametrize("cls", PREDICTORS)
def test_unfitted_raises(cls):
    """Querying an unfitted predictor raises sklearn's NotFittedError."""
    with pytest.raises(NotFittedError):
        cls().exec_ms("parse", 100, CFG)


@pytest.mark.parametrize("cls", PREDICTORS)
def test_same_seed_same_output(cls, traces):
    """Two predictors with the same random_state fitted on the same data answer identically."""
    a, b = cls(random_state=3).fit(traces), cls(random_state=3).fit(traces)
    for q in (None, 0.9):
        assert a.exec_ms("sort", 12345, CFG, q=q) == b.exec_ms("sort", 12345, CFG, q=q)
    assert a.output_bytes("sort", 999) == b.output_bytes("sort", 999)


@pytest.mark.parametrize("cls", PREDICTORS)
def test_batch_matches_scalar(cls, traces):
    """The vectorised queries agree with the scalar ones."""
    p = cls().fit(traces)
    many = p.exec_ms_many(["parse", "sort"], [1000, 10**6], CFG.memory_mb, CFG.cpus)
    assert many[1] == pytest.approx(p.exec_ms("sort", 10**6, CFG))
    assert p.output_bytes_many(["parse"], [5000])[0] == p.output_bytes("parse", 5000)


@pytest.mark.parametrize("cls", PREDICTORS)
def test_unseen_function_warns_not_crashes(cls, traces):
    """A function never seen gets a finite answer, a warning and zero samples."""
    p = cls().fit(traces)
    with pytest.warns(UnseenFunctionWarning, match="mystery"):
        value = p.exec_ms("mystery", 1000, CFG)
    assert np.isfinite(value) and value >= 0
    assert p.n_samples("mystery") == 0 and p.confidence("mystery") == 0


@pytest.mark.parametrize("cls", PREDICTORS)
def test_few_samples_sensible(cls):
    """Three samples of a linear function give a prediction of the right order, low confidence."""
    rows = [
        dict(
            run_id="r",
            workflow="w",
            dag_hash="h",
            task_id=f"t{i}",
            function="f",
            worker_id="w",
            memory_mb=1024,
            cpus=1.0,
            ready_ms=0.0,
            start_ms=0.0,
            inputs_done_ms=0.0,
            exec_done_ms=x / 1000,
            end_ms=x / 1000,
            input_bytes=x,
            exec_ms=x / 1000,
            output_bytes=x // 2,
        )
        for i, x in enumerate([10_000, 20_000, 40_000])
    ]
    p = cls().fit(make_frame("tasks", rows))
    assert p.exec_ms("f", 30_000, ResourceConfig(1024, 1.0)) == pytest.approx(30.0, rel=0.3)
    assert p.output_bytes("f", 30_000) == pytest.approx(15_000, rel=0.3)
    assert 0 < p.confidence("f") < 0.5


@pytest.mark.parametrize("cls", PREDICTORS)
def test_transfer_and_startup(cls, traces):
    """Transfers grow with bytes and are 0 for 0 bytes; cold starts cost more than warm ones."""
    p = cls().fit(traces)
    assert p.transfer_ms(0, CFG, "download") == 0
    assert p.transfer_ms(10**7, CFG, "upload") > p.transfer_ms(10**5, CFG, "upload") > 0
    assert p.startup_ms(CFG, "cold") > p.startup_ms(CFG, "warm") > p.startup_ms(CFG, "none") == 0
    with pytest.raises(ValueError, match="direction"):
        p.transfer_ms(1, CFG, "sideways")


def test_baseline_unseen_fallback(traces):
    """The baseline predicts output = input and exec = 0 for an unseen function."""
    p = BaselinePredictor().fit(traces)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenFunctionWarning)
        assert p.output_bytes("nope", 777) == 777
        assert p.exec_ms("nope", 777, CFG) == 0


def test_baseline_memory_power_law(traces):
    """The baseline scales exec time by (1024 / memory_mb) ** 0.3."""
    p = BaselinePredictor().fit(traces)
    small = p.exec_ms("parse", 10**6, ResourceConfig(1024))
    big = p.exec_ms("parse", 10**6, ResourceConfig(4096))
    assert big / small == pytest.approx((1024 / 4096) ** 0.3)
