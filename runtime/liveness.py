"""Worker liveness: heartbeats that the driver keeps, never the task.

A running worker holds a heartbeat key (``hb:<worker>``, its attempt number, a short ttl) that
one thread per process refreshes for every worker that process runs, at a third of the ttl. The
client re-invokes a worker only when its heartbeat has expired: a worker that is slow, however
slow, keeps its heartbeat and is never run twice; one whose process died loses it within the
ttl. The refresh is a fenced write, so a superseded attempt never looks alive.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

from runtime.store import RedisStore, StoreError

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_TTL_S = 10.0


class Heartbeats:
    """Refreshes the heartbeats of the workers of this process from one daemon thread.

    Parameters
    ----------
    clock : callable
        Monotonic seconds (tests may pass their own).
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._beats: dict[int, tuple[RedisStore, int, float]] = {}  # token -> (store, ttl, due)
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self, store: RedisStore, ttl_s: float) -> int:
        """Set the heartbeat of `store`'s writer now and keep it fresh; returns a token for
        `stop`.

        Raises
        ------
        WriteRefused
            If the writer's attempt is superseded or the run is gone or cancelled (it must not
            start at all).
        """
        ttl_ms = max(int(ttl_s * 1000), 1)
        store.heartbeat(ttl_ms)
        with self._lock:
            token = next(self._tokens)
            self._beats[token] = (store, ttl_ms, self._clock() + ttl_s / 3)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="heartbeats", daemon=True)
                self._thread.start()
            self._wake.notify()
        return token

    def stop(self, token: int) -> None:
        """Stop refreshing the heartbeat of `token` (it expires by itself, or `finish` drops
        it)."""
        with self._lock:
            self._beats.pop(token, None)

    def _due(self) -> list[tuple[int, RedisStore, int]]:
        now = self._clock()
        due = []
        for token, (store, ttl_ms, at) in list(self._beats.items()):
            if at <= now:
                due.append((token, store, ttl_ms))
                self._beats[token] = (store, ttl_ms, now + ttl_ms / 3000)
        return due

    def _loop(self) -> None:
        while True:
            with self._lock:
                due = self._due()
                if not due:
                    wait = min((at for _s, _t, at in self._beats.values()), default=None)
                    self._wake.wait(None if wait is None else max(wait - self._clock(), 0.0))
                    continue
            for token, store, ttl_ms in due:
                try:
                    store.heartbeat(ttl_ms)
                except StoreError as err:  # superseded or cancelled: its next write stops it
                    log.info("heartbeat of %s stopped: %s", store.writer, err)
                    self.stop(token)
                except Exception:  # Redis unreachable: retried at the next beat
                    log.warning("heartbeat of %s failed", store.writer, exc_info=True)


_heartbeats = Heartbeats()


def heartbeats() -> Heartbeats:
    """The heartbeat thread of this process."""
    return _heartbeats
