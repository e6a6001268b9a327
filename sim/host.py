"""The machine under the containers, when they share one: a local emulator on a few cores.

On a cloud platform every container has CPUs of its own (``Platform.host_cpus`` is inf) and the
platform's overheads are plain delays. On one machine (the local Lambda emulator, Redis and the
client on this box), every worker process, the emulator and Redis compete for the same cores, so
a task's run time and the platform's own work both stretch with the number of busy processes.
`Host` models that: with finite ``host_cpus``, each piece of local work (a task's execution, an
invoke call, a start-up, a store command, a publish) is a job of a processor-sharing server of
that many CPUs, each job served at most one CPU (single-threaded Python). Amounts are CPU-ms:
the time the work takes on an idle machine.
"""

from __future__ import annotations

import math

import simpy

from sim.sharing import ProcessorSharing


class Host:
    """Where local work runs: delays on private CPUs, or a processor-sharing server of the host's.

    Parameters
    ----------
    env : simpy.Environment
        The clock, ms.
    cpus : float
        CPUs every container shares; ``math.inf`` for a container with CPUs of its own.

    Raises
    ------
    ValueError
        If cpus is not a positive number.
    """

    def __init__(self, env: simpy.Environment, cpus: float = math.inf) -> None:
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not cpus > 0:
            raise ValueError(f"Host cpus={cpus!r} must be a number > 0 (inf allowed)")
        self.env = env
        self.cpus = float(cpus)
        self.cpu = (
            None
            if math.isinf(self.cpus)
            else ProcessorSharing(env, self.cpus, per_job_cap=1.0, name="host")
        )

    @property
    def shared(self) -> bool:
        """Whether containers share this host's CPUs."""
        return self.cpu is not None

    def work(self, cpu_ms: float) -> simpy.Event:
        """An event that fires once `cpu_ms` of work is done (its idle-machine time, ms).

        Raises
        ------
        ValueError
            If cpu_ms is negative or not finite.
        """
        if not (math.isfinite(cpu_ms) and cpu_ms >= 0):
            raise ValueError(f"host work of {cpu_ms!r} cpu-ms must be finite and >= 0")
        if self.cpu is None or cpu_ms == 0:
            return self.env.timeout(cpu_ms)
        return self.cpu.serve(cpu_ms)
