"""Calibration of a platform preset from microbenchmarks of a real backend.

What is measured (`calibrate_local`, against the local Lambda emulator and a Redis):

- start-up per memory size: a synchronous invoke of a probe function that is new (cold: a
  worker process starts and imports what faasdag's handler imports) or was just used (warm),
  minus the round trip of a ``DryRun`` invoke (the API alone);
- invocation latency: an asynchronous (``Event``) invoke of a warm probe, from the call to the
  handler's first line, minus the warm start-up;
- store operation latency: `RedisStore` commands (counter, SET NX, EXISTS) round trips;
- pub/sub latency: from PUBLISH to delivery to a subscriber thread;
- upload and download time against object size (numpy arrays through `RedisStore.put` / `get`,
  serialisation included), fitted as ``latency + nbytes / bandwidth`` per direction (a lone
  transfer's own rate), and the Redis server's CPU meanwhile (``INFO cpu``): the bytes its one
  thread moves per CPU-ms bound what all transfers together can move;
- the machine's CPUs (``host_cpus``): emulator workers, Redis and the client share them, so the
  simulator runs every task and overhead on one shared host of that many CPUs (time-sliced,
  ``host_quantum_ms``: Linux's default slice for the CPU count, `scheduler_slice_ms`). It
  is measured (`measure_host_parallelism`: the CPUs that as many busy processes as the
  machine has CPUs get, against one alone), not read off the CPU count: a VM's vCPUs may share
  physical cores or be descheduled, and this one gave 1.4-2.0 of its 2 within minutes;
- faasdag's own CPU per task, per invocation and per store command, from the busy CPU of real
  runs of no-op workflows (`bench_worker_overheads`); on a shared host ``store_op_ms`` is the
  larger of a command's round trip alone and its CPU inside runs.

The fit (`fit_platform`) turns the samples into `sim.Platform` fields; `preset_toml` writes them
as a preset that ``Platform.preset(path)`` loads, with the per-memory-size figures as comments
(the platform model has one cold-start distribution for every config). The emulator has no
billing: prices stay AWS Lambda's.

The probe function's handler (`runtime.lambda_probe.probe`) starts as the real handler does, with
the runs' backend and the store's URL (``FAASDAG_REDIS_URL``, never a payload) named in its
environment, so a probe's cold start costs what a faasdag worker's does.

One module per step:

- `runtime.calibrate.microbench`: start-ups, invokes and the store, timed on the backend;
- `runtime.calibrate.overheads`: the host's parallelism and the worker's own CPU costs;
- `runtime.calibrate.fit`: the samples turned into platform fields (`Calibration`);
- `runtime.calibrate.preset`: the fields written as a preset TOML;
- `runtime.calibrate.run`: all of them in order against the local emulator.
"""

from runtime.calibrate.fit import (
    Calibration,
    fit_lognormal,
    fit_platform,
    fit_startups,
    fit_transfer,
    fit_worker_overheads,
    host_cpus,
    scheduler_slice_ms,
)
from runtime.calibrate.microbench import (
    DEFAULT_MEMORY_MB,
    DEFAULT_SIZES,
    PROBE_HANDLER,
    bench_startups,
    bench_store,
    invoke_probe,
    server_cpu_ms,
    time_warm_invokes,
)
from runtime.calibrate.overheads import (
    OVERHEAD_WORKFLOWS,
    PARALLEL_LOOP,
    bench_worker_overheads,
    busy_wall_s,
    measure_host_parallelism,
    measure_overhead_run,
    noop,
    overhead_workflows,
    paused_gc,
)
from runtime.calibrate.preset import (
    AWS_PRICES,
    CALIBRATED_FIELDS,
    preset_toml,
    startup_notes,
    write_preset,
)
from runtime.calibrate.run import calibrate_local, refit_overheads

__all__ = [
    "AWS_PRICES",
    "CALIBRATED_FIELDS",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_SIZES",
    "OVERHEAD_WORKFLOWS",
    "PARALLEL_LOOP",
    "PROBE_HANDLER",
    "Calibration",
    "bench_startups",
    "bench_store",
    "bench_worker_overheads",
    "busy_wall_s",
    "calibrate_local",
    "fit_lognormal",
    "fit_platform",
    "fit_startups",
    "fit_transfer",
    "fit_worker_overheads",
    "host_cpus",
    "invoke_probe",
    "measure_host_parallelism",
    "measure_overhead_run",
    "noop",
    "overhead_workflows",
    "paused_gc",
    "preset_toml",
    "refit_overheads",
    "scheduler_slice_ms",
    "server_cpu_ms",
    "startup_notes",
    "time_warm_invokes",
    "write_preset",
]
