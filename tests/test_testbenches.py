"""Library testbenches: every registered one simulates at its default design with finite metrics
in sensible ranges; parameter counts; metrics move the physically expected way when one design
parameter changes; designs naming unknown parameters are refused; testbenches pickle (sweeps
send them to worker processes).

One Simulator serves the module (ngspice allows one per process) and is closed at its end.
"""
import math
import pickle

import pytest

from circml.spice import Simulator
from circml.spice.testbench import DesignParam
from circml.spice.testbenches import (KINDS, NOISE_BAND, TESTBENCHES, LibraryTestbench, get_testbench,
                                      list_testbenches)

ALL = list_testbenches()
OTAS = list_testbenches("ota")
OPAMPS = list_testbenches("opamp")
DELAY_LINES = list_testbenches("delay_line")

# Sensible ranges at the default designs. Power reaches down to 100 nW for the subthreshold
# (ECG) OTA, whose 200 nA class bias is the point of that circuit.
OTA_RANGES = {"power": (1e-7, 1e-2), "irn": (1e-7, 1e-3), "gain_db": (20, 120), "bw": (100, 1e10),
              "ugbw": (1e4, 1e10), "pm": (30, 120)}
OPAMP_RANGES = {"power": (1e-6, 1e-2), "gain_db": (40, 160), "bw": (0.01, 1e10), "ugbw": (1e5, 1e10),
                "pm": (-180, 180)}
DELAY_RANGES = {"rise_delay": (1e-12, 100e-9), "fall_delay": (1e-12, 100e-9)}


@pytest.fixture(scope="module")
def sim():
    s = Simulator()
    yield s
    s.close()


@pytest.fixture(scope="module")
def defaults(sim):
    """Metrics of every testbench at its default design."""
    return {n: get_testbench(n).evaluate(get_testbench(n).default_design(), sim) for n in ALL}


def _changed(tb, sim, param, factor):
    d = tb.default_design()
    d2 = dict(d, **{param: d[param] * factor})
    return tb.evaluate(d, sim), tb.evaluate(d2, sim)


# -- registry ------------------------------------------------------------------------------
def test_registry():
    assert len(OTAS) >= 4 and {"ota_5t", "ota_two_stage_miller", "ota_folded_cascode"} <= set(OTAS)
    assert {"ota_telescopic", "ota_subthreshold_ecg"} & set(OTAS)
    assert len(OPAMPS) == 5 and len(DELAY_LINES) == 5
    assert sorted(OTAS + OPAMPS + DELAY_LINES) == ALL == sorted(TESTBENCHES)
    for n in ALL:
        tb = get_testbench(n)
        assert isinstance(tb, LibraryTestbench) and tb.kind in KINDS and tb.name == n
        assert tb.description and tb.timeout > 0 and tb.filename.endswith(f"{n}.sp")
        assert set(tb.units) == set(tb.metrics)
    with pytest.raises(KeyError, match="no testbench named"):
        get_testbench("ota_9t")
    with pytest.raises(ValueError, match="kind"):
        list_testbenches("mixer")
    # get_testbench hands out copies: editing one leaves the registry alone
    tb = get_testbench("ota_5t")
    tb.params.pop()
    assert len(get_testbench("ota_5t").params) == len(TESTBENCHES["ota_5t"].params)


@pytest.mark.parametrize("name", OTAS)
def test_ota_params_and_metrics(name):
    tb = get_testbench(name)
    assert 12 <= len(tb.params) <= 20
    assert tb.metrics[:4] == ["power", "irn", "gain_db", "bw"]
    assert tb.units["power"] == "W" and tb.units["irn"] == "V" and tb.units["gain_db"] == "dB"
    names = tb.param_names
    assert "ibias" in names and "cl" in names
    assert any(n.startswith("w_") for n in names) and any(n.startswith("l_") for n in names)
    fingers = [p for p in tb.params if p.name.startswith("nf_")]
    assert fingers and all(p.integer and p.low >= 1 for p in fingers)
    assert any(a.startswith("noise v(out) vinp") for a in tb.analyses)
    assert NOISE_BAND == (1.0, 1e6)


def test_other_param_counts():
    for n in OPAMPS:
        assert len(get_testbench(n).params) >= 4, n
    for n in DELAY_LINES:
        tb = get_testbench(n)
        assert len(tb.params) >= 2 and {"vsup", "t_slew", "cl"} <= set(tb.param_names), n


# -- default designs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_default_design_in_range(name, defaults):
    tb = get_testbench(name)
    m = defaults[name]
    assert list(m) == tb.metrics
    ranges = {"ota": OTA_RANGES, "opamp": OPAMP_RANGES, "delay_line": DELAY_RANGES}[tb.kind]
    for k, (lo, hi) in ranges.items():
        assert math.isfinite(m[k]) and lo <= m[k] <= hi, (name, k, m[k])
    if tb.kind != "delay_line":
        assert m["ugbw"] > m["bw"]
    else:
        assert m["rise_delay"] != m["fall_delay"]


# -- physical trends -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", OTAS)
def test_ota_bias_current_raises_power_and_speed(name, sim):
    a, b = _changed(get_testbench(name), sim, "ibias", 2.0)
    assert 1.7 < b["power"] / a["power"] < 2.3        # every branch current scales with ibias
    assert b["ugbw"] > a["ugbw"]                      # more gm
    assert b["irn"] < a["irn"]                        # more gm: less input-referred noise


@pytest.mark.parametrize("name", ["ota_5t", "ota_folded_cascode", "ota_telescopic"])
def test_single_stage_ota_load_cap_lowers_bandwidth(name, sim):
    a, b = _changed(get_testbench(name), sim, "cl", 3.0)
    assert 0.25 < b["bw"] / a["bw"] < 0.45            # the output pole is the dominant one
    assert b["gain_db"] == pytest.approx(a["gain_db"], abs=0.01)
    assert b["power"] == pytest.approx(a["power"], rel=1e-6)


def test_miller_ota_load_cap_costs_phase_margin(sim):
    a, b = _changed(get_testbench("ota_two_stage_miller"), sim, "cl", 3.0)
    assert b["pm"] < a["pm"] - 5                      # the second pole gm2/CL moves down


@pytest.mark.parametrize("name,param", [("opamp_folded_cascode_class_a", "cc"),
                                        ("opamp_fully_differential_cmfb", "cc"),
                                        ("opamp_three_stage_nmc", "cm1"),
                                        ("opamp_rail_to_rail_input", "cl"),
                                        ("opamp_gain_boosted_telescopic", "cl")])
def test_opamp_compensation_lowers_ugbw(name, param, sim):
    tb = get_testbench(name)
    a, b = _changed(tb, sim, param, 1.5)
    assert b["ugbw"] < 0.8 * a["ugbw"]                # GBW = gm / C
    assert b["power"] == pytest.approx(a["power"], rel=1e-6)
    a, b = _changed(tb, sim, "ibias", 1.5)
    assert b["power"] > 1.3 * a["power"]


@pytest.mark.parametrize("name", DELAY_LINES)
def test_delay_line_load_and_supply(name, sim):
    tb = get_testbench(name)
    a, b = _changed(tb, sim, "cl", 3.0)
    assert b["rise_delay"] > a["rise_delay"] and b["fall_delay"] > a["fall_delay"]
    a, b = _changed(tb, sim, "vsup", 0.9)
    assert b["rise_delay"] > a["rise_delay"] and b["fall_delay"] > a["fall_delay"]


def test_delay_line_control_voltages(sim):
    a, b = _changed(get_testbench("delay_line_current_starved"), sim, "vctl", 0.8)
    assert b["rise_delay"] > 1.5 * a["rise_delay"]    # less starving current
    a, b = _changed(get_testbench("delay_line_shunt_cap"), sim, "vctl", 1.15)
    assert b["rise_delay"] > a["rise_delay"]          # the switches connect more of csh


# -- validation, NaN contract, pickling ----------------------------------------------------------
def test_design_outside_netlist_params_raises(sim):
    tb = get_testbench("ota_5t")
    with pytest.raises(ValueError, match="not design parameters"):
        tb.evaluate(dict(tb.default_design(), ibais=1e-5), sim)
    d = tb.default_design()
    del d["ibias"]
    with pytest.raises(ValueError, match="lacks"):
        tb.evaluate(d, sim)
    # a design parameter that the netlist does not define fails when the testbench is made
    with pytest.raises(ValueError, match="bogus"):
        LibraryTestbench(name="x", netlist=tb.netlist, params=tb.params + [DesignParam("bogus", 1, 2)],
                         analyses=tb.analyses, measure=tb.measure, metrics=tb.metrics, filename=tb.filename,
                         include_dirs=tb.include_dirs)


def test_unmeasurable_metrics_are_nan(sim):
    # a 1 Hz..10 kHz sweep of the 5T OTA ends below its -3 dB and unity-gain frequencies
    tb = get_testbench("ota_5t")
    tb.analyses = ["op", "ac dec 10 1 10k", tb.analyses[2]]
    m = tb.evaluate(tb.default_design(), sim)
    assert math.isfinite(m["gain_db"]) and math.isfinite(m["power"])
    assert math.isnan(m["bw"]) and math.isnan(m["ugbw"]) and math.isnan(m["pm"])


def test_pickle_round_trip(sim, defaults):
    for n in ("ota_two_stage_miller", "opamp_fully_differential_cmfb", "delay_line_nand"):
        tb = pickle.loads(pickle.dumps(get_testbench(n)))
        assert tb.evaluate(tb.default_design(), sim) == defaults[n]


@pytest.mark.parametrize("name", ["ota_5t", "ota_two_stage_miller", "ota_folded_cascode", "ota_telescopic",
                                  "ota_subthreshold_ecg", list_testbenches("opamp")[0]])
def test_amplifier_measure_batch_equals_one_by_one(name, sim):
    # sweep workers measure a chunk at once: the values must not depend on it
    from circml.spice import sample_designs
    tb = get_testbench(name)
    designs = [dict(zip(tb.param_names, map(float, x))) for x in sample_designs(tb, 10, seed=11)]
    results = [sim.run(tb.circuit(d), tb.analyses) for d in designs]
    one = [tb.measure(r, d) for r, d in zip(results, designs)]
    both = tb.measure.batch(results, designs)
    assert len(both) == len(one)
    for a, b in zip(one, both):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), (k, a[k], b[k])
    assert sum(math.isfinite(v) for m in one for v in m.values()) > 0.8 * len(one) * len(tb.metrics)
