"""Sweep results at rest: the :class:`Dataset` a sweep returns, and the SQLite store that
keeps every finished point of a sweep so a killed sweep resumes.

A store is one SQLite file (stdlib ``sqlite3``, WAL journal) with three tables:

* ``meta``: what identifies the sweep (testbench name, parameter and metric names, method,
  seed, number of points, a hash of the design table), as JSON values;
* ``points``: one row per finished point, written as soon as its chunk comes back: ``idx``
  (primary key, so no point is ever stored twice), one ``p_<name>`` column per design
  parameter and one ``m_<name>`` column per metric (REAL; SQLite stores NaN as NULL, read
  back as NaN), ``status`` (``'ok'`` / ``'failed'``), ``error``, ``elapsed`` (seconds of
  simulation and measure), ``pid`` (the worker process) and ``run``;
* ``runs``: one row per call of :func:`~circml.spice.sweep` that had points left to simulate.

Each batch of rows is one committed transaction; with WAL and ``synchronous=NORMAL`` a
committed row survives the writing process being killed (SIGKILL), though not a power cut.
A ``<store>.lock`` file beside the store is held (``flock``) while a sweep writes, so two
sweeps cannot fill the same store at once.

Datasets save to ``.npz`` with a JSON header: arrays only, loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

try:  # POSIX only; without it the store is not locked against a second writer.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

PathLike = Union[str, os.PathLike]

STORE_FORMAT = "circml.sweep"
STORE_VERSION = 1
DATASET_FORMAT = "circml.dataset"
DATASET_VERSION = 1

# The metadata keys that must agree for a store to be resumed by a sweep.
IDENTITY_KEYS = ("testbench", "param_names", "metric_names", "method", "seed", "n", "designs_sha256")


class StoreMismatchError(ValueError):
    """The store at a path holds a different sweep than the one asked for."""


class StoreLockedError(RuntimeError):
    """Another sweep is writing to the store."""


# ---------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """Simulated designs and their metrics, ordered by point index.

    Attributes:
        X: design parameters in physical units, ``[n, p]``.
        Y: metrics, ``[n, m]``; NaN where a point failed or a metric could not be measured.
        status: ``'ok'`` or ``'failed'`` per point, ``[n]``.
        error: the error text of failed points (``''`` for ok ones), ``[n]``.
        param_names: the ``p`` column names of ``X``.
        metric_names: the ``m`` column names of ``Y``.
        index: point index within the sweep, ``[n]`` (``0..n-1`` for a finished sweep).
        elapsed: seconds spent simulating and measuring each point, ``[n]``.
        meta: how the sweep was made (testbench, method, seed, ranges, ...).

    Example:
        >>> ds = sweep(tb, 64, seed=1)                       # doctest: +SKIP
        >>> good = ds[ds.feasible({"gain_db": (40, None)})]  # doctest: +SKIP
        >>> good.to_pandas().head()                          # doctest: +SKIP
    """

    X: np.ndarray
    Y: np.ndarray
    status: np.ndarray
    error: np.ndarray
    param_names: List[str]
    metric_names: List[str]
    index: Optional[np.ndarray] = None
    elapsed: Optional[np.ndarray] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.param_names = [str(s) for s in self.param_names]
        self.metric_names = [str(s) for s in self.metric_names]
        p, m = len(self.param_names), len(self.metric_names)
        self.X = np.asarray(self.X, dtype=np.float64).reshape(-1, p)
        n = self.X.shape[0]
        self.Y = np.asarray(self.Y, dtype=np.float64).reshape(n, m)
        self.status = np.asarray(self.status, dtype=str).reshape(n)
        self.error = np.asarray(self.error, dtype=object).reshape(n)
        self.index = np.arange(n, dtype=np.int64) if self.index is None else \
            np.asarray(self.index, dtype=np.int64).reshape(n)
        self.elapsed = np.full(n, np.nan) if self.elapsed is None else \
            np.asarray(self.elapsed, dtype=np.float64).reshape(n)

    # -- views ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, key) -> "Dataset":
        """Rows as a new Dataset: ``ds[mask]``, ``ds[10:20]``, ``ds[[3, 5]]``."""
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        return Dataset(self.X[key], self.Y[key], self.status[key], self.error[key], self.param_names,
                       self.metric_names, self.index[key], self.elapsed[key], dict(self.meta))

    def __repr__(self) -> str:
        return (f"Dataset(n={len(self)}, ok={int(self.ok.sum())}, params={self.param_names}, "
                f"metrics={self.metric_names})")

    @property
    def ok(self) -> np.ndarray:
        """Mask of points that simulated and measured without error, ``[n]``."""
        return self.status == "ok"

    @property
    def n_failed(self) -> int:
        return int((~self.ok).sum())

    def feasible(self, specs: Optional[Mapping[str, Tuple[Optional[float], Optional[float]]]] = None) -> np.ndarray:
        """Mask of points that simulated fine, have finite metrics and meet ``specs``.

        Args:
            specs: ``{metric: (low, high)}``, either bound ``None`` for open. Without specs,
                every metric must be finite; with them, only the named ones.

        Example:
            >>> mask = ds.feasible({"gain_db": (40, None), "power": (None, 1e-3)})  # doctest: +SKIP
        """
        mask = self.ok.copy()
        if not specs:
            return mask & np.isfinite(self.Y).all(axis=1)
        for name, bounds in specs.items():
            if name not in self.metric_names:
                raise KeyError(f"feasible: unknown metric {name!r}; the metrics are {self.metric_names}")
            try:
                lo, hi = bounds
            except (TypeError, ValueError):
                raise ValueError(f"feasible: the spec of {name!r} must be (low, high), got {bounds!r}") from None
            y = self.Y[:, self.metric_names.index(name)]
            mask &= np.isfinite(y)
            if lo is not None:
                mask &= y >= lo
            if hi is not None:
                mask &= y <= hi
        return mask

    def designs(self) -> List[Dict[str, float]]:
        """The designs as ``{param: value}`` dicts (e.g. to simulate them again)."""
        return [dict(zip(self.param_names, map(float, row))) for row in self.X]

    def to_pandas(self):
        """A DataFrame indexed by point index: parameters, metrics, status, error, elapsed."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Dataset.to_pandas needs pandas: pip install 'circml[scale]'") from None
        clash = set(self.param_names) & set(self.metric_names)
        clash |= (set(self.param_names) | set(self.metric_names)) & {"status", "error", "elapsed"}
        if clash:
            raise ValueError(f"to_pandas: column names used twice: {sorted(clash)}")
        cols: Dict[str, Any] = {}
        for j, name in enumerate(self.param_names):
            cols[name] = self.X[:, j]
        for j, name in enumerate(self.metric_names):
            cols[name] = self.Y[:, j]
        cols["status"] = self.status.astype(object)
        cols["error"] = self.error
        cols["elapsed"] = self.elapsed
        return pd.DataFrame(cols, index=pd.Index(self.index, name="index"))

    # -- files ----------------------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Write the dataset to ``path`` (``.npz``: arrays plus a JSON header, no pickle)."""
        header = {"format": DATASET_FORMAT, "version": DATASET_VERSION, "param_names": self.param_names,
                  "metric_names": self.metric_names, "meta": self.meta}
        # Error texts vary wildly in length; a fixed-width string array would pad every row
        # to the longest one, so they are stored as UTF-8 bytes with offsets.
        enc = [str(e).encode("utf-8") for e in self.error]
        offsets = np.zeros(len(enc) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in enc], out=offsets[1:])
        np.savez_compressed(
            path, header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
            X=self.X, Y=self.Y, index=self.index, elapsed=self.elapsed,
            status=self.status.astype("U"), error_bytes=np.frombuffer(b"".join(enc), dtype=np.uint8),
            error_offsets=offsets)

    @classmethod
    def load(cls, path: PathLike) -> "Dataset":
        """Read a dataset written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            try:
                header = json.loads(z["header"].tobytes().decode("utf-8"))
            except KeyError:
                raise ValueError(f"{path}: not a circml dataset (no header)") from None
            if header.get("format") != DATASET_FORMAT:
                raise ValueError(f"{path}: not a circml dataset (format {header.get('format')!r})")
            if header.get("version", 0) > DATASET_VERSION:
                raise ValueError(f"{path}: dataset version {header['version']} is newer than this circml "
                                 f"reads ({DATASET_VERSION}); upgrade circml")
            raw, off = z["error_bytes"].tobytes(), z["error_offsets"]
            error = np.array([raw[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)], dtype=object)
            return cls(z["X"], z["Y"], z["status"], error, header["param_names"], header["metric_names"],
                       z["index"], z["elapsed"], header.get("meta", {}))


# ---------------------------------------------------------------------------------------
# SQLite store
# ---------------------------------------------------------------------------------------
def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        # Read-write where allowed, though nothing is written: a read-only connection leaves the
        # -wal and -shm files behind, while the last read-write one to close removes them.
        uri = Path(path).resolve().as_uri()
        try:
            con = sqlite3.connect(uri + "?mode=rw", uri=True, timeout=30.0, isolation_level=None)
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.OperationalError:
            con = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30.0, isolation_level=None)
    else:
        con = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        # NORMAL under WAL: a commit is in the OS's hands when it returns, so it survives
        # the process being killed; only a power cut may lose the last commits.
        con.execute("PRAGMA synchronous=NORMAL")
    return con


def _read_meta(con: sqlite3.Connection, path: str) -> Optional[Dict[str, Any]]:
    try:
        have = con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path}: not a circml sweep store ({e})") from None
    if not have:
        return None
    meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
    if meta.get("format") != STORE_FORMAT:
        raise ValueError(f"{path}: not a circml sweep store (format {meta.get('format')!r})")
    if meta.get("version", 0) > STORE_VERSION:
        raise ValueError(f"{path}: store version {meta['version']} is newer than this circml reads "
                         f"({STORE_VERSION}); upgrade circml")
    return meta


class SweepStore:
    """The SQLite file of one sweep (see the module docstring for its tables).

    ``SweepStore(path, meta)`` creates the store, or opens an existing one after checking that
    it holds the same sweep (:data:`IDENTITY_KEYS`), and takes the store's lock so no other
    sweep writes to it meanwhile. :func:`~circml.spice.sweep` does this for you; use
    :func:`load_dataset` to read a store.

    Raises:
        StoreMismatchError: the store holds another sweep.
        StoreLockedError: another process is writing to it.
    """

    def __init__(self, path: PathLike, meta: Mapping[str, Any]):
        self.path = os.fspath(path)
        self._lock = self._take_lock()
        try:
            self._con = _connect(self.path)
            stored = _read_meta(self._con, self.path)
            if stored is None:
                self._create(dict(meta))
                stored = _read_meta(self._con, self.path)
            else:
                self._check(stored, meta)
            self.meta: Dict[str, Any] = stored
        except BaseException:
            self._release_lock()
            raise
        self.param_names: List[str] = list(self.meta["param_names"])
        self.metric_names: List[str] = list(self.meta["metric_names"])
        cols = ["idx"] + [_q("p_" + s) for s in self.param_names] + [_q("m_" + s) for s in self.metric_names] + \
            ["status", "error", "elapsed", "pid", "run", "finished"]
        self._insert = f"INSERT INTO points ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

    # -- lock -----------------------------------------------------------------------
    def _take_lock(self):
        if fcntl is None:
            return None
        f = open(self.path + ".lock", "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise StoreLockedError(f"{self.path}: another sweep is writing to this store "
                                   f"(its lock {self.path}.lock is held)") from None
        return f

    def _release_lock(self):
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    # -- create / check -------------------------------------------------------------
    def _create(self, meta: Dict[str, Any]) -> None:
        meta = {"format": STORE_FORMAT, "version": STORE_VERSION, **meta}
        p_cols = "".join(f", {_q('p_' + s)} REAL" for s in meta["param_names"])
        m_cols = "".join(f", {_q('m_' + s)} REAL" for s in meta["metric_names"])
        c = self._con
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            c.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            c.execute(f"CREATE TABLE points (idx INTEGER PRIMARY KEY{p_cols}{m_cols}, status TEXT NOT NULL, "
                      "error TEXT NOT NULL, elapsed REAL, pid INTEGER, run INTEGER, finished REAL)")
            c.execute("CREATE TABLE runs (run INTEGER PRIMARY KEY, pid INTEGER, host TEXT, started REAL, "
                      "finished REAL, n_todo INTEGER, n_simulated INTEGER)")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _check(self, stored: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        diffs = []
        for k in IDENTITY_KEYS:
            if k in meta and stored.get(k) != meta[k]:
                diffs.append(f"{k}: store has {stored.get(k)!r}, this sweep {meta[k]!r}")
        if diffs:
            raise StoreMismatchError(f"{self.path} holds a different sweep; use another path or the same "
                                     "settings to resume it. Differences:\n  " + "\n  ".join(diffs))

    # -- writing --------------------------------------------------------------------
    def indices(self) -> np.ndarray:
        """Indices of the stored points, sorted."""
        return np.array([r[0] for r in self._con.execute("SELECT idx FROM points ORDER BY idx")], dtype=np.int64)

    def count(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM points").fetchone()[0])

    def begin_run(self, n_todo: int) -> int:
        """Record the start of a sweep call that simulates ``n_todo`` points; its run id."""
        cur = self._con.execute("INSERT INTO runs (pid, host, started, n_todo) VALUES (?, ?, ?, ?)",
                                (os.getpid(), socket.gethostname(), time.time(), int(n_todo)))
        return int(cur.lastrowid)

    def end_run(self, run: int, n_simulated: int) -> None:
        self._con.execute("UPDATE runs SET finished = ?, n_simulated = ? WHERE run = ?",
                          (time.time(), int(n_simulated), int(run)))

    def write(self, run: int, X: np.ndarray, rows: Iterable[Sequence]) -> None:
        """Store finished points in one transaction.

        ``rows`` holds ``(idx, metrics, status, error, elapsed, pid)`` tuples; ``X`` is the
        sweep's full design table ``[n, p]``, indexed by ``idx``. A point already stored
        raises ``sqlite3.IntegrityError`` (nothing of the batch is written).
        """
        now = time.time()

        def real(v):  # sqlite3 would store NaN as NULL anyway; be explicit
            v = float(v)
            return None if v != v else v

        values = [(int(i), *(real(v) for v in X[int(i)]), *(real(v) for v in y), str(status), str(err),
                   float(elapsed), int(pid), int(run), now) for i, y, status, err, elapsed, pid in rows]
        c = self._con
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(self._insert, values)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    # -- reading --------------------------------------------------------------------
    def runs(self) -> List[Dict[str, Any]]:
        """One dict per sweep call: run, pid, host, started, finished (None if it was killed),
        n_todo, n_simulated (None if killed) and n_stored (its points in the store)."""
        return _runs(self._con)

    def dataset(self) -> Dataset:
        """The stored points as a :class:`Dataset`, ordered by index."""
        return _dataset(self._con, self.meta)

    def close(self) -> None:
        if getattr(self, "_con", None) is not None:
            self._con.close()
            self._con = None
        self._release_lock()

    def __enter__(self) -> "SweepStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _runs(con: sqlite3.Connection) -> List[Dict[str, Any]]:
    rows = con.execute("SELECT r.run, r.pid, r.host, r.started, r.finished, r.n_todo, r.n_simulated, "
                       "(SELECT COUNT(*) FROM points p WHERE p.run = r.run) FROM runs r ORDER BY r.run").fetchall()
    keys = ("run", "pid", "host", "started", "finished", "n_todo", "n_simulated", "n_stored")
    return [dict(zip(keys, r)) for r in rows]


def _dataset(con: sqlite3.Connection, meta: Mapping[str, Any]) -> Dataset:
    pn, mn = list(meta["param_names"]), list(meta["metric_names"])
    cols = ["idx"] + [_q("p_" + s) for s in pn] + [_q("m_" + s) for s in mn] + ["status", "error", "elapsed"]
    rows = con.execute(f"SELECT {', '.join(cols)} FROM points ORDER BY idx").fetchall()
    p, m = len(pn), len(mn)
    num = np.array([[np.nan if v is None else v for v in r[:1 + p + m]] for r in rows],
                   dtype=np.float64).reshape(len(rows), 1 + p + m)
    extra = {k: v for k, v in meta.items() if k not in ("format", "version")}
    return Dataset(X=num[:, 1:1 + p], Y=num[:, 1 + p:], status=[r[-3] for r in rows],
                   error=[r[-2] for r in rows], param_names=pn, metric_names=mn,
                   index=num[:, 0].astype(np.int64),
                   elapsed=[np.nan if r[-1] is None else r[-1] for r in rows], meta=extra)


def load_dataset(path: PathLike) -> Dataset:
    """Read a sweep store (SQLite, also while its sweep still runs) or a saved ``.npz`` dataset.

    A store of an unfinished sweep gives the points stored so far (see ``Dataset.index``).

    Example:
        >>> ds = load_dataset("ota.sqlite")   # doctest: +SKIP
        >>> ds.X.shape, ds.to_pandas().status.value_counts()  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_dataset: no such file: {path}")
    if path.endswith(".npz"):
        return Dataset.load(path)
    con = _connect(path, readonly=True)
    try:
        meta = _read_meta(con, path)
        if meta is None:
            raise ValueError(f"{path}: not a circml sweep store (no meta table)")
        return _dataset(con, meta)
    finally:
        con.close()


def store_runs(path: PathLike) -> List[Dict[str, Any]]:
    """The ``runs`` table of a store: one dict per sweep call that simulated points into it."""
    con = _connect(os.fspath(path), readonly=True)
    try:
        if _read_meta(con, os.fspath(path)) is None:
            raise ValueError(f"{path}: not a circml sweep store (no meta table)")
        return _runs(con)
    finally:
        con.close()
