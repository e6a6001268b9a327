"""A minimal profile source for sim tests: fixed exec ms and output bytes per task."""

from __future__ import annotations

from collections.abc import Mapping

from dag import ResourceConfig


class DictProfiles:
    """exec_ms per task (the same at every config) and output bytes per task."""

    def __init__(self, exec_ms: Mapping[str, float], output_bytes: Mapping[str, int]):
        self._exec_ms = dict(exec_ms)
        self._output_bytes = dict(output_bytes)

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float:
        return self._exec_ms[task_id]

    def output_bytes(self, task_id: str) -> int:
        return self._output_bytes[task_id]
