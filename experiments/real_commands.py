"""The real-run subcommands: `faasdag execute` (an experiment run for real, with the same
result files as `faasdag run`) and `faasdag cleanup` (what real runs left in Redis)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from experiments.commands import (
    CellsFailed,
    check_out,
    print_outputs,
    report_failed_cells,
    run_and_report,
)
from experiments.errors import UsageError


def _cmd_execute(args: argparse.Namespace) -> int:
    """Run an experiment config (or one workflow) for real; write what `run` writes."""
    import dataclasses

    from experiments.config import load_config, parse_config
    from experiments.sweep import LAMBDA_ENDPOINT_ENV, REDIS_URL_ENV

    if args.target.endswith(".toml"):
        experiment = load_config(args.target)
    else:
        planners = "all" if args.planners == "all" else args.planners.split(",")
        data: dict[str, Any] = {"workflows": args.target, "planners": planners}
        data["seeds"] = args.seeds
        if args.configs:
            data["configs"] = [c.strip() for c in args.configs.split(",") if c.strip()]
        experiment = parse_config(data, source="faasdag execute")
    experiment = dataclasses.replace(experiment, backend=args.backend)
    _note_unchecked(experiment.workflows)
    out = check_out(
        Path(args.out) if args.out else Path("results") / f"{experiment.name}-{args.backend}"
    )
    with contextlib.ExitStack() as stack:
        redis_url = args.redis_url or os.environ.get(REDIS_URL_ENV)
        if not redis_url:
            from runtime.local_redis import local_redis

            try:
                redis_url = stack.enter_context(local_redis()).url
            except RuntimeError as error:
                raise UsageError(str(error)) from None
        _check_redis(redis_url)
        stack.enter_context(_environment(REDIS_URL_ENV, redis_url))
        if args.endpoint_url:
            stack.enter_context(_environment(LAMBDA_ENDPOINT_ENV, args.endpoint_url))
        if args.dashboard:
            from experiments.dashboard_commands import start_dashboard
            from experiments.sweep import live_dashboard

            dashboard = start_dashboard(args.dashboard_host, args.dashboard_port)
            stack.callback(dashboard.stop)
            stack.enter_context(live_dashboard(dashboard))
        try:
            # Real runs one at a time: concurrent cells would compete for the same machine.
            text = run_and_report(experiment, out, jobs=1, plots=not args.no_plots)
        except CellsFailed as error:
            return report_failed_cells(error, out)
    print(text)
    print_outputs(out)
    return 0


def _note_unchecked(specs: Any) -> None:
    """One stderr line per workflow from the user's code without a check function."""
    from experiments.user_workflows import is_user_spec, load_user_workflow, unchecked_note

    for spec in filter(is_user_spec, specs):
        note = unchecked_note(load_user_workflow(spec))  # measured once: cached since the check
        if note is not None:
            print(f"faasdag: note: {note}", file=sys.stderr)


def _check_redis(url: str) -> None:
    """Refuse a Redis that cannot be reached, before any cell runs (one line, no password).

    Raises
    ------
    UsageError
        If a PING to `url` fails.
    """
    import redis

    from runtime.client import redacted
    from runtime.store import connect

    try:
        connect(url, retries=1, socket_timeout_s=5.0).ping()
    except (redis.RedisError, ValueError) as err:
        raise UsageError(f"Redis at {redacted(url)} cannot be reached: {err}") from None


@contextlib.contextmanager
def _environment(name: str, value: str):
    import os

    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _parse_age_s(text: str) -> float:
    """Seconds of an age such as ``90s``, ``30m``, ``1h`` or ``2d``.

    Raises
    ------
    UsageError
        If `text` is not a non-negative number with one of those units.
    """
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    number, unit = text[:-1], text[-1:]
    try:
        seconds = float(number) * units[unit]
    except (KeyError, ValueError):
        raise UsageError(
            f"--older-than {text!r}: expected a number and a unit (s, m, h, d), e.g. 1h"
        ) from None
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"--older-than {text!r} must be a finite age >= 0")
    return seconds


def _cmd_cleanup(args: argparse.Namespace) -> int:
    """Delete what real runs left in Redis: one run, or every run older than an age."""
    import time

    import redis

    from runtime.client import redacted
    from runtime.redis_driver import REDIS_URL_ENV
    from runtime.store import cleanup, connect, list_runs

    if (args.run_id is None) == (args.older_than is None):
        raise UsageError("cleanup: give a RUN_ID or --older-than AGE (one of them)")
    url = args.redis_url or os.environ.get(REDIS_URL_ENV)
    if not url:
        raise UsageError(f"cleanup: no Redis given: set {REDIS_URL_ENV} or pass --redis-url")
    age_s = None if args.older_than is None else _parse_age_s(args.older_than)
    try:
        client = connect(url, retries=1)
        runs = list_runs(client)
        if args.run_id is not None:
            if args.run_id not in runs:
                raise UsageError(f"cleanup: no keys of run {args.run_id!r} in this Redis")
            chosen = [args.run_id]
        else:
            cutoff = time.time() - age_s
            # A run without its marker can no longer be written to: whatever is left is dead.
            chosen = sorted(r for r, start in runs.items() if start is None or start < cutoff)
        deleted = 0
        for run_id in chosen:
            if not args.dry_run:
                client.set(f"faasdag:{run_id}:_cancel", b"1", ex=3600)
                deleted += cleanup(client, run_id)
            print(run_id)
    except redis.RedisError as err:
        raise UsageError(f"cleanup: Redis at {redacted(url)}: {err}") from None
    verb = "would remove" if args.dry_run else f"removed {deleted} keys of"
    print(f"{verb} {len(chosen)} run(s)", file=sys.stderr)
    return 0


def add_execute(commands: Any) -> None:
    """The real-run subcommands: `execute` and `cleanup`."""
    cleanup = commands.add_parser(
        "cleanup",
        help="delete what real runs left in Redis (a run id, or runs older than an age)",
        description="Cancel and delete the keys of one real run, or of every run started "
        "longer ago than --older-than (and of dead runs whose marker is gone). Every run key "
        "also expires by itself (24 h by default).",
    )
    cleanup.add_argument("run_id", nargs="?", metavar="RUN_ID")
    cleanup.add_argument("--older-than", metavar="AGE", help="e.g. 30m, 1h, 2d")
    cleanup.add_argument("--redis-url", default=None, help="default: $FAASDAG_REDIS_URL")
    cleanup.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    cleanup.set_defaults(handler=_cmd_cleanup)
    execute = commands.add_parser(
        "execute",
        help="run an experiment (or one example workflow) for real: Redis + threads or Lambda",
        description="Plan every cell like `faasdag run`, then run it for real with the same "
        "worker logic, check its results against the direct computation, and write the same "
        "result files (runs/tasks/workers parquet, summary.md, plots).",
    )
    execute.add_argument("target", metavar="CONFIG_OR_WORKFLOW",
                         help="an experiment .toml, or a workflow: an example such as "
                         "gemm:n=256, or your code: flow.py:BUILDER[:k=v,...]")  # fmt: skip
    execute.add_argument("--backend", choices=["local", "lambda"], default="local")
    execute.add_argument("--planners", default="wukong", help="for a workflow: a,b,c (or all)")
    execute.add_argument("--seeds", type=int, default=1, help="for a workflow: runs per planner")
    execute.add_argument("--configs", default=None, help="for a workflow: MB list, e.g. 1024")
    execute.add_argument("--redis-url", default=None,
                         help="the store (default: $FAASDAG_REDIS_URL, which keeps a password "
                         "out of the process list; else a private redis-server)")  # fmt: skip
    execute.add_argument("--endpoint-url", default=None, help="Lambda API (the emulator)")
    execute.add_argument("--out", default=None, help="results folder")
    execute.add_argument("--no-plots", action="store_true")
    execute.add_argument("--dashboard", action="store_true",
                         help="serve the live dashboard and follow each run as it happens "
                         "(replay it later with: faasdag dashboard OUT)")  # fmt: skip
    from experiments.dashboard_commands import add_server_options

    add_server_options(execute, prefix="dashboard-")
    execute.set_defaults(handler=_cmd_execute)
