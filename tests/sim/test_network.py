"""Network: transfer time from latency and shared bandwidth; counters."""

import math

import pytest
import simpy

from dag import ResourceConfig
from sim import Network, Platform

CONFIG = ResourceConfig(1024)


def slow_platform(**overrides):
    """Store 1000 bytes/ms, worker links 4000 bytes/ms, 2 ms per store op."""
    values = dict(
        store_op_ms=2.0,
        store_bandwidth_bytes_per_ms=1000.0,
        link_bytes_per_ms_per_gb=4000.0,
        link_max_bytes_per_ms=4000.0,
    )
    values.update(overrides)
    return Platform(name="slow", **values)


def run_transfers(platform, transfers):
    """Run (worker, nbytes, direction) transfers started together; return elapsed ms of each."""
    env = simpy.Environment()
    network = Network(env, platform)
    elapsed = [None] * len(transfers)

    def one(i, worker, nbytes, direction):
        elapsed[i] = yield from network.transfer(worker, CONFIG, nbytes, direction)

    for i, (worker, nbytes, direction) in enumerate(transfers):
        env.process(one(i, worker, nbytes, direction))
    env.run()
    return network, elapsed


def test_lone_transfer_is_latency_plus_bytes_over_bandwidth():
    """A lone transfer takes store_op_ms + bytes / min(link, store) bandwidth."""
    network, elapsed = run_transfers(slow_platform(), [("w0", 10_000, "down")])
    assert elapsed == [pytest.approx(2.0 + 10_000 / 1000.0)]
    assert network.ideal_transfer_ms(CONFIG, 10_000) == pytest.approx(elapsed[0])


def test_worker_link_can_be_the_bottleneck():
    """When the worker's link is slower than the store's, it sets the transfer time."""
    platform = slow_platform(store_bandwidth_bytes_per_ms=1e6)
    _network, elapsed = run_transfers(platform, [("w0", 8_000, "up")])
    assert elapsed == [pytest.approx(2.0 + 8_000 / 4000.0)]


def test_concurrent_transfers_share_the_store():
    """Two transfers from different workers through the same store each get half its rate."""
    transfers = [("w0", 10_000, "down"), ("w1", 10_000, "up")]
    _network, elapsed = run_transfers(slow_platform(), transfers)
    assert elapsed == [pytest.approx(2.0 + 20_000 / 1000.0)] * 2


def test_a_worker_transfers_one_after_another():
    """A worker's link serves one transfer at a time, as the real drivers perform them: back to
    back, the second takes as long as the first; overlapping, it is the caller's bug."""
    env = simpy.Environment()
    network = Network(env, slow_platform(store_bandwidth_bytes_per_ms=1e9))
    elapsed = []

    def in_turn():
        for _ in range(2):
            elapsed.append((yield from network.transfer("w0", CONFIG, 4_000, "down")))

    env.process(in_turn())
    env.run()
    assert elapsed == [pytest.approx(2.0 + 4_000 / 4000.0)] * 2
    assert env.now == pytest.approx(6.0)
    with pytest.raises(RuntimeError, match="'w0'"):  # the second during the first's latency
        run_transfers(slow_platform(), [("w0", 4_000, "down"), ("w0", 4_000, "up")])
    env = simpy.Environment()
    network = Network(env, slow_platform(store_bandwidth_bytes_per_ms=1e9))

    def while_bytes_flow():  # the first's bytes cross the link from 2 to 3 ms
        yield env.timeout(2.5)
        yield from network.transfer("w0", CONFIG, 1, "up")

    env.process(network.transfer("w0", CONFIG, 4_000, "down"))
    env.process(while_bytes_flow())
    with pytest.raises(RuntimeError, match="'w0'"):
        env.run()


def test_ideal_transfer_takes_no_time():
    """On the ideal preset a transfer of any size takes 0 ms."""
    _network, elapsed = run_transfers(Platform.preset("ideal"), [("w0", 10**9, "down")])
    assert elapsed == [0.0]


def test_counters_track_bytes_and_ops():
    """bytes_up / bytes_down follow the direction; every transfer is a store op."""
    network, _ = run_transfers(
        slow_platform(), [("w0", 5, "up"), ("w1", 7, "down"), ("w2", 0, "down")]
    )
    assert (network.bytes_up, network.bytes_down) == (5, 7)
    assert (network.n_transfers, network.n_store_ops) == (3, 3)


def test_store_op_and_publish_cost_latency_only():
    """A store command costs store_op_ms; a publish costs pubsub_ms."""
    env = simpy.Environment()
    network = Network(env, slow_platform(pubsub_ms=3.0))
    times = []

    def body():
        times.append((yield from network.store_op()))
        times.append((yield from network.publish()))

    env.process(body())
    env.run()
    assert times == [2.0, 3.0]
    assert env.now == 5.0
    assert (network.n_store_ops, network.n_publishes) == (1, 1)


def test_link_bandwidth_follows_memory():
    """A worker's link has its config's bandwidth (AWS: 6250 bytes/ms at 128 MB, 75000 at
    10240 MB), and a worker's config is fixed."""
    platform = Platform.preset("aws-lambda").with_overrides(
        store_op_ms=0.0, store_bandwidth_bytes_per_ms=1e9
    )
    env = simpy.Environment()
    network = Network(env, platform)
    elapsed = {}

    def one(worker, config):
        elapsed[worker] = yield from network.transfer(worker, config, 750_000, "down")

    env.process(one("a", ResourceConfig(128)))
    env.process(one("b", ResourceConfig(10240)))
    env.run()
    assert elapsed == {"a": pytest.approx(120.0), "b": pytest.approx(10.0)}
    with pytest.raises(ValueError, match="'a'"):
        next(network.transfer("a", ResourceConfig(2048), 1))


@pytest.mark.parametrize(("nbytes", "direction"), [(-1, "up"), (1.5, "up"), (3, "sideways")])
def test_bad_transfer_rejected(nbytes, direction):
    """A negative or fractional size, or an unknown direction, raises ValueError naming the worker."""
    network = Network(simpy.Environment(), slow_platform())
    with pytest.raises(ValueError, match="w9"):
        next(network.transfer("w9", CONFIG, nbytes, direction))


def test_own_rates_set_a_lone_transfer_time_per_direction():
    """With per-direction rates, a lone upload and a lone download take bytes over their own
    rate when that is slower than the links, on private CPUs as on a shared host."""
    for host_cpus in (math.inf, 2.0):
        platform = slow_platform(
            store_bandwidth_bytes_per_ms=1e6,
            upload_bytes_per_ms=2000.0,
            download_bytes_per_ms=500.0,
            host_cpus=host_cpus,
        )
        _network, up = run_transfers(platform, [("w0", 10_000, "up")])
        _network, down = run_transfers(platform, [("w0", 10_000, "down")])
        assert up == [pytest.approx(2.0 + 10_000 / 2000.0)], host_cpus
        assert down == [pytest.approx(2.0 + 10_000 / 500.0)], host_cpus


def test_own_rates_run_in_parallel_up_to_the_host_cpus():
    """Two workers' downloads share the CPUs of a shared host, not one store link: on two
    CPUs each takes as long as alone, on one CPU twice as long."""
    transfers = [("w0", 10_000, "down"), ("w1", 10_000, "down")]
    own = dict(store_bandwidth_bytes_per_ms=1e6, store_op_ms=0.0, download_bytes_per_ms=500.0)
    _network, two = run_transfers(slow_platform(**own, host_cpus=2.0), transfers)
    _network, one = run_transfers(slow_platform(**own, host_cpus=1.0), transfers)
    assert two == [pytest.approx(20.0)] * 2
    assert one == [pytest.approx(40.0)] * 2


def test_ideal_transfer_counts_the_own_rates():
    """The planners' estimate of a transfer alone: per direction its own rate, without one
    the rate at which an upload and a download together take as long."""
    platform = slow_platform(
        store_bandwidth_bytes_per_ms=1e6, upload_bytes_per_ms=2000.0, download_bytes_per_ms=500.0
    )
    network = Network(simpy.Environment(), platform)
    assert network.ideal_transfer_ms(CONFIG, 8_000, "up") == pytest.approx(2.0 + 4.0)
    assert network.ideal_transfer_ms(CONFIG, 8_000, "down") == pytest.approx(2.0 + 16.0)
    both = 2 * network.ideal_transfer_ms(CONFIG, 8_000)
    assert both == pytest.approx(2.0 + 4.0 + 2.0 + 16.0)
    assert platform.own_transfer_rate() == pytest.approx(800.0)
    assert slow_platform().own_transfer_rate() is None
