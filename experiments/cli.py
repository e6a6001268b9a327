"""The `faasdag` command line: one subcommand per researcher task.

Bad input exits with status 2 and one clear line on stderr naming the culprit. SIGTERM and
SIGINT (Ctrl-C) stop a command cleanly: the `with` and `finally` blocks on the way out stop
what it started (a private redis-server, worker processes) and remove its temporary folders,
then one line goes to stderr and the exit status is 128 + the signal number (143, 130).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from experiments.errors import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faasdag",
        description="Simulate, plan and run serverless DAG workflows.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from experiments.commands import add_commands, configure_quickstart
    from experiments.real_commands import add_execute

    quick = commands.add_parser(
        "quickstart", help="compare every planner on three example workflows (make run)"
    )
    configure_quickstart(quick)
    add_commands(commands)
    add_execute(commands)
    from experiments.deploy_commands import add_deploy

    add_deploy(commands)
    from experiments.dashboard_commands import add_dashboard

    add_dashboard(commands)
    from experiments.fidelity import register as register_fidelity

    register_fidelity(commands)

    dag_cmd = commands.add_parser("dag", help="inspect workflows")
    dag_sub = dag_cmd.add_subparsers(dest="dag_command", required=True, metavar="DAG_COMMAND")
    show = dag_sub.add_parser(
        "show",
        help="summary of a WfFormat file, an example workflow (e.g. gemm:n=2000,blocks=4) "
        "or a workflow from your code (flow.py:BUILDER[:k=v,...])",
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
    from runtime.lambda_local import LambdaEmulator

    # SIGTERM reaches serve_forever as a KeyboardInterrupt (`main`'s handler): it stops cleanly.
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
    if not os.environ.get("FAASDAG_REDIS_URL"):
        logging.getLogger("faasdag").warning(
            "no FAASDAG_REDIS_URL in this environment: the functions' workers will not find "
            "the store (set it to the Redis the client uses, then start lambda-local)"
        )
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


class _Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT, raised in the main thread so that every `with` and `finally` block
    on the way out runs (a KeyboardInterrupt, so that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int | str):
        # Rebuilt from its args (the signal's name) by whoever re-raises it, SimPy among them.
        sig = signal.Signals[signum] if isinstance(signum, str) else signal.Signals(signum)
        super().__init__(sig.name)
        self.signum = int(sig)


class _StopOnSignals:
    """SIGTERM and SIGINT handlers of one `main` call: the first signal raises `_Interrupted`
    and quiets the log and the threads (errors of a run being torn down are not news); later
    ones are ignored, so that a second Ctrl-C cannot cut the clean-up short. `restore` puts
    the previous handlers back (`main` may run inside a test process)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.fired = False
        self.previous: dict[int, object] = {}
        self.excepthook = threading.excepthook

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; it keeps Python's defaults then
        for signum in self.SIGNALS:
            self.previous[signum] = signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: object) -> None:
        if os.getpid() != self.pid:  # a forked worker that has not reset its handlers yet
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.fired:
            return
        self.fired = True
        logging.disable(logging.CRITICAL)
        threading.excepthook = _quiet_excepthook
        raise _Interrupted(signum)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            if handler is not None:  # None: set outside Python, which cannot be put back
                signal.signal(signum, handler)  # type: ignore[arg-type]
        if self.fired:
            logging.disable(logging.NOTSET)
            threading.excepthook = self.excepthook


def _quiet_excepthook(args: threading.ExceptHookArgs) -> None:
    """A daemon thread that fails while an interrupted run is torn down: stay silent."""


def _interrupted_line(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """The one stderr line and the exit status (128 + signal number) of an interrupt; the
    notes on the exception (e.g. where finished cells are kept) follow the signal's name."""
    signum = interrupt.signum if isinstance(interrupt, _Interrupted) else int(signal.SIGINT)
    notes = "".join(f"; {note}" for note in getattr(interrupt, "__notes__", []))
    return f"faasdag: interrupted ({signal.Signals(signum).name}){notes}", 128 + signum


def main(argv: Sequence[str] | None = None) -> int:
    stop = _StopOnSignals()
    try:
        stop.install()
        args = build_parser().parse_args(argv)
        try:
            return args.handler(args)
        except UsageError as error:
            print(f"faasdag: error: {error}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # `faasdag ... | head`: the reader left; that is not an error
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
            return 0
    except KeyboardInterrupt as interrupt:
        line, status = _interrupted_line(interrupt)
        print(line, file=sys.stderr, flush=True)
        return status
    finally:
        stop.restore()


if __name__ == "__main__":
    # As `python -m experiments.cli` this file runs as `__main__`, a second copy of the module:
    # run the one the commands import, so there is one copy of its signal-handling state.
    from experiments.cli import main as _main

    sys.exit(_main())
