"""The checks behind `experiments.config.parse_config`: one method per key of a config.

Each check reads one key, converts it and raises `ConfigError` with one line naming the config,
the key and what was expected (the allowed values, or the closest known name).
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from experiments.config import KEYS, MAX_SEEDS, OUTPUT_KEYS, ConfigError
from experiments.errors import UsageError

# -- checks -----------------------------------------------------------------------------------


class Checker:
    """Per-key checks; every failure is one line naming `source` and the key."""

    def __init__(self, source: str, base: Path | None):
        self.source = source
        self.base = base
        self.loaded: dict[str, Any] = {}  # workflow spec -> the workflow it names
        self.trace_set: Any = None  # the trace folder of key 'traces', once read

    def folder_name(self, name: str) -> str:
        """`name` if it is a plain folder name (results go to ``results/NAME``)."""
        bad = (
            not name.strip()
            or name in (".", "..")
            or "/" in name
            or "\\" in name
            or any(not c.isprintable() for c in name)
            or len(name.encode("utf-8", errors="replace")) > 200
        )
        if bad:
            raise self.fail(
                "name",
                f"= {name!r} must be a plain folder name (no '/', '\\', '..' or control "
                "characters, at most 200 bytes): results are written to results/NAME",
            )
        return name

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: key {key!r} {message}")

    def known(self, data: Mapping[str, Any], allowed: Mapping[str, str], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f" (did you mean {prefix}{close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"{self.source}: unknown key {prefix}{key!r}{hint}; "
                    f"allowed: {', '.join(prefix + k for k in allowed)}"
                )

    def string(self, data: Mapping[str, Any], key: str, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, f"must be {KEYS[key]}, got {_describe(value)}")
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, default: int | None, prefix: str = ""
    ) -> int | None:
        value = data.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.fail(prefix + key, f"must be an int, got {_describe(value)}")
        return value

    def str_list(
        self,
        data: Mapping[str, Any],
        key: str,
        default: list[str] | None = None,
        prefix: str = "",
    ) -> list[str]:
        value = data.get(key, default)
        items = value if isinstance(value, list) else [value]
        allowed = (KEYS if not prefix else OUTPUT_KEYS)[key]
        if not items:
            raise self.fail(prefix + key, f"is an empty list; expected {allowed}")
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise self.fail(prefix + key, f"must be {allowed}, got {_describe(item)}")
        return [item.strip() for item in items]

    def choice(self, value: str, key: str, allowed: Iterable[str]) -> str:
        allowed = tuple(allowed)
        if value not in allowed:
            raise self.fail(key, f"= {value!r} is not one of: {', '.join(allowed)}")
        return value

    def path(self, text: str) -> str:
        """A relative path resolved against the config's folder when it exists there."""
        candidate = Path(text)
        if not candidate.is_absolute() and self.base is not None:
            there = self.base / candidate
            if there.exists():
                return str(there)
        return text

    def workflow(self, spec: str) -> str:
        from experiments.user_workflows import relocate
        from experiments.workflows import _is_file_spec, load_workflow

        spec = relocate(spec, self.path)  # flow.py:BUILDER: the file relative to the config
        if _is_file_spec(spec):
            spec = self.path(spec)
        try:
            self.loaded[spec] = load_workflow(spec)
        except UsageError as error:
            raise self.fail("workflows", f"entry {spec!r}: {error}") from None
        return spec

    def replayable(self, spec: str) -> None:
        """With ``profiles = "replay"`` the trace folder must record every task of the
        workflow (same DAG hash, same task ids)."""
        from traces.profiles import ProfileError, make_profiles

        try:
            make_profiles(self.loaded[spec].dag, "replay", traces=self.trace_set)
        except ProfileError as error:
            raise self.fail(
                "profiles", f"= 'replay' for workflow {spec!r}: {error} in the trace folder"
            ) from None

    def model_profiles(self, spec: str) -> None:
        """With ``profiles = "model"`` a run takes each task's runtime and output size from
        the workflow itself: every task needs both (a missing one is never taken as 0), within
        the limits of `dag.limits`."""
        from dag.limits import MAX_BYTES, MAX_DURATION_MS, bytes_limit_text, duration_limit_text
        from dag.wfformat import WfInstance

        workflow = self.loaded[spec]
        wfformat = isinstance(workflow, WfInstance)
        needs = {
            "runtime_ms": (
                "runtime (no entry in workflow.execution.tasks)" if wfformat else "runtime_ms",
                MAX_DURATION_MS,
                duration_limit_text(),
            ),
            "output_bytes": (
                "output size (no outputFiles)" if wfformat else "output_bytes",
                MAX_BYTES,
                bytes_limit_text(),
            ),
        }
        for what, (missing_text, highest, limit_text) in needs.items():
            values = getattr(workflow, what, None) or {}
            missing = [task_id for task_id in workflow.dag if task_id not in values]
            if missing:
                more = f", nor do {len(missing) - 1} other task(s)" if len(missing) > 1 else ""
                raise self.fail(
                    "workflows",
                    f"entry {spec!r}: task {missing[0]!r} has no {missing_text}{more}; "
                    "profiles 'model' need one for every task (or use traces: --traces DIR, "
                    "or key 'traces' with profiles 'predict')",
                )
            for task_id, value in values.items():
                if not math.isfinite(value) or value > highest:
                    raise self.fail(
                        "workflows",
                        f"entry {spec!r}: task {task_id!r}: {what} {value!r} is above {limit_text}",
                    )

    def planners(self, value: Any) -> tuple[str, ...]:
        from planners import PLANNERS, PlannerError, get_planner

        if value == "all":
            return tuple(PLANNERS)
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail("planners", f"is an empty list; expected {KEYS['planners']}")
        specs = []
        for item in items:
            if isinstance(item, Mapping):
                params = dict(item)
                name = params.pop("name", None)
                if not isinstance(name, str):
                    raise self.fail(
                        "planners",
                        f"table {dict(item)!r} needs name = one of {', '.join(PLANNERS)}",
                    )
                try:
                    specs.append(get_planner(name, **params).spec)
                except (PlannerError, TypeError) as error:
                    raise self.fail("planners", f"entry {name!r}: {error}") from None
                continue
            if not isinstance(item, str):
                raise self.fail("planners", f"must be {KEYS['planners']}, got {_describe(item)}")
            if item == "all":
                specs.extend(PLANNERS)
                continue
            try:
                get_planner(item)
            except PlannerError as error:
                raise self.fail("planners", f"entry {item!r}: {error}") from None
            specs.append(item.strip())
        return tuple(specs)

    def platform(
        self, value: Any
    ) -> tuple[tuple[str, ...], tuple[tuple[tuple[str, Any], ...], ...]]:
        from sim.platform import Platform

        overrides: dict[str, list[Any]] = {}
        if isinstance(value, Mapping):
            table = dict(value)
            presets = table.pop("preset", "aws-lambda")
            fields = [f for f in Platform.field_names() if f != "name"]
            for key, item in table.items():
                if key not in fields:
                    close = difflib.get_close_matches(key, fields, n=1)
                    hint = f" (did you mean 'platform.{close[0]}'?)" if close else ""
                    raise ConfigError(
                        f"{self.source}: unknown key 'platform.{key}'{hint}; allowed: "
                        f"platform.preset, {', '.join('platform.' + f for f in fields)}"
                    )
                overrides[key] = item if isinstance(item, list) else [item]
                if not overrides[key]:
                    raise self.fail(f"platform.{key}", "is an empty list")
        else:
            presets = value
        items = presets if isinstance(presets, list) else [presets]
        key = "platform.preset" if isinstance(value, Mapping) else "platform"
        if not items:
            raise self.fail(key, "is an empty list")
        names = []
        for item in items:
            if not isinstance(item, str):
                raise self.fail(key, f"must be a preset name or .toml path, got {_describe(item)}")
            name = self.path(item) if item.endswith(".toml") else item
            try:
                Platform.preset(name)
            except ValueError as error:
                raise self.fail(key, f"= {item!r}: {error}") from None
            names.append(name)
        combos = tuple(
            tuple(zip(overrides, values, strict=True))
            for values in itertools.product(*overrides.values())
        )
        for preset in names:
            for combo in combos:
                try:
                    Platform.preset(preset).with_overrides(**dict(combo))
                except (TypeError, ValueError) as error:
                    bad = combo[0][0] if combo else "platform"
                    raise self.fail(f"platform.{bad}", f"is invalid: {error}") from None
        return tuple(names), combos

    def configs(self, value: Any) -> tuple[tuple[str, ...] | None, ...]:
        from dag.resources import ResourceConfig

        if value is None:
            return (None,)
        if not isinstance(value, list) or not value:
            raise self.fail("configs", f"must be {KEYS['configs']}, got {_describe(value)}")
        sets = value if all(isinstance(v, list) for v in value) else [value]
        out = []
        for items in sets:
            if not items:
                raise self.fail("configs", "holds an empty list of configs")
            parsed = []
            for item in items:
                if isinstance(item, bool) or not isinstance(item, int | str):
                    raise self.fail("configs", f"must be {KEYS['configs']}, got {_describe(item)}")
                try:
                    config = ResourceConfig.parse(str(item))
                except ValueError as error:
                    raise self.fail("configs", f"entry {item!r}: {error}") from None
                parsed.append(config)
            out.append(tuple(_config_text(c) for c in sorted(set(parsed))))
        return tuple(out)

    def traces(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail("traces", f"must be {KEYS['traces']}, got {_describe(value)}")
        if value.startswith("shipped:"):  # a trace set shipped in traces/data
            from traces.shipped import shipped_path

            try:
                value = str(shipped_path(value.removeprefix("shipped:")))
            except ValueError as error:
                raise self.fail("traces", f"= {value!r}: {error}") from None
        path = self.path(value)
        if not Path(path).is_dir():
            raise self.fail("traces", f"= {value!r}: no such trace folder")
        from traces.io import TraceSet, check_limits
        from traces.schema import TraceSchemaError

        try:
            self.trace_set = TraceSet.read(path)
            # The simulator replays and predicts from these durations: bound them up front.
            check_limits(self.trace_set.tasks, str(Path(path) / "tasks.parquet"))
        except (OSError, TraceSchemaError) as error:
            raise self.fail("traces", f"= {value!r}: {error}") from None
        return path

    def seeds(self, value: Any) -> tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 1 <= value <= MAX_SEEDS:
                raise self.fail("seeds", f"= {value} must be {KEYS['seeds']}")
            return tuple(range(value))
        if isinstance(value, list) and len(value) > MAX_SEEDS:
            raise self.fail("seeds", f"lists {len(value)} seeds; at most {MAX_SEEDS}")
        if isinstance(value, list) and value:
            for item in value:
                if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                    raise self.fail(
                        "seeds", f"must be {KEYS['seeds']}, got entry {_describe(item)}"
                    )
            return tuple(value)
        raise self.fail("seeds", f"must be {KEYS['seeds']}, got {_describe(value)}")


def _config_text(config: Any) -> str:
    from dag.resources import ResourceConfig

    if config == ResourceConfig(config.memory_mb):
        return str(config.memory_mb)
    return f"{config.memory_mb}/{config.cpus:g}"


def _describe(value: Any) -> str:
    kind = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "table"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"
