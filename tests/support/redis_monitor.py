"""Counts the commands a Redis server executes (its MONITOR feed), scripts' inner ones too."""

from __future__ import annotations

import collections
import threading
import time

import redis


class CommandCounter:
    """Counts executed write commands per (command, key) while open.

    MONITOR shows every command a server runs, those a Lua script runs included, so a write
    that a fenced script refused is absent (only its EVALSHA is there).
    """

    def __init__(self, url: str):
        self.url = url
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._monitor = redis.Redis.from_url(url).monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            for entry in self._monitor.listen():
                parts = entry["command"].split(" ", 2)
                if len(parts) >= 2:
                    self.counts[(parts[0].upper(), parts[1])] += 1
        except (redis.ConnectionError, ValueError, OSError):
            return

    def writes(self, key: str) -> int:
        """How many SET / XADD / RENAME commands wrote `key`."""
        return sum(self.counts[(command, key)] for command in ("SET", "XADD", "RENAME"))

    def close(self) -> None:
        """Stop counting, once the feed has shown every command run before this call."""
        marker = f"counter-closed-{id(self)}"
        redis.Redis.from_url(self.url).exists(marker)
        deadline = time.monotonic() + 5
        while self.counts[("EXISTS", marker)] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._monitor.connection.disconnect()
        self._thread.join(5)

    def __enter__(self) -> CommandCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
