"""Run-time estimates for the worker's decisions (task-dup, clustering) from a platform model."""

from __future__ import annotations

from dag.resources import ResourceConfig
from sim.platform import Platform
from worker.estimates import ProfileEstimates, TaskProfileLike


class PlatformEstimates(ProfileEstimates):
    """Task estimates from profiles; transfers and start-ups from the platform's parameters.

    Transfer: `Platform.ideal_transfer_ms` (as if alone on idle links). Start-up: the median
    cold start (ms).
    """

    def __init__(self, profiles: TaskProfileLike, platform: Platform):
        super().__init__(profiles)
        self.platform = platform

    def transfer_ms(self, nbytes: int, config: ResourceConfig) -> float:
        return float(self.platform.ideal_transfer_ms(config, nbytes))

    def startup_ms(self, config: ResourceConfig) -> float:
        return max(self.platform.cold_start_min_ms, self.platform.cold_start_median_ms)
