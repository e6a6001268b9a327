"""Experiment configs: a TOML file naming workflows, planners, platforms, profiles and seeds.

Every key is checked before anything runs; a bad one raises `ConfigError` (a `UsageError`) with
one line naming the file, the key and the allowed values. Any sweepable key may be a list: the
experiment is the product of all of them, one *cell* per combination and seed.

    name = "quickstart"
    workflows = ["gemm:n=256,blocks=4", "tree_reduction", "image_pipeline"]
    planners = "all"                 # every registered planner, or a list of planner specs
    seeds = 5                        # 5 seeds (0..4), or an explicit list [1, 7, 42]
    profiles = "model"               # model | replay | predict | sample
    configs = [1024, 2048, 4096]     # candidate resource configs (MB, or "MB/cpus")

    [platform]
    preset = "aws-lambda"            # a preset name or a platform .toml file
    keep_alive_ms = [0, 600000]      # any Platform field overrides the preset; a list sweeps

    [outputs]
    plots = true
    formats = ["png", "svg"]

Profile modes: ``model`` runs on the workflow's own modelled runtimes and sizes (examples,
generated DAGs, WfFormat runtimes) and plans with them; ``replay``, ``predict`` and ``sample``
need ``traces`` (a trace folder) and plan with a predictor (``predictor = "baseline"`` or
``"learned"``) fitted on them, while the run replays recorded values, uses the predictor's
estimates, or samples them per seed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from experiments.errors import UsageError

PROFILE_MODES = ("model", "replay", "predict", "sample")
#: Most replications (``seeds``) an experiment may ask for: a larger count is a typo.
MAX_SEEDS = 10_000
PREDICTORS = ("baseline", "learned")
PLOT_FORMATS = ("png", "svg")

#: Top-level keys: key -> (what it holds, whether a list sweeps it).
KEYS: Mapping[str, str] = {
    "name": "a string naming the experiment",
    "description": "a string",
    "workflows": "a workflow spec or a list of them (example, layered:n=..., WfFormat .json, "
    "flow.py:BUILDER or package.module:BUILDER)",
    "planners": '"all", a planner spec or a list of planner specs',
    "platform": "a preset name / .toml path, a list of them, or a table",
    "configs": "a list of resource configs (MB ints or 'MB/cpus'), or a list of such lists",
    "profiles": f"one of {', '.join(PROFILE_MODES)} or a list of them",
    "traces": "a trace folder (Parquet TraceSet) path, or shipped:NAME (traces/data)",
    "predictor": f"one of {', '.join(PREDICTORS)} or a list of them",
    "seeds": f"a replication count (int 1..{MAX_SEEDS}) or a list of int seeds >= 0",
    "plan_seed": "an int >= 0: seed of the planners' own simulations",
    "outputs": "a table with plots, formats, gantt_seed",
}
OUTPUT_KEYS: Mapping[str, str] = {
    "plots": "true or false",
    "formats": f"a list drawn from {', '.join(PLOT_FORMATS)}",
    "gantt_seed": "an int: the seed whose run each Gantt chart shows (default: the first)",
}


def inputs_digest(traces: str | None, platform: str) -> str:
    """A digest of the files a cell reads: its trace folder's tables and its platform preset's
    TOML. It is part of the cell's key, so a results folder recomputes the cells whose inputs
    changed (re-recorded traces, a re-calibrated preset) instead of reusing stale ones."""
    from sim.platform import preset_file

    digest = hashlib.sha1()
    if traces is not None:
        for table in sorted(Path(traces).glob("*.parquet")):
            digest.update(table.name.encode())
            digest.update(table.read_bytes())
    source = preset_file(platform)
    if source is not None:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def _source_digest(spec: str) -> str:
    """`experiments.user_workflows.source_digest` of a workflow spec (user code only)."""
    from experiments.user_workflows import source_digest

    return source_digest(spec)


class ConfigError(UsageError):
    """An experiment config is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Cell:
    """One run of an experiment: a workflow, a planner, a platform and a seed (plus profiles).

    All fields are plain values, so a cell pickles to any process or Dask worker and its
    `key` (JSON) names it stably: `cell_id` is a hash of the key.
    """

    workflow: str
    planner: str
    platform: str
    overrides: tuple[tuple[str, Any], ...] = ()
    configs: tuple[str, ...] | None = None
    profiles: str = "model"
    traces: str | None = None
    predictor: str = "baseline"
    seed: int = 0
    plan_seed: int = 0
    backend: str = "sim"
    inputs: str = ""

    @property
    def key(self) -> dict[str, Any]:
        """The cell as a JSON-ready dict (``backend`` only when the run is real, ``inputs``
        when known: `inputs_digest` of the files it reads)."""
        data = asdict(self)
        data["overrides"] = {k: _jsonable(v) for k, v in self.overrides}
        data["configs"] = None if self.configs is None else list(self.configs)
        if self.backend == "sim":
            del data["backend"]
        if not self.inputs:
            del data["inputs"]
        return data

    @property
    def cell_id(self) -> str:
        """Stable id: a hash of `key` (same cell, same id, in any process)."""
        text = json.dumps(self.key, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def platform_label(self) -> str:
        """Preset plus overrides, e.g. ``aws-lambda`` or ``aws-lambda keep_alive_ms=0``."""
        extra = " ".join(f"{k}={_jsonable(v)}" for k, v in self.overrides)
        return f"{self.platform} {extra}".strip()


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: its sweep values and output options.

    Attributes
    ----------
    name : str
    workflows, planners, platforms, profiles, predictors : tuple of str
        Sweep values (workflow specs, planner specs, platform presets, profile modes).
    overrides : tuple of tuples
        One tuple of (platform field, value) pairs per override combination.
    configs : tuple
        One entry per candidate-config set (a tuple of config strings, or None for defaults).
    seeds : tuple of int
    backend : str
        ``sim`` (simulate each cell) or ``local`` / ``lambda`` (run it for real; see
        `experiments.sweep.compute_cell`).
    traces : str or None
    plan_seed : int
    plots : bool
    formats : tuple of str
    gantt_seed : int or None
    source : str
        Where the config came from (file path or ``<dict>``).
    inputs : tuple or None
        ``(traces, platform, digest)`` per pair the cells read: `inputs_digest` taken when the
        config was loaded and kept in ``experiment.json``, so a results folder names its cells
        as they ran even after the files change; ``()`` takes them from the files when the
        cells are listed; None (a folder from before digests) leaves them out of cell ids.
    sources : tuple
        ``(workflow spec, digest)`` of each workflow from user code (`source_digest` of its
        file), kept like `inputs`: editing the code makes new cells; a spec not listed takes
        its digest from the file when the cells are listed.
    """

    name: str
    workflows: tuple[str, ...]
    planners: tuple[str, ...]
    platforms: tuple[str, ...] = ("aws-lambda",)
    overrides: tuple[tuple[tuple[str, Any], ...], ...] = ((),)
    configs: tuple[tuple[str, ...] | None, ...] = (None,)
    profiles: tuple[str, ...] = ("model",)
    predictors: tuple[str, ...] = ("baseline",)
    seeds: tuple[int, ...] = (0,)
    backend: str = "sim"
    traces: str | None = None
    plan_seed: int = 0
    description: str = ""
    plots: bool = True
    formats: tuple[str, ...] = PLOT_FORMATS
    gantt_seed: int | None = None
    source: str = "<dict>"
    inputs: tuple[tuple[str | None, str, str], ...] | None = ()
    sources: tuple[tuple[str, str], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def cells(self) -> list[Cell]:
        """Every cell of the sweep, in a stable order (workflow, planner, platform, ..., seed)."""
        if self.inputs is None:
            digests: dict[tuple[str | None, str], str] = {}
        else:
            digests = {(traces, preset): digest for traces, preset, digest in self.inputs}
        sources = dict(self.sources or ())
        out = []
        for wf, pl, preset, ov, cf, prof, pred, seed in itertools.product(
            self.workflows,
            self.planners,
            self.platforms,
            self.overrides,
            self.configs,
            self.profiles,
            self.predictors if any(p != "model" for p in self.profiles) else ("baseline",),
            self.seeds,
        ):
            traces = self._traces_of(prof)
            if (traces, preset) not in digests:
                digests[traces, preset] = (
                    "" if self.inputs is None else inputs_digest(traces, preset)
                )
            if wf not in sources:
                sources[wf] = "" if self.inputs is None else _source_digest(wf)
            inputs = "+".join(filter(None, (digests[traces, preset], sources[wf])))
            out.append(
                Cell(
                    workflow=wf,
                    planner=pl,
                    platform=preset,
                    overrides=ov,
                    configs=cf,
                    profiles=prof,
                    traces=traces,
                    predictor=pred if prof != "model" else "baseline",
                    seed=seed,
                    plan_seed=self.plan_seed,
                    backend=self.backend,
                    inputs=inputs,
                )
            )
        seen: dict[str, Cell] = {}
        for cell in out:
            seen.setdefault(cell.cell_id, cell)
        return list(seen.values())

    @property
    def gantt(self) -> int:
        """Seed of the run each Gantt chart shows."""
        return self.seeds[0] if self.gantt_seed is None else self.gantt_seed

    def to_json(self) -> str:
        """The experiment as JSON (written next to its results)."""
        data = {k: v for k, v in asdict(self).items() if k != "raw"}
        return json.dumps(data, indent=1, default=_jsonable)

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        """Inverse of `to_json`.

        Raises
        ------
        ValueError, KeyError, TypeError
            If `text` is not JSON, or a key is missing, unknown or of the wrong type (a
            damaged ``experiment.json``); the message names the key.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        data["overrides"] = tuple(tuple(tuple(p) for p in combo) for combo in data["overrides"])
        data["configs"] = tuple(None if c is None else tuple(c) for c in data["configs"])
        for key in ("workflows", "planners", "platforms", "profiles", "predictors", "seeds"):
            data[key] = tuple(data[key])
        data["formats"] = tuple(data["formats"])
        inputs = data.get("inputs")
        data["inputs"] = None if inputs is None else tuple(tuple(i) for i in inputs)
        data["sources"] = tuple(tuple(s) for s in data.get("sources", ()))
        experiment = cls(**data)
        experiment._check_stored()
        return experiment

    def _check_stored(self) -> None:
        """The types and choices `parse_config` guarantees, re-checked on an experiment read
        back from disk (ValueError naming the key)."""
        allowed = {"profiles": PROFILE_MODES, "predictors": PREDICTORS, "formats": PLOT_FORMATS}
        for key in ("workflows", "planners", "platforms", "profiles", "predictors", "formats"):
            values = getattr(self, key)
            if not all(isinstance(v, str) for v in values) or (key != "formats" and not values):
                raise ValueError(f"key {key!r} must be a non-empty list of strings")
            if key in allowed and not set(values) <= set(allowed[key]):
                raise ValueError(f"key {key!r} holds a value not in {', '.join(allowed[key])}")
        integers = (*self.seeds, self.plan_seed, 0 if self.gantt_seed is None else self.gantt_seed)
        if not self.seeds or any(isinstance(v, bool) or not isinstance(v, int) for v in integers):
            raise ValueError("keys 'seeds', 'plan_seed' and 'gantt_seed' must be ints")
        if min(*self.seeds, self.plan_seed) < 0:
            raise ValueError("keys 'seeds' and 'plan_seed' must be >= 0")
        texts = {"name": self.name, "backend": self.backend, "description": self.description}
        for key, value in texts.items():
            if not isinstance(value, str):
                raise ValueError(f"key {key!r} must be a string")
        if not isinstance(self.plots, bool) or not isinstance(self.traces, str | None):
            raise ValueError("key 'plots' must be true or false, key 'traces' a string or null")

    def with_inputs(self) -> Experiment:
        """This experiment with `inputs` taken from the files now."""
        pairs = {
            (self._traces_of(prof), preset) for preset in self.platforms for prof in self.profiles
        }
        inputs = tuple((t, p, inputs_digest(t, p)) for t, p in sorted(pairs, key=str))
        sources = tuple((wf, _source_digest(wf)) for wf in self.workflows)
        return replace(self, inputs=inputs, sources=tuple((w, d) for w, d in sources if d))

    def _traces_of(self, profiles: str) -> str | None:
        """The trace folder a cell with this profile mode reads (none for modelled profiles)."""
        return self.traces if profiles != "model" else None


# -- loading ----------------------------------------------------------------------------------


def load_config(path: str | Path) -> Experiment:
    """Read and validate an experiment TOML file.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, or a key is unknown, of the wrong type or names
        something that does not exist (planner, workflow file, preset, trace folder); the
        message names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment config {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return parse_config(data, source=str(path), base=path.parent, default_name=path.stem)


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<dict>",
    base: Path | None = None,
    default_name: str = "experiment",
) -> Experiment:
    """Validate a parsed config mapping (see the module docstring for the keys).

    Parameters
    ----------
    data : mapping
        As read from TOML.
    source : str
        Named in error messages.
    base : Path, optional
        Folder that relative file paths are resolved against first (the config's folder).

    Raises
    ------
    ConfigError
        As `load_config`.
    """
    from experiments.config_checks import Checker  # it names this module's keys and errors

    check = Checker(source, base)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: an experiment config must be a table")
    check.known(data, KEYS, "")
    if "workflows" not in data:
        raise ConfigError(f"{source}: missing key 'workflows' ({KEYS['workflows']})")
    name = check.folder_name(check.string(data, "name", default_name))
    description = check.string(data, "description", "")
    workflows = tuple(check.workflow(w) for w in check.str_list(data, "workflows"))
    planners = check.planners(data.get("planners", "all"))
    platforms, overrides = check.platform(data.get("platform", "aws-lambda"))
    configs = check.configs(data.get("configs"))
    profiles = tuple(
        check.choice(p, "profiles", PROFILE_MODES)
        for p in check.str_list(data, "profiles", ["model"])
    )
    predictors = tuple(
        check.choice(p, "predictor", PREDICTORS)
        for p in check.str_list(data, "predictor", ["baseline"])
    )
    traces = None
    if "traces" in data:
        traces = check.traces(data["traces"])
    needs = [p for p in profiles if p != "model"]
    if needs and traces is None:
        raise ConfigError(
            f"{source}: key 'profiles' = {needs[0]!r} needs key 'traces' (a trace folder)"
        )
    if "model" in profiles:
        for spec in workflows:
            check.model_profiles(spec)
    if "replay" in profiles:
        for spec in workflows:
            check.replayable(spec)
    seeds = check.seeds(data.get("seeds", 1))
    plan_seed = check.integer(data, "plan_seed", 0)
    if plan_seed < 0:
        raise check.fail("plan_seed", f"= {plan_seed} must be >= 0")
    outputs = data.get("outputs", {})
    if not isinstance(outputs, Mapping):
        raise ConfigError(f"{source}: key 'outputs' must be a table ({KEYS['outputs']})")
    check.known(outputs, OUTPUT_KEYS, "outputs.")
    plots = outputs.get("plots", True)
    if not isinstance(plots, bool):
        raise ConfigError(f"{source}: key 'outputs.plots' must be true or false, got {plots!r}")
    formats = tuple(
        check.choice(f, "outputs.formats", PLOT_FORMATS)
        for f in check.str_list(outputs, "formats", list(PLOT_FORMATS), prefix="outputs.")
    )
    gantt_seed = check.integer(outputs, "gantt_seed", None, prefix="outputs.")
    return Experiment(
        name=name,
        description=description,
        workflows=_unique(workflows),
        planners=_unique(planners),
        platforms=_unique(platforms),
        overrides=overrides,
        configs=configs,
        profiles=_unique(profiles),
        predictors=_unique(predictors),
        seeds=_unique(seeds),
        traces=traces,
        plan_seed=plan_seed,
        plots=plots,
        formats=_unique(formats),
        gantt_seed=gantt_seed,
        source=source,
        raw=dict(data),
    ).with_inputs()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, tuple):
        return list(value)
    return value


def _unique(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))
