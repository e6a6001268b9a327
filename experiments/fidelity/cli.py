"""The fidelity commands: ``faasdag calibrate`` and ``faasdag validate`` (`register`), and
``python -m experiments.fidelity record`` (`_record_main`), which regenerates the shipped
trace sets under ``traces/data`` and the preset they were recorded with.

``validate`` of real runs calibrates this machine before each workflow's runs and fits the
worker overheads measured between them again (`_record_calibrated`); then it validates the
runs (`validate_traces`), summarizes them (`summarize`) and writes the report folder
(``runs.csv``, ``report.json``, ``predicted_vs_real.png``, the traces and presets).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.errors import UsageError
from experiments.fidelity.config import (
    PRESET,
    SHIPPED_REPETITIONS,
    FidelityConfig,
    load_config,
)
from experiments.fidelity.record import record, record_with_overheads
from experiments.fidelity.report import plot_predicted_vs_real, summarize
from experiments.fidelity.validate import HOST_FITS, validate_traces

log = logging.getLogger(__name__)


def calibrate_preset(path: str | Path, redis_url: str | None = None) -> Path:
    """Calibrate this machine (`runtime.calibrate.calibrate_local`) and write the preset to
    `path`; validation runs it just before each workflow's real runs, so both see the machine
    alike."""
    from runtime.calibrate import calibrate_local, write_preset

    return write_preset(calibrate_local(redis_url), path)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate`` and ``validate`` to the `faasdag` CLI's subparsers."""
    cal = subparsers.add_parser(
        "calibrate", help="microbenchmark a backend and write a platform preset (TOML)"
    )
    cal.add_argument("--backend", choices=["local", "lambda"], default="local")
    cal.add_argument("--out", default="local.toml", help="preset file to write (.toml)")
    cal.add_argument("--redis-url", default=None,
                     help="local: default a private redis-server; lambda: required, a Redis the "
                     "functions and this machine both reach")  # fmt: skip
    cal.add_argument("--memory", type=int, action="append", metavar="MB",
                     help="memory sizes to measure (repeatable; default 1024 and 2048)")  # fmt: skip
    cal.add_argument("--cold", type=int, default=3, help="cold starts per memory size")
    cal.add_argument("--warm", type=int, default=20, help="warm invokes")
    cal.add_argument("--role", default=None, help="lambda: the probe functions' execution role ARN")
    cal.add_argument("--region", default=None,
                     help="lambda: AWS region (default: the AWS configuration's, else us-east-1)")  # fmt: skip
    cal.add_argument("--endpoint-url", default=None,
                     help="lambda: another Lambda API than AWS's (e.g. the local emulator)")  # fmt: skip
    cal.set_defaults(handler=_cmd_calibrate)

    val = subparsers.add_parser(
        "validate", help="simulate held-out real runs and report the simulator's error"
    )
    val.add_argument("config", metavar="CONFIG_OR_DEFAULT", help="a fidelity TOML or 'default'")
    val.add_argument("--out", default="results/fidelity", help="report folder")
    val.add_argument("--traces", default=None, help="validate recorded traces (no real runs)")
    val.add_argument("--redis-url", default=None)
    val.add_argument("--repetitions", type=int, default=None, help="override the config's")
    val.add_argument("--no-refine", action="store_true",
                     help="simulate with the preset as it is (nothing fitted on other runs)")  # fmt: skip
    val.add_argument("--host-fit", choices=HOST_FITS, default="round",
                     help="host CPUs of a run: fitted on the other rounds and moved by its round's "
                          "speed (round, the default), or the other rounds' fit alone")  # fmt: skip
    val.add_argument("--no-calibrate", action="store_true",
                     help="real runs: simulate with the config's preset instead of calibrating "
                          "this machine before each workflow")  # fmt: skip
    val.set_defaults(handler=_cmd_validate)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from runtime.calibrate import calibrate_local, write_preset

    if not args.out.endswith(".toml"):
        raise UsageError(f"calibrate: --out {args.out!r} must end in .toml")
    if not Path(args.out).resolve().parent.is_dir():
        raise UsageError(f"calibrate: the folder of --out {args.out!r} does not exist")
    if args.cold < 2 or args.warm < 3:
        raise UsageError("calibrate: --cold must be >= 2 and --warm >= 3")
    memory_sizes = args.memory or (1024, 2048)
    try:
        if args.backend == "lambda":
            calibration = _calibrate_lambda(args, memory_sizes)
        else:
            calibration = calibrate_local(
                args.redis_url, memory_sizes=memory_sizes, n_cold=args.cold, n_warm=args.warm
            )
    except RuntimeError as err:
        raise UsageError(f"calibrate: {err}") from None
    path = write_preset(calibration, args.out)
    for key, value in calibration.fields.items():
        if not key.startswith("_"):
            print(f"{key} = {value}")
    print(f"preset written to {path} ({calibration.meta['wall_s']:.1f} s)")
    return 0


def _calibrate_lambda(args: argparse.Namespace, memory_sizes: Sequence[int]) -> Any:
    """`runtime.calibrate_lambda.calibrate_lambda` with the CLI's arguments, checked first."""
    import boto3
    import redis
    from botocore.exceptions import BotoCoreError, ClientError

    from runtime.calibrate_lambda import calibrate_lambda
    from runtime.lambda_backend import _is_loopback

    if not args.redis_url:
        raise UsageError(
            "calibrate --backend lambda needs --redis-url: a Redis that the functions and this "
            "machine both reach"
        )
    if not args.role:
        raise UsageError("calibrate --backend lambda needs --role: the functions' execution role")
    loopback = args.endpoint_url and _is_loopback(args.endpoint_url)
    if not loopback and boto3.Session().get_credentials() is None:
        raise UsageError(
            "calibrate --backend lambda: no AWS credentials found (environment, ~/.aws or an "
            "instance role); or give --endpoint-url of a Lambda emulator"
        )
    try:
        return calibrate_lambda(
            args.redis_url,
            role_arn=args.role,
            endpoint_url=args.endpoint_url,
            region_name=args.region or boto3.Session().region_name or "us-east-1",
            memory_sizes=memory_sizes,
            n_cold=args.cold,
            n_warm=args.warm,
        )
    except (BotoCoreError, ClientError) as err:
        raise RuntimeError(f"the Lambda API said: {err}") from None
    except redis.RedisError as err:
        raise RuntimeError(f"--redis-url {args.redis_url!r}: {err}") from None
    except TimeoutError as err:  # an Event invoke whose entry never reached the Redis
        raise RuntimeError(f"{err} (can the functions reach --redis-url?)") from None


def _with_repetitions(
    config: FidelityConfig, repetitions: int | None, command: str
) -> FidelityConfig:
    """`config` with ``--repetitions`` applied (None keeps the config's).

    Raises
    ------
    UsageError
        If `repetitions` is below 3 (naming `command`).
    """
    if repetitions is None:
        return config
    if repetitions < 3:
        raise UsageError(f"{command}: --repetitions must be >= 3 (leave-one-out needs 2)")
    return replace(config, repetitions=repetitions)


def _cmd_validate(args: argparse.Namespace) -> int:
    from traces.io import TraceSet

    config = _with_repetitions(load_config(args.config), args.repetitions, "validate")
    traces_dir = args.traces or config.traces
    out = Path(args.out).resolve()  # the presets' paths in the cells and report outlive the cwd
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    presets = None
    if traces_dir:
        try:
            traces = TraceSet.read(traces_dir)
        except (OSError, ValueError) as err:
            raise UsageError(f"validate: --traces {traces_dir!r}: {err}") from None
        presets = _report_presets(Path(traces_dir))
        if presets:
            print(f"simulating with the presets of {Path(traces_dir).parent / 'report.json'}")
    else:
        try:
            traces, presets = _record_calibrated(config, args, out)
        except RuntimeError as err:
            raise UsageError(f"validate: {err}") from None
        traces.write(out / "traces", overwrite=True)
    frame = validate_traces(
        traces, config, refine=not args.no_refine, presets=presets, host_fit=args.host_fit
    )
    report = summarize(frame)
    frame.to_csv(out / "runs.csv", index=False)
    (out / "report.json").write_text(
        json.dumps({**report.to_dict(), "presets": presets}, indent=1, default=str)
    )
    plot = plot_predicted_vs_real(frame, out / "predicted_vs_real.png")
    print(report.text())
    print(f"report in {out} (plot {plot.name}); {time.perf_counter() - started:.1f} s")
    return 0


def _report_presets(traces_dir: Path) -> dict[str, str] | None:
    """The presets a validation report simulated its recorded runs with, when `traces_dir` is
    the ``traces`` folder of that report (its ``report.json`` names them); None otherwise."""
    report = traces_dir.parent / "report.json"
    try:
        presets = json.loads(report.read_text()).get("presets")
    except (OSError, ValueError):
        return None
    if not isinstance(presets, dict):
        return None
    missing = [p for p in presets.values() if not Path(p).is_file()]
    if missing:
        log.warning(
            "%s names presets that are gone (%s): simulating with the config's", report, missing
        )
        return None
    return {str(w): str(p) for w, p in presets.items()}


def _record_calibrated(
    config: FidelityConfig, args: argparse.Namespace, out: Path
) -> tuple[Any, dict[str, str] | None]:
    """Real runs of `config` and the preset per workflow to simulate them with.

    Unless ``--no-calibrate``, each workflow's runs follow a calibration of this machine
    (``preset-<workflow spec>.before.toml`` in `out`, on which the planners plan), and the
    worker overheads and CPUs are measured again between the rounds of runs
    (`record_with_overheads`): this machine's speed drifts within minutes, so the preset the
    runs are simulated with (``preset-<workflow spec>.toml``) takes them from the runs' stretch
    of time. They are pooled over every workflow's rounds: re-fitted on one workflow's five
    rounds alone, ``invocation_cpu_ms`` swung from 1.0 to 3.6 between validations, and that
    noise, not the drift, led the error: on the same recordings, pooling took the worst two of
    five reports from 0.21 / 0.39 and 0.16 / 0.33 (median / p90) to 0.10 / 0.23 and 0.11 / 0.33,
    and moved the other three by -0.02..+0.02 (median) and -0.03..+0.00 (p90).
    """
    from experiments.plots import slug
    from runtime.calibrate import calibrate_local, refit_overheads, write_preset
    from traces.io import TraceSet

    if args.no_calibrate:
        return record(config, redis_url=args.redis_url, progress=print), None
    parts: list[Any] = []
    calibrations: dict[str, tuple[str, Any]] = {}
    between: dict[str, list[Any]] = {}
    for index, workflow in enumerate(config.workflows):
        name = slug(workflow)
        if any(taken == name for taken, _ in calibrations.values()):
            name = f"{name}_{index}"  # two specs alike up to the slug's length
        calibration = calibrate_local(args.redis_url)
        before = write_preset(calibration, out / f"preset-{name}.before.toml")
        print(f"calibrated this machine for {workflow}: {before}")
        one = replace(config, workflows=(workflow,), preset=str(before))
        traces, overheads = record_with_overheads(one, redis_url=args.redis_url, progress=print)
        parts.append(traces)
        # Kept as they come: a later failure does not lose the runs recorded so far.
        TraceSet.concat(parts).write(out / "traces", overwrite=True)
        calibrations[workflow] = (name, calibration)
        for key, values in overheads.items():
            between.setdefault(key, []).extend(values)
    presets = {}
    for workflow, (name, calibration) in calibrations.items():
        try:
            refit = refit_overheads(calibration, between)
        except ValueError as err:
            raise UsageError(
                f"validate: {workflow}: no preset from the overheads between the runs ({err}); "
                f"the runs are in {out / 'traces'}"
            ) from None
        presets[workflow] = str(write_preset(refit, out / f"preset-{name}.toml"))
        print(f"worker overheads measured between the runs: {presets[workflow]}")
    return TraceSet.concat(parts), presets


def _record_main(argv: Sequence[str] | None = None) -> int:
    """``python -m experiments.fidelity record [--out traces/data] [CONFIG]``."""
    parser = argparse.ArgumentParser(prog="python -m experiments.fidelity")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="regenerate the shipped trace sets (one per workflow)")
    rec.add_argument("config", nargs="?", default="default")
    rec.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "traces" / "data"))
    rec.add_argument("--repetitions", type=int, default=None,
                     help=f"rounds to record (default: the config's; {SHIPPED_REPETITIONS} "
                     "for the default config, as shipped)")  # fmt: skip
    rec.add_argument("--no-calibrate", action="store_true",
                     help="record with the config's preset as it is")  # fmt: skip
    args = parser.parse_args(argv)
    repetitions = args.repetitions
    if repetitions is None and args.config == "default":
        repetitions = SHIPPED_REPETITIONS
    config = _with_repetitions(load_config(args.config), repetitions, "record")
    if not args.no_calibrate and config.preset == "local":
        # The shipped preset and traces come from one session: this machine's speed drifts
        # (a pure-Python loop varies by up to 1.6x over minutes), so a preset calibrated at
        # another time would mispredict the runs recorded now.
        print(f"calibrated this machine: {calibrate_preset(PRESET)}")
    traces = record(config, progress=print)
    for workflow, runs in traces.runs.groupby("workflow", sort=False):
        name = str(workflow).split(":")[0]
        subset = traces.select_runs(runs["run_id"])
        path = subset.write(Path(args.out) / name, overwrite=True)
        print(f"{len(runs)} runs of {workflow} written to {path}")
    # Recorded with the default config, these are the shipped sets, which the offline fidelity
    # test holds to the makespan targets: say whether they meet them, so that a recording made
    # in a noisy stretch is seen (and made again) now.
    report = summarize(validate_traces(traces, config))
    print("leave-one-run-out on these runs:", report.targets_text())
    return 0
