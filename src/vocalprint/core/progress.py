"""Progress of long steps: a tqdm bar on a terminal, a log line at least every 30 s elsewhere
(Kaggle, nohup, CI), so no long step is ever silent."""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("vocalprint.progress")
LOG_EVERY_S = 30.0


class LogProgress:
    """The tqdm calls the project uses (``update``, ``set_postfix``, ``close``), as log lines:
    ``desc: i/total (p %), elapsed s, ETA s [postfix]`` when ``every_s`` has passed since the last
    line, and once at the end."""

    def __init__(self, total: int, *, desc: str, every_s: float = LOG_EVERY_S, clock=time.monotonic) -> None:
        self.total, self.desc, self.every_s, self._clock = int(total), desc, float(every_s), clock
        self.n, self.postfix, self.closed = 0, "", False
        self._t0 = self._last = clock()

    def _line(self) -> str:
        el = self._clock() - self._t0
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta = el / self.n * (self.total - self.n) if self.n and self.total else float("nan")
        tail = f" [{self.postfix}]" if self.postfix else ""
        return f"{self.desc}: {self.n}/{self.total} ({pct:.0f} %), {el:.0f} s elapsed, ETA {eta:.0f} s{tail}"

    def _maybe_log(self) -> None:
        now = self._clock()
        if now - self._last >= self.every_s:
            self._last = now
            log.info(self._line())

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_log()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kw: Any) -> None:
        items = {**(ordered_dict or {}), **kw}
        self.postfix = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items())
        self._maybe_log()

    def close(self) -> None:
        if not self.closed and self.n:
            log.info(self._line())
        self.closed = True

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Silent(LogProgress):
    def _maybe_log(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def progress_bar(total: int, *, desc: str, enabled: bool = True, every_s: float = LOG_EVERY_S):
    """A tqdm bar when stderr is a terminal, else a :class:`LogProgress` (a line every ``every_s``
    seconds); ``enabled=False`` (``run.progress=false``) silences both."""
    if not enabled:
        return _Silent(total, desc=desc)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, mininterval=1.0)
    return LogProgress(total, desc=desc, every_s=every_s)
