"""Redis storage: values, counters, markers, pub/sub, namespacing, cleanup and reconnection."""

import threading
import time

import pytest
import redis
from redis_server import RedisServer, find_redis_server

from runtime.errors import RunFailed, StoreLost
from runtime.store import RedisStore, connect
from runtime.values import dumps, loads, serialised_nbytes


@pytest.fixture
def store(redis_url):
    s = RedisStore(connect(redis_url), f"t{time.time_ns()}")
    s.begin()
    yield s
    s.cleanup()


def test_none_is_a_stored_value(store):
    """A stored None comes back as None; a missing key raises KeyError naming it."""
    store.put("out:a", None)
    assert store.get("out:a")[0] is None
    with pytest.raises(KeyError, match="out:b"):
        store.get("out:b")


def test_keys_are_namespaced_by_run_and_cleanup_deletes_them(store, redis_url):
    """Every key of a run is under faasdag:<run_id>: and cleanup removes all of them only."""
    other = RedisStore(store.client, store.run_id + "x")
    other.begin()
    store.put("out:a", 1)
    store.count_member("deps:b", "a")
    other.put("out:a", 2)
    names = {k.decode() for k in store.client.keys(f"faasdag:{store.run_id}:*")}
    assert names == {store.key("_run"), store.key("out:a"), store.key("deps:b")}
    assert store.cleanup() == 3
    assert other.get("out:a")[0] == 2
    other.cleanup()


def test_counter_and_set_if_absent_are_atomic(store):
    """Concurrent counts of distinct producers count each once; exactly one SET NX wins."""
    wins, counts = [], []

    def hit(i):
        counts.append(store.count_member("deps:c", f"p{i}"))
        wins.append(store.set_if_absent("started:w"))

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == list(range(1, 21))
    assert wins.count(True) == 1


def test_counting_a_producer_twice_counts_it_once(store):
    """A retried producer counting its edge again leaves the count unchanged."""
    assert store.count_member("deps:c", "a") == 1
    assert store.count_member("deps:c", "b") == 2
    assert store.count_member("deps:c", "a") == 2


def test_serialised_size_matches_stored_bytes(store):
    """The size measured without copying equals the stored blob's length."""
    import numpy as np

    value = {"a": np.ones(1000), "b": [1, None]}
    assert serialised_nbytes(value) == len(dumps(value)) == store.put("out:x", value)
    assert loads(dumps(value))["b"] == [1, None]


def test_wait_sees_a_message_published_before_subscribing(store):
    """A publish that happened before the subscription is found through its marker."""
    store.publish("done:a")
    sub = store.subscription()
    sub.subscribe("done:a")
    started = time.monotonic()
    sub.wait("done:a", timeout_s=5)
    assert time.monotonic() - started < 1
    sub.close()


def test_wait_wakes_on_publish(store):
    """A waiter wakes soon after another thread publishes."""
    sub = store.subscription()
    sub.subscribe("done:b")
    timer = threading.Timer(0.2, store.publish, args=("done:b",))
    timer.start()
    started = time.monotonic()
    sub.wait("done:b", timeout_s=5)
    assert 0.15 < time.monotonic() - started < 2
    sub.close()


def test_wait_times_out_naming_the_channel(store):
    """With no event, wait raises TimeoutError naming the channel."""
    sub = store.subscription()
    sub.subscribe("done:never")
    with pytest.raises(TimeoutError, match="done:never"):
        sub.wait("done:never", timeout_s=0.3)
    sub.close()


def test_a_recorded_failure_wakes_waiters(store):
    """A failure recorded by another worker ends every wait with RunFailed."""
    sub = store.subscription()
    sub.subscribe("done:c")
    threading.Timer(0.1, store.fail, args=("worker w1 broke",)).start()
    with pytest.raises(RunFailed, match="w1 broke"):
        sub.wait("done:c", timeout_s=5)
    sub.close()


def test_password_url():
    """A redis:// URL with a password authenticates; a wrong one is refused."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server")
    with RedisServer(binary, password="s3cret") as server:
        assert connect(server.url).ping()
        bad = server.url.replace("s3cret", "wrong")
        with pytest.raises(redis.AuthenticationError):
            connect(bad, retries=0).ping()


def test_commands_retry_across_a_restart_and_lost_keys_are_detected(own_redis):
    """After a restart, commands reconnect with backoff, and the run is reported lost."""
    store = RedisStore(connect(own_redis.url, retries=8, backoff_cap_s=0.5), "r1")
    store.begin()
    sub = store.subscription()
    sub.subscribe("done:x")
    own_redis.restart()
    assert not store.alive()  # reconnected, and the run's keys are gone
    with pytest.raises(StoreLost, match="r1"):
        sub.wait("done:x", timeout_s=5)
    sub.close()


def test_stream_reader_started_first_gets_the_whole_value(store):
    """A reader waiting on a stream assembles the chunks written after it began reading."""
    value = list(range(50_000))
    got = []
    reader = threading.Thread(target=lambda: got.append(store.stream_get("out:s", timeout_s=10)))
    reader.start()
    nbytes = store.stream_put("out:s", value, chunk_bytes=4096)
    reader.join(10)
    assert got and got[0] == (value, nbytes)
    assert store.get("out:s") == (value, nbytes)  # a plain read assembles the stream too


def test_streamed_none_is_a_value(store):
    """None written as a stream reads back as None, never as missing."""
    store.stream_put("out:n", None, chunk_bytes=8)
    assert store.stream_get("out:n", timeout_s=5)[0] is None
    assert store.get("out:n")[0] is None


def test_a_value_too_large_for_one_redis_value_is_stored_in_chunks(redis_url):
    """Above `large_value_bytes` (256 MiB by default, Redis refuses 512 MB) a value is stored
    as a stream of chunks under the same name, and read back alike."""
    import numpy as np

    client = connect(redis_url)
    store = RedisStore(client, f"big{time.time_ns()}", large_value_bytes=4096)
    store.begin()
    value = np.arange(20_000, dtype=np.float64)
    stored = store.put("out:a", value)
    assert stored > 4096 and client.get(store.key("out:a"))[:1] == b"\x02"
    assert client.xlen(store.key("stream:out:a")) >= 2
    back, nbytes = store.get("out:a")
    assert np.array_equal(back, value) and nbytes == stored
    store.cleanup()


def test_every_key_a_store_writes_expires(store):
    """Values, counters, markers, claims and logs all get the run's ttl."""
    store.put("out:a", 1)
    store.count_member("deps:b", "a")
    store.set_if_absent("started:w", ("client", "invoke"))
    store.publish("done:a")
    store.append_log("_log", dumps([]))
    store.cancel()
    keys = store.client.keys(store.key("*"))
    assert len(keys) == 7 and all(store.client.pttl(k) > 0 for k in keys)


def test_a_superseded_or_cancelled_writer_is_refused(store):
    """A worker's write is refused once a retry took a new attempt, and every write once the
    run is cancelled or its keys are gone; the store is left as it was."""
    from runtime.errors import WriteRefused

    worker = RedisStore(store.client, store.run_id, writer=("w", 0))
    worker.put("out:a", 1)
    assert store.next_attempt("w") == 1
    with pytest.raises(WriteRefused, match="retry") as refused:
        worker.put("out:a", 2)
    assert refused.value.reason == "superseded" and store.get("out:a")[0] == 1
    retry = RedisStore(store.client, store.run_id, writer=("w", 1))
    retry.put("out:b", 3)
    store.cancel()
    with pytest.raises(WriteRefused, match="cancelled"):
        retry.put("out:c", 4)
    store.cleanup()
    with pytest.raises(WriteRefused, match="gone"):
        retry.put("out:d", 5)
    assert store.client.keys(store.key("*")) == []
