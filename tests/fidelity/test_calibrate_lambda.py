"""`faasdag calibrate --backend lambda`, against the local emulator standing in for AWS."""

import json
import math
import subprocess
import sys

import pytest

from experiments.cli import main
from runtime.calibrate import write_preset
from runtime.calibrate_lambda import KEPT_FROM_AWS, PROBE_PREFIX, calibrate_lambda
from runtime.lambda_deploy import package
from runtime.lambda_local import LambdaEmulator
from sim.platform import Platform

ROLE = "arn:aws:iam::000000000000:role/faasdag"


def test_lambda_calibration_writes_a_preset_of_containers_with_their_own_cpus(redis_url, tmp_path):
    """Probe functions are created through the Lambda API, measured and deleted; the store is
    measured from inside a probe container of each memory size; the preset loads, its
    containers have CPUs of their own and what is not measured is the aws-lambda preset's."""
    zip_path = package(tmp_path / "probe.zip", install=False)
    with LambdaEmulator(keep_alive_s=60) as emulator:
        calibration = calibrate_lambda(
            redis_url, role_arn=ROLE, endpoint_url=emulator.endpoint_url,
            memory_sizes=(1024, 2048), n_cold=2, n_warm=3, n_ops=10, n_transfers=2,
            sizes=(1_000, 1_000_000), zip_path=zip_path,
        )  # fmt: skip
        assert not [name for name in emulator.functions if name.startswith(PROBE_PREFIX)]
        assert emulator.stats.cold_starts >= 4  # two new functions per memory size
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
