"""The `faasdag` command line: one subcommand per researcher task.

Bad input exits with status 2 and one clear line on stderr naming the culprit.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faasdag",
        description="Simulate, plan and run serverless DAG workflows.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from experiments.commands import add_commands, add_execute, configure_quickstart

    quick = commands.add_parser(
        "quickstart", help="compare every planner on three example workflows (make run)"
    )
    configure_quickstart(quick)
    add_commands(commands)
    add_execute(commands)
    from experiments.fidelity import register as register_fidelity

    register_fidelity(commands)

    dag_cmd = commands.add_parser("dag", help="inspect workflows")
    dag_sub = dag_cmd.add_subparsers(dest="dag_command", required=True, metavar="DAG_COMMAND")
    show = dag_sub.add_parser(
        "show",
        help="summary of a WfFormat file or an example workflow (e.g. gemm:n=2000,blocks=4)",
    )
    show.add_argument("workflow", metavar="FILE_OR_WORKFLOW")
    show.set_defaults(handler=_cmd_dag_show)
    _add_runtime_commands(commands)
    return parser


def _add_runtime_commands(commands: argparse._SubParsersAction) -> None:
    emu = commands.add_parser(
        "lambda-local", help="serve a local AWS Lambda emulator (Invoke + Runtime APIs)"
    )
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=9001)
    emu.add_argument(
        "--memory", type=int, action="append", metavar="MB",
        help="memory size of a function <prefix>-<MB> (repeatable; default 1024 and 1769)",
    )  # fmt: skip
    emu.add_argument("--prefix", default="faasdag")
    emu.add_argument("--max-concurrency", type=int, default=32)
    emu.add_argument("--keep-alive-s", type=float, default=300.0)
    emu.add_argument("--timeout-s", type=float, default=900.0, help="function timeout")
    emu.add_argument("--log-dir", default=None, help="worker stdout/stderr, one file each")
    emu.add_argument("--runtime-client", choices=["awslambdaric", "builtin"], default=None)
    emu.set_defaults(handler=_cmd_lambda_local)


def _cmd_lambda_local(args: argparse.Namespace) -> int:
    import logging
    import signal

    from runtime.lambda_local import LambdaEmulator

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        emulator = LambdaEmulator(
            args.host,
            args.port,
            max_concurrency=args.max_concurrency,
            keep_alive_s=args.keep_alive_s,
            runtime_client=args.runtime_client,
            log_dir=args.log_dir,
        )
    except (OSError, ValueError) as err:
        raise UsageError(f"lambda-local: {err}") from None
    for memory_mb in args.memory or [1024, 1769]:
        emulator.add_function(f"{args.prefix}-{memory_mb}", memory_mb, timeout_s=args.timeout_s)
        print(f"function {args.prefix}-{memory_mb} ({memory_mb} MB)")
    print(f"Lambda API on {emulator.endpoint_url} (Ctrl-C stops)", flush=True)
    emulator.serve_forever()
    return 0


def _cmd_dag_show(args: argparse.Namespace) -> int:
    from experiments.workflows import load_workflow

    loaded = load_workflow(args.workflow)
    for key, value in loaded.summary().items():
        print(f"{key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"faasdag: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `faasdag ... | head`: the reader left; that is not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
