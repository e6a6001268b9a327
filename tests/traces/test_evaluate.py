"""evaluate and learning_curve: the score tables."""

from traces import LearnedPredictor, evaluate, learning_curve, synthetic_traces


def test_evaluate_components():
    """evaluate reports MAPE for exec, output, transfer and startup, and exec coverage."""
    ts = synthetic_traces(n_runs=4, tasks_per_run=50, seed=1)
    table = evaluate(
        LearnedPredictor(), ts.select_runs(ts.run_ids[:3]), ts.select_runs(ts.run_ids[3:])
    )
    assert list(table["component"]) == ["exec", "output", "transfer", "startup"]
    assert (table["mape_pct"] > 0).all() and 0 <= table.loc[0, "coverage"] <= 1


def test_learning_curve_rows():
    """learning_curve scores each feasible training size on the held-out last run."""
    ts = synthetic_traces(n_runs=5, tasks_per_run=40, seed=1)
    curve = learning_curve(LearnedPredictor(), ts, (1, 2, 4, 9))
    assert sorted(curve["n_train_runs"].unique()) == [1, 2, 4]
