"""`faasdag deploy` and `faasdag destroy` against the local Lambda emulator, and the
reproducible zip they upload."""

import json
import os
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import runtime_tasks as rt

from dag import ResourceConfig
from dag.examples import build_example
from dag.generators import layered_dag
from dag.lang import build
from experiments.cli import main
from runtime import lambda_package
from runtime.client import run
from runtime.lambda_backend import BACKEND_ENV, LambdaBackend
from runtime.lambda_deploy import code_sha256, package, workflow_modules
from runtime.lambda_local import LambdaEmulator
from runtime.lambda_local.api import code_sha256 as emulator_sha256
from runtime.redis_driver import REDIS_URL_ENV
from runtime.signing import SIGNING_KEY_ENV, signing_key

SUPPORT = Path(__file__).resolve().parents[1] / "support"


@pytest.fixture
def emulator(tmp_path):
    with LambdaEmulator(keep_alive_s=60, log_dir=tmp_path / "lambda-logs") as emu:
        yield emu


def deploy_cli(capsys, *argv):
    """Run ``faasdag deploy ...``; returns (exit status, stdout lines, stderr lines)."""
    status = main(["deploy", *argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def destroy_cli(capsys, *argv):
    status = main(["destroy", *argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


# -- the zip -------------------------------------------------------------------------------


def test_zip_built_twice_is_byte_identical_and_its_sha_is_lambdas(tmp_path):
    """Two builds of the same files give the same bytes, whatever the files' timestamps; no
    bytecode goes in; the SHA-256 is the one the emulator reports as CodeSha256."""
    module = tmp_path / "src" / "my_flow.py"
    module.parent.mkdir()
    module.write_text("X = 1\n")
    (tmp_path / "src" / "__pycache__").mkdir()
    first = package(tmp_path / "a.zip", install=False, extra_paths=[module]).read_bytes()
    os.utime(module, (1_000_000_000, 1_000_000_000))
    second = package(tmp_path / "b.zip", install=False, extra_paths=[module]).read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names) and "my_flow.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 & 0o777 for info in infos} <= {0o644, 0o755}
    assert code_sha256(first) == emulator_sha256(first)


def test_two_files_with_one_name_in_the_zip_are_refused_naming_both(tmp_path):
    """A user module named like a file of the project's packages would shadow it: refused."""
    clash = tmp_path / "dag"
    clash.mkdir()
    (clash / "graph.py").write_text("")
    with pytest.raises(ValueError, match="both 'dag/graph.py'"):
        package(tmp_path / "x.zip", install=False, extra_paths=[clash])
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.tmp").exists()


# -- the workflow's own modules ------------------------------------------------------------


def test_workflow_modules_of_an_example_are_none_beyond_the_packages():
    """Example workflows live in dag/, which every zip holds."""
    assert workflow_modules(build_example("tree_reduction")) == []


def test_workflow_modules_finds_a_user_module_file():
    """Task functions of a top-level module outside the project's packages: that file."""
    workflow = build(rt.add(rt.number(1), rt.number(2)))
    assert workflow_modules(workflow) == [(SUPPORT / "runtime_tasks.py").resolve()]


def test_workflow_modules_finds_a_user_package_folder(tmp_path, monkeypatch):
    """A task function of ``pkg.sub.mod`` brings the whole top-level package folder."""
    folder = tmp_path / "deploy_pkg_x" / "sub"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    (folder / "mod.py").write_text("from dag.lang import task\n\n@task\ndef one():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("deploy_pkg_x", "deploy_pkg_x.sub", "deploy_pkg_x.sub.mod"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from deploy_pkg_x.sub import mod

    assert workflow_modules(build(mod.one())) == [(tmp_path / "deploy_pkg_x").resolve()]


def test_workflow_modules_refuses_a_workflow_without_code():
    """A generated DAG has no task functions: nothing a worker could run."""
    with pytest.raises(ValueError, match="has no task code"):
        workflow_modules(layered_dag(5, seed=1))


# -- deploy and destroy on the emulator ----------------------------------------------------


def test_deploy_creates_then_finds_unchanged_code_runs_and_destroy_deletes(
    emulator, redis_url, monkeypatch, capsys
):
    """Deploy at two memory sizes creates both functions with their environment; a second
    deploy uploads no code; environment changes still apply; a run works; destroy deletes
    both, and a function already gone is reported, not an error."""
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    target = ["tree_reduction", "--memory", "1024,2048", "--endpoint-url", emulator.endpoint_url]
    status, out, err = deploy_cli(capsys, *target)
    assert (status, err) == (0, [])
    assert sorted(emulator.functions) == ["faasdag-1024", "faasdag-2048"]
    assert out[-2].startswith("faasdag-1024: created (1024 MB) (sha256 ")
    assert out[-1].startswith("faasdag-2048: created (2048 MB) (sha256 ")
    for name, memory_mb in (("faasdag-1024", 1024), ("faasdag-2048", 2048)):
        function = emulator.functions[name]
        assert function.memory_mb == memory_mb
        assert function.environment[REDIS_URL_ENV] == redis_url
        assert function.environment[SIGNING_KEY_ENV].encode() == signing_key()
        backend = json.loads(function.environment[BACKEND_ENV])
        assert backend == LambdaBackend(emulator.endpoint_url).descriptor
        assert emulator.event_invoke_configs[name]["MaximumRetryAttempts"] == 0
    sha256 = emulator.functions["faasdag-1024"].code_sha256
    assert f"sha256 {sha256}" in out[0]  # the zip line: what deploy computed is Lambda's

    status, out, err = deploy_cli(capsys, *target)
    assert (status, err) == (0, [])
    assert out[-2:] == [
        f"faasdag-1024: code unchanged (sha256 {sha256})",
        f"faasdag-2048: code unchanged (sha256 {sha256})",
    ]
    assert emulator.stats.code_updates == 0

    status, out, _ = deploy_cli(capsys, *target, "--redis-url", "redis://127.0.0.1:9/0")
    assert status == 0 and out[-1].endswith("environment updated")
    assert emulator.functions["faasdag-2048"].environment[REDIS_URL_ENV].endswith(":9/0")
    assert emulator.stats.code_updates == 0
    assert deploy_cli(capsys, *target)[0] == 0  # back to the test's Redis

    example = build_example("tree_reduction")
    result = run(
        example,
        backend="lambda",
        endpoint_url=emulator.endpoint_url,
        redis_url=redis_url,
        config=ResourceConfig(2048),
        timeout_s=60,
    )
    example.check(result.results)

    status, out, err = destroy_cli(capsys, "--endpoint-url", emulator.endpoint_url)
    assert (status, err) == (0, [])
    assert out == ["faasdag-1024: deleted", "faasdag-2048: deleted"]
    assert emulator.functions == {}
    status, out, _ = destroy_cli(
        capsys, "--memory", "1024", "--endpoint-url", emulator.endpoint_url
    )
    assert (status, out) == (0, ["faasdag-1024: not found (nothing to delete)"])


def test_destroy_without_memory_leaves_other_functions(emulator, capsys):
    """Only ``<prefix>-<digits>`` functions are found: others (a probe, another prefix) stay."""
    for name in ("faasdag-512", "faasdag-calibrate-x", "other-1024"):
        emulator.add_function(name, 512)
    status, out, _ = destroy_cli(capsys, "--endpoint-url", emulator.endpoint_url)
    assert (status, out) == (0, ["faasdag-512: deleted"])
    assert sorted(emulator.functions) == ["faasdag-calibrate-x", "other-1024"]


def test_deploy_of_a_user_module_ships_it_and_the_functions_run_it(
    emulator, redis_url, tmp_path, monkeypatch, capsys
):
    """A workflow from ``flow.py:builder`` runs on functions whose zip carries flow.py (the
    emulator's workers do not have its folder on their path)."""
    flow = tmp_path / "deploy_user_flow.py"
    flow.write_text(
        textwrap.dedent(
            """
            from dag.lang import task

            @task
            def square(x):
                return x * x

            @task
            def total(values):
                return sum(values)

            def squares(n: int = 3):
                return total([square(i) for i in range(n)])
            """
        )
    )
    # Loading a file puts its folder on sys.path and PYTHONPATH of this process: undo it.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.delitem(sys.modules, "deploy_user_flow", raising=False)
    spec = f"{flow}:squares:n=4"
    status, out, err = deploy_cli(
        capsys, spec, "--memory", "1024", "--endpoint-url", emulator.endpoint_url,
        "--redis-url", redis_url,
    )  # fmt: skip
    assert (status, err) == (0, [])
    assert f"workflow code: {flow.resolve()}" in out
    assert (Path(emulator.functions["faasdag-1024"].code_dir) / flow.name).is_file()
    from experiments.workflows import load_workflow

    result = run(
        load_workflow(spec),
        backend="lambda",
        endpoint_url=emulator.endpoint_url,
        redis_url=redis_url,
        config=ResourceConfig(1024),
        timeout_s=60,
    )
    assert result.value == 0 + 1 + 4 + 9


# -- errors: one line, exit 2, nothing created ---------------------------------------------


def test_requirements_that_do_not_resolve_fail_in_one_line_with_nothing_created(
    emulator, redis_url, tmp_path, capsys
):
    """pip's failure is one line naming the requirement; no function is created."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--no-index\nno-such-package-faasdag-test==1.0\n")
    status, out, err = deploy_cli(
        capsys, "tree_reduction", "--memory", "1024", "--requirements", str(requirements),
        "--endpoint-url", emulator.endpoint_url, "--redis-url", redis_url,
    )  # fmt: skip
    assert status == 2 and len(err) == 1
    assert err[0].startswith("faasdag: error: deploy: pip could not install -r ")
    assert "no-such-package-faasdag-test" in err[0]
    assert emulator.functions == {}


def test_missing_requirements_file_is_named(emulator, redis_url, tmp_path, capsys):
    """A requirements file that does not exist: named, exit 2."""
    missing = tmp_path / "nope.txt"
    status, _, err = deploy_cli(
        capsys, "tree_reduction", "--memory", "1024", "--requirements", str(missing),
        "--endpoint-url", emulator.endpoint_url, "--redis-url", redis_url,
    )  # fmt: skip
    assert status == 2 and err == [
        f"faasdag: error: deploy: requirements file {str(missing)!r} does not exist"
    ]


def test_a_zip_over_the_limit_is_refused_before_any_api_call(
    emulator, redis_url, monkeypatch, capsys
):
    """Over Lambda's direct-upload limit (lowered here): the size, the limit and the way out
    in one line; no function created."""
    monkeypatch.setattr(lambda_package, "MAX_ZIP_BYTES", 1000)
    status, _, err = deploy_cli(
        capsys, "tree_reduction", "--memory", "1024", "--endpoint-url", emulator.endpoint_url,
        "--redis-url", redis_url,
    )  # fmt: skip
    assert status == 2 and len(err) == 1
    assert "over Lambda's limit of 1,000 bytes" in err[0]
    assert "fewer requirements" in err[0] and "S3" in err[0]
    assert emulator.functions == {} and emulator.stats.connections == 0


@pytest.fixture
def no_aws_credentials(tmp_path, monkeypatch):
    """An environment where boto3 finds no credentials (and asks no metadata service)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_missing_credentials_are_one_line(no_aws_credentials, redis_url, capsys):
    """No endpoint and no AWS credentials: deploy and destroy say so in one line."""
    expected = [
        "faasdag: error: no AWS credentials: configure them (aws configure / AWS_PROFILE) or "
        "use --endpoint-url for the local emulator"
    ]
    status, _, err = deploy_cli(
        capsys, "tree_reduction", "--memory", "1024", "--redis-url", redis_url
    )
    assert (status, err) == (2, expected)
    assert destroy_cli(capsys, "--memory", "1024")[::2] == (2, expected)


def test_a_refused_api_call_names_the_function_and_the_error_code(
    emulator, redis_url, monkeypatch, capsys
):
    """A ClientError (here AccessDenied on GetFunction) is one line: function and code."""
    from runtime.lambda_local.server import LambdaAPIError

    def refuse(raw_name):
        raise LambdaAPIError(403, "AccessDeniedException", "not authorized to get it")

    monkeypatch.setattr(emulator, "function", refuse)
    status, _, err = deploy_cli(
        capsys, "tree_reduction", "--memory", "1024", "--endpoint-url", emulator.endpoint_url,
        "--redis-url", redis_url,
    )  # fmt: skip
    assert (status, err) == (
        2,
        ["faasdag: error: deploy: faasdag-1024: AccessDeniedException: not authorized to get it"],
    )
    assert emulator.functions == {}


def test_bad_memory_and_missing_redis_url_are_usage_errors(emulator, monkeypatch, capsys):
    """--memory must be MB in Lambda's range; the workers need a Redis URL."""
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    status, _, err = deploy_cli(capsys, "tree_reduction", "--memory", "1024,lots")
    assert (status, err) == (2, ["faasdag: error: --memory 'lots' is not a memory size in MB"])
    status, _, err = deploy_cli(capsys, "tree_reduction", "--memory", "64")
    assert status == 2 and "outside 128..10240 MB" in err[0]
    status, _, err = deploy_cli(
        capsys, "tree_reduction", "--memory", "1024", "--endpoint-url", emulator.endpoint_url
    )
    assert status == 2 and REDIS_URL_ENV in err[0]
    assert emulator.functions == {}
