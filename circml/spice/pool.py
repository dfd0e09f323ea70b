"""circml's local pool of simulation worker processes.

:class:`SimulationPool` is what :func:`circml.spice.sweep` uses by default, and it can be kept
open across many sweeps (an optimiser's generations, a report's verification runs) so the
workers start once::

    with SimulationPool(2) as pool:
        for generation in range(10):
            ds = sweep(tb, designs, executor=pool)

Why not a bare ``ProcessPoolExecutor``: three things a simulation pool needs and it lacks.

* **Time limits from outside.** A worker runs ngspice in its own thread (the fastest way: no
  second thread, so glibc keeps its single-threaded malloc) and cannot interrupt itself. Each
  worker publishes, in shared memory, which point it is simulating and since when; the parent
  kills a worker whose point outlives the limit, records that point as a timeout and starts
  a replacement.
* **Crashes cost one point.** When a worker dies inside ngspice or a measure, the points it
  and its siblings had in flight go back to the queue; if the culprit is not known for sure,
  the suspects run again one at a time, and the point that takes a worker down again is
  recorded as failed. The sweep goes on.
* **Single-threaded workers.** Workers start with ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``
  = 1 (unless set by the user): one process per core is the parallelism, and a BLAS thread
  pool would make every ``malloc`` in ngspice take a lock. On Linux a worker dies with its
  parent (``PR_SET_PDEATHSIG``), so a sweep killed with SIGKILL leaves no orphans.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

# Error texts kept per failed point are cut to this many characters (ngspice can be verbose).
MAX_ERROR_CHARS = 4000

# One finished point as it travels back from a worker: (idx, metrics, status, error, elapsed, pid).
Row = Tuple[int, List[float], str, str, float, int]

# Variables that make numerical libraries start thread pools in each worker.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_ENV_LOCK = threading.Lock()

# Per worker slot in shared memory: pid, index of the point being simulated, its start time
# (time.monotonic(), the same clock in every process on Linux and macOS; 0 = idle), and how
# many points the worker has simulated.
_SLOT_FIELDS = 4

# libngspice keeps ~0.4 KB per simulation reachable for good (its command handling; the same
# in a plain C loop over it, and valgrind finds no leak): workers are replaced after this many
# points so that a sweep's memory stays bounded (~40 MB) however long it runs.
RECYCLE_AFTER = 100_000


def run_points(tb, idx: Sequence[int], X: np.ndarray, sim, busy: Optional[Callable[[int], None]] = None,
               timeout: Any = -1.0) -> List[Row]:
    """Evaluate the designs ``X`` ([k, p]) with indices ``idx``. A point that fails (netlist
    error, simulation error, timeout, a dead ngspice, a measure that raises) becomes a
    'failed' row with NaN metrics and the error's text; the next point goes on (a dead
    ngspice is reopened by the Simulator). ``busy(i)`` is called before each phase's work on
    point ``i`` and ``busy(-1)`` at the end; ``timeout`` overrides the testbench's (None: no
    limit).

    The chunk goes through three phases (netlists, then simulations back to back, then
    measures) rather than point by point: interleaved, the interpreter's and ngspice's
    working sets evict each other from the caches, which cost ~0.2 ms per point of a 1.6 ms
    OTA simulation (measured: the netlist took 0.12 ms instead of 0.04, the measures 0.19
    instead of 0.07)."""
    names, m, pid = tb.param_names, len(tb.metrics), os.getpid()
    limit = tb.timeout if timeout == -1.0 else timeout
    n = len(X)
    designs = [dict(zip(names, map(float, x))) for x in X]
    elapsed = [0.0] * n
    errors: List[Optional[str]] = [None] * n

    def failed(j: int, e: BaseException) -> None:
        errors[j] = f"{type(e).__name__}: {e}"[:MAX_ERROR_CHARS]

    # busy(i) in every phase: a crash while reading, simulating or measuring point i is i's
    mark = busy if busy is not None else (lambda i: None)
    netlists: List[Optional[bytes]] = [None] * n
    for j in range(n):
        mark(int(idx[j]))
        t0 = time.perf_counter()
        try:
            netlists[j] = sim.render(tb.circuit(designs[j]), tb.analyses)
        except Exception as e:  # noqa: BLE001 - every failure of a point is data
            failed(j, e)
        elapsed[j] += time.perf_counter() - t0
    results: List[Any] = [None] * n
    for j in range(n):
        if netlists[j] is None:
            continue
        mark(int(idx[j]))
        t0 = time.perf_counter()
        try:
            results[j] = sim.run_rendered(netlists[j], timeout=limit)
        except Exception as e:  # noqa: BLE001
            failed(j, e)
        elapsed[j] += time.perf_counter() - t0
    values_of: Dict[int, Any] = {}
    batch = getattr(tb.measure, "batch", None)   # a measure may take the chunk at once
    done = [j for j in range(n) if results[j] is not None]
    if batch is not None and len(done) > 1:
        mark(int(idx[done[0]]))
        t0 = time.perf_counter()
        try:
            values_of = dict(zip(done, batch([results[j] for j in done], [designs[j] for j in done])))
        except Exception:  # noqa: BLE001 - measured one by one below, with each point's own error
            values_of = {}
        share = (time.perf_counter() - t0) / len(done)
        for j in values_of:
            elapsed[j] += share
    rows: List[Row] = []
    for j in range(n):
        y, status = [math.nan] * m, "failed"
        if j in values_of:
            values = values_of[j]
            y, status = [float(values.get(k, math.nan)) for k in tb.metrics], "ok"
        elif results[j] is not None:
            mark(int(idx[j]))
            t0 = time.perf_counter()
            try:
                values = tb.measure(results[j], designs[j])
                y, status = [float(values.get(k, math.nan)) for k in tb.metrics], "ok"
            except Exception as e:  # noqa: BLE001
                failed(j, e)
            results[j] = None
            elapsed[j] += time.perf_counter() - t0
        rows.append((int(idx[j]), y, status, errors[j] or "", elapsed[j], pid))
    mark(-1)
    return rows


# ---------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------
_WORKER: Dict[str, Any] = {}


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:   # PR_SET_PDEATHSIG
                if os.getppid() != parent:                   # the parent died before prctl
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    # Elsewhere a thread watches (it costs the single-threaded malloc, but no orphans).
    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)
    threading.Thread(target=watch, daemon=True, name="circml-parent-watch").start()


def _worker_init(slots, counter, parent: int) -> None:
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    _WORKER.update(slots=slots, base=k * _SLOT_FIELDS, key=None, tb=None)
    slots[k * _SLOT_FIELDS] = os.getpid()
    _die_with_parent(parent)


def _worker_ping() -> int:
    return os.getpid()


def _busy(i: int) -> None:
    slots, b = _WORKER["slots"], _WORKER["base"]
    if i < 0:
        slots[b + 2] = 0.0
    else:
        slots[b + 1] = float(i)
        slots[b + 2] = time.monotonic()
        slots[b + 3] += 1.0


def _worker_chunk(key: str, tb_bytes: bytes, idx: np.ndarray, X: np.ndarray) -> List[Row]:
    if _WORKER.get("key") != key:   # a new testbench: unpickle it once per worker
        _WORKER.update(key=key, tb=pickle.loads(tb_bytes))
    from .sweep import _simulator
    # No in-process limit: ngspice runs in this thread and the parent enforces the limit.
    return run_points(_WORKER["tb"], idx, X, _simulator(), busy=_busy, timeout=None)


# ---------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------
@contextmanager
def _single_threaded_children():
    """Environment for workers spawned meanwhile: one thread per numerical library."""
    with _ENV_LOCK:
        added = [k for k in _THREAD_ENV if k not in os.environ]
        for k in added:
            os.environ[k] = "1"
        try:
            yield
        finally:
            for k in added:
                os.environ.pop(k, None)


class SimulationPool:
    """A local pool of ``workers`` simulation processes (default ``os.cpu_count()``), each
    with one ngspice, reusable across :func:`~circml.spice.sweep` calls (pass it as
    ``executor=``). See the module docstring for what it adds to a process pool. Workers
    are replaced after ``recycle_after`` points (see :data:`RECYCLE_AFTER`).

    Workers start with ``spawn`` (never ``fork``: a forked child would inherit this process's
    ngspice state and threads), so scripts need the usual ``if __name__ == "__main__":``
    guard. Close it (or use ``with``) to stop the workers.
    """

    def __init__(self, workers: Optional[int] = None, recycle_after: int = RECYCLE_AFTER):
        if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
            raise ValueError(f"workers must be a positive int or None, got {workers!r}")
        self.workers = int(workers or os.cpu_count() or 1)
        self._ctx = multiprocessing.get_context("spawn")
        self._slots = self._ctx.RawArray("d", _SLOT_FIELDS * self.workers)
        self._counter = self._ctx.Value("i", 0)
        self._pool: Optional[cf.ProcessPoolExecutor] = None
        self.recycle_after = int(recycle_after)
        self.restarts = 0   # how many times workers were replaced after a kill or a crash
        self.recycled = 0   # how many times they were replaced after recycle_after points

    # -- life cycle -----------------------------------------------------------------
    def _start(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            for j in range(len(self._slots)):
                self._slots[j] = 0.0
            self._counter.value = 0
            pool = cf.ProcessPoolExecutor(self.workers, mp_context=self._ctx, initializer=_worker_init,
                                          initargs=(self._slots, self._counter, os.getpid()))
            # ProcessPoolExecutor spawns one worker per submit until it has them all: start
            # them all now, while the environment asks for single-threaded libraries.
            with _single_threaded_children():
                pings = [pool.submit(_worker_ping) for _ in range(self.workers)]
            cf.wait(pings)
            if any(p.exception() is not None for p in pings):
                pool.shutdown(wait=False, cancel_futures=True)
                raise RuntimeError(
                    "the simulation worker processes died while starting (see their traceback above). "
                    "Workers are spawned: a script that starts a sweep needs the "
                    "`if __name__ == \"__main__\":` guard, and everything it sends must be importable "
                    "by a fresh interpreter") from pings[0].exception()
            self._pool = pool
        return self._pool

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stop the workers."""
        self._discard()

    def __enter__(self) -> "SimulationPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _worn(self) -> bool:
        return any(self._slots[_SLOT_FIELDS * k + 3] >= self.recycle_after for k in range(self.workers))

    def _busy_points(self) -> Dict[int, Tuple[int, float]]:
        """pid -> (point index, seconds since it started) for every busy worker."""
        now, out = time.monotonic(), {}
        for k in range(self.workers):
            pid, i, t0, _ = self._slots[_SLOT_FIELDS * k: _SLOT_FIELDS * (k + 1)]
            if t0 > 0 and pid > 0:
                out[int(pid)] = (int(i), now - t0)
        return out

    # -- running --------------------------------------------------------------------
    def run(self, tb, chunks: List[Tuple[np.ndarray, np.ndarray]], add: Callable[[List[Row]], None],
            timeout: Optional[float] = None, max_inflight: Optional[int] = None) -> None:
        """Simulate ``chunks`` (``(indices, designs)`` pairs) of testbench ``tb``, handing
        finished rows to ``add`` as chunks complete. ``timeout``: seconds per point (default
        the testbench's; None or <= 0: none)."""
        limit = tb.timeout if timeout is None else timeout
        limit = float(limit) if limit and limit > 0 else math.inf
        tb_bytes = pickle.dumps(tb)
        key = f"{id(tb)}-{hash(tb_bytes)}"
        inflight = max_inflight or 4 * self.workers
        todo: Deque[Tuple[np.ndarray, np.ndarray]] = collections.deque(chunks)
        quarantine: Deque[Tuple[np.ndarray, np.ndarray]] = collections.deque()   # suspects, one at a time
        poll = min(0.5, limit / 5) if math.isfinite(limit) else None
        fruitless = 0   # breaks in a row that pinned no point: workers die outside simulations

        while todo or quarantine:
            pool = self._start()
            # Suspects of a crash run one at a time, with nothing else in flight.
            alone = bool(quarantine)
            queue, cap = (quarantine, 1) if alone else (todo, inflight)
            running: Dict[cf.Future, Tuple[np.ndarray, np.ndarray]] = {}
            killed: Dict[int, str] = {}   # point index -> why its worker was killed
            broken = False
            try:
                worn = False
                while (queue or running) and not broken:
                    # a worn-out pool gets nothing new; once drained it is replaced
                    worn = worn or self._worn()
                    while queue and len(running) < cap and not worn:
                        chunk = queue.popleft()
                        try:
                            running[pool.submit(_worker_chunk, key, tb_bytes, *chunk)] = chunk
                        except cf.process.BrokenProcessPool:
                            queue.appendleft(chunk)
                            broken = True
                            break
                    if broken or not running:
                        break
                    done, _ = cf.wait(list(running), timeout=poll, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        chunk = running.pop(fut)
                        exc = fut.exception()
                        if exc is None:
                            add(fut.result())
                        elif isinstance(exc, cf.process.BrokenProcessPool):
                            broken = True
                            queue.appendleft(chunk)
                        else:
                            raise exc
                    if not broken:
                        self._kill_overtime(limit, killed)
                if not broken:
                    if worn:
                        self._discard()
                        self.recycled += 1
                    continue
                # Broken: the futures still running fail too. The suspects are the points
                # being simulated when it broke (read before the slots are reset).
                suspects = {i for i, _ in self._busy_points().values()}
                for fut, chunk in running.items():
                    try:
                        add(fut.result())
                    except Exception:  # noqa: BLE001 - lost with the pool: simulate again
                        queue.appendleft(chunk)
                running = {}
                self._discard()
                self.restarts += 1
                culprits = dict(killed)
                # A worker we killed explains the break: the other busy points were innocent.
                crashed = set() if killed else suspects
                if len(crashed) == 1 or alone:
                    why = ("SimulatorDied: the worker process died while simulating this point (a crash in "
                           "ngspice or the measure); it was replaced")
                    culprits.update({i: why for i in crashed})
                    crashed = set()
                fruitless = 0 if (culprits or crashed) else fruitless + 1
                if fruitless >= 3:
                    raise RuntimeError("simulation worker processes keep dying outside any simulation (e.g. "
                                       "while unpickling the testbench or its measure); giving up")
                todo, quarantine = _pull_out(todo, quarantine, culprits, crashed)
                if culprits:
                    add([(i, [math.nan] * len(tb.metrics), "failed", why, math.nan, 0)
                         for i, why in sorted(culprits.items())])
            except BaseException:
                for fut in running:
                    fut.cancel()
                self._discard()
                raise

    def _kill_overtime(self, limit: float, killed: Dict[int, str]) -> None:
        for pid, (i, age) in self._busy_points().items():
            if age > limit and i not in killed:
                killed[i] = (f"SimulationTimeout: the simulation exceeded its {limit:.3g} s time limit; "
                             f"its worker process was stopped and replaced")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _pull_out(todo, quarantine, culprits: Dict[int, str], suspects: set):
    """Remove the culprits' points from the queued chunks, and move the suspects' points
    into single-point chunks of the quarantine queue."""
    out_todo: Deque = collections.deque()
    out_q: Deque = collections.deque()
    for queue, dest in ((quarantine, out_q), (todo, out_todo)):
        for idx, X in queue:
            keep = np.array([int(i) not in culprits and int(i) not in suspects for i in idx], dtype=bool)
            for j in np.flatnonzero(~keep):
                if int(idx[j]) in suspects:
                    out_q.append((idx[j:j + 1], X[j:j + 1]))
            if keep.any():
                dest.append((idx[keep], X[keep]))
    return out_todo, out_q
