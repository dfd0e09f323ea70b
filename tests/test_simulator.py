"""circml.spice.Simulator: result arrays, ngspice errors, refusal of unsafe netlists, time limits,
recovery from a fatal ngspice exit, flat memory over many runs, and a missing library.

libngspice keeps global state: one Simulator may be open per process, so every test closes its
own (opening again reuses the parked instance and costs nothing)."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from circml import NetlistError, UnsafeNetlistError, parse_netlist
from circml import _core
from circml.spice import (NgspiceNotFound, SimulationError, SimulationTimeout, Simulator, SimulatorDied)

RC = "* rc low-pass\nV1 in 0 DC 1 AC 1\nR1 in out 1k\nC1 out 0 1n\n.end"
GOOD = "* current into a resistor\nI1 0 a 1m\nR1 a 0 1k\n.end"

# A diode in parallel with a -1 ohm negative resistance (G1 feeds g*V(a) into a), and a current
# source drawing 1 A out of the node: i_diode(V) - V = -1 A has no solution (the left side never
# goes below about -0.71 A). ngspice 39 tries Newton, dynamic and true gmin stepping, source
# stepping and a transient op, then gives up ("DC solution failed", checked with the CLI).
NO_DC_SOLUTION = """* negative resistance and a diode: no dc solution
.model dmod d is=1e-14
D1 a 0 dmod
G1 0 a a 0 1
I1 a 0 DC 1
.end"""

# A current source into a capacitor: at DC the node floats ("singular matrix: check node a").
FLOATING_NODE = "* floating node\nI1 0 a 1m\nC1 a 0 1p\nR1 b 0 1k\nV1 b 0 1\n.end"

# A five-transistor OTA (level-1 models so the test does not depend on the library's cards).
OTA = """* 5T OTA
.param w_in=8u l_in=1u w_ld=4u l_ld=1u ibias=20u
.model nch nmos level=1 vto=0.45 kp=200u lambda=0.08 gamma=0.4 phi=0.8 cgso=0.3n cgdo=0.3n kf=1e-26
.model pch pmos level=1 vto=-0.45 kp=80u lambda=0.1 gamma=0.4 phi=0.8 cgso=0.3n cgdo=0.3n kf=1e-26
Vdd vdd 0 DC 1.8
Iref vdd vbn DC {ibias}
M6 vbn vbn 0 0 nch w=4u l=1u
M5 tail vbn 0 0 nch w=4u l=1u
M1 x inp tail 0 nch w={w_in} l={l_in}
M2 out inn tail 0 nch w={w_in} l={l_in}
M3 x x vdd vdd pch w={w_ld} l={l_ld}
M4 out x vdd vdd pch w={w_ld} l={l_ld}
Cl out 0 1p
Vinp inp 0 DC 0.9 AC 1
Vinn inn 0 DC 0.9
.end"""
OTA_ANALYSES = ["op", "ac dec 20 1 1g", "noise v(out) Vinp dec 20 1 1g"]


# A time limit runs ngspice in its background thread (halted on time); none runs it in the
# calling thread (faster; sweep workers do this and their parent enforces the limit). Both
# must report errors the same way.
@pytest.fixture(params=[30.0, None], ids=["background-thread", "calling-thread"])
def sim(request):
    with Simulator(timeout=request.param) as s:
        yield s


def assert_runs_good_netlist(s):
    """The simulator still works after a failure: a fresh result, right values."""
    assert not _core.spice_is_dead(s._handle)
    r = s.run(RC, ["op", "ac dec 10 1 1meg"])
    assert r.op["out"] == pytest.approx(1.0)
    assert abs(r.ac["out"][0]) == pytest.approx(1.0, rel=1e-6)


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
def test_results_are_arrays_keyed_by_vector_name(sim):
    r = sim.run(RC, ["op", "ac dec 20 1 1g", "dc V1 0 2 0.5", "tran 10n 5u", "noise v(out) V1 dec 10 1 1g"])
    assert {p.rstrip("0123456789") for p in r.plots} == {"op", "ac", "dc", "tran", "noise"}
    assert "Circuit: * rc low-pass" in r.output

    assert r.op == pytest.approx({"in": 1.0, "out": 1.0, "v1#branch": 0.0})
    assert all(isinstance(v, float) for v in r.op.values())

    ac = r.ac
    assert set(ac) == {"frequency", "in", "out", "v1#branch"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.complex128 for v in ac.values())
    assert len(ac["frequency"]) == 9 * 20 + 1
    np.testing.assert_allclose(ac["frequency"].real, np.logspace(0, 9, 181), rtol=1e-9)
    np.testing.assert_allclose(ac["out"], 1 / (1 + 2j * np.pi * ac["frequency"].real * 1e-6), rtol=1e-6)

    dc = r.dc
    assert set(dc) == {"v-sweep", "in", "out", "v1#branch"}
    assert dc["out"].dtype == np.float64
    np.testing.assert_allclose(dc["v-sweep"], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(dc["out"], dc["v-sweep"])

    tr = r.tran
    assert {"time", "in", "out"} <= set(tr)
    assert tr["time"].dtype == np.float64 and len(tr["time"]) == len(tr["out"])
    assert tr["time"][0] == 0 and tr["time"][-1] == pytest.approx(5e-6) and np.all(np.diff(tr["time"]) > 0)

    noise = r.noise
    assert set(noise) == {"frequency", "onoise_spectrum", "inoise_spectrum"}
    assert noise["onoise_spectrum"].dtype == np.float64 and len(noise["frequency"]) == 91
    assert set(r.noise_total) == {"onoise_total", "inoise_total"}
    assert r.noise_total["onoise_total"] == pytest.approx(np.sqrt(1.380649e-23 * 300.15 / 1e-9), rel=0.01)

    # a parsed Circuit goes through the C writer instead of the text: the same numbers
    again = sim.run(parse_netlist(RC), ["op", "ac dec 20 1 1g"])
    np.testing.assert_array_equal(again.ac["out"], ac["out"])
    assert again.op == r.op
    with pytest.raises(KeyError, match="no 'tran' results"):
        again.tran


def test_analyses_of_one_kind_come_back_in_the_order_listed(sim):
    # ngspice runs same-kind analyses last card first; the Simulator compensates
    r = sim.run(RC, ["ac dec 20 1 1g", "ac lin 1 1k 1k", "tran 1u 2u", "tran 1u 4u",
                     "noise v(out) V1 dec 10 1 1k", "noise v(out) V1 dec 10 1 1meg"])
    assert len(r.ac["frequency"]) == 181
    assert len(r._first("ac", 1)["frequency"]) == 1
    assert r.tran["time"][-1] == pytest.approx(2e-6)
    assert r._first("tran", 1)["time"][-1] == pytest.approx(4e-6)
    assert r.noise["frequency"][-1] == pytest.approx(1e3)
    assert set(r.noise_total) == {"onoise_total", "inoise_total"}


# ---------------------------------------------------------------------------------------
# ngspice errors
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("netlist,message,in_output", [
    ("* bad model\nV1 a 0 1\nR1 a b 1k\nD1 b 0 nosuchdiode\n.end",
     "could not find a valid modelname", "can't find model 'nosuchdiode'"),
    ("* bad subcircuit\nV1 a 0 1\nX1 a 0 nosuchsub\n.end", "unknown subckt", "unknown subckt: x1 a 0 nosuchsub"),
], ids=["unknown-model", "undefined-subckt"])
def test_ngspice_netlist_errors_raise_and_the_simulator_goes_on(netlist, message, in_output):
    with Simulator(allow_unsafe=True) as s:            # unread: ngspice itself finds the fault
        with pytest.raises(SimulationError, match=message) as exc:
            s.run(netlist)
        assert in_output in exc.value.output
        assert not isinstance(exc.value, (SimulationTimeout, SimulatorDied))
        assert_runs_good_netlist(s)
    with Simulator() as s:                             # checked: circml's reader refuses it first
        with pytest.raises(NetlistError):
            s.run(netlist)
        assert_runs_good_netlist(s)


def test_singular_matrix_raises(sim):
    with pytest.raises(SimulationError, match="singular matrix") as exc:
        sim.run(FLOATING_NODE)
    assert "check node a" in exc.value.output
    assert_runs_good_netlist(sim)


def test_non_converging_circuit_raises_and_the_simulator_goes_on(sim):
    t0 = time.monotonic()
    with pytest.raises(SimulationError) as exc:
        sim.run(NO_DC_SOLUTION)
    assert time.monotonic() - t0 < 5
    assert not isinstance(exc.value, (SimulationTimeout, SimulatorDied))
    assert "DC solution failed" in exc.value.output
    assert "simulation(s) aborted" in exc.value.output
    assert "source stepping failed" in exc.value.output
    assert_runs_good_netlist(sim)
    # twice in a row, then fine again
    with pytest.raises(SimulationError):
        sim.run(NO_DC_SOLUTION, ["op", "ac dec 10 1 1k"])
    assert_runs_good_netlist(sim)


def test_error_words_in_a_title_are_not_errors(sim):
    r = sim.run("* singular matrix, unknown model, timestep too small: only words\nI1 0 a 1m\nR1 a 0 1k\n.end")
    assert r.op["a"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------
# Untrusted netlists
# ---------------------------------------------------------------------------------------
def test_control_blocks_are_refused_unless_allowed(tmp_path):
    flag = tmp_path / "shell-ran"
    netlist = f"* sneaky\nI1 0 a 1m\nR1 a 0 1k\n.control\nshell touch {flag}\n.endc\n.end"
    with Simulator() as s:
        with pytest.raises(UnsafeNetlistError, match=r"\.control"):
            s.run(netlist)
        with pytest.raises(UnsafeNetlistError):
            s.netlist_text(netlist)
        with pytest.raises(PermissionError, match="allow_unsafe"):
            s.command(f"shell touch {flag}")
        assert_runs_good_netlist(s)
    assert not flag.exists()
    with Simulator(allow_unsafe=True) as s:             # the opt-in really passes it through
        r = s.run(netlist)
        assert r.op["a"] == pytest.approx(1.0)
    assert flag.exists()


def test_includes_outside_the_allowed_folders_are_refused_unless_allowed(tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "extra.lib").write_text("R2 a 0 1k\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)                              # a string netlist may include from the cwd
    netlist = f"* include\n.include {outside / 'extra.lib'}\nI1 0 a 1m\nR1 a 0 1k\n.end"
    with Simulator() as s:
        with pytest.raises(UnsafeNetlistError, match="outside the allowed folders"):
            s.run(netlist)
        assert_runs_good_netlist(s)
    with Simulator(include_dirs=[str(outside)]) as s:
        assert s.run(netlist).op["a"] == pytest.approx(0.5)
    with Simulator(allow_unsafe=True) as s:
        assert s.run(netlist).op["a"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------
# Time limits, fatal errors, memory
# ---------------------------------------------------------------------------------------
LONG_TRAN = "* long\nV1 in 0 PULSE(0 1 0 1n 1n 1u 2u)\nR1 in out 1k\nC1 out 0 1n\n.end"


def test_timeout_halts_a_long_simulation(sim):
    t0 = time.monotonic()
    with pytest.raises(SimulationTimeout, match="time limit") as exc:
        sim.run(LONG_TRAN, ["tran 1p 10m"], timeout=0.5)
    elapsed = time.monotonic() - t0
    assert 0.45 < elapsed < 3.0, elapsed
    assert isinstance(exc.value, SimulationError) and isinstance(exc.value.output, str)
    assert_runs_good_netlist(sim)
    # the per-simulator default applies when a run gives none
    sim.timeout = 0.3
    t0 = time.monotonic()
    with pytest.raises(SimulationTimeout):
        sim.run(LONG_TRAN, ["tran 1p 10m"])
    assert time.monotonic() - t0 < 3.0
    sim.timeout = 30.0
    assert_runs_good_netlist(sim)
    # a short transient of the same circuit finishes under a limit
    r = sim.run(LONG_TRAN, ["tran 1n 4u"], timeout=5)
    assert r.tran["time"][-1] == pytest.approx(4e-6)


@pytest.mark.parametrize("timeout", [30.0, None], ids=["background-thread", "calling-thread"])
def test_fatal_exit_marks_the_simulator_dead_and_it_reopens(timeout):
    with Simulator(allow_unsafe=True, timeout=timeout) as s:
        with pytest.raises(SimulatorDied):
            s.command("quit")                             # ngspice's controlled exit, not the process's
        assert _core.spice_is_dead(s._handle)
        r = s.run(OTA, OTA_ANALYSES)                      # reopens a fresh copy of the library
        assert s.reopened == 1
        assert abs(r.ac["out"][0]) > 10 and r.noise_total["inoise_total"] > 0
        # a quit inside a netlist's .control block, during a run
        with pytest.raises(SimulatorDied):
            s.run(GOOD.replace(".end", ".control\nquit\n.endc\n.end"))
        assert s.reopened == 2
        assert_runs_good_netlist(s)
    with Simulator() as s:                                # and a later Simulator is healthy
        assert_runs_good_netlist(s)


def test_fatal_exit_leaves_the_python_process_healthy_to_the_end():
    code = textwrap.dedent(f"""
        from circml.spice import Simulator, SimulatorDied
        with Simulator(allow_unsafe=True) as s:
            try:
                s.command("quit")
            except SimulatorDied:
                pass
            print(s.run({GOOD!r}).op["a"])
        print("done")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1.0", "done"]


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_memory_stays_flat_over_consecutive_simulations(sim):
    first = sim.run(OTA, OTA_ANALYSES)
    assert 10 < abs(first.ac["out"][0]) < 1e4
    rss = {}
    for i in range(300):
        if i == 100:
            rss[100] = _rss_bytes()
        # both paths: text (read by circml, written out) and a parsed Circuit with new sizes
        net = OTA if i % 2 else parse_netlist(OTA, params={"w_in": 4e-6 + 1e-8 * i})
        r = sim.run(net, OTA_ANALYSES)
        assert len(r.noise["frequency"]) == 181
    rss[300] = _rss_bytes()
    assert rss[300] - rss[100] < 10e6, f"RSS grew by {(rss[300] - rss[100]) / 1e6:.1f} MB over 200 simulations"


# ---------------------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------------------
def test_missing_library_gives_an_install_hint():
    with pytest.raises(NgspiceNotFound, match="/nonexistent/libngspice.so") as exc:
        Simulator(library="/nonexistent/libngspice.so")
    assert isinstance(exc.value, OSError)
    assert "apt-get install libngspice0" in str(exc.value)
    assert "CIRCML_NGSPICE_LIBRARY" in str(exc.value)
    with Simulator() as s:                                # nothing was left half-open
        assert_runs_good_netlist(s)


def test_one_simulator_per_process():
    with Simulator() as s:
        with pytest.raises(RuntimeError, match="already open"):
            Simulator()
        assert_runs_good_netlist(s)
    s.close()                                             # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        s.run(GOOD)
    with Simulator() as s2:
        assert_runs_good_netlist(s2)
