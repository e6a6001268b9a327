"""HEFT and CPOP: the paper's example and the bounded worker pool."""

from dag import layered_dag, topcuoglu_example
from planners import ProfilesPredictor, classic_plan, get_planner

# Topcuoglu et al. 2002, Fig. 3: the published task-to-processor mappings.
HEFT_MAPPING = {"n1": "P3", "n2": "P1", "n3": "P3", "n4": "P2", "n5": "P3",
                "n6": "P2", "n7": "P3", "n8": "P1", "n9": "P2", "n10": "P2"}  # fmt: skip
CPOP_MAPPING = {"n1": "P2", "n2": "P2", "n3": "P1", "n4": "P3", "n5": "P2",
                "n6": "P3", "n7": "P1", "n8": "P3", "n9": "P2", "n10": "P2"}  # fmt: skip


def _mapping(plan):
    return {t: p.worker_id for t, p in plan.placements.items()}


def test_heft_80_and_cpop_86_with_published_mappings():
    """On the paper's graph HEFT schedules in 80 and CPOP in 86, with the paper's mappings."""
    heft_plan, heft = classic_plan(topcuoglu_example(), "heft")
    cpop_plan, cpop = classic_plan(topcuoglu_example(), "cpop")
    assert heft.makespan == 80 and _mapping(heft_plan) == HEFT_MAPPING
    assert cpop.makespan == 86 and _mapping(cpop_plan) == CPOP_MAPPING


def test_heft_order_is_by_upward_rank():
    """HEFT schedules the example in the paper's order (n3 before n4 on their tie)."""
    _, heft = classic_plan(topcuoglu_example(), "heft")
    assert heft.order == ("n1", "n3", "n4", "n2", "n5", "n6", "n9", "n7", "n8", "n10")


def test_classic_plan_keeps_its_schedule_length_next_to_the_simulation():
    """The classic length is kept as planner_estimate_ms; the timeline itself is simulated."""
    plan, heft = classic_plan(topcuoglu_example(), "heft")
    assert plan.predicted.planner_estimate_ms == heft.makespan
    assert plan.predicted.makespan_ms == plan.predicted.tasks["end_ms"].max()


def test_bounded_pool_of_workers():
    """HEFT and CPOP use at most `workers` fixed workers per candidate config."""
    workflow = layered_dag(60, seed=3, ccr=0.2)
    predictor = ProfilesPredictor.from_profiled(workflow)
    for name in ("heft", "cpop"):
        plan = get_planner(f"{name}:workers=2").plan(workflow.dag, predictor, configs=[1024, 2048])
        workers = plan.workers()
        assert len(workers) <= 4
        assert {c.memory_mb for c in workers.values()} <= {1024, 2048}
        assert all(p.worker_id is not None for p in plan.placements.values())
