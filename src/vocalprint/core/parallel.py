"""Per-file parallel map with a progress bar: the one place that chooses the executor.

``run.executor``: ``local`` (joblib/loky processes on this machine), ``dask-local`` (a
``LocalCluster`` started for the run with ``run.n_jobs`` workers) or ``dask`` (an existing cluster
at ``$DASK_SCHEDULER``, e.g. ``tcp://host:8786``). Workers write their outputs to the same artifact
paths as locally, so with Dask the artifacts folder must be on storage every worker sees.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Callable, Iterator, Sequence

from vocalprint.core.progress import progress_bar

log = logging.getLogger(__name__)
EXECUTORS = ("local", "dask-local", "dask")
_CLIENT: Any = None  # the Dask client of the current run, set by ``executor()``
_PROCESS_CACHE: dict = {}
_BLAS_CONTROLLER: dict = {}  # this process's thread-pool controller and the module count it was made at


def process_cached(key, factory: Callable[[], Any]) -> Any:
    """One instance per worker process of what tasks cannot carry (TFLite interpreters, models
    read from disk): predictors and stage arguments are pickled per task, these are not."""
    if key not in _PROCESS_CACHE:
        _PROCESS_CACHE[key] = factory()
    return _PROCESS_CACHE[key]


class Shipped:
    """An object pickled once, where it is made, for many tasks: a task carries its bytes (a copy,
    not a walk over the object's graph) and each worker process unpickles it at its first task and
    keeps it (the last :data:`SHIPPED_KEPT` per process). ``get()`` returns the object. A
    ``tokens-nb`` predictor is about 1 MB of codebooks and tables; pickling it took 2.1 ms per file
    in the parent, which shares the cores with the workers (measured in docs/results.md)."""

    def __init__(self, obj: Any) -> None:
        import hashlib
        import pickle

        self._obj = obj
        self.blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.key = hashlib.blake2b(self.blob, digest_size=16).hexdigest()

    def __getstate__(self) -> dict:
        return {"blob": self.blob, "key": self.key, "_obj": None}

    def get(self) -> Any:
        if self._obj is None:
            import pickle

            if self.key not in _SHIPPED:
                while len(_SHIPPED) >= SHIPPED_KEPT:
                    _SHIPPED.pop(next(iter(_SHIPPED)))
                _SHIPPED[self.key] = pickle.loads(self.blob)
            self._obj = _SHIPPED[self.key]
        return self._obj


SHIPPED_KEPT = 4
_SHIPPED: dict = {}  # insertion-ordered: the oldest is dropped first


def one_blas_thread():
    """A context keeping BLAS to one thread in this process, for a task's large matrix products
    (one task per core; threads inside would oversubscribe). The controller, which lists the
    thread pools of the libraries loaded when it is made, is made again only after a module was
    imported since (one may have loaded another BLAS: Faiss, TensorFlow): entering then costs about
    6 us, against 200 us for a fresh ``threadpool_limits``."""
    import sys

    from threadpoolctl import ThreadpoolController

    seen = len(sys.modules)
    if _BLAS_CONTROLLER.get("modules") != seen:
        _BLAS_CONTROLLER.update(modules=seen, ctl=ThreadpoolController())
    return _BLAS_CONTROLLER["ctl"].limit(limits=1, user_api="blas")


@contextlib.contextmanager
def executor(kind: str = "local", *, n_workers: int = 2, address: str | None = None) -> Iterator[Any]:
    """Open the run's executor; yields the Dask client (None for ``local``)."""
    global _CLIENT
    if kind not in EXECUTORS:
        from vocalprint.config import ConfigError

        raise ConfigError(f"run.executor must be one of {EXECUTORS}, got {kind!r}")
    if kind == "local":
        yield None
        return
    from distributed import Client, LocalCluster

    if kind == "dask":
        address = address or os.environ.get("DASK_SCHEDULER")
        if not address:
            from vocalprint.config import ConfigError

            raise ConfigError("run.executor=dask needs DASK_SCHEDULER=tcp://host:port (or use dask-local)")
        cm = Client(address)
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.WARNING)
        cm = Client(cluster)
    with cm as client:
        log.info("dask: %d workers at %s", len(client.scheduler_info()["workers"]), client.scheduler.address)
        _CLIENT = client
        try:
            yield client
        finally:
            _CLIENT = None
            if kind == "dask-local":
                cluster.close()


class _Failed:
    """An exception raised by a task on a worker, carried back to the caller to be reported there."""

    def __init__(self, exc: Exception):
        self.exc = exc


def _safe(fn: Callable, task: tuple):
    try:
        return fn(*task)
    except Exception as e:  # reported by name on the caller's side; one bad file does not kill the run
        return _Failed(e)


def map_files(fn: Callable[..., Any], tasks: Sequence[tuple], *, n_jobs: int = 2, desc: str = "",
              progress: bool = True, on_error: Callable[[tuple, Exception], Any] | None = None) -> list:
    """``[fn(*t) for t in tasks]`` in task order, on the current executor, with a progress bar.

    ``on_error(task, exc)`` turns an unexpected exception of one task into its result, logged here
    (not on the worker) with the task's first element, normally the file; without ``on_error`` the
    first failure is raised.
    """
    out: list = [None] * len(tasks)
    bar = progress_bar(len(tasks), desc=desc, enabled=progress)

    def put(i: int, r: Any) -> None:
        if isinstance(r, _Failed):
            if on_error is None:
                raise r.exc
            log.error("%s: %s failed: %s: %s", desc, tasks[i][0] if tasks[i] else "?", type(r.exc).__name__, r.exc)
            r = on_error(tasks[i], r.exc)
        out[i] = r
        bar.update()

    if _CLIENT is not None:
        from distributed import as_completed

        futs = {_CLIENT.submit(_safe, fn, t, pure=False): i for i, t in enumerate(tasks)}
        for f in as_completed(futs):
            put(futs[f], f.result())
    elif n_jobs == 1 or len(tasks) < 4:
        for i, t in enumerate(tasks):
            put(i, _safe(fn, t))
    else:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size="auto")
        for i, r in par(delayed(lambda i, t: (i, _safe(fn, t)))(i, t) for i, t in enumerate(tasks)):
            put(i, r)
    bar.close()
    return out


@contextlib.contextmanager
def chunk_runner(n_jobs: int) -> Iterator[tuple[Callable[[Callable, Sequence[tuple]], list], int]]:
    """Yield ``(run, workers)``: ``run(fn, tasks)`` returns ``[fn(*t) for t in tasks]`` computed on the
    current executor. The budgeted submit calls it chunk by chunk and decides in between."""
    if _CLIENT is not None:
        client = _CLIENT

        def run_dask(fn, tasks):
            return client.gather([client.submit(fn, *t, pure=False) for t in tasks])

        yield run_dask, max(1, len(client.scheduler_info()["workers"]))
        return
    from joblib import Parallel, delayed

    with Parallel(n_jobs=n_jobs, backend="loky" if n_jobs > 1 else "sequential") as par:
        yield (lambda fn, tasks: par(delayed(fn)(*t) for t in tasks)), max(1, n_jobs)
