"""Run-time estimates for the worker's decisions (task-dup, clustering) from a platform model."""

from __future__ import annotations

import math

from dag.resources import ResourceConfig
from sim.platform import Platform
from worker.estimates import TaskProfileLike


class PlatformEstimates:
    """Task estimates from profiles; transfers and start-ups from the platform's parameters.

    Transfer: the store's command latency plus bytes over the slower of the worker's link and
    the store's link, as if alone (ms). Start-up: the median cold start (ms).
    """

    def __init__(self, profiles: TaskProfileLike, platform: Platform):
        self.profiles = profiles
        self.platform = platform

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float:
        return float(self.profiles.exec_ms(task_id, config))

    def output_bytes(self, task_id: str) -> int:
        return int(self.profiles.output_bytes(task_id))

    def transfer_ms(self, nbytes: int, config: ResourceConfig) -> float:
        bandwidth = min(
            self.platform.link_bytes_per_ms(config), self.platform.store_bandwidth_bytes_per_ms
        )
        payload_ms = 0.0 if nbytes == 0 or math.isinf(bandwidth) else nbytes / bandwidth
        return self.platform.store_op_ms + payload_ms

    def startup_ms(self, config: ResourceConfig) -> float:
        return max(self.platform.cold_start_min_ms, self.platform.cold_start_median_ms)
