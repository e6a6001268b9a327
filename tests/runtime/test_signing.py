"""The trust boundary: nothing unsigned or tampered is unpickled, by workers or by the client."""

from __future__ import annotations

import base64
import json
import pickle
import stat
import threading
import time
from pathlib import Path

import boto3
import pytest
import runtime_tasks as rt

from dag import Placement, Plan, ResourceConfig
from dag.lang import build
from runtime import signing
from runtime.client import run
from runtime.lambda_local import LambdaEmulator
from runtime.redis_driver import REDIS_URL_ENV, RunRef, run_invocation
from runtime.signing import UntrustedData, sign_payload, verify_payload
from runtime.store import RedisStore, connect
from runtime.values import dumps, loads
from worker.branch import Invocation

SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
CFG = ResourceConfig(1024)


class Touch:
    """Unpickling this creates a file: what an attacker's blob would do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def unsigned_blob(payload: object) -> bytes:
    """A blob shaped like a stored value, with a made-up tag."""
    head = pickle.dumps(payload, protocol=5)
    return b"\x01" + b"\0" * 32 + len(head).to_bytes(4, "little") + (0).to_bytes(4, "little") + head


def test_a_tampered_or_unsigned_value_is_refused_before_unpickling(tmp_path):
    """A stored value with a flipped byte, or a made-up tag, raises UntrustedData naming the
    key, and the file its unpickling would create does not appear."""
    target = tmp_path / "pwned"
    blob = bytearray(dumps(Touch(target)))
    assert not target.exists()
    blob[-3] ^= 0x01
    with pytest.raises(UntrustedData, match="out:a"):
        loads(bytes(blob), "out:a")
    with pytest.raises(UntrustedData, match="out:b"):
        loads(unsigned_blob(Touch(target)), "out:b")
    assert not target.exists()
    loads(dumps(Touch(target)))  # the same value, signed, is trusted: the control
    assert target.exists()


def test_a_value_written_to_redis_by_someone_else_is_refused(redis_url, tmp_path):
    """An output planted in the run's keys by a writer without the key is refused when read."""
    target = tmp_path / "pwned"
    store = RedisStore(connect(redis_url), f"plant{time.time_ns()}")
    store.begin()
    store.client.set(store.key("out:a"), unsigned_blob(Touch(target)))
    with pytest.raises(UntrustedData, match="out:a"):
        store.get("out:a")
    store.cleanup()
    assert not target.exists()


def _payload(run_id: str, context: bytes) -> dict:
    ref = RunRef(run_id, time.time(), context_inline=base64.b64encode(context).decode())
    return ref.payload(Invocation("w", CFG, ("a",)), 0.0)


def test_a_payload_signed_with_another_key_is_refused_before_use(redis_url, tmp_path):
    """A worker refuses a payload whose signature is not made with its key, or that was
    altered after signing, before unpickling its inline context."""
    target = tmp_path / "pwned"
    payload = _payload("forged", unsigned_blob(Touch(target)))
    forged = sign_payload(payload, key=b"someone else's key, long enough")
    with pytest.raises(UntrustedData, match="payload"):
        run_invocation(forged, redis_url=redis_url)
    altered = {**payload, "attempt": 3}
    with pytest.raises(UntrustedData, match="payload"):
        run_invocation(altered, redis_url=redis_url)
    unsigned = {k: v for k, v in payload.items() if k != "signature"}
    with pytest.raises(UntrustedData):
        verify_payload(unsigned)
    assert not target.exists()


def test_an_unsigned_post_to_the_emulator_runs_nothing(redis_url, tmp_path):
    """One unauthenticated Invoke to the emulator, carrying a context that would create a file
    when unpickled, fails with UntrustedData; the file does not appear. An unsigned warm-up
    ping, which would make the container import modules, is refused too."""
    target = tmp_path / "pwned"
    payload = _payload("post", unsigned_blob(Touch(target)))
    payload = {k: v for k, v in payload.items() if k != "signature"}
    with LambdaEmulator(keep_alive_s=30) as emu:
        emu.add_function(
            "faasdag-1024", 1024, extra_paths=(SUPPORT,), environment={REDIS_URL_ENV: redis_url}
        )
        client = boto3.client(
            "lambda",
            endpoint_url=emu.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        for event in (payload, {"faasdag": 1, "warmup": True, "imports": ["antigravity"]}):
            response = client.invoke(FunctionName="faasdag-1024", Payload=json.dumps(event))
            body = json.loads(response["Payload"].read())
            assert response.get("FunctionError") == "Unhandled"
            assert body["errorType"] == "UntrustedData"
    assert not target.exists()


def test_a_log_planted_mid_run_is_refused_by_the_client(redis_url, tmp_path):
    """The client refuses a worker log it cannot verify instead of unpickling it."""
    target = tmp_path / "pwned"
    workflow = build(rt.slow(1, 1.0))
    run_id = f"planted{time.time_ns()}"
    client = connect(redis_url)

    def plant():
        time.sleep(0.3)
        client.rpush(f"faasdag:{run_id}:_log", unsigned_blob(Touch(target)))

    planter = threading.Thread(target=plant)
    planter.start()
    plan = Plan({t: Placement("w", CFG) for t in workflow.dag})
    with pytest.raises(UntrustedData, match="_log"):
        run(workflow, plan, redis_url=redis_url, run_id=run_id, check_interval_s=0.1)
    planter.join()
    assert not target.exists()


def test_the_key_file_is_made_once_readable_by_its_owner_only(tmp_path, monkeypatch):
    """Without FAASDAG_SIGNING_KEY, the key comes from a key file made on first use with mode
    0600; a second process reads the same key; a short key is refused naming its source."""
    path = tmp_path / "conf" / "signing.key"
    monkeypatch.delenv(signing.SIGNING_KEY_ENV, raising=False)
    monkeypatch.setenv(signing.SIGNING_KEY_FILE_ENV, str(path))
    signing.signing_key.cache_clear()
    try:
        key = signing.signing_key()
        assert path.read_text().strip().encode() == key and len(key) == 64
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        signing.signing_key.cache_clear()
        assert signing.signing_key() == key
        monkeypatch.setenv(signing.SIGNING_KEY_ENV, "short")
        signing.signing_key.cache_clear()
        with pytest.raises(ValueError, match="FAASDAG_SIGNING_KEY"):
            signing.signing_key()
    finally:
        signing.signing_key.cache_clear()
