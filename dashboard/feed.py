"""The run a dashboard server shows: one shared, growing list of events, and who fills it.

A server has one `Feed`. A live run is followed by one thread (`Feed.follow`) that polls its
source (`runtime.live_source.StreamSource`: anything with ``read_description()`` and
``poll()``) and appends what arrives; every page of the server reads the feed from its own
cursor, so ten open tabs cost one reader. Following a new run starts a new *generation*: pages
see it and start over.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """What a page reads from the feed: its generation, the events after its cursor."""

    generation: int
    label: str
    description: dict[str, Any] | None
    events: list[dict[str, Any]]
    finished: bool
    error: str | None


class Feed:
    """The events of the run being shown, appended by one follower, read by every page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0
        self.label = "no run yet"
        self.description: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self.finished = False
        self.error: str | None = None
        self._follower: threading.Thread | None = None

    def reset(self, label: str) -> int:
        """Start showing another run; returns its generation."""
        with self._lock:
            self.generation += 1
            self.label = label
            self.description, self.events = None, []
            self.finished, self.error = False, None
            return self.generation

    def read(self, generation: int, cursor: int) -> Snapshot:
        """The events after `cursor` (all of them if `generation` is not the current one)."""
        with self._lock:
            start = cursor if generation == self.generation else 0
            return Snapshot(
                self.generation,
                self.label,
                self.description,
                self.events[start:],
                self.finished,
                self.error,
            )

    def _append(self, generation: int, events: list[dict[str, Any]], finished: bool) -> bool:
        with self._lock:
            if generation != self.generation:
                return False
            self.events.extend(events)
            self.finished = self.finished or finished
            return True

    def follow(self, source: Any, *, linger_s: float = 1.0) -> None:
        """Follow `source` from its first event, in a daemon thread, until the run ends (and
        `linger_s` more, for stragglers) or another run is followed."""
        generation = self.reset(getattr(source, "label", "live run"))
        thread = threading.Thread(
            target=self._follow, args=(source, generation, linger_s), daemon=True,
            name=f"dashboard-follow-{generation}",
        )  # fmt: skip
        self._follower = thread
        thread.start()

    def _follow(self, source: Any, generation: int, linger_s: float) -> None:
        ended_at = None
        try:
            while ended_at is None or time.monotonic() - ended_at < linger_s:
                with self._lock:
                    if generation != self.generation:
                        return
                    need_description = self.description is None
                if need_description:
                    description = source.read_description()
                    if description is not None:
                        with self._lock:
                            if generation == self.generation:
                                self.description = description
                events = source.poll()
                ended = any(e["kind"] == "run_ended" for e in events)
                if not self._append(generation, events, ended):
                    return
                if ended and ended_at is None:
                    ended_at = time.monotonic()
        except Exception as err:  # Redis gone: the page says so, the server stays up
            log.warning("dashboard: following %s stopped: %s", getattr(source, "label", "?"), err)
            with self._lock:
                if generation == self.generation:
                    self.error = f"following the run stopped: {err}"
