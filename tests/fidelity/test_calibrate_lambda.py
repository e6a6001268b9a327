"""`faasdag calibrate --backend lambda`, against the local emulator standing in for AWS."""

import json
import math
import os
import subprocess
import sys

import pytest

from experiments.cli import main
from runtime.calibrate import bench_startups, write_preset
from runtime.calibrate_lambda import KEPT_FROM_AWS, PROBE_PREFIX, calibrate_lambda
from runtime.lambda_backend import BACKEND_ENV
from runtime.lambda_deploy import package
from runtime.lambda_local import LambdaEmulator
from runtime.redis_driver import REDIS_URL_ENV
from sim.platform import Platform

ROLE = "arn:aws:iam::000000000000:role/faasdag"


def _record(emulator):
    """Every Invoke payload `emulator` gets (the probes' own invokes of each other too) and
    the environment of every function made, by name."""
    payloads: list[bytes] = []
    environments: dict[str, dict[str, str]] = {}
    invoke, add_function = emulator.invoke, emulator.add_function

    def recording_invoke(name, payload, kind="RequestResponse"):
        payloads.append(bytes(payload))
        return invoke(name, payload, kind)

    def recording_add_function(name, memory_mb, **options):
        environments[name] = dict(options.get("environment") or {})
        return add_function(name, memory_mb, **options)

    emulator.invoke, emulator.add_function = recording_invoke, recording_add_function
    return payloads, environments


def _assert_no_redis_url(payloads, redis_url):
    """No payload holds the Redis URL, nor a ``redis_url`` field (issue 25)."""
    assert any(b'"key"' in payload for payload in payloads)  # the timed Event invokes' too
    leaking = [p for p in payloads if redis_url.encode() in p or b"redis_url" in p]
    assert not leaking, leaking[:1]


def test_lambda_calibration_writes_a_preset_of_containers_with_their_own_cpus(
    redis_url, tmp_path, monkeypatch
):
    """Probe functions are created through the Lambda API, measured and deleted; the store is
    measured from inside a probe container of each memory size; the preset loads, its
    containers have CPUs of their own and what is not measured is the aws-lambda preset's.
    The probes get the Redis URL from their function's environment only: no Invoke payload
    holds it (and the emulator's workers do not inherit it from this process)."""
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    zip_path = package(tmp_path / "probe.zip", install=False)
    with LambdaEmulator(keep_alive_s=60) as emulator:
        payloads, environments = _record(emulator)
        calibration = calibrate_lambda(
            redis_url, role_arn=ROLE, endpoint_url=emulator.endpoint_url,
            memory_sizes=(1024, 2048), n_cold=2, n_warm=3, n_ops=10, n_transfers=2,
            sizes=(1_000, 1_000_000), zip_path=zip_path,
        )  # fmt: skip
        assert not [name for name in emulator.functions if name.startswith(PROBE_PREFIX)]
        assert emulator.stats.cold_starts >= 4  # two new functions per memory size
    assert len(environments) == 5  # the timer and two per memory size
    assert all(env.get(REDIS_URL_ENV) == redis_url for env in environments.values())
    _assert_no_redis_url(payloads, redis_url)
    samples = calibration.samples
    for memory_mb in (1024, 2048):
        assert len(samples[f"cold_start_ms@{memory_mb}"]) == 2
        assert len(samples[f"upload@{memory_mb}"]) == len(samples[f"download@{memory_mb}"]) == 4
    assert len(samples["store_op_ms"]) == 2 * 3 * 10  # two containers' benchmarks
    path = write_preset(calibration, tmp_path / "aws-here.toml")
    platform = Platform.preset(str(path))
    aws = Platform.preset("aws-lambda")
    assert math.isinf(platform.host_cpus) and platform.host_quantum_ms == 0.0
    for key in KEPT_FROM_AWS:
        assert getattr(platform, key) == getattr(aws, key), key
    # A cold start spawns a worker process and imports the handler: far above a warm one.
    assert platform.cold_start_median_ms > 10 * max(platform.warm_start_ms, 1.0)
    assert platform.store_op_ms > 0 and platform.upload_bytes_per_ms > 0
    text = path.read_text()
    assert emulator.endpoint_url in text and "Kept from the aws-lambda preset" in text


def test_probe_functions_are_deleted_when_the_calibration_fails(redis_url, tmp_path):
    """A store benchmark that fails inside the probe container (an object size that is not a
    number) fails the calibration with the function named, after its start-ups were measured;
    the functions made so far are deleted all the same."""
    zip_path = package(tmp_path / "probe.zip", install=False)
    with LambdaEmulator(keep_alive_s=60) as emulator:
        with pytest.raises(RuntimeError, match=f"probe function '{PROBE_PREFIX}-1024-"):
            calibrate_lambda(
                redis_url, role_arn=ROLE, endpoint_url=emulator.endpoint_url,
                memory_sizes=(1024,), n_cold=2, n_warm=1, sizes=("large",), zip_path=zip_path,
            )  # fmt: skip
        assert emulator.stats.cold_starts >= 2
        assert not emulator.functions


@pytest.mark.parametrize(
    ("missing", "named"),
    [("--redis-url", "--redis-url"), ("--role", "--role"), ("--endpoint-url", "credentials")],
)
def test_calibrate_lambda_names_what_is_missing(missing, named, tmp_path, monkeypatch, capsys):
    """Without a Redis, a role, or (for AWS itself) credentials, the command stops before
    creating anything, naming what it needs."""
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    given = {
        "--redis-url": "redis://127.0.0.1:1",
        "--role": ROLE,
        "--endpoint-url": "http://127.0.0.1:1",
    }
    del given[missing]
    argv = ["calibrate", "--backend", "lambda", "--out", str(tmp_path / "p.toml")]
    for option, value in given.items():
        argv += [option, value]
    assert main(argv) == 2
    assert named in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


class _LambdaThatFails:
    """A Lambda API whose first CreateFunction finds the role not yet assumable and whose
    functions then stay Pending once and end Failed, as AWS may report them."""

    class exceptions:  # noqa: N801 (boto3's attribute name)
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self):
        self.calls: list[str] = []
        self.deleted: list[str] = []
        self.states = ["Pending", "Failed"]

    def create_function(self, **spec):
        from botocore.exceptions import ClientError

        self.calls.append(spec["FunctionName"])
        if len(self.calls) == 1:
            message = "The role defined for the function cannot be assumed by Lambda."
            error = {"Error": {"Code": "InvalidParameterValueException", "Message": message}}
            raise ClientError(error, "CreateFunction")

    def get_function(self, FunctionName):  # noqa: N803 (boto3's argument name)
        reason = "The function could not be started: no space left"
        return {"Configuration": {"State": self.states.pop(0), "StateReason": reason}}

    def delete_function(self, FunctionName):  # noqa: N803
        self.deleted.append(FunctionName)


def test_a_role_is_waited_for_and_a_failed_function_deleted(redis_url, tmp_path, monkeypatch):
    """CreateFunction is tried again while Lambda cannot assume the role yet; a function that
    ends Failed fails the calibration with AWS's reason, and is deleted."""
    import runtime.calibrate_lambda as calibrate

    fake = _LambdaThatFails()
    monkeypatch.setattr(calibrate, "lambda_client", lambda *args, **kwargs: fake)
    monkeypatch.setattr(calibrate.time, "sleep", lambda s: None)
    code = tmp_path / "probe.zip"
    code.write_bytes(b"zip")
    with pytest.raises(RuntimeError, match="Failed: The function could not be started"):
        calibrate_lambda(redis_url, role_arn=ROLE, endpoint_url="http://127.0.0.1:1",
                         zip_path=code)  # fmt: skip
    assert len(fake.calls) == 2 and fake.calls[0] == fake.calls[1]  # the same name, twice
    assert fake.deleted == fake.calls[:1]


def test_fit_gives_links_that_grow_with_memory_only_where_the_rates_do():
    """Rates that double with memory give a link of that bandwidth per GB (and the fastest
    size's own rates); rates alike at every size give a link as flat as they are."""
    from runtime.calibrate_lambda import fit_lambda_platform

    def samples(rate):  # bytes per ms at each memory size, both directions
        out = {"dryrun_ms": [1.0], "invoke_ms": [3.0], "store_op_ms": [0.5],
               "pubsub_ms": [0.6]}  # fmt: skip
        for m in (1024, 2048):
            out[f"cold_start_ms@{m}"], out[f"warm_start_ms@{m}"] = [201.0, 301.0], [2.0]
            pairs = [[n, 0.2 + n / rate(m)] for n in (1_000, 1_000_000)]
            out[f"upload@{m}"], out[f"download@{m}"] = pairs, pairs
        return out

    growing = fit_lambda_platform(samples(lambda m: 40.0 * m), (1024, 2048))
    assert growing["link_bytes_per_ms_per_gb"] == pytest.approx(40.0 * 1024, rel=1e-3)
    assert growing["link_min_bytes_per_ms"] == pytest.approx(40.0 * 1024, rel=1e-3)
    assert growing["link_max_bytes_per_ms"] == pytest.approx(40.0 * 2048, rel=1e-3)
    assert growing["download_bytes_per_ms"] == pytest.approx(40.0 * 2048, rel=1e-3)
    flat = fit_lambda_platform(samples(lambda m: 50_000.0), (1024, 2048))
    assert flat["link_min_bytes_per_ms"] == pytest.approx(flat["link_max_bytes_per_ms"])
    assert flat["warm_start_ms"] == 1.0 and flat["invoke_latency_ms"] == 2.0
    assert flat["cold_start_median_ms"] == pytest.approx(math.sqrt(200.0 * 300.0), rel=1e-6)
    assert math.isinf(flat["host_cpus"])


def test_the_probe_imports_only_what_the_lambda_zip_holds():
    """A probe container imports `runtime.lambda_probe` and, for its benchmarks,
    `runtime.calibrate`: nothing outside the zip's packages and requirements (sim, planners,
    experiments, pandas stay out), or it would fail on Lambda though it runs on the emulator."""
    code = (
        "import json, sys, runtime.lambda_probe, runtime.calibrate; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"sim", "planners", "experiments", "pandas", "matplotlib", "simpy"}
    assert {"runtime", "dag", "numpy", "redis"} <= loaded


def test_local_startup_probes_get_the_redis_url_from_their_environment(redis_url, monkeypatch):
    """`bench_startups` (the local calibration's) creates its probes with the Redis URL in
    their environment and never puts it in a payload; their asynchronous invokes still note
    their entry in that Redis."""
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    with LambdaEmulator(keep_alive_s=60) as emulator:
        payloads, environments = _record(emulator)
        samples = bench_startups(
            emulator.endpoint_url, emulator, redis_url, (1024,), n_cold=1, n_warm=2
        )
    assert len(samples["cold_start_ms@1024"]) == 1 and len(samples["invoke_ms"]) == 2
    assert [env.get(REDIS_URL_ENV) for env in environments.values()] == [redis_url]
    _assert_no_redis_url(payloads, redis_url)


def test_the_probe_reads_the_redis_url_from_its_environment_only(redis_url):
    """An event's ``key`` is written to the Redis of `REDIS_URL_ENV`; without that variable the
    probe fails naming it (an event's ``redis_url`` is no way around it), while a plain timing
    invoke needs no Redis."""
    import redis

    key = f"faasdag:calibrate:test-{os.getpid()}"
    code = (
        "import os, sys, runtime.lambda_probe as p\n"
        "assert 'entered_s' in p.probe({})\n"
        "try:\n"
        f"    p.probe({{'key': {key!r}, 'redis_url': sys.argv[1]}})\n"
        "except ValueError as err:\n"
        "    print(err)\n"
        f"os.environ[{REDIS_URL_ENV!r}] = sys.argv[1]\n"
        f"p.probe({{'key': {key!r}}})\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (REDIS_URL_ENV, BACKEND_ENV)}
    done = subprocess.run(
        [sys.executable, "-c", code, redis_url], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"no {REDIS_URL_ENV} in the probe function's environment" in done.stdout
    client = redis.Redis.from_url(redis_url)
    assert float(client.get(key)) > 0
    client.delete(key)
