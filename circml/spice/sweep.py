"""Parallel sweeps: sample designs of a :class:`~circml.spice.Testbench`, simulate and measure
them in worker processes, and gather a :class:`~circml.spice.Dataset`.

ngspice keeps global state, so parallelism is processes, each with one
:class:`~circml.spice.Simulator`:

* by default circml's :class:`~circml.spice.SimulationPool` of ``workers`` processes started
  with ``spawn``: single-threaded workers running ngspice in their own thread, time limits
  enforced by this process, a crash costing one point (pass a pool as ``executor=`` to keep
  it across sweeps);
* or any executor with ``submit()`` (``concurrent.futures`` style), e.g. a Dask distributed
  ``Client``: its workers open a Simulator lazily, one per process (a cache keyed by process
  id), get the testbench with every chunk, and keep the time limit themselves.

Both paths send points in chunks (so per-task overhead stays small next to the simulations),
keep a bounded number of chunks in flight, and write results to the store and the progress
bar as chunks complete. Results are placed by point index, so the
dataset does not depend on the number of workers or the completion order.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import math
import os
import threading
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .pool import Row, SimulationPool, run_points
from .store import Dataset, PathLike, SweepStore
from .testbench import Testbench

METHODS = ("lhs", "sobol", "random")


# ---------------------------------------------------------------------------------------
# Designs
# ---------------------------------------------------------------------------------------
def _qmc_engine(cls, d: int, seed: int, **kw):
    # SciPy 1.15 renamed the engines' `seed` argument to `rng`.
    try:
        return cls(d=d, rng=np.random.default_rng(seed), **kw)
    except TypeError:
        return cls(d=d, seed=np.random.default_rng(seed), **kw)


def sample_unit(n: int, d: int, method: str = "lhs", seed: int = 0) -> np.ndarray:
    """``n`` points of the unit hypercube ``[0, 1)^d``, ``[n, d]``: a Latin hypercube
    (``"lhs"``), a scrambled Sobol sequence (``"sobol"``) or independent uniforms
    (``"random"``). The same seed gives the same points."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if n < 0:
        raise ValueError(f"the number of points must be >= 0, got {n}")
    if d < 1:
        raise ValueError("cannot sample designs of a testbench without design parameters")
    if n == 0:
        return np.zeros((0, d))
    if method == "random":
        return np.random.default_rng(seed).random((n, d))
    from scipy.stats import qmc
    if method == "lhs":
        return _qmc_engine(qmc.LatinHypercube, d, seed).random(n)
    engine = _qmc_engine(qmc.Sobol, d, seed, scramble=True)
    with warnings.catch_warnings():
        # A count that is not a power of two loses part of Sobol's balance; still a fine design.
        warnings.filterwarnings("ignore", message=".*balance properties of Sobol.*")
        return engine.random(n)


def sample_designs(testbench: Testbench, n: int, method: str = "lhs", seed: int = 0) -> np.ndarray:
    """``n`` designs of ``testbench`` in physical units, ``[n, p]`` (columns in
    ``testbench.param_names`` order; log-scaled parameters are sampled in log space).

    Example:
        >>> X = sample_designs(tb, 128, "sobol", seed=3)   # doctest: +SKIP
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    U = sample_unit(int(n), len(testbench.params), method, int(seed))
    X = np.empty_like(U)
    for j, p in enumerate(testbench.params):
        X[:, j] = p.from_unit(U[:, j])
    return X


def designs_from_table(testbench: Testbench, table) -> np.ndarray:
    """A user's design table as ``[n, p]`` floats in ``testbench.param_names`` order.

    ``table`` is a 2-D array (columns in parameter order), a list of ``{param: value}`` dicts,
    a dict of columns, or a pandas DataFrame (columns by name). Every parameter must be given
    and no other name (select the columns first: ``df[testbench.param_names]``).
    """
    names = testbench.param_names

    def check(keys, what):
        keys = list(keys)
        missing = [k for k in names if k not in keys]
        unknown = [k for k in keys if k not in names]
        if missing or unknown:
            raise ValueError(f"design table ({what}) does not match testbench {testbench.name!r}: "
                             + (f"missing {missing}" if missing else "")
                             + ("; " if missing and unknown else "")
                             + (f"unknown {unknown} (select the parameters: table[testbench.param_names])"
                                if unknown else "")
                             + f"; its parameters are {names}")

    if hasattr(table, "columns") and hasattr(table, "to_numpy"):  # pandas DataFrame
        check([str(c) for c in table.columns], "DataFrame columns")
        X = table[names].to_numpy(dtype=np.float64)
    elif isinstance(table, Mapping):
        check(table.keys(), "dict of columns")
        cols = [np.asarray(table[k], dtype=np.float64).reshape(-1) for k in names]
        if len({len(c) for c in cols}) > 1:
            raise ValueError("design table (dict of columns): columns differ in length")
        X = np.stack(cols, axis=1) if cols else np.zeros((0, 0))
    elif isinstance(table, (list, tuple)) and table and all(isinstance(r, Mapping) for r in table):
        for i, row in enumerate(table):
            check(row.keys(), f"row {i}")
        X = np.array([[float(row[k]) for k in names] for row in table], dtype=np.float64)
    else:
        try:
            X = np.asarray(table, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError("designs must be a number of points, a 2-D array, a list of dicts, a dict of "
                            f"columns or a DataFrame ({e})") from None
        if X.size == 0:
            X = X.reshape(0, len(names))
        if X.ndim != 2 or X.shape[1] != len(names):
            raise ValueError(f"design table of shape {X.shape}: expected [n, {len(names)}] with columns {names}")
    return np.ascontiguousarray(X, dtype=np.float64)


def _designs_sha256(X: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X, dtype="<f8").tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------
# One Simulator per process, keyed by process id: a forked child must not take its parent's
# entry. The lock serialises simulations when an executor runs several threads in one process
# (ngspice is not thread-safe): use one thread per worker process.
_SIMS: Dict[int, Any] = {}
_SIM_LOCK = threading.Lock()


def _simulator():
    pid = os.getpid()
    sim = _SIMS.get(pid)
    if sim is None:
        from .simulator import Simulator
        sim = _SIMS[pid] = Simulator()
    return sim


def _remote_chunk(tb: Testbench, idx: Sequence[int], X: np.ndarray) -> List[Row]:
    """Task for external executors (Dask, ...): the testbench comes with every chunk, and
    the time limit is kept in the worker (ngspice's background thread), as nothing outside
    watches it."""
    with _SIM_LOCK:
        return run_points(tb, idx, X, _simulator())


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------
def _default_chunksize(n_todo: int, n_workers: int) -> int:
    # ~16 chunks per worker keeps the load balanced and the progress bar lively; 64 points
    # bound what a killed sweep must simulate again and make per-task overhead negligible.
    return max(1, min(64, math.ceil(n_todo / (16 * max(1, n_workers)))))


def _executor_parallelism(executor) -> int:
    if hasattr(executor, "nthreads") and callable(executor.nthreads):  # dask.distributed.Client
        try:
            return max(1, sum(executor.nthreads().values()))
        except Exception:  # noqa: BLE001 - an estimate only
            pass
    return int(getattr(executor, "_max_workers", 0) or os.cpu_count() or 1)


def _as_cf_executor(executor):
    """A concurrent.futures-style view of ``executor``: a Dask Client becomes its
    ``get_executor(pure=False)`` (real ``concurrent.futures.Future`` objects; ``pure=False``
    because chunks are not to be deduplicated by argument hashing)."""
    if type(executor).__module__.startswith("distributed") and hasattr(executor, "get_executor"):
        return executor.get_executor(pure=False)
    if not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must have a submit() method (concurrent.futures style or a Dask Client), "
                        f"got {type(executor).__name__}")
    return executor


class _Sink:
    """Where finished rows go: the in-memory result, the store and the progress bar."""

    def __init__(self, n: int, m: int, store: Optional[SweepStore], run: int, X: np.ndarray, bar):
        self.Y = np.full((n, m), np.nan)
        self.status = np.full(n, "", dtype=object)
        self.error = np.full(n, "", dtype=object)
        self.elapsed = np.full(n, np.nan)
        self.store, self.run, self.X, self.bar = store, run, X, bar
        self.simulated = self.failed = 0

    def add(self, rows: List[Row]) -> None:
        if self.store is not None:
            self.store.write(self.run, self.X, rows)
        for i, y, status, err, elapsed, _pid in rows:
            self.Y[i], self.status[i], self.error[i], self.elapsed[i] = y, status, err, elapsed
            self.failed += status != "ok"
        self.simulated += len(rows)
        if self.bar is not None:
            self.bar.update(len(rows))
            if self.failed:
                self.bar.set_postfix(failed=self.failed, refresh=False)


def _drive(submit, chunks: List[Tuple[np.ndarray, np.ndarray]], max_inflight: int, sink: _Sink) -> None:
    """Keep up to ``max_inflight`` chunks running; hand results to ``sink`` as they complete.
    Chunks still to do when an error ends the loop are cancelled (finished points are kept)."""
    todo = list(reversed(chunks))
    running: Dict[cf.Future, int] = {}
    try:
        while todo or running:
            while todo and len(running) < max_inflight:
                idx, X = todo.pop()
                running[submit(idx, X)] = len(idx)
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            # Keep every chunk that succeeded before raising the error of one that did not.
            failed = None
            for fut in done:
                del running[fut]
                if fut.cancelled() or fut.exception() is not None:
                    failed = failed or fut
                else:
                    sink.add(fut.result())
            if failed is not None:
                failed.result()  # raises
    finally:
        for fut in running:
            fut.cancel()


def sweep(testbench: Testbench, n_or_designs: Union[int, Any], *, method: str = "lhs", seed: int = 0,
          workers: Optional[int] = None, executor=None, store: Optional[PathLike] = None,
          progress: bool = True, timeout: Optional[float] = None, chunksize: Optional[int] = None) -> Dataset:
    """Simulate and measure many designs of ``testbench`` in parallel.

    Args:
        testbench: what to simulate. It travels to the workers by pickling, so its ``measure``
            must be importable there (a module-level function; with Dask, cloudpickle also
            takes functions defined in ``__main__`` or a notebook).
        n_or_designs: a number of points to sample with ``method``, or a design table (2-D
            array in ``param_names`` order, list of dicts, dict of columns, DataFrame).
        method: ``"lhs"`` (Latin hypercube), ``"sobol"`` (scrambled Sobol) or ``"random"``.
        seed: the same seed gives the same designs (and so the same dataset).
        workers: worker processes of the default pool (default ``os.cpu_count()``); ``0``
            simulates in this process (no Simulator may be open in it meanwhile). The pool
            starts workers with ``spawn``, which imports the main module again: scripts need
            the usual ``if __name__ == "__main__":`` guard.
        executor: run chunks there instead: a :class:`~circml.spice.SimulationPool` kept
            open across sweeps, a ``dask.distributed.Client`` or any executor with
            ``submit()``. Each worker process keeps one Simulator open for later sweeps;
            threads of one process take turns (ngspice is per process), so give Dask workers
            one thread each.
        store: SQLite file that receives every point as it finishes. If it already holds
            this sweep (same testbench name, names, method, seed, n and designs), only the
            points not stored yet are simulated; a different sweep raises
            :class:`~circml.spice.store.StoreMismatchError`.
        progress: show a tqdm progress bar.
        timeout: per-simulation time limit in seconds (default: the testbench's). A point over
            it fails with a ``SimulationTimeout`` error; in a SimulationPool its worker is
            stopped and replaced by the parent (workers run ngspice in their own thread, the
            fastest way), elsewhere ngspice's background thread is halted.
        chunksize: points per task (default: about 16 tasks per worker, at most 64 points).

    Returns:
        A :class:`~circml.spice.Dataset` ordered by point index. Points that failed are kept
        with ``status == 'failed'``, NaN metrics and their error text.

    Example:
        >>> ds = sweep(tb, 256, method="sobol", seed=1, store="ota.sqlite")   # doctest: +SKIP
        >>> ds.X.shape, ds.Y.shape, (ds.status == "ok").mean()                 # doctest: +SKIP
    """
    if not isinstance(testbench, Testbench):
        raise TypeError(f"testbench must be a circml.spice.Testbench, got {type(testbench).__name__}")
    if isinstance(n_or_designs, (int, np.integer)) and not isinstance(n_or_designs, bool):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        X = sample_designs(testbench, int(n_or_designs), method, seed)
        used_method, used_seed = method, int(seed)
    else:
        X = designs_from_table(testbench, n_or_designs)
        used_method, used_seed = "table", None
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 0):
        raise ValueError(f"workers must be a non-negative int or None, got {workers!r}")
    if chunksize is not None and (not isinstance(chunksize, (int, np.integer)) or chunksize < 1):
        raise ValueError(f"chunksize must be a positive int or None, got {chunksize!r}")
    if timeout is not None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        testbench = dataclasses.replace(testbench, timeout=float(timeout))

    n = X.shape[0]
    meta: Dict[str, Any] = {
        "testbench": testbench.name, "param_names": testbench.param_names, "metric_names": list(testbench.metrics),
        "method": used_method, "seed": used_seed, "n": n, "designs_sha256": _designs_sha256(X),
        "params": [dataclasses.asdict(p) for p in testbench.params], "units": dict(testbench.units),
        "analyses": list(testbench.analyses), "timeout": testbench.timeout,
    }

    st = SweepStore(store, meta) if store is not None else None
    try:
        done = st.indices() if st is not None else np.zeros(0, dtype=np.int64)
        todo = np.setdiff1d(np.arange(n, dtype=np.int64), done)
        sink = _simulate(testbench, X, todo, n_done=len(done), store=st, workers=workers, executor=executor,
                         progress=progress, chunksize=chunksize)
        if st is not None:
            return st.dataset()  # with the points of earlier runs
        return Dataset(X, sink.Y, sink.status.astype(str), sink.error, testbench.param_names,
                       list(testbench.metrics), np.arange(n, dtype=np.int64), sink.elapsed, meta)
    finally:
        if st is not None:
            st.close()


def _simulate(tb: Testbench, X: np.ndarray, todo: np.ndarray, *, n_done: int, store: Optional[SweepStore],
              workers: Optional[int], executor, progress: bool, chunksize: Optional[int]) -> "_Sink":
    """Simulate the points ``todo`` of ``X``; their results are in the returned sink (and store)."""
    n = X.shape[0]
    if isinstance(executor, SimulationPool):
        parallelism = executor.workers
    elif executor is not None:
        parallelism = workers or _executor_parallelism(executor)
    elif workers == 0:
        parallelism = 1
    else:
        parallelism = workers or os.cpu_count() or 1
    size = chunksize or _default_chunksize(len(todo), parallelism)
    chunks = [(todo[s:s + size], X[todo[s:s + size]]) for s in range(0, len(todo), size)]

    bar = None
    if not len(todo):
        return _Sink(n, len(tb.metrics), None, 0, X, None)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n, initial=n_done, desc=f"sweep {tb.name}", unit="pt", dynamic_ncols=True)
    run = store.begin_run(len(todo)) if store is not None else 0
    sink = _Sink(n, len(tb.metrics), store, run, X, bar)
    try:
        if executor is not None and not isinstance(executor, SimulationPool):
            ex = _as_cf_executor(executor)
            _drive(lambda idx, x: ex.submit(_remote_chunk, tb, idx, x), chunks, 4 * parallelism, sink)
        elif workers == 0:
            from .simulator import Simulator
            with Simulator() as sim:
                for idx, x in chunks:
                    sink.add(run_points(tb, idx, x, sim))
        else:
            # circml's own pool: time limits enforced from outside, crashes cost one point
            pool = executor if isinstance(executor, SimulationPool) else SimulationPool(min(parallelism, len(chunks)))
            try:
                pool.run(tb, chunks, sink.add, max_inflight=4 * pool.workers)
            finally:
                if pool is not executor:
                    pool.close()
    finally:
        if bar is not None:
            bar.close()
    if store is not None:
        store.end_run(run, sink.simulated)
    return sink
