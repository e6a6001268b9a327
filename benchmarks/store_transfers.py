"""What k concurrent clients move through one local Redis, against one client alone.

The `local` preset models a transfer as the CPU work of its two ends (``upload_bytes_per_ms``,
``download_bytes_per_ms``: a lone transfer's rates) on the shared host, beside a store link at
what Redis's one thread moves per CPU-ms (``store_bandwidth_bytes_per_ms``). This prints the
figures behind that, one JSON line per (object size, k) for k = 1, 2, 4 client processes that
each upload then download one object (`BYTES_PER_CLIENT` in all) through `runtime.store.RedisStore`:

- ``up_ms`` / ``down_ms``: mean time of one upload / download per client;
- ``aggregate_mb_per_s``: bytes all clients moved over the wall time;
- ``client_cpu_ms`` / ``server_cpu_ms``: CPU per transfer of the clients and of Redis.

If transfers shared one store link, the aggregate would stay flat with k; if they are their
ends' CPU work, it grows with the CPUs the clients get (see ``host_parallelism.py``). Each case
runs with glibc's default allocator and with large blocks kept in the heap, as worker
containers run (`runtime.allocator`).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.calibrate import server_cpu_ms  # noqa: E402
from runtime.local_redis import local_redis  # noqa: E402

SIZES = (1_000_000, 8_000_000)
#: Bytes each client uploads and downloads per case (so each case lasts ~0.1-0.5 s).
BYTES_PER_CLIENT = 160_000_000


def rounds(nbytes: int) -> int:
    return max(BYTES_PER_CLIENT // (2 * nbytes), 1)


def _client(
    url: str,
    index: int,
    nbytes: int,
    keep: bool,
    ready: object,
    start: object,
    results: object,
) -> None:
    import numpy as np

    from runtime.allocator import keep_large_blocks
    from runtime.store import RedisStore, connect

    if keep:
        keep_large_blocks()

    store = RedisStore(connect(url), f"bench-transfers-{index}")
    value = np.ones(nbytes // 8)
    store.put("blob", value)
    ready.put(index)
    start.wait()
    cpu = time.process_time()
    up = down = 0.0
    for _ in range(rounds(nbytes)):
        begin = time.perf_counter()
        store.put("blob", value)
        up += time.perf_counter() - begin
        begin = time.perf_counter()
        store.get("blob")
        down += time.perf_counter() - begin
    store.cleanup()
    results.put((up, down, time.process_time() - cpu))


def measure(url: str, server: object, nbytes: int, clients: int, keep: bool) -> dict:
    context = multiprocessing.get_context("forkserver")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    processes = [
        context.Process(target=_client, args=(url, i, nbytes, keep, ready, start, results))
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:  # every client connected and stored its object
        ready.get()
    server_before = server_cpu_ms(server)
    wall = time.perf_counter()
    start.set()
    done = [results.get() for _ in processes]
    wall = time.perf_counter() - wall
    server_cpu = server_cpu_ms(server) - server_before
    for process in processes:
        process.join()
    each = rounds(nbytes)
    transfers = 2 * each * clients
    return {
        "bench": "store_transfers",
        "case": f"{nbytes} bytes, {clients} clients, " + ("large blocks kept" if keep else "glibc"),
        "wall_s": round(wall, 4),
        "up_ms": round(1000 * sum(d[0] for d in done) / (each * clients), 3),
        "down_ms": round(1000 * sum(d[1] for d in done) / (each * clients), 3),
        "aggregate_mb_per_s": round(transfers * nbytes / wall / 1e6, 1),
        "client_cpu_ms": round(1000 * sum(d[2] for d in done) / transfers, 3),
        "server_cpu_ms": round(server_cpu / transfers, 3),
    }


def main() -> None:
    from runtime.store import connect

    with local_redis() as redis_server:
        server = connect(redis_server.url)
        for keep in (False, True):
            for nbytes in SIZES:
                for clients in (1, 2, 4):
                    case = measure(redis_server.url, server, nbytes, clients, keep)
                    print(json.dumps(case), flush=True)


if __name__ == "__main__":
    main()
