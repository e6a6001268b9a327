"""`faasdag calibrate --backend lambda`, against the local emulator standing in for AWS."""

import math

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
