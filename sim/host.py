"""The machine under the containers, when they share one: a local emulator on a few cores.

On a cloud platform every container has CPUs of its own (``Platform.host_cpus`` is inf) and the
platform's overheads are plain delays. On one machine (the local Lambda emulator, Redis and the
client on this box), every worker process, the emulator and Redis compete for the same cores, so
a task's run time and the platform's own work both stretch with the number of busy processes.
`Host` models that: with finite ``host_cpus``, each piece of local work (a task's execution, an
invoke call, a start-up, a store command, a publish) is a job of a server of that many CPUs,
each job served at most one CPU (single-threaded Python). Amounts are CPU-ms: the time the work
takes on an idle machine.

The server is processor sharing (every job slows down alike), or, with ``host_quantum_ms``, CPUs
handing out time slices in turn (`sim.sharing.RoundRobin`). Linux's scheduler is the second at
the millisecond scale: a process that has a CPU keeps it for a slice (EEVDF's base slice,
0.75 ms times ``1 + floor(log2(min(CPUs, 8)))``: 1.5 ms on two CPUs), so the local emulator's
short tasks run at full speed, while a process woken by a store reply or a publish waits for a
slice to end. On recorded validations of the local emulator the slices predicted makespans as
well as processor sharing did and billed time better (README, "Fidelity"); neither brings the
simulated exec time of the example workflows' short tasks down to the real one (~2x).
"""

from __future__ import annotations

import math
from typing import Any

import simpy
from simpy.events import Timeout

from sim.sharing import ProcessorSharing, RoundRobin


class Host:
    """Where local work runs: delays on private CPUs, or a server of the host's CPUs.

    Parameters
    ----------
    env : simpy.Environment
        The clock, ms.
    cpus : float
        CPUs every container shares; ``math.inf`` for a container with CPUs of its own.
    quantum_ms : float, default 0
        With finite `cpus`: the CPUs' time slice, ms (`sim.sharing.RoundRobin`); 0 shares them
        processor-style (`sim.sharing.ProcessorSharing`).

    Raises
    ------
    ValueError
        If cpus is not a positive number or quantum_ms is negative or not finite.
    """

    def __init__(
        self, env: simpy.Environment, cpus: float = math.inf, quantum_ms: float = 0.0
    ) -> None:
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not cpus > 0:
            raise ValueError(f"Host cpus={cpus!r} must be a number > 0 (inf allowed)")
        if (
            isinstance(quantum_ms, bool)
            or not isinstance(quantum_ms, int | float)
            or not (math.isfinite(quantum_ms) and quantum_ms >= 0)
        ):
            raise ValueError(f"Host quantum_ms={quantum_ms!r} must be a finite number >= 0")
        self.env = env
        self.cpus = float(cpus)
        self.cpu: ProcessorSharing | RoundRobin | None = None
        if not math.isinf(self.cpus):
            self.cpu = (
                RoundRobin(env, self.cpus, quantum_ms, name="host")
                if quantum_ms > 0
                else ProcessorSharing(env, self.cpus, per_job_cap=1.0, name="host")
            )

    @classmethod
    def of(cls, env: simpy.Environment, platform: Any) -> Host:
        """The host a `sim.Platform` describes (``host_cpus``, ``host_quantum_ms``)."""
        return cls(env, platform.host_cpus, platform.host_quantum_ms)

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
        if not 0 <= cpu_ms < math.inf:
            raise ValueError(f"host work of {cpu_ms!r} cpu-ms must be finite and >= 0")
        if self.cpu is None or cpu_ms == 0:
            return Timeout(self.env, cpu_ms)
        return self.cpu.serve(cpu_ms)
