"""What a fidelity validation runs, and the checks of it: workflows x planners, candidate
memory sizes, repetitions per cell, the calibrated preset.

`load_config` reads ``"default"`` (`DEFAULT_CONFIG`), a TOML file or a mapping into a
`FidelityConfig`; whatever it rejects is a `UsageError` of one line naming the culprit.
`PRESET` is the shipped calibrated preset, which ``python -m experiments.fidelity record``
writes again with the shipped traces (`SHIPPED_REPETITIONS` rounds).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.errors import UsageError

PRESET = Path(__file__).resolve().parents[2] / "sim" / "presets" / "local.toml"
#: The default validation config (``faasdag validate default``).
DEFAULT_CONFIG: dict[str, Any] = {
    "name": "local-fidelity",
    "workflows": [
        "tree_reduction:n=8,length=200000",
        "gemm:n=384,blocks=3",
        "image_pipeline:size=512,tiles=3",
    ],
    "planners": ["uniform", "wukong", "heft", "cpop", "dask", "non-uniform"],
    "configs": [1024, 2048],
    # Planners of one cluster (heft, cpop, dask; uniform, wukong, non-uniform) run within a few
    # percent of each other: means of five runs ranked them by noise, and with ten an exact
    # predictor of every cell's expected makespan still reached tau 0.8 in only ~3 of 4
    # validations (docs/fidelity.md, "Twenty repetitions").
    "repetitions": 20,
    "preset": "local",
}
#: Recorded rounds of the shipped trace sets (`traces/data`, ``record``): committed data, and
#: the offline fidelity test simulates every run of them.
SHIPPED_REPETITIONS = 5


CONFIG_KEYS = {
    "name": str,
    "description": str,
    "workflows": list,
    "planners": list,
    "configs": list,
    "repetitions": int,
    "preset": str,
    "traces": str,
}


@dataclass(frozen=True)
class FidelityConfig:
    """What a validation runs: workflows x planners, candidate configs, repetitions per cell.

    Attributes
    ----------
    workflows : tuple of str
        Example specs (``gemm:n=384,blocks=3``).
    planners : tuple of str
        Planner specs.
    configs : tuple of int
        Candidate memory sizes, MB (one emulator function each).
    repetitions : int
        Measured real runs per cell.
    preset : str
        Platform preset name or TOML path (the calibrated one).
    traces : str or None
        Validate recorded traces from this folder instead of running (no emulator needed).
    """

    name: str = "local-fidelity"
    workflows: tuple[str, ...] = tuple(DEFAULT_CONFIG["workflows"])
    planners: tuple[str, ...] = tuple(DEFAULT_CONFIG["planners"])
    configs: tuple[int, ...] = tuple(DEFAULT_CONFIG["configs"])
    repetitions: int = DEFAULT_CONFIG["repetitions"]
    preset: str = "local"
    traces: str | None = None
    description: str = ""


def load_config(source: str | dict[str, Any]) -> FidelityConfig:
    """A `FidelityConfig` from ``"default"``, a TOML file path or a mapping.

    Raises
    ------
    UsageError
        For a missing or malformed file, an unknown key, a bad value, an unknown workflow or
        planner; one line naming the culprit.
    """
    from dag.examples import build_example
    from planners import get_planner

    label = "default" if isinstance(source, str) and source == "default" else str(source)
    if isinstance(source, dict):
        data = dict(source)
    elif source == "default":
        data = dict(DEFAULT_CONFIG)
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"validate: config {source!r} is not a file (or say 'default')")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise UsageError(f"validate: {source}: not valid TOML: {err}") from None
    for key, value in data.items():
        kind = CONFIG_KEYS.get(key)
        if kind is None:
            raise UsageError(
                f"validate: {label}: unknown key {key!r}; known: {', '.join(CONFIG_KEYS)}"
            )
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UsageError(f"validate: {label}: {key} must be a {kind.__name__}, got {value!r}")
    for spec in data.get("workflows", ()):
        try:
            build_example(spec)
        except ValueError as err:
            raise UsageError(f"validate: {label}: workflows: {err}") from None
    for spec in data.get("planners", ()):
        try:
            get_planner(spec)
        except ValueError as err:
            raise UsageError(f"validate: {label}: planners: {err}") from None
    configs = data.get("configs", DEFAULT_CONFIG["configs"])
    if not configs or not all(isinstance(c, int) and 128 <= c <= 10240 for c in configs):
        raise UsageError(f"validate: {label}: configs must be MB ints in [128, 10240]")
    if data.get("repetitions", DEFAULT_CONFIG["repetitions"]) < 3:
        raise UsageError(f"validate: {label}: repetitions must be >= 3 (leave-one-out needs 2)")
    if len(data.get("planners", DEFAULT_CONFIG["planners"])) < 2:
        raise UsageError(f"validate: {label}: planners needs at least two (for rankings)")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return FidelityConfig(**fields)
