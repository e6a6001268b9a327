"""One worker's pub/sub listener over a run's store: wait for channels, never miss one.

A publish also leaves a marker key (`RedisStore.publish`), so a listener that subscribed late,
or whose connection dropped, finds the event by reading the markers: pub/sub makes waiting
fast, the marker makes it safe.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import redis

from runtime.errors import RunFailed, StoreLost
from runtime.store import FAILURE_CHANNEL
from runtime.values import loads

if TYPE_CHECKING:
    from runtime.store import RedisStore

log = logging.getLogger(__name__)


class Subscription:
    """One worker's pub/sub listener: remembers every channel that has fired since subscribing.

    The run's failure channel is always subscribed, so a waiter learns of a failure at once.
    """

    def __init__(self, store: RedisStore):
        self.store = store
        self._pubsub = store.client.pubsub(ignore_subscribe_messages=True)
        self._fired: dict[str, bytes] = {}  # channel -> its message (or marker)
        self._failed = False
        self._pubsub.subscribe(store._channel(FAILURE_CHANNEL))

    def subscribe(self, channel: str) -> None:
        self._pubsub.subscribe(self.store._channel(channel))

    def _drain(self, timeout_s: float) -> None:
        message = self._pubsub.get_message(timeout=timeout_s)
        while message is not None:
            name = message["channel"].decode()
            local = name[len(self.store.prefix) + len("chan:") :]
            if local == FAILURE_CHANNEL:
                self._failed = True
            else:
                self._fired.setdefault(local, message["data"])
            message = self._pubsub.get_message(timeout=0)

    def wait(self, channel: str, *, timeout_s: float, poll_s: float = 0.05) -> bytes:
        """Block until `channel` fired (a message, or its marker exists); returns the message
        (see `RedisStore.message_value`). Raises as `wait_any`."""
        self.wait_any([channel], timeout_s=timeout_s, poll_s=poll_s)
        return self._fired[channel]

    def wait_any(
        self, channels: list[str], *, timeout_s: float, poll_s: float = 0.05
    ) -> tuple[str, ...]:
        """Block until one of `channels` fired; returns all that have, in order.

        Raises
        ------
        RunFailed
            If another worker recorded a failure of the run.
        StoreLost
            If the run's keys vanished (Redis restarted or flushed).
        TimeoutError
            After `timeout_s` seconds with no event; names the channels and the run.
        """
        deadline = time.monotonic() + timeout_s
        next_check = 0.0
        while True:
            fired = tuple(c for c in channels if c in self._fired)
            if fired:
                return fired
            now = time.monotonic()
            if self._failed or now >= next_check:
                sent, alive, failure = self.store.check(channels)
                if failure is not None:
                    raise RunFailed(loads(failure, "_failure"))
                if not alive:
                    raise StoreLost(
                        f"run {self.store.run_id!r}: its keys vanished from Redis while waiting "
                        f"for {channels} (was Redis restarted or flushed?)"
                    )
                for c, data in zip(channels, sent, strict=True):
                    if data is not None:
                        self._fired.setdefault(c, data)
                if any(data is not None for data in sent):
                    continue
                next_check = now + poll_s * 4
            if now >= deadline:
                raise TimeoutError(
                    f"run {self.store.run_id!r}: no event on {', '.join(channels)} within "
                    f"{timeout_s:g} s"
                )
            try:
                self._drain(min(poll_s, max(deadline - now, 0.0)))
            except (redis.ConnectionError, redis.TimeoutError) as err:
                log.warning("pub/sub connection lost (%s); re-checking markers", err)
                next_check = 0.0
                time.sleep(poll_s)

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):  # closing a dead connection
            self._pubsub.close()
