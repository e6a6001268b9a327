"""A shared host (`Platform.host_cpus`): tasks and the platform's local work share its CPUs."""

import math

import pytest
import simpy
from profiles import DictProfiles

from dag import DAG, Placement, Plan, ResourceConfig, Task
from sim import Platform
from sim.host import Host
from sim.simulate import simulate

CFG = ResourceConfig(1024)
IDEAL = Platform.preset("ideal")
FAN = DAG([Task("a", "f"), Task("b", "f"), Task("c", "f")])
APART = Plan({t: Placement(f"w{t}", CFG) for t in FAN})


def test_tasks_on_separate_workers_share_a_one_cpu_host():
    """Three 100 ms tasks on three workers: 100 ms with private CPUs, 300 ms on one host CPU,
    150 ms on two (each served at most one CPU)."""
    profiles = DictProfiles(dict.fromkeys(FAN, 100.0), dict.fromkeys(FAN, 0))
    assert simulate(FAN, APART, profiles, IDEAL).makespan_ms == pytest.approx(100.0)
    one = IDEAL.with_overrides(host_cpus=1.0)
    assert simulate(FAN, APART, profiles, one).makespan_ms == pytest.approx(300.0)
    two = IDEAL.with_overrides(host_cpus=2.0)
    assert simulate(FAN, APART, profiles, two).makespan_ms == pytest.approx(150.0)
    many = IDEAL.with_overrides(host_cpus=8.0)
    assert simulate(FAN, APART, profiles, many).makespan_ms == pytest.approx(100.0)


def test_client_invokes_its_workers_one_call_after_another():
    """The client's invocations of three roots are sent in turn: invoked at 0, L and 2L."""
    latency = 7.0
    platform = IDEAL.with_overrides(invoke_latency_ms=latency)
    profiles = DictProfiles(dict.fromkeys(FAN, 1.0), dict.fromkeys(FAN, 0))
    workers = simulate(FAN, APART, profiles, platform).workers.sort_values("invoked_ms")
    assert workers["invoked_ms"].tolist() == pytest.approx([0.0, latency, 2 * latency])
    assert (workers["ready_ms"] - workers["invoked_ms"]).tolist() == pytest.approx([latency] * 3)


def test_worker_overheads_lengthen_a_chain_by_their_amounts():
    """One worker running a 3-task chain: setup once, the task overhead before every task."""
    chain = DAG([Task("a", "f"), Task("b", "f", ("a",)), Task("c", "f", ("b",))])
    plan = Plan({t: Placement("w", CFG) for t in chain})
    profiles = DictProfiles(dict.fromkeys(chain, 10.0), dict.fromkeys(chain, 0))
    platform = IDEAL.with_overrides(worker_setup_ms=5.0, task_overhead_ms=1.0)
    assert simulate(chain, plan, profiles, platform).makespan_ms == pytest.approx(5 + 3 * 11)


def test_invocation_cpu_only_matters_on_a_shared_host():
    """The platform's own work per invocation takes host CPU from the tasks beside it; with
    private CPUs it changes nothing."""
    profiles = DictProfiles(dict.fromkeys(FAN, 100.0), dict.fromkeys(FAN, 0))
    private = IDEAL.with_overrides(invocation_cpu_ms=30.0)
    assert simulate(FAN, APART, profiles, private).makespan_ms == pytest.approx(100.0)
    shared = IDEAL.with_overrides(invocation_cpu_ms=30.0, host_cpus=1.0)
    # 3 x 100 ms of tasks and 3 x 30 ms of platform work on one CPU
    assert simulate(FAN, APART, profiles, shared).makespan_ms == pytest.approx(390.0)


def test_host_rejects_bad_cpus_and_work():
    """A non-positive CPU count or negative work is refused, naming the value."""
    env = simpy.Environment()
    with pytest.raises(ValueError, match="cpus=0"):
        Host(env, 0)
    with pytest.raises(ValueError, match="-1"):
        Host(env, 2).work(-1.0)
    assert not Host(env).shared and Host(env, 2).shared
    with pytest.raises(ValueError, match="host_cpus"):
        IDEAL.with_overrides(host_cpus=0.0)
    assert math.isinf(Platform.preset("aws-lambda").host_cpus)


def test_transfers_take_host_cpu_beside_the_store_link():
    """On a one-CPU host a 100 ms upload and a 100 ms task of another worker share the CPU
    (200 ms); with private CPUs the upload only uses the store link (100 ms)."""
    pair = DAG([Task("a", "f"), Task("b", "f")])
    plan = Plan({t: Placement(f"w{t}", CFG) for t in pair})
    profiles = DictProfiles({"a": 0.0, "b": 100.0}, {"a": 100_000, "b": 0})
    link = IDEAL.with_overrides(store_bandwidth_bytes_per_ms=1000.0)
    assert simulate(pair, plan, profiles, link).makespan_ms == pytest.approx(100.0)
    shared = link.with_overrides(host_cpus=1.0)
    assert simulate(pair, plan, profiles, shared).makespan_ms == pytest.approx(200.0)


def test_own_transfer_rates_on_private_cpus_floor_a_transfer():
    """Containers with CPUs of their own (cloud presets, host_cpus = inf) and per-direction
    transfer rates (what calibration writes): a's 10 kB upload takes 10 ms at 1000 bytes/ms
    and b's download of it 20 ms at 500, so b, a no-op, ends at 30 ms."""
    chain = DAG([Task("a", "f"), Task("b", "f", deps=("a",))])
    plan = Plan({t: Placement(f"w{t}", CFG) for t in chain})
    profiles = DictProfiles({"a": 0.0, "b": 0.0}, {"a": 10_000, "b": 0})
    own = IDEAL.with_overrides(upload_bytes_per_ms=1000.0, download_bytes_per_ms=500.0)
    assert simulate(chain, plan, profiles, own).makespan_ms == pytest.approx(30.0)


def test_a_sliced_host_runs_short_tasks_one_after_another():
    """With a time slice longer than the tasks, one CPU runs the three 100 ms tasks in turn
    (done at 100, 200 and 300 ms); shared processor-style all three end at 300 ms."""
    profiles = DictProfiles(dict.fromkeys(FAN, 100.0), dict.fromkeys(FAN, 0))
    sliced = IDEAL.with_overrides(host_cpus=1.0, host_quantum_ms=150.0)
    ends = sorted(simulate(FAN, APART, profiles, sliced).tasks["exec_done_ms"])
    assert ends == pytest.approx([100.0, 200.0, 300.0])
    shared = IDEAL.with_overrides(host_cpus=1.0)
    assert sorted(simulate(FAN, APART, profiles, shared).tasks["exec_done_ms"]) == pytest.approx(
        [300.0] * 3
    )
    with pytest.raises(ValueError, match="host_quantum_ms"):
        IDEAL.with_overrides(host_quantum_ms=-1.0)
    with pytest.raises(ValueError, match="quantum_ms"):
        Host(simpy.Environment(), 1.0, math.inf)
