"""How many CPUs this machine gives when several processes are busy at once.

The `local` preset's shared host has ``host_cpus`` CPUs, which calibration measures
(`runtime.calibrate.measure_host_parallelism`) rather than reads off the CPU count: on a VM the
vCPUs may share physical cores or be descheduled, so k busy processes can get less than
min(k, cpu_count) CPUs. For k = 1, 2, 4, each repetition times the same pure-Python loop in k
processes started together (`runtime.calibrate.busy_wall_s`) and prints one JSON line per k:
the wall time and the effective CPUs ``k * t(1) / t(k)`` against the single process of the
same repetition (median, and each repetition's: their spread is this machine's drift).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.calibrate import busy_wall_s  # noqa: E402

REPEATS = 5


def main() -> None:
    rounds = [{k: busy_wall_s(k) for k in (1, 2, 4)} for _ in range(REPEATS)]
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
