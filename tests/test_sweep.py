"""Sweeps: sampling, parallel == serial, user tables, failed points, the SQLite store and its
resume after SIGKILL, and Dask.

The testbench is an RC divider (op + a short AC sweep, well under a millisecond per point).
Workers import this module to unpickle its measure, so the helpers below are module-level.
"""
import concurrent.futures as cf
import math
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from circml.spice import (Dataset, Simulator, StoreLockedError, StoreMismatchError, SweepStore, load_dataset,
                          sample_designs, sweep)
from circml.spice.testbench import DesignParam
from circml.spice.testbench import Testbench as TB  # (a name starting with "Test" would be collected)
from circml.spice.store import store_runs
from circml.spice.sweep import designs_from_table, sample_unit

pytest.importorskip("scipy", reason="sampling needs scipy (a circml dependency)")
HERE = os.path.dirname(os.path.abspath(__file__))

NETLIST = """* rc divider
.param r1=1k r2=1k c1=1n
V1 in 0 DC 1 AC 1
R1 in out {r1}
R2 out 0 {r2}
C1 out 0 {c1}
.end
"""

# A design whose measure raises (to check that such points are kept as failures).
BAD_R2 = 777.0


def _measure(result, design):
    # Set by the SIGKILL test only: slow the points down and log every simulation.
    if os.environ.get("CIRCML_TEST_SWEEP_SLEEP"):
        time.sleep(float(os.environ["CIRCML_TEST_SWEEP_SLEEP"]))
    log = os.environ.get("CIRCML_TEST_SWEEP_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {design['r1']!r} {design['r2']!r} {design['c1']!r}\n")
    if design["r2"] == BAD_R2:
        raise ValueError("measure refuses r2 = 777")
    ac = result.ac
    f, mag = ac["frequency"].real, np.abs(ac["out"])
    below = np.nonzero(mag < mag[0] / math.sqrt(2))[0]
    return {"vout": result.op["out"], "gain": float(mag[0]),
            "f3db": float(f[below[0]]) if len(below) else math.nan}


def make_testbench(name="rc_divider"):
    return TB(name, NETLIST,
                     [DesignParam("r1", 100.0, 1e5, log=True, unit="ohm"),
                      DesignParam("r2", 100.0, 1e5, log=True, unit="ohm"),
                      DesignParam("c1", 1e-12, 1e-9, log=True, unit="F")],
                     ["op", "ac dec 5 1k 1g"], _measure, ["vout", "gain", "f3db"])


def _serial(tb, X):
    """The reference: every design evaluated in this process, one after the other."""
    with Simulator() as sim:
        return np.array([[tb.evaluate(d, sim)[m] for m in tb.metrics]
                         for d in (dict(zip(tb.param_names, x)) for x in X)])


def test_designs_inside_ranges_and_deterministic():
    tb = make_testbench()
    n = 64
    for method in ("lhs", "sobol", "random"):
        X = sample_designs(tb, n, method, seed=3)
        assert X.shape == (n, 3)
        for j, p in enumerate(tb.params):
            assert (X[:, j] >= p.low).all() and (X[:, j] <= p.high).all(), (method, p.name)
        np.testing.assert_array_equal(X, sample_designs(tb, n, method, seed=3))
        assert not np.array_equal(X, sample_designs(tb, n, method, seed=4))
        if method == "lhs":
            # One point per stratum in each column, in log space for log parameters (a linear
            # map of a log range would crowd the top decade instead).
            for j, p in enumerate(tb.params):
                strata = np.floor(p.to_unit(X[:, j]) * n).astype(int)
                assert sorted(strata) == list(range(n)), p.name
    with pytest.raises(ValueError, match="method"):
        sample_unit(4, 2, "grid")


def test_parallel_sweeps_equal_serial():
    tb = make_testbench()
    d1 = sweep(tb, 24, seed=5, workers=1, progress=False)
    d2 = sweep(tb, 24, seed=5, workers=2, chunksize=3, progress=False)
    d0 = sweep(tb, 24, seed=5, workers=0, progress=False)
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        dx = sweep(tb, 24, seed=5, executor=ex, chunksize=5, progress=False)
    X = sample_designs(tb, 24, "lhs", seed=5)
    ref = _serial(tb, X)
    for ds in (d1, d2, d0, dx):
        assert (ds.status == "ok").all(), ds.error
        np.testing.assert_array_equal(ds.index, np.arange(24))
        np.testing.assert_array_equal(ds.X, X)
        np.testing.assert_array_equal(ds.Y, ref)
    assert np.isfinite(ref).all()
    # A divider: vout = r2 / (r1 + r2).
    np.testing.assert_allclose(d2.Y[:, 0], X[:, 1] / (X[:, 0] + X[:, 1]), rtol=1e-9)
    assert d2.meta["method"] == "lhs" and d2.meta["seed"] == 5 and d2.meta["n"] == 24


def test_user_tables():
    tb = make_testbench()
    X = np.array([[1e3, 1e3, 1e-10], [2e3, 500.0, 1e-11], [150.0, 9e4, 5e-10]])
    rows = [dict(zip(tb.param_names, x)) for x in X]
    cols = {k: X[:, j] for j, k in enumerate(tb.param_names)}
    np.testing.assert_array_equal(designs_from_table(tb, rows), X)
    np.testing.assert_array_equal(designs_from_table(tb, cols), X)
    np.testing.assert_array_equal(designs_from_table(tb, X.tolist()), X)
    with pytest.raises(ValueError, match="missing \\['c1'\\]"):
        designs_from_table(tb, [{"r1": 1.0, "r2": 1.0}])
    with pytest.raises(ValueError, match="unknown \\['w'\\]"):
        designs_from_table(tb, [{"r1": 1.0, "r2": 1.0, "c1": 1.0, "w": 2.0}])
    with pytest.raises(ValueError, match="expected \\[n, 3\\]"):
        designs_from_table(tb, X[:, :2])

    ds = sweep(tb, rows, workers=1, progress=False)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.Y, _serial(tb, X))
    assert ds.meta["method"] == "table" and ds.meta["seed"] is None
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X[:, ::-1], columns=tb.param_names[::-1])  # columns are matched by name
    np.testing.assert_array_equal(sweep(tb, df, workers=0, progress=False).Y, ds.Y)
    out = ds.to_pandas()
    assert list(out.columns) == tb.param_names + tb.metrics + ["status", "error", "elapsed"]
    assert list(out.index) == [0, 1, 2]
    empty = sweep(tb, [], workers=1, progress=False)
    assert empty.X.shape == (0, 3) and empty.Y.shape == (0, 3)


def test_failed_points_are_kept_with_their_error():
    tb = make_testbench()
    table = [{"r1": 1e3, "r2": 1e3, "c1": 1e-10},
             {"r1": -1e3, "r2": 1e3, "c1": 1e-10},        # r1 = -r2: a singular matrix
             {"r1": math.inf, "r2": 1e3, "c1": 1e-10},    # refused by circml's reader before ngspice
             {"r1": 1e3, "r2": BAD_R2, "c1": 1e-10},      # the measure raises
             {"r1": 2e3, "r2": 1e3, "c1": 1e-10}]
    ds = sweep(tb, table, workers=1, progress=False)
    assert list(ds.status) == ["ok", "failed", "failed", "failed", "ok"]
    assert ds.error[0] == "" and ds.error[4] == ""
    assert ds.error[1].startswith("SimulationError") and "singular matrix" in ds.error[1]
    assert ds.error[2].startswith("NetlistError") and "infinity" in ds.error[2]
    assert ds.error[3] == "ValueError: measure refuses r2 = 777"
    assert np.isnan(ds.Y[1:4]).all() and np.isfinite(ds.Y[[0, 4]]).all()
    # The same worker went on after each failure.
    np.testing.assert_allclose(ds.Y[3:, 0], [np.nan, 1 / 3], rtol=1e-9)
    assert list(ds.feasible()) == [True, False, False, False, True]
    assert list(ds.feasible({"vout": (0.4, None)})) == [True, False, False, False, False]
    assert len(ds[ds.feasible()]) == 2

    # A simulation over the time limit fails alone; the same worker simulates the next point.
    slow = TB("pulse_rc", "* pulse rc\n.param per=1m\nV1 in 0 PULSE(0 1 0 {per/100} {per/100} {per/2} {per})\n"
                     "R1 in out 1k\nC1 out 0 1n\n.end\n", [DesignParam("per", 1e-8, 1e-3, log=True)],
                     ["tran 1u 10m"], _measure_vmax, ["vmax"])
    # (pool workers: their parent kills the worker and replaces it; in process: ngspice's
    # background thread is halted)
    for workers in (1, 2, 0):
        ds = sweep(slow, [[1e-3], [1e-8], [1e-3], [2e-3]], workers=workers, timeout=0.3, progress=False)
        assert list(ds.status) == ["ok", "failed", "ok", "ok"], (workers, ds.error)
        assert ds.error[1].startswith("SimulationTimeout")


def _measure_vmax(result, design):
    return {"vmax": float(np.max(result.tran["out"].real))}


def test_store_roundtrip_resume_and_mismatch(tmp_path):
    tb = make_testbench()
    path = tmp_path / "s.sqlite"
    ds = sweep(tb, 20, seed=2, workers=1, store=path, progress=False)
    mem = sweep(tb, 20, seed=2, workers=0, progress=False)
    for got in (ds, load_dataset(path)):
        np.testing.assert_array_equal(got.X, mem.X)
        np.testing.assert_array_equal(got.Y, mem.Y)
        np.testing.assert_array_equal(got.index, np.arange(20))
        assert list(got.status) == ["ok"] * 20
    # A finished store: nothing is simulated again.
    again = sweep(tb, 20, seed=2, workers=1, store=path, progress=False)
    np.testing.assert_array_equal(again.Y, mem.Y)
    assert [r["n_stored"] for r in store_runs(path)] == [20]

    for kwargs, what in (({"seed": 3}, "seed"), ({"method": "sobol"}, "method")):
        with pytest.raises(StoreMismatchError, match=what):
            sweep(tb, 20, **{"seed": 2, **kwargs}, workers=1, store=path, progress=False)
    with pytest.raises(StoreMismatchError, match="n: store has 20"):
        sweep(tb, 21, seed=2, workers=1, store=path, progress=False)
    with pytest.raises(StoreMismatchError, match="testbench"):
        sweep(make_testbench("other"), 20, seed=2, workers=1, store=path, progress=False)

    # One writer at a time.
    with SweepStore(path, ds.meta):
        with pytest.raises(StoreLockedError):
            sweep(tb, 20, seed=2, workers=1, store=path, progress=False)

    # .npz round trip, no pickle.
    ds.error[3] = "ValueError: é" * 50
    ds.save(tmp_path / "d.npz")
    back = Dataset.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.X, ds.X)
    np.testing.assert_array_equal(back.Y, ds.Y)
    assert list(back.error) == list(ds.error) and list(back.status) == list(ds.status)
    assert back.param_names == tb.param_names and back.meta["seed"] == 2
    assert load_dataset(tmp_path / "d.npz").metric_names == tb.metrics


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from test_sweep import make_testbench
from circml.spice import sweep

if __name__ == "__main__":
    sweep(make_testbench(), {n}, seed=11, workers=2, chunksize=4, store=sys.argv[1], progress=False)
"""


def _stored(path):
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_resume_after_sigkill(tmp_path):
    n = 200
    tb = make_testbench()
    store = tmp_path / "kill.sqlite"
    script = tmp_path / "run_sweep.py"
    script.write_text(textwrap.dedent(SCRIPT.format(here=HERE, n=n)))
    env = dict(os.environ, CIRCML_TEST_SWEEP_SLEEP="0.01", CIRCML_TEST_SWEEP_LOG=str(tmp_path / "run1.log"))

    # stderr to a file: the killed sweep's resource tracker reports the semaphores it cleans up.
    with open(tmp_path / "run1.err", "w") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(store)], env=env, stderr=err,
                                start_new_session=True)
    try:
        t0 = time.time()
        while (polled := _stored(store)) < 0.4 * n:
            assert proc.poll() is None, "the sweep ended before it could be killed: " + \
                (tmp_path / "run1.err").read_text()
            assert time.time() - t0 < 60, "the sweep stored too few points in 60 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # the sweep process only: its workers must notice
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    con = sqlite3.connect(store)
    idx, pids = zip(*con.execute("SELECT idx, pid FROM points ORDER BY idx"))
    status = {s for (s,) in con.execute("SELECT status FROM points")}
    con.close()
    k = len(idx)
    print(f"SIGKILL after {k} of {n} points stored")
    assert polled <= k <= 0.6 * n, (polled, k)  # nothing committed was lost
    assert len(set(idx)) == k and status == {"ok"}
    first = load_dataset(store)
    X = sample_designs(tb, n, "lhs", seed=11)
    np.testing.assert_array_equal(first.X, X[first.index])  # what was stored is intact
    # The pool's workers leave once their parent is gone.
    deadline = time.time() + 10
    while any(_pid_alive(p) for p in set(pids)) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_pid_alive(p) for p in set(pids)), "orphaned sweep workers still running"
    with open(tmp_path / "run1.log") as f:
        simulated_first = len(f.readlines())
    assert simulated_first >= k  # in-flight chunks were simulated but never stored

    env["CIRCML_TEST_SWEEP_LOG"] = str(tmp_path / "run2.log")
    env["CIRCML_TEST_SWEEP_SLEEP"] = ""
    subprocess.run([sys.executable, str(script), str(store)], env=env, check=True, timeout=120)

    con = sqlite3.connect(store)
    idx = [i for (i,) in con.execute("SELECT idx FROM points ORDER BY idx")]
    by_run = dict(con.execute("SELECT run, COUNT(*) FROM points GROUP BY run"))
    con.close()
    assert idx == list(range(n))  # every index once: n rows, unique
    assert by_run == {1: k, 2: n - k}
    with open(tmp_path / "run2.log") as f:
        logged = [tuple(float(v) for v in line.split()[1:]) for line in f]
    missing = sorted(set(range(n)) - set(first.index.tolist()))
    assert len(logged) == n - k  # the restarted run simulated exactly the missing points
    assert sorted(logged) == sorted(tuple(x) for x in X[missing])
    runs = store_runs(store)
    assert [r["n_todo"] for r in runs] == [n, n - k] and runs[0]["finished"] is None
    assert runs[1]["n_simulated"] == n - k
    final = load_dataset(store)
    np.testing.assert_array_equal(final.X, X)
    np.testing.assert_array_equal(final.Y, _serial(tb, X))
    print(f"first run simulated {simulated_first} (stored {k}); restart simulated {len(logged)} = n - k")


def _measure_or_die(result, design):
    if design["r2"] == BAD_R2:
        os.kill(os.getpid(), signal.SIGKILL)  # a crash that takes the worker process down
    return _measure(result, design)


def test_worker_crash_costs_one_point(tmp_path):
    tb = make_testbench()
    tb.measure = _measure_or_die
    X = sample_designs(tb, 12, seed=1)
    X[8, 1] = BAD_R2
    ref = _serial(make_testbench(), X[[i for i in range(12) if i != 8]])
    # 1 worker: the point the dead worker was on is the culprit; 2 workers: both busy points
    # are suspects and run again one at a time, and the one that kills a worker again fails.
    for workers, chunksize in ((1, 2), (2, 3)):
        store = tmp_path / f"c{workers}.sqlite"
        ds = sweep(tb, X, workers=workers, chunksize=chunksize, store=store, progress=False)
        assert list(ds.status) == ["ok"] * 8 + ["failed"] + ["ok"] * 3
        assert ds.error[8].startswith("SimulatorDied: the worker process died while simulating this point")
        np.testing.assert_array_equal(np.delete(ds.Y, 8, axis=0), ref)
        assert list(load_dataset(store).index) == list(range(12))


def _measure_threads(result, design):
    out = _measure(result, design)
    out["gain"] = float(len(os.listdir("/proc/self/task")))   # threads of this worker process
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc (Linux)")
def test_pool_is_reused_and_its_workers_stay_single_threaded():
    from circml.spice import SimulationPool
    tb = make_testbench()
    tb.measure = _measure_threads
    X = sample_designs(tb, 16, seed=3)
    ref = _serial(make_testbench(), X)
    with SimulationPool(2) as pool:
        a = sweep(tb, X, executor=pool, chunksize=2, progress=False)
        b = sweep(tb, X[::-1], executor=pool, chunksize=5, progress=False)
        assert pool.restarts == 0
    # One thread per worker: no BLAS/OpenMP pool, no ngspice background thread, no watcher
    # (glibc's malloc then skips its locks).
    assert (a.Y[:, 1] == 1).all() and (b.Y[:, 1] == 1).all()
    np.testing.assert_array_equal(a.Y[:, [0, 2]], ref[:, [0, 2]])
    np.testing.assert_array_equal(b.Y[::-1][:, [0, 2]], ref[:, [0, 2]])


def test_dask_matches_local():
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed "
                                      "(pip install 'circml[scale]')")
    tb = make_testbench()
    local = sweep(tb, 30, method="sobol", seed=9, workers=2, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = sweep(tb, 30, method="sobol", seed=9, executor=client, chunksize=4, progress=False)
        pids = set(client.run(os.getpid).values())
    assert (remote.status == "ok").all(), remote.error
    np.testing.assert_array_equal(remote.X, local.X)
    np.testing.assert_array_equal(remote.Y, local.Y)
    assert len(pids) == 2 and os.getpid() not in pids


def test_pool_recycles_its_workers_and_results_do_not_change():
    # (libngspice keeps a little memory per simulation: long sweeps replace their workers)
    from circml.spice import SimulationPool
    tb = make_testbench()
    X = sample_designs(tb, 20, seed=4)
    with SimulationPool(2, recycle_after=6) as pool:
        ds = sweep(tb, X, executor=pool, chunksize=2, progress=False)
        assert pool.recycled >= 1 and pool.restarts == 0
    assert (ds.status == "ok").all(), ds.error
    np.testing.assert_array_equal(ds.Y, _serial(tb, X))
