"""Per-step wall clocks that predictors fill in (the submit report and the bench read them)."""
from __future__ import annotations

import time


class Clock:
    """Adds the seconds since the previous lap to ``times[name]``."""

    def __init__(self, times: dict):
        self.times, self.t = times, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.t
        self.t = now
