"""The `faasdag` command line: one subcommand per researcher task.

Bad input exits with status 2 and one clear line on stderr naming the culprit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from experiments.quickstart import run_quickstart

    print(run_quickstart())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faasdag",
        description="Simulate, plan and run serverless DAG workflows.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quick = commands.add_parser("quickstart", help="summarise the example workflows")
    quick.set_defaults(handler=_cmd_quickstart)

    dag_cmd = commands.add_parser("dag", help="inspect workflows")
    dag_sub = dag_cmd.add_subparsers(dest="dag_command", required=True, metavar="DAG_COMMAND")
    show = dag_sub.add_parser(
        "show",
        help="summary of a WfFormat file or an example workflow (e.g. gemm:n=2000,blocks=4)",
    )
    show.add_argument("workflow", metavar="FILE_OR_WORKFLOW")
    show.set_defaults(handler=_cmd_dag_show)
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
