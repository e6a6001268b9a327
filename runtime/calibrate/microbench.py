"""Step 1, microbenchmarks of the platform: start-ups, invokes and the store, timed on a real
backend (the local Lambda emulator and a Redis; `runtime.calibrate_lambda` times the same from
inside AWS Lambda with the probe function, `runtime.lambda_probe`).

- start-up per memory size (`bench_startups`): a synchronous invoke of a probe function that
  is new (cold: a worker process starts and imports what faasdag's handler imports) or was
  just used (warm), minus the round trip of a ``DryRun`` invoke (the API alone);
- invocation latency: an asynchronous (``Event``) invoke of a warm probe, from the call to the
  handler's first line (`time_warm_invokes`);
- the store (`bench_store`): `RedisStore` command round trips (counter, SET NX, EXISTS),
  pub/sub delivery, upload and download time against object size (numpy arrays through
  `RedisStore.put` / `get`, serialisation included), and the Redis server's CPU meanwhile
  (``INFO cpu``, `server_cpu_ms`).

Every sample is in ms; the fit (`runtime.calibrate.fit`) turns them into platform fields.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from runtime.lambda_backend import backend_environment, lambda_client, release_connection

PROBE_HANDLER = "runtime.lambda_probe.probe"


#: Object sizes of the throughput benchmark, bytes.
DEFAULT_SIZES = (1_000, 16_000, 256_000, 1_000_000, 4_000_000, 16_000_000)
DEFAULT_MEMORY_MB = (1024, 2048)


def invoke_probe(client: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """The body of a synchronous invoke of probe function `name` with `event`.

    Raises
    ------
    RuntimeError
        If the function failed (its error named with the function).
    """
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    body = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"probe function {name!r} failed: {body}")
    return body


def _sync_ms(client: Any, name: str, event: dict[str, Any]) -> float:
    sent_s = time.time()
    return (invoke_probe(client, name, event)["entered_s"] - sent_s) * 1000.0


def _event_ms(client: Any, redis_client: Any, name: str) -> float:
    """From an asynchronous (``Event``) invoke of probe `name` to its entry, ms: the probe
    writes its entry time to the event's ``key`` in the Redis of its function's environment,
    read here through `redis_client` (the event carries the key only, never the URL)."""
    key = f"faasdag:calibrate:{uuid.uuid4().hex}"
    sent_s = time.time()
    release_connection(
        client.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"key": key}).encode(),
        )
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        raw = redis_client.get(key)
        if raw is not None:
            redis_client.delete(key)
            return (float(raw) - sent_s) * 1000.0
        time.sleep(0.001)
    raise TimeoutError(f"asynchronous probe of {name!r} never ran")


def _dry_run_ms(client: Any, name: str) -> float:
    """Round trip of a ``DryRun`` invoke of `name` (the API alone), ms."""
    start = time.perf_counter()
    release_connection(client.invoke(FunctionName=name, InvocationType="DryRun"))
    return (time.perf_counter() - start) * 1000.0


def time_warm_invokes(client: Any, redis_client: Any, name: str, n: int) -> dict[str, list[float]]:
    """`n` rounds of a synchronous, an asynchronous and a DryRun invoke of the warm probe
    `name`: ``warm``, ``invoke`` and ``dryrun`` samples, ms. `redis_client` reaches the Redis
    of the probe's environment, where the asynchronous invokes note their entry."""
    samples: dict[str, list[float]] = {"warm": [], "invoke": [], "dryrun": []}
    for _ in range(n):
        samples["warm"].append(_sync_ms(client, name, {}))
        samples["invoke"].append(_event_ms(client, redis_client, name))
        samples["dryrun"].append(_dry_run_ms(client, name))
    return samples


def bench_startups(
    endpoint_url: str,
    emulator: Any,
    redis_url: str,
    memory_sizes: Sequence[int],
    *,
    n_cold: int,
    n_warm: int,
) -> dict[str, list[float]]:
    """Cold, warm, invoke and DryRun samples (ms) on the emulator (see the module docstring).

    The probe functions get `redis_url` in their environment (``FAASDAG_REDIS_URL``), never in
    a payload."""
    from runtime.store import connect

    client = lambda_client(endpoint_url, max_attempts=1, read_timeout_s=120.0)
    redis_client = connect(redis_url)
    samples: dict[str, list[float]] = {"dryrun_ms": [], "invoke_ms": []}
    for memory_mb in memory_sizes:
        cold_key, warm_key = f"cold_start_ms@{memory_mb}", f"warm_start_ms@{memory_mb}"
        samples[cold_key], samples[warm_key] = [], []
        for i in range(n_cold):
            name = f"calibrate-{memory_mb}-{i}-{uuid.uuid4().hex[:6]}"
            emulator.add_function(
                name,
                memory_mb,
                handler=PROBE_HANDLER,
                environment=backend_environment(endpoint_url, redis_url=redis_url),
            )
            samples[cold_key].append(_sync_ms(client, name, {}))
            if i == 0:
                timed = time_warm_invokes(client, redis_client, name, n_warm)
                samples[warm_key] += timed["warm"]
                samples["invoke_ms"] += timed["invoke"]
                samples["dryrun_ms"] += timed["dryrun"]
    return samples


def bench_store(
    redis_url: str, sizes: Sequence[int], *, n_ops: int, n_transfers: int
) -> dict[str, list[Any]]:
    """Store op, pub/sub and transfer samples against `redis_url`, with this process's
    allocator set as a worker container's (`runtime.allocator.keep_large_blocks`)."""
    import numpy as np

    from runtime.allocator import keep_large_blocks
    from runtime.store import RedisStore, connect

    keep_large_blocks()

    client = connect(redis_url)
    store = RedisStore(client, f"calibrate-{uuid.uuid4().hex[:8]}")
    samples: dict[str, list[Any]] = {
        "store_op_ms": [],
        "pubsub_ms": [],
        "upload": [],
        "download": [],
    }
    try:
        store.begin()
        ops = (
            lambda i: store.count_member("counter", f"m{i}"),
            lambda i: store.set_if_absent(f"marker-{i}"),
            lambda i: store.exists(f"marker-{i}"),
        )
        for i in range(n_ops):
            for op in ops:
                start = time.perf_counter()
                op(i)
                samples["store_op_ms"].append((time.perf_counter() - start) * 1000.0)
        samples["pubsub_ms"] = _bench_pubsub(client, store, n_ops // 4 or 1)
        server_before = server_cpu_ms(client)
        moved = 0
        for nbytes in sizes:
            value = np.ones(max(nbytes // 8, 1))
            for i in range(n_transfers):
                start = time.perf_counter()
                stored = store.put(f"blob-{i}", value)
                samples["upload"].append([stored, (time.perf_counter() - start) * 1000.0])
                start = time.perf_counter()
                _, stored = store.get(f"blob-{i}")
                samples["download"].append([stored, (time.perf_counter() - start) * 1000.0])
                moved += 2 * stored
        if server_before is not None and (server_after := server_cpu_ms(client)) is not None:
            samples["store_server_cpu"] = [[moved, server_after - server_before]]
    finally:
        store.cleanup()
    return samples


def server_cpu_ms(client: Any) -> float | None:
    """CPU-ms the Redis server has used so far (``INFO cpu``); None where the server does not
    say (a managed service may hide it)."""
    import redis

    try:
        info = client.info("cpu")
        return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1000.0
    except (redis.RedisError, KeyError, TypeError, ValueError):
        return None


def _bench_pubsub(client: Any, store: Any, n: int) -> list[float]:
    channel = store.key("chan:calibrate")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    received: list[float] = []
    got = threading.Event()

    def listen() -> None:
        while len(received) < n:
            message = pubsub.get_message(timeout=1.0)
            if message is not None:
                received.append(time.perf_counter())
                got.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.05)
    latencies = []
    for _ in range(n):
        got.clear()
        sent = time.perf_counter()
        client.publish(channel, b"x")
        if not got.wait(5.0):
            break
        latencies.append((received[-1] - sent) * 1000.0)
    listener.join(2.0)
    pubsub.close()
    return latencies
