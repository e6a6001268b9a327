"""Resource configs: the memory/CPU size of a FaaS container (AWS Lambda-like)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10240
MB_PER_VCPU = 1769
MAX_CPUS = 6.0
#: Fewest vCPUs a config may have: work scales by 1/cpus, so a tinier share would turn any
#: runtime into years (Lambda's smallest, 128 MB, gets 0.072).
MIN_CPUS = 0.01


def lambda_cpus(memory_mb: int) -> float:
    """vCPUs Lambda grants for ``memory_mb``: one per 1769 MB, capped at 6."""
    return min(memory_mb / MB_PER_VCPU, MAX_CPUS)


@dataclass(frozen=True, slots=True, order=True)
class ResourceConfig:
    """Size of one FaaS container: memory in MB and (fractional) vCPUs.

    Configs are hashable and ordered by memory, then cpus. Warm pools are keyed by config, so two
    configs with the same memory but different cpus never share warm containers.

    Parameters
    ----------
    memory_mb : int
        Memory in MB, 128..10240.
    cpus : float, optional
        vCPUs; defaults to the Lambda rule ``min(memory_mb / 1769, 6)``.

    Raises
    ------
    ValueError
        If memory is not an integer in 128..10240, or cpus is not a finite number >= 0.01.
    """

    memory_mb: int
    cpus: float = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        memory = self.memory_mb
        if isinstance(memory, bool) or not isinstance(memory, int | float):
            raise ValueError(f"ResourceConfig memory_mb={memory!r} is not a number")
        if isinstance(memory, float):
            if not memory.is_integer():
                raise ValueError(f"ResourceConfig memory_mb={memory!r} is not a whole number of MB")
            object.__setattr__(self, "memory_mb", int(memory))
        if not MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB:
            raise ValueError(
                f"ResourceConfig memory_mb={self.memory_mb!r} outside "
                f"{MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB"
            )
        cpus = self.cpus
        if cpus is None:
            cpus = lambda_cpus(self.memory_mb)
        if isinstance(cpus, bool) or not isinstance(cpus, int | float):
            raise ValueError(f"ResourceConfig cpus={cpus!r} is not a number")
        if not math.isfinite(cpus) or cpus < MIN_CPUS:
            raise ValueError(f"ResourceConfig cpus={cpus!r} must be a finite number >= {MIN_CPUS}")
        object.__setattr__(self, "cpus", float(cpus))

    @property
    def memory_gb(self) -> float:
        """Memory in GB (1024 MB), the unit Lambda bills in."""
        return self.memory_mb / 1024

    @classmethod
    def parse(cls, text: str) -> ResourceConfig:
        """Read ``"2048"`` or ``"2048/1.5"`` (memory MB, optional cpus after a slash).

        Raises
        ------
        ValueError
            If the text is not of that form; the message quotes it.
        """
        memory_text, _, cpus_text = str(text).strip().partition("/")
        try:
            memory = int(memory_text)
            cpus = float(cpus_text) if cpus_text else None
        except ValueError:
            raise ValueError(
                f"resource config {text!r} is not MEMORY_MB or MEMORY_MB/CPUS"
            ) from None
        return cls(memory, cpus)

    def __str__(self) -> str:
        return f"{self.memory_mb}MB/{self.cpus:g}cpu"
