"""Tabulated estimates: what a real run ships to its workers answers as its source did."""

import pytest

from dag import ResourceConfig
from worker.estimates import ProfileEstimates, TabulatedEstimates

SMALL, LARGE = ResourceConfig(1024), ResourceConfig(2048)


class Profiles:
    def exec_ms(self, task_id, config):
        return {"a": 10.0, "b": 20.0}[task_id] * 1024 / config.memory_mb

    def output_bytes(self, task_id):
        return {"a": 1000, "b": 5000}[task_id]


SOURCE = ProfileEstimates(Profiles(), bytes_per_ms=100.0, latency_ms=2.0, cold_start_ms=300.0)


def test_tables_answer_every_query_a_worker_makes_as_the_source_does():
    table = TabulatedEstimates.tabulate(SOURCE, ["a", "b"], [SMALL, LARGE])
    for task in ("a", "b"):
        assert table.output_bytes(task) == SOURCE.output_bytes(task)
        for config in (SMALL, LARGE):
            assert table.exec_ms(task, config) == SOURCE.exec_ms(task, config)
            nbytes = SOURCE.output_bytes(task)
            assert table.transfer_ms(nbytes, config) == SOURCE.transfer_ms(nbytes, config)
    assert table.startup_ms(LARGE) == 300.0


def test_other_sizes_are_interpolated_and_unknown_configs_refused():
    """The source's transfer is affine here, so interpolation and extrapolation are exact."""
    table = TabulatedEstimates.tabulate(SOURCE, ["a", "b"], [SMALL])
    for nbytes in (0, 500, 3000, 9000):
        assert table.transfer_ms(nbytes, SMALL) == pytest.approx(SOURCE.transfer_ms(nbytes, SMALL))
    with pytest.raises(KeyError):
        table.exec_ms("a", LARGE)
