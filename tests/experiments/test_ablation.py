"""The ablation of the optimizations: a row per flag, and what the inline flags buy."""

from experiments.ablation import FIXED, WUKONG, ablation, main


def test_ablation_has_rows_for_the_inline_flags_and_inline_subdag_pays_on_tiny_tasks():
    """On the image pipeline (65 tasks of about 1 ms below a 16-way fan-out) inline-subdag
    runs the fan-out in one invocation: a lower makespan and cost than one worker per tile;
    small-results-inline has a row over both bases."""
    table = ablation(["image_pipeline"], seeds=range(2)).set_index(["base", "optimization"])
    assert "inline-subdag" in WUKONG and "small-results-inline" in FIXED + WUKONG
    assert len(table) == len(FIXED) + len(WUKONG)
    row = table.loc[("wukong", "inline-subdag")]
    assert row["makespan_delta_pct"] < -30 and row["cost_delta_pct"] < -30
    assert {("non-uniform", "small-results-inline"), ("wukong", "small-results-inline")} <= set(
        table.index
    )


def test_small_results_inline_pays_on_small_outputs_between_fixed_workers():
    """On montage_like's small outputs read by other fixed workers it lowers the makespan."""
    table = ablation(["montage_like"], seeds=range(2)).set_index(["base", "optimization"])
    assert table.loc[("non-uniform", "small-results-inline"), "makespan_delta_pct"] < 0


def test_main_takes_one_workflow(capsys):
    """One spec (no ';') selects that workflow alone; the table is Markdown."""
    main(["--seeds", "1", "--workflows", "text_analysis"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| workflow | base | optimization |")
    assert len(lines) == 2 + len(FIXED) + len(WUKONG)
    assert all("text_analysis" in line for line in lines[2:])
