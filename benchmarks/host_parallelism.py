"""How many CPUs this machine gives when several processes are busy at once.

The `local` preset's processor-sharing host assumes ``host_cpus`` whole CPUs. On a VM the
vCPUs may share physical cores or be descheduled by the hypervisor, so k busy processes can get
less than min(k, cpu_count) CPUs. For k = 1, 2, 4, each repetition times the same pure-Python
loop in k processes started together (after they all are up), and prints one JSON line per k:
the wall time and the effective CPUs ``k * t(1) / t(k)`` against the single process of the same
repetition (median, and each repetition's: their spread is this machine's drift).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import statistics
import time

LOOP = 2_000_000
REPEATS = 5


def _spin(ready: mp.Barrier, out: mp.Queue) -> None:
    ready.wait()
    start = time.perf_counter()
    total = 0
    for i in range(LOOP):
        total += i * i
    out.put(time.perf_counter() - start)


def wall_s(k: int) -> float:
    """Seconds until the last of k processes finishes the loop, all started together."""
    ready, out = mp.Barrier(k + 1), mp.Queue()
    procs = [mp.Process(target=_spin, args=(ready, out)) for _ in range(k)]
    for proc in procs:
        proc.start()
    ready.wait()  # every process is up: process start-up is not timed
    start = time.perf_counter()
    times = [out.get() for _ in range(k)]
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    return max(elapsed, max(times))


def main() -> None:
    rounds = [{k: wall_s(k) for k in (1, 2, 4)} for _ in range(REPEATS)]
    for k in (1, 2, 4):
        effective = [k * r[1] / r[k] for r in rounds]
        print(
            json.dumps(
                {
                    "bench": "host_parallelism",
                    "case": f"{k} processes",
                    "cpu_count": os.cpu_count(),
                    "wall_s": round(statistics.median(r[k] for r in rounds), 4),
                    "effective_cpus_median": round(statistics.median(effective), 2),
                    "effective_cpus": [round(e, 2) for e in effective],
                }
            )
        )


if __name__ == "__main__":
    main()
