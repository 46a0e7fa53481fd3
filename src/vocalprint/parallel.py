"""Per-file parallel map with a progress bar: the one place that chooses the executor."""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)


def progress_bar(total: int, *, desc: str, enabled: bool = True):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled or not sys.stderr.isatty(), mininterval=1.0)


def map_files(fn: Callable[..., Any], tasks: Sequence[tuple], *, n_jobs: int = 2, desc: str = "",
              progress: bool = True) -> list:
    """``[fn(*t) for t in tasks]`` over joblib processes, results in task order, with a bar."""
    from joblib import Parallel, delayed

    out: list = [None] * len(tasks)
    bar = progress_bar(len(tasks), desc=desc, enabled=progress)
    if n_jobs == 1 or len(tasks) < 4:
        for i, t in enumerate(tasks):
            out[i] = fn(*t)
            bar.update()
    else:
        par = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size="auto")
        for i, r in par(delayed(lambda i, t: (i, fn(*t)))(i, t) for i, t in enumerate(tasks)):
            out[i] = r
            bar.update()
    bar.close()
    return out
