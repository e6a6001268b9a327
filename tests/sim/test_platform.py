"""Platform parameters and presets; ContainerPools warmth, keep-alive, concurrency, pre-warm."""

import math
import re

import numpy as np
import pytest
import simpy

from dag import ResourceConfig
from sim import ContainerPools, Platform

CONFIG = ResourceConfig(1024)
TEST_PLATFORM = Platform(
    name="test",
    cold_start_median_ms=100.0,
    cold_start_sigma=0.5,
    cold_start_min_ms=10.0,
    warm_start_ms=5.0,
    keep_alive_ms=1000.0,
)


def make_pools(platform=TEST_PLATFORM, seed=0):
    env = simpy.Environment()
    return env, ContainerPools(env, platform, np.random.default_rng(seed))


def invoke(env, pools, config, at_ms, busy_ms, log):
    """Process: acquire at ``at_ms``, stay busy ``busy_ms`` after start-up, release; log it."""
    yield env.timeout(at_ms)
    container = yield from pools.acquire(config)
    log.append((container.id, container.startup, container.startup_ms, env.now))
    yield env.timeout(busy_ms)
    pools.release(container)


def run_invocations(invocations, platform=TEST_PLATFORM, seed=0):
    """Run (config, at_ms, busy_ms) invocations; return pools and the log of start-ups."""
    env, pools = make_pools(platform, seed)
    log = []
    for config, at_ms, busy_ms in invocations:
        env.process(invoke(env, pools, config, at_ms, busy_ms, log))
    env.run()
    pools.check()
    return pools, log


# -- Platform ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["aws-lambda", "ideal"])
def test_presets_load(name):
    """Every shipped preset loads and carries its name."""
    platform = Platform.preset(name)
    assert platform.name == name
    assert name in Platform.preset_names()


def test_aws_lambda_preset_figures():
    """The aws-lambda preset has Lambda prices, 1000 concurrency and 10 min keep-alive."""
    platform = Platform.preset("aws-lambda")
    assert platform.price_per_gb_s == 0.0000166667
    assert platform.price_per_request == pytest.approx(0.20 / 1e6)
    assert platform.concurrency_limit == 1000
    assert platform.keep_alive_ms == 600_000.0
    assert 150.0 <= platform.cold_start_median_ms <= 400.0


def test_ideal_preset_has_no_overheads():
    """The ideal preset: zero start-ups and latencies, infinite bandwidth, no limit."""
    platform = Platform.preset("ideal")
    assert platform.sample_cold_start_ms(CONFIG, np.random.default_rng(1)) == 0.0
    assert platform.concurrency_limit is None
    assert math.isinf(platform.link_bytes_per_ms(CONFIG))
    assert math.isinf(platform.store_bandwidth_bytes_per_ms)


def test_unknown_preset_lists_known():
    """An unknown preset name raises ValueError naming it and listing the known presets."""
    with pytest.raises(ValueError, match=r"'no-such'.*aws-lambda, ideal"):
        Platform.preset("no-such")


def test_unknown_key_in_toml_named(tmp_path):
    """A preset file with an unknown key raises ValueError naming the key."""
    path = tmp_path / "mine.toml"
    path.write_text("warm_start_ms = 3.0\ncold_start_mean_ms = 1.0\n")
    with pytest.raises(ValueError, match="cold_start_mean_ms"):
        Platform.preset(str(path))


def test_bad_value_in_toml_named(tmp_path):
    """A preset file with a bad value raises ValueError naming the key."""
    path = tmp_path / "mine.toml"
    path.write_text("store_bandwidth_bytes_per_ms = 0.0\n")
    with pytest.raises(ValueError, match="store_bandwidth_bytes_per_ms"):
        Platform.preset(path)


def test_preset_from_path(tmp_path):
    """A path to a TOML file loads, named after its stem, defaults filling the rest."""
    path = tmp_path / "mine.toml"
    path.write_text("warm_start_ms = 3.0\nconcurrency_limit = 7\n")
    platform = Platform.preset(path)
    assert (platform.name, platform.warm_start_ms, platform.concurrency_limit) == ("mine", 3.0, 7)


def test_with_overrides():
    """with_overrides replaces fields, checks values and rejects unknown keys by name."""
    platform = Platform.preset("aws-lambda").with_overrides(concurrency_limit=5)
    assert platform.concurrency_limit == 5
    with pytest.raises(ValueError, match="warm_ms"):
        platform.with_overrides(warm_ms=1.0)
    with pytest.raises(ValueError, match="keep_alive_ms"):
        platform.with_overrides(keep_alive_ms=-1.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("warm_start_ms", -1.0),
        ("cold_start_sigma", math.nan),
        ("concurrency_limit", 0),
        ("price_per_gb_s", "1"),
        ("upload_bytes_per_ms", 0.0),
        ("download_bytes_per_ms", "fast"),
    ],
)
def test_bad_values_named(key, value):
    """An out-of-range or non-numeric parameter raises ValueError naming it."""
    with pytest.raises(ValueError, match=key):
        Platform(**{key: value})


@pytest.mark.parametrize(
    ("key", "value", "limit"),
    [
        ("cold_start_median_ms", 1e8, "above the limit of 86400000 ms (one day"),
        ("task_overhead_ms", 1e10, "above the limit of 86400000 ms (one day"),
        ("cold_start_sigma", 50.0, "above 4"),
        ("store_bandwidth_bytes_per_ms", 1e-300, "below 1 byte per ms"),
        ("host_cpus", 1e-9, "below 0.01 CPU"),
        ("warm_start_ms", math.inf, "finite"),
        ("pubsub_ms", math.nan, "must be >= 0"),
    ],
)
def test_values_the_clock_cannot_hold_are_refused(key, value, limit):
    """A duration above one day, a needle-thin link or CPU share, NaN or inf is refused up
    front, naming the field and the limit (the simulated clock would stall on them)."""
    with pytest.raises(ValueError, match=re.escape(f"Platform {key}={value!r}")) as info:
        Platform.preset("aws-lambda").with_overrides(**{key: value})
    assert limit in str(info.value)


def test_sampled_cold_start_is_capped_at_one_day():
    """The lognormal's far tail is capped at the clock's limit, never inf or an overflow."""
    platform = Platform(cold_start_median_ms=8e7, cold_start_sigma=4.0)
    rng = np.random.default_rng(0)
    draws = [platform.sample_cold_start_ms(CONFIG, rng) for _ in range(200)]
    assert max(draws) == 86_400_000.0 and min(draws) > 0


def test_link_bandwidth_clamped():
    """Link bandwidth is per-GB times memory, clamped to [min, max]."""
    platform = Platform(
        link_bytes_per_ms_per_gb=1000.0, link_min_bytes_per_ms=300.0, link_max_bytes_per_ms=2000.0
    )
    assert platform.link_bytes_per_ms(ResourceConfig(128)) == 300.0
    assert platform.link_bytes_per_ms(ResourceConfig(1024)) == 1000.0
    assert platform.link_bytes_per_ms(ResourceConfig(4096)) == 2000.0


def test_cold_start_samples_reproducible():
    """Same seed, same cold-start draws, bit for bit; never below the minimum."""
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    a = [TEST_PLATFORM.sample_cold_start_ms(CONFIG, rng_a) for _ in range(50)]
    b = [TEST_PLATFORM.sample_cold_start_ms(CONFIG, rng_b) for _ in range(50)]
    assert a == b
    assert min(a) >= 10.0
    assert len(set(a)) > 1


# -- ContainerPools ---------------------------------------------------------------------------


def test_first_cold_then_warm_within_keep_alive():
    """First invocation is cold; one after release within keep-alive is warm, same container."""
    pools, log = run_invocations([(CONFIG, 0.0, 50.0), (CONFIG, 900.0, 10.0)])
    (id0, kind0, _ms0, _), (id1, kind1, ms1, start1) = log
    assert (kind0, kind1) == ("cold", "warm")
    assert id0 == id1
    assert (ms1, start1) == (5.0, 905.0)
    assert (pools.n_cold, pools.n_warm) == (1, 1)


def test_cold_again_after_keep_alive():
    """An invocation more than keep_alive_ms after the last release is cold."""
    pools, log = run_invocations([(CONFIG, 0.0, 0.0), (CONFIG, 5000.0, 0.0)])
    assert [kind for _, kind, _, _ in log] == ["cold", "cold"]
    assert pools.n_expired == 1


def test_keep_alive_counts_from_release():
    """Keep-alive runs from the release, not from creation: a long busy period stays warm."""
    _pools, log = run_invocations([(CONFIG, 0.0, 3000.0), (CONFIG, 3500.0, 0.0)])
    assert [kind for _, kind, _, _ in log] == ["cold", "warm"]


def test_same_memory_different_cpus_never_share_warmth():
    """Configs with equal memory but different cpus keep separate warm pools."""
    other = ResourceConfig(1024, 2.0)
    pools, log = run_invocations([(CONFIG, 0.0, 0.0), (other, 500.0, 0.0)])
    assert [kind for _, kind, _, _ in log] == ["cold", "cold"]
    assert pools.n_idle(CONFIG) == 1 and pools.n_idle(other) == 1


def test_concurrent_invocations_are_both_cold():
    """Two overlapping invocations of one config need two containers."""
    pools, log = run_invocations([(CONFIG, 0.0, 500.0), (CONFIG, 10.0, 500.0)])
    assert [kind for _, kind, _, _ in log] == ["cold", "cold"]
    assert len(pools.containers) == 2


def test_lifo_reuse_explicit():
    """Of two idle containers, the one released last serves the next warm start."""
    env, pools = make_pools()
    taken = []

    def body():
        a = yield from pools.acquire(CONFIG)
        b = yield from pools.acquire(CONFIG)
        pools.release(a)
        yield env.timeout(10.0)
        pools.release(b)
        c = yield from pools.acquire(CONFIG)
        taken.append((a.id, b.id, c.id, c.startup))

    env.process(body())
    env.run()
    a_id, b_id, c_id, startup = taken[0]
    assert (c_id, startup) == (b_id, "warm")
    assert a_id != b_id


def test_concurrency_limit_queues_fifo():
    """With a limit of 1, a second acquire waits for the first release."""
    platform = TEST_PLATFORM.with_overrides(concurrency_limit=1, cold_start_sigma=0.0)
    _pools, log = run_invocations([(CONFIG, 0.0, 400.0), (CONFIG, 1.0, 0.0)], platform)
    (_, kind0, _, start0), (_, kind1, _, start1) = log
    assert (kind0, start0) == ("cold", 100.0)
    # Released at 500; the queued acquire then warm-starts on the same container.
    assert (kind1, start1) == ("warm", 505.0)


def test_same_seed_same_cold_starts():
    """Same seed gives the same cold-start samples in a pool run; another seed differs."""
    invocations = [(CONFIG, float(i), 10.0) for i in range(5)]
    _, log_a = run_invocations(invocations, seed=3)
    _, log_b = run_invocations(invocations, seed=3)
    _, log_c = run_invocations(invocations, seed=4)
    assert log_a == log_b
    assert log_a != log_c


def test_prewarm_makes_next_acquire_warm():
    """After a pre-warm, the next acquire of that config is warm and owed to pre-warming."""
    env, pools = make_pools()
    seen = []

    def body():
        warmed = yield from pools.prewarm(CONFIG)
        yield env.timeout(50.0)
        container = yield from pools.acquire(CONFIG)
        seen.append((warmed.id, container.id, container.startup, container.prewarm_hit))
        pools.release(container)

    env.process(body())
    env.run()
    assert seen == [(0, 0, "warm", True)]
    assert (pools.n_prewarm, pools.n_cold, pools.n_warm, pools.n_warm_prewarmed) == (1, 0, 1, 1)
    prewarm_call, worker_call = pools.containers[0].invocations
    assert (prewarm_call.prewarm, prewarm_call.startup) == (True, "cold")
    assert (worker_call.prewarm, worker_call.startup) == (False, "warm")


def test_billing_intervals_include_startup():
    """An invocation's busy interval runs from the start of its start-up to its release."""
    platform = TEST_PLATFORM.with_overrides(cold_start_sigma=0.0)
    pools, _log = run_invocations([(CONFIG, 20.0, 30.0)], platform)
    (invocation,) = pools.containers[0].invocations
    assert (invocation.start_ms, invocation.end_ms, invocation.startup_ms) == (20.0, 150.0, 100.0)
    assert invocation.duration_ms == 130.0


def test_double_release_rejected():
    """Releasing an idle container raises ValueError naming it."""
    env, pools = make_pools()
    got = []

    def body():
        got.append((yield from pools.acquire(CONFIG)))

    env.process(body())
    env.run()
    pools.release(got[0])
    with pytest.raises(ValueError, match="container 0"):
        pools.release(got[0])


def test_warm_starts_never_exceed_idle_containers():
    """Over a busy random schedule, warm starts per config never exceed containers made idle."""
    rng = np.random.default_rng(11)
    configs = [ResourceConfig(1024), ResourceConfig(1024, 2.0), ResourceConfig(2048)]
    invocations = [
        (configs[int(rng.integers(3))], float(rng.uniform(0, 5000)), float(rng.uniform(0, 800)))
        for _ in range(300)
    ]
    platform = TEST_PLATFORM.with_overrides(concurrency_limit=20)
    pools, log = run_invocations(invocations, platform)
    assert pools.n_cold + pools.n_warm == len(log) == 300
    assert pools.n_warm > 0
    assert pools.n_busy == 0 and pools.n_queued == 0


def test_concurrency_queue_is_fifo():
    """Acquires queued on a full account start in arrival order as slots free up."""
    platform = TEST_PLATFORM.with_overrides(concurrency_limit=1, cold_start_sigma=0.0)
    env, pools = make_pools(platform)
    started = {}

    def one(label, at_ms):
        yield env.timeout(at_ms)
        container = yield from pools.acquire(CONFIG)
        started[label] = env.now
        yield env.timeout(100.0)
        pools.release(container)

    for label, at_ms in [("first", 0.0), ("third", 2.0), ("second", 1.0)]:
        env.process(one(label, at_ms))
    env.run()
    # cold 0..100, busy to 200; then warm starts of 5 ms each after every release.
    assert started == {"first": 100.0, "second": 205.0, "third": 310.0}
