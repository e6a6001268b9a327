"""Planner algorithms (uniform, non-uniform, WUKONG, HEFT, CPOP, Dask-style, cost/deadline) and
what-if evaluation of a plan by simulation."""
