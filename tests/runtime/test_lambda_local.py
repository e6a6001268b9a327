"""The local Lambda emulator through boto3, and faasdag runs on it (real worker processes)."""

import json
import threading
import time
from pathlib import Path

import boto3
import pytest
import runtime_tasks as rt
from botocore.config import Config

from dag import Placement, Plan, ResourceConfig
from dag.examples import EXAMPLES, build_example
from dag.lang import build
from planners import PLANNERS, ProfilesPredictor, get_planner
from runtime.client import run
from runtime.errors import RemoteTaskError, WorkerLost
from runtime.inprocess import run_in_process
from runtime.lambda_backend import BACKEND_ENV, LambdaBackend, warmup_payload
from runtime.lambda_deploy import deploy, iam_policy, package
from runtime.lambda_local import LambdaEmulator
from runtime.redis_driver import REDIS_URL_ENV
from runtime.signing import SIGNING_KEY_ENV, signing_key
from sim.simulate import simulate
from traces.io import TraceSet
from traces.profiles import FixedProfiles

SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
CFG = ResourceConfig(1024)
BIG = ResourceConfig(2048)
#: Liveness settings that notice a dead worker within about a second.
FAST_LIVENESS = {"heartbeat_ttl_s": 1.0, "check_interval_s": 0.2, "timeout_s": 30}


def lambda_client(emulator, attempts=1):
    return boto3.client(
        "lambda",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": attempts, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, redis_server):
    """An emulator with faasdag functions at 1024 and 2048 MB, whose environment names the
    test Redis (as the deployer sets it); the signing key is the suite's (tests/conftest.py)."""
    with LambdaEmulator(
        max_concurrency=24, keep_alive_s=120, log_dir=tmp_path_factory.mktemp("lambda-logs")
    ) as emu:
        for config in (CFG, BIG):
            emu.add_function(
                f"faasdag-{config.memory_mb}",
                config.memory_mb,
                extra_paths=(SUPPORT,),
                environment={REDIS_URL_ENV: redis_server.url},
            )
        emu.add_function("echo", 512, handler="lambda_test_handlers.echo", extra_paths=(SUPPORT,))
        emu.add_function("fail", 512, handler="lambda_test_handlers.fail", extra_paths=(SUPPORT,))
        emu.add_function(
            "sleepy",
            512,
            handler="lambda_test_handlers.sleepy",
            extra_paths=(SUPPORT,),
            timeout_s=2.0,
        )
        yield emu


def invoke(client, name, event, kind="RequestResponse"):
    response = client.invoke(FunctionName=name, InvocationType=kind, Payload=json.dumps(event))
    body = response["Payload"].read()
    return response, json.loads(body) if body else None


# -- the Invoke and Runtime APIs ------------------------------------------------------------


def test_request_response_returns_the_handler_result_and_reuses_a_warm_process(emulator):
    """A synchronous invoke returns the result; the next one runs in the same (warm) process."""
    client = lambda_client(emulator)
    first, body1 = invoke(client, "echo", {"x": 1})
    second, body2 = invoke(client, "echo", {"x": 2})
    assert first["StatusCode"] == 200 and "FunctionError" not in first
    assert body1["event"] == {"x": 1} and body1["memory"] == "512"
    assert body2["pid"] == body1["pid"]
    assert first["ExecutedVersion"] == "$LATEST"


def test_function_error_is_200_with_the_error_header(emulator):
    """A raising handler gives status 200, X-Amz-Function-Error and the error document."""
    response, body = invoke(lambda_client(emulator), "fail", {})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and "on purpose" in body["errorMessage"]


def test_event_and_dry_run_and_unknown_function(emulator):
    """Event is accepted with 202, DryRun answers 204, an unknown function is a 404 error."""
    client = lambda_client(emulator)
    assert invoke(client, "echo", {}, "Event")[0]["StatusCode"] == 202
    assert invoke(client, "echo", {}, "DryRun")[0]["StatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="nope"):
        invoke(client, "nope", {})


def test_timeout_kills_the_process_and_reports_it(emulator):
    """An invocation past the function timeout fails with a timeout error."""
    response, body = invoke(lambda_client(emulator), "sleepy", {"seconds": 5})
    assert response["FunctionError"] == "Unhandled"
    assert "timed out after 2.00 seconds" in body["errorMessage"]


def test_a_process_killed_mid_invocation_fails_it(emulator):
    """Killing the worker process mid-invocation fails it with Runtime.ExitError."""
    client = lambda_client(emulator)
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(r=invoke(client, "sleepy", {"seconds": 1.5}))
    )
    thread.start()
    busy = _wait_busy(emulator, "sleepy")
    busy.process.kill()
    thread.join(10)
    response, body = result["r"]
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"


def _wait_busy(emulator, function_name, timeout_s=10.0, payload_has=b""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for env in emulator.environments():
            current = env.current
            if (
                env.function.name == function_name
                and current is not None
                and not current.done.is_set()
                and payload_has in current.payload
            ):
                return env
        time.sleep(0.02)
    raise AssertionError(f"no busy environment of {function_name}")


def test_concurrency_limit_throttles_sync_and_queues_events(tmp_path):
    """Beyond max_concurrency a synchronous invoke gets 429; an Event waits for a slot."""
    with LambdaEmulator(max_concurrency=1, keep_alive_s=60) as emu:
        emu.add_function(
            "sleepy", 512, handler="lambda_test_handlers.sleepy", extra_paths=(SUPPORT,)
        )
        emu.add_function("echo", 512, handler="lambda_test_handlers.echo", extra_paths=(SUPPORT,))
        client = lambda_client(emu)
        thread = threading.Thread(target=invoke, args=(client, "sleepy", {"seconds": 1.0}))
        thread.start()
        _wait_busy(emu, "sleepy")
        with pytest.raises(client.exceptions.TooManyRequestsException):
            invoke(client, "echo", {})
        assert invoke(client, "echo", {}, "Event")[0]["StatusCode"] == 202
        thread.join()
        deadline = time.monotonic() + 10
        while emu.stats.cold_starts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emu.stats.throttled >= 1 and emu.stats.cold_starts == 2


def test_keep_alive_expiry_makes_the_next_start_cold():
    """An environment idle past keep_alive_s is stopped; the next invoke starts a new process."""
    with LambdaEmulator(keep_alive_s=0.4) as emu:
        emu.add_function("echo", 512, handler="lambda_test_handlers.echo", extra_paths=(SUPPORT,))
        client = lambda_client(emu)
        first = invoke(client, "echo", {})[1]["pid"]
        time.sleep(1.5)
        assert emu.environments() == []
        assert invoke(client, "echo", {})[1]["pid"] != first
        assert emu.stats.cold_starts == 2


def test_builtin_runtime_client_speaks_the_same_api():
    """The fallback runtime client runs handlers like awslambdaric does."""
    with LambdaEmulator(runtime_client="builtin") as emu:
        emu.add_function("echo", 512, handler="lambda_test_handlers.echo", extra_paths=(SUPPORT,))
        emu.add_function("fail", 512, handler="lambda_test_handlers.fail", extra_paths=(SUPPORT,))
        client = lambda_client(emu)
        assert invoke(client, "echo", {"y": 3})[1]["event"] == {"y": 3}
        response, body = invoke(client, "fail", {})
        assert response["FunctionError"] == "Unhandled" and body["errorType"] == "ValueError"


# -- faasdag runs on the emulator -----------------------------------------------------------


def run_on(emulator, target, plan=None, **kwargs):
    return run(
        target,
        plan,
        backend="lambda",
        endpoint_url=emulator.endpoint_url,
        config=CFG,
        timeout_s=kwargs.pop("timeout_s", 60),
        **kwargs,
    )


def mixed_plan(dag):
    """Fixed workers w0..w2 (w1 at 2048 MB) and flexible tasks every third level."""
    levels = dag.levels()
    placements = {}
    for i, t in enumerate(dag):
        if levels[t] % 3 == 2:
            placements[t] = Placement(None, BIG if levels[t] % 2 else CFG)
        else:
            placements[t] = Placement(f"w{i % 3}", BIG if i % 3 == 1 else CFG)
    return Plan(placements)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_on_the_emulator_match_direct_computation(name, emulator, redis_url, tmp_path):
    """Every example on Lambda workers (two memory sizes) gives the direct result; traces
    are written with cold and warm starts recorded."""
    example = build_example(name)
    dag = example.dag
    plan = Plan(
        {
            t: Placement(p.worker_id or f"f{dag.levels()[t]}", p.config)
            for t, p in mixed_plan(dag).placements.items()
        }
    )
    result = run_on(emulator, example, plan, redis_url=redis_url)
    example.check(result.results)
    assert set(result.workers["startup"]) <= {"cold", "warm"}
    assert result.runs["backend"].tolist() == ["lambda"]
    TraceSet.concat([result.traces()]).write(tmp_path / "t")
    assert len(TraceSet.read(tmp_path / "t").tasks) == len(dag)


def test_flexible_plan_on_the_emulator(emulator, redis_url):
    """A WUKONG-style all-flexible plan runs on the emulator and matches the direct result."""
    example = build_example("tree_reduction")
    plan = Plan({t: Placement(None, CFG) for t in example.dag})
    result = run_on(emulator, example, plan, redis_url=redis_url)
    example.check(result.results)


def test_in_process_sim_and_emulator_agree_on_structure(emulator, redis_url):
    """The same fixed plan executes the same tasks on the same workers, with the same uploads
    and invocations, in the in-process driver, the simulator and the emulator."""
    example = build_example("montage_like")
    plan = Plan(
        {
            t: Placement(p.worker_id or f"w-flex{p.config.memory_mb}", p.config)
            for t, p in mixed_plan(example.dag).placements.items()
        }
    )
    local = run_in_process(
        example.dag, plan, lambda t, inputs: example.workflow.specs[t].call(inputs)
    )
    profiles = FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    simulated = simulate(example.dag, plan, profiles, "aws-lambda", seed=1)
    real = run_on(emulator, example, plan, redis_url=redis_url)
    where = dict(zip(real.tasks["task_id"], real.tasks["worker_id"], strict=True))
    assert where == {r["task_id"]: r["worker_id"] for r in local.task_rows}
    assert where == dict(zip(simulated.tasks["task_id"], simulated.tasks["worker_id"], strict=True))
    assert sorted(real.uploads) == sorted(local.uploads) == sorted(simulated.uploads)
    invoked = sorted(i.worker_id for i in real.invocations)
    assert invoked == sorted(i.worker_id for i in local.invocations)
    assert invoked == sorted(i.worker_id for i in simulated.invocations)


def test_task_exception_on_the_emulator_reaches_the_client(emulator, redis_url):
    """A task raising in a Lambda worker reaches the client with its remote traceback."""
    with pytest.raises(RemoteTaskError, match="(?s)boom on 7.*runtime_tasks.py"):
        run_on(emulator, rt.explode(rt.number(7)), redis_url=redis_url, timeout_s=30)


def test_killed_worker_is_reinvoked_and_the_run_completes(emulator, redis_url):
    """A worker process killed mid-task is detected by its expired heartbeat and re-invoked;
    the run completes with the right result and every output stored once."""
    workflow = build(rt.add(rt.slow(1, 2.0), rt.number(2)))
    plan = Plan({t: Placement("w-" + t.split("-")[0], CFG) for t in workflow.dag})
    killer = threading.Thread(
        target=lambda: _wait_busy(emulator, "faasdag-1024", payload_has=b'"w-slow"').process.kill()
    )
    killer.start()
    result = run_on(
        emulator, workflow, plan, redis_url=redis_url, settle_timeout_s=2, **FAST_LIVENESS
    )
    killer.join()
    assert result.value == 3
    assert sorted(result.uploads) == sorted(set(result.uploads))
    assert sorted(result.tasks["task_id"]) == sorted(workflow.dag)


def test_a_run_that_stays_stalled_ends_in_worker_lost(emulator, redis_url):
    """With no retries left, a killed worker ends the run, naming the worker."""
    workflow = build(rt.add(rt.slow(1, 2.0), rt.number(2)))
    plan = Plan({t: Placement("w-" + t.split("-")[0], CFG) for t in workflow.dag})
    killer = threading.Thread(
        target=lambda: _wait_busy(emulator, "faasdag-1024", payload_has=b'"w-slow"').process.kill()
    )
    killer.start()
    with pytest.raises(WorkerLost, match="w-slow"):
        run_on(
            emulator,
            workflow,
            plan,
            redis_url=redis_url,
            settle_timeout_s=0.2,
            retries=0,
            **FAST_LIVENESS,
        )
    killer.join()


def test_deployer_packages_creates_updates_and_the_functions_run(redis_url, tmp_path):
    """The zip from `package` deployed with `deploy` runs a workflow on the emulator."""
    zip_path = package(
        tmp_path / "faasdag.zip", install=False, extra_paths=[Path(SUPPORT) / "runtime_tasks.py"]
    )
    with LambdaEmulator(keep_alive_s=60) as emu:
        names = deploy(
            zip_path,
            [CFG],
            role_arn="arn:aws:iam::0:role/x",
            endpoint_url=emu.endpoint_url,
            redis_url="redis://127.0.0.1:9/0",
        )
        assert names == ["faasdag-1024"]
        assert emu.event_invoke_configs["faasdag-1024"]["MaximumRetryAttempts"] == 0
        assert str(emu.functions["faasdag-1024"].code_dir).startswith("/tmp")
        # Its containers make the runs' Lambda client when they start (the same descriptor).
        environment = emu.functions["faasdag-1024"].environment
        assert json.loads(environment[BACKEND_ENV]) == LambdaBackend(emu.endpoint_url).descriptor
        # The store's URL and the signing key reach workers through their environment only.
        assert environment[REDIS_URL_ENV] == "redis://127.0.0.1:9/0"
        assert environment[SIGNING_KEY_ENV].encode() == signing_key()
        # A redeploy updates the code and the variables, keeping the function's others.
        emu.functions["faasdag-1024"].environment["MINE"] = "1"
        redeployed = deploy(
            zip_path, [CFG], role_arn="r", endpoint_url=emu.endpoint_url, redis_url=redis_url
        )
        assert redeployed == names
        environment = emu.functions["faasdag-1024"].environment
        assert environment[REDIS_URL_ENV] == redis_url and environment["MINE"] == "1"
        plan = None
        workflow = build(rt.add(rt.number(20), rt.number(22)))
        plan = Plan({t: Placement(None, CFG) for t in workflow.dag})
        assert run_on(emu, workflow, plan, redis_url=redis_url).value == 42
        client = LambdaBackend(emu.endpoint_url).client  # DeleteFunction, as calibrate uses it
        client.delete_function(FunctionName="faasdag-1024")
        assert "faasdag-1024" not in emu.functions
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.delete_function(FunctionName="faasdag-1024")
    policy = iam_policy(prefix="faasdag")
    actions = policy["execution_role"]["Statement"][0]
    assert actions["Action"] == ["lambda:InvokeFunction"]
    assert actions["Resource"].endswith(":function:faasdag-*")
    assert "lambda:DeleteFunction" in policy["deployer"]["Statement"][0]["Action"]


def test_iam_policy_passes_only_the_execution_role_to_lambda_and_logs_only_its_groups():
    """The deployer may pass the execution role alone, to Lambda alone; the execution role
    writes logs only to the log groups (and streams) of the prefix's functions."""
    role = "arn:aws:iam::123456789012:role/my-faasdag-role"
    policy = iam_policy(prefix="fd", account="123456789012", role_arn=role)
    [pass_role] = [s for s in policy["deployer"]["Statement"] if "iam:PassRole" in s["Action"]]
    assert pass_role["Action"] == ["iam:PassRole"] and pass_role["Resource"] == role
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}
    }
    [logs] = [
        s for s in policy["execution_role"]["Statement"] if "logs:PutLogEvents" in s["Action"]
    ]
    groups = "arn:aws:logs:*:123456789012:log-group:/aws/lambda/fd-*"
    assert sorted(logs["Resource"]) == [groups, f"{groups}:*"]
    every = [s for p in policy.values() for s in p["Statement"]]
    assert all(s["Resource"] != "*" for s in every), "no statement on every resource"
    default = iam_policy()["deployer"]["Statement"][-1]["Resource"]
    assert default == "arn:aws:iam::*:role/faasdag-execution"


def test_log_dir_whose_parent_is_missing_is_refused_naming_it(tmp_path):
    """A log folder that cannot be made is a ValueError naming it, before anything listens."""
    missing = tmp_path / "nope" / "logs"
    with pytest.raises(ValueError, match="nope"):
        LambdaEmulator(log_dir=missing)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        LambdaEmulator(log_dir=tmp_path / "file")


def test_missing_log_dir_is_made(tmp_path):
    """A log folder whose parent exists is made, so worker logs have somewhere to go."""
    with LambdaEmulator(log_dir=tmp_path / "logs") as emu:
        assert emu.log_dir.is_dir()


def test_lambda_local_refuses_a_log_dir_it_cannot_make(tmp_path, capsys):
    """`faasdag lambda-local --log-dir` under a missing folder exits 2 with one line naming it."""
    from experiments.cli import main

    missing = tmp_path / "nope" / "logs"
    assert main(["lambda-local", "--port", "0", "--log-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(missing) in err


def test_listening_beyond_loopback_warns_who_can_run_code(caplog):
    """An address other than loopback logs one warning saying anyone reaching the port runs
    code; loopback (the default) logs none."""
    from runtime.lambda_local.server import _warn_if_exposed

    with caplog.at_level("WARNING", logger="runtime.lambda_local.server"):
        with LambdaEmulator() as emu:
            assert emu.endpoint_url.startswith("http://127.0.0.1:")
        assert not caplog.records
        _warn_if_exposed("0.0.0.0", "http://0.0.0.0:9001")
    [record] = caplog.records
    assert record.levelname == "WARNING" and "anyone who can reach this port" in record.message


@pytest.mark.parametrize("planner", sorted(PLANNERS))
def test_every_planner_runs_on_the_emulator(planner, emulator, redis_url):
    """Each planner's plan for a fan-in/fan-out workflow runs on the emulator's Lambdas."""
    example = build_example("text_analysis")
    plan = get_planner(planner).plan(
        example.dag, ProfilesPredictor.from_profiled(example), "aws-lambda", [CFG, BIG]
    )
    result = run_on(emulator, example, plan, redis_url=redis_url)
    example.check(result.results)
    assert set(result.workers["memory_mb"]) <= {CFG.memory_mb, BIG.memory_mb}


def test_worker_environment_sizes_native_thread_pools_to_the_config():
    """A worker process gets BLAS/OpenMP thread pools of its config's whole CPUs (at least 1),
    unless the caller's environment sets them."""
    from runtime.lambda_local.environment import worker_environ
    from runtime.lambda_local.server import FunctionConfig

    small = worker_environ(FunctionConfig("f", 1024), {}, "us-east-1")
    assert small["OPENBLAS_NUM_THREADS"] == small["OMP_NUM_THREADS"] == "1"
    large = worker_environ(FunctionConfig("g", 10240), {}, "us-east-1")
    assert large["OMP_NUM_THREADS"] == str(int(ResourceConfig(10240).cpus))
    mine = worker_environ(FunctionConfig("h", 1024), {"OMP_NUM_THREADS": "3"}, "us-east-1")
    assert mine["OMP_NUM_THREADS"] == "3"


def test_warmup_ping_prepares_the_backend_and_holds_its_container(emulator):
    """A warm-up ping carrying the run's backend makes its client in the container (and
    imports the modules it lists); with hold_ms, concurrent pings reach as many distinct
    containers."""
    backend = LambdaBackend(endpoint_url=emulator.endpoint_url)
    assert backend._client is None  # made on first use only
    function = emulator.functions["faasdag-2048"]
    ping = warmup_payload(backend=backend.descriptor, hold_ms=300, imports=["dag.examples.gemm"])
    client = lambda_client(emulator)
    bodies = []
    threads = [
        threading.Thread(target=lambda: bodies.append(invoke(client, function.name, ping)[1]))
        for _ in range(4)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert time.perf_counter() - started >= 0.3
    assert [b["warmup"] for b in bodies] == [True] * 4
    deadline = time.monotonic() + 5
    while len(function.idle) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(function.idle) >= 4
    backend.prepare()
    assert backend._client is not None
    # A ping's imports must exist: the error names the module.
    _, body = invoke(client, function.name, warmup_payload(imports=["dag.no_such"]))
    assert "dag.no_such" in body["errorMessage"]


def test_event_invokes_of_one_backend_reuse_one_connection(emulator):
    """One backend's Event invokes all go over one connection to the Lambda API."""
    backend = LambdaBackend(endpoint_url=emulator.endpoint_url)
    backend.prepare()
    before = emulator.stats.connections
    for _ in range(6):
        backend.invoke(warmup_payload(), BIG)
    assert emulator.stats.connections - before == 1


def test_emulator_counts_a_connection_per_invoke_whose_body_stays_unread(emulator):
    """A client that leaves Invoke bodies unread opens a connection per invoke (what the
    backend's `release_connection` avoids; botocore and urllib3 behave so in 1.44 and 2.8)."""
    client = lambda_client(emulator)
    before = emulator.stats.connections
    for _ in range(3):
        client.invoke(FunctionName="echo", InvocationType="DryRun")
    assert emulator.stats.connections - before == 3


def test_malformed_backend_variable_fails_the_container_start_naming_it():
    """A function whose environment holds a malformed backend descriptor fails its start;
    the invocation's error names the variable (not a late failure inside a worker)."""
    with LambdaEmulator(keep_alive_s=30) as emu:
        emu.add_function("faasdag-1024", 1024, environment={BACKEND_ENV: "{bad"})
        response, body = invoke(lambda_client(emu), "faasdag-1024", warmup_payload())
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "ValueError"
    assert BACKEND_ENV in body["errorMessage"]


def test_function_environment_names_the_backend_its_containers_prepare():
    """The deployer's and the benches' functions carry the runs' backend descriptor; a
    container makes that backend's client from it, and a malformed one is an error naming
    the variable."""
    from runtime.backends import backend_for
    from runtime.lambda_backend import (
        BACKEND_ENV,
        LambdaBackend,
        backend_environment,
        prepare_configured_backend,
    )

    url = "http://127.0.0.1:9"  # never contacted: making a client does not connect
    environ = backend_environment(url)
    assert json.loads(environ[BACKEND_ENV]) == LambdaBackend(url).descriptor
    prepare_configured_backend(environ)
    assert backend_for(LambdaBackend(url).descriptor)._client is not None
    prepare_configured_backend({})  # nothing named, nothing made
    with pytest.raises(ValueError, match=BACKEND_ENV):
        prepare_configured_backend({BACKEND_ENV: "{not json"})
    with pytest.raises(ValueError, match="JSON object"):
        prepare_configured_backend({BACKEND_ENV: "[1]"})


@pytest.mark.parametrize(
    ("spec", "base", "flag", "params"),
    [
        ("image_pipeline", "wukong", "inline-subdag", {"max_exec_ms": 100.0}),
        ("montage_like", "non-uniform", "small-results-inline", {"max_bytes": 96 * 1024}),
    ],
)
def test_inline_optimizations_on_the_emulator_cut_store_commands(
    spec, base, flag, params, emulator, redis_url
):
    """The ablation's plan with and without inline-subdag or small-results-inline, on Lambda
    workers: the same result with fewer store commands, never more invocations (inline-subdag:
    one instead of one per tile), as the simulation of the same plans counts them."""
    from dag import Optimization
    from worker.estimates import ProfileEstimates

    example = build_example(spec)
    profiles = FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    estimates = ProfileEstimates(profiles)
    off = get_planner(base).plan(example.dag, ProfilesPredictor(profiles), "aws-lambda", [CFG])
    off = off.with_optimizations([])
    on = off.with_optimizations([Optimization(flag, params=params)])
    counts = {}
    for name, plan in (("off", off), ("on", on)):
        real = run_on(emulator, example, plan, estimates=estimates, redis_url=redis_url)
        example.check(real.results)
        simulated = simulate(example.dag, plan, profiles, "aws-lambda", 0, estimates=estimates)
        counts[name] = (real.n_store_commands, len(real.invocations))
        assert counts[name] == (simulated.n_store_commands, len(simulated.invocations))
    assert counts["on"][0] < counts["off"][0]
    assert counts["on"][1] <= counts["off"][1]
    if flag == "inline-subdag":
        assert counts["on"][1] == 1 < counts["off"][1]
