"""Plan shapes that runtime tests run every example under."""

from dag import DAG, Placement, Plan, ResourceConfig

CFG = ResourceConfig(1024)


def plans_for(dag: DAG, config: ResourceConfig = CFG) -> dict[str, Plan]:
    """One fixed worker, every task flexible, and levels split over fixed workers."""
    levels = dag.levels()
    return {
        "single": Plan({t: Placement("w", config) for t in dag}),
        "flexible": Plan({t: Placement(None, config) for t in dag}),
        "mixed": Plan(
            {
                t: Placement(None if levels[t] % 3 == 2 else f"w{i % 3}", config)
                for i, t in enumerate(dag)
            }
        ),
    }
