"""`faasdag dashboard`: serve the dashboard of a results folder (replay) or of a real run in
Redis (live: attach to a run in progress, or just finished and kept); and the ``--dashboard``
option of `faasdag execute`, which follows each real run as it happens.

Bad input is one line and exit status 2: a folder without trace tables, an unknown run id, a
Redis that cannot be reached, a port in use.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from experiments.cli import UsageError


def _dag_of(workflow: str) -> Any:
    """The DAG of a workflow named in a trace table, for the DAG view (None if unknown: the
    user's own code is not imported, nor measured, just to draw its edges)."""
    from experiments.user_workflows import is_user_spec
    from experiments.workflows import load_workflow

    if not workflow or is_user_spec(workflow):
        return None
    return load_workflow(workflow).dag


def start_dashboard(host: str, port: int, **options: Any) -> Any:
    """A `dashboard.Dashboard` on `host`:`port`, its URL printed.

    Raises
    ------
    UsageError
        If the port is in use or the address cannot be bound.
    """
    from dashboard.server import Dashboard, DashboardError

    try:
        dashboard = Dashboard(host, port, **options)
    except DashboardError as err:
        raise UsageError(str(err)) from None
    print(f"dashboard at {dashboard.url} (Ctrl-C stops)", flush=True)
    return dashboard


def _replay(args: argparse.Namespace) -> Any:
    from dashboard.replay import NotATraceFolder, Replay, load_traces

    try:
        traces = load_traces(Path(args.results_dir))
    except NotATraceFolder as err:
        raise UsageError(f"dashboard: {err}") from None
    replay = Replay(traces, _dag_of)
    if args.run is not None and args.run not in replay.labels():
        raise UsageError(f"dashboard: no run {args.run!r} in {args.results_dir!r}")
    return start_dashboard(args.host, args.port, replay=replay, run_id=args.run)


def _attach(args: argparse.Namespace) -> Any:
    import redis

    from runtime.client import redacted
    from runtime.live_source import StreamSource, UnknownRun
    from runtime.redis_driver import REDIS_URL_ENV
    from runtime.store import connect

    url = args.redis_url or os.environ.get(REDIS_URL_ENV)
    if not url:
        raise UsageError(f"dashboard: no Redis given: set {REDIS_URL_ENV} or pass --redis-url")
    try:
        source = StreamSource(connect(url, retries=1, socket_timeout_s=5.0), args.run)
        source.check()
    except UnknownRun as err:
        raise UsageError(f"dashboard: {err}") from None
    except (redis.RedisError, ValueError) as err:
        raise UsageError(f"dashboard: Redis at {redacted(url)} cannot be reached: {err}") from None
    dashboard = start_dashboard(args.host, args.port)
    dashboard.follow(source)
    return dashboard


def _cmd_dashboard(args: argparse.Namespace) -> int:
    if args.results_dir is None and args.run is None:
        raise UsageError("dashboard: give a RESULTS_DIR (replay) or --run RUN_ID (a live run)")
    dashboard = _replay(args) if args.results_dir is not None else _attach(args)
    try:
        dashboard.wait()
    finally:
        dashboard.stop()
    return 0


def add_dashboard(commands: Any) -> None:
    """The `dashboard` subcommand."""
    cmd = commands.add_parser(
        "dashboard",
        help="serve the dashboard of a results folder (replay) or of a real run (--run, live)",
        description="Open the printed URL in a browser. A RESULTS_DIR (or any trace folder) "
        "is replayed with a time slider; --run RUN_ID with --redis-url follows a real run in "
        "Redis from its first event (a finished run only while its keys are kept).",
    )
    cmd.add_argument("results_dir", nargs="?", metavar="RESULTS_DIR")
    cmd.add_argument("--run", default=None, metavar="RUN_ID",
                     help="the run to show (live: required; replay: the first one shown)")  # fmt: skip
    cmd.add_argument("--redis-url", default=None, help="default: $FAASDAG_REDIS_URL")
    add_server_options(cmd)
    cmd.set_defaults(handler=_cmd_dashboard)


def add_server_options(cmd: Any, prefix: str = "") -> None:
    """``--host`` and ``--port`` (with `prefix`: ``--dashboard-host``, ``--dashboard-port``)."""
    from dashboard import DEFAULT_HOST, DEFAULT_PORT

    cmd.add_argument(f"--{prefix}host", default=DEFAULT_HOST,
                     help=f"address the dashboard binds (default {DEFAULT_HOST})")  # fmt: skip
    cmd.add_argument(f"--{prefix}port", type=int, default=DEFAULT_PORT,
                     help=f"its port (default {DEFAULT_PORT}; 0: any free one)")  # fmt: skip
