"""Time budget: project the run's end from measured throughput and decide when to switch or stop.

Pure logic with an injectable clock so tests need no slow run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Budget:
    budget_s: float
    safety: float = 0.85  # plan to end within this share of the budget
    clock: Callable[[], float] = time.monotonic
    start: float = field(default=None)  # type: ignore[assignment]
    _rate_start: float = 0.0
    _audio_done: float = 0.0

    def __post_init__(self) -> None:
        if self.start is None:
            self.start = self.clock()
        self._rate_start = self.start

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    @property
    def left(self) -> float:
        return self.budget_s - self.elapsed

    def observe(self, audio_s: float) -> None:
        """Record that ``audio_s`` more seconds of audio were processed by the current model."""
        self._audio_done += audio_s

    def reset_rate(self) -> None:
        """Start measuring throughput afresh (after switching to another model)."""
        self._rate_start, self._audio_done = self.clock(), 0.0

    def seconds_per_audio_s(self) -> float | None:
        if self._audio_done <= 0:
            return None
        return (self.clock() - self._rate_start) / self._audio_done

    def projected_total(self, audio_left_s: float) -> float | None:
        """Elapsed + the time the remaining audio needs at the measured rate (None before a measure)."""
        r = self.seconds_per_audio_s()
        return None if r is None else self.elapsed + r * audio_left_s

    def over(self, audio_left_s: float) -> bool:
        """True when the projection exceeds the budget's safe share."""
        p = self.projected_total(audio_left_s)
        return p is not None and p > self.safety * self.budget_s

    def can_afford(self, audio_s: float, *, margin_s: float = 5.0) -> bool:
        """Whether ``audio_s`` more audio fits before the deadline, keeping time to write the file."""
        r = self.seconds_per_audio_s() or 0.0
        return self.elapsed + r * audio_s + margin_s < self.budget_s
