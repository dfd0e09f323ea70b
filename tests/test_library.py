"""The built-in circuit library: catalog, parsing, round trip, and ngspice operating points."""
import re
import subprocess
from collections import Counter

import numpy as np
import pytest

import circml
from circml.datasets import CIRCUITS_DIR, MODELS_DIR, circuit_library, families, load_circuit

LIB = circuit_library()
FAMILIES_REQUIRED = {"current_mirror", "ota", "opamp", "comparator", "logic", "delay_line", "oscillator",
                     "level_shifter", "latch", "flip_flop", "regulator", "reference", "charge_pump"}


def test_catalog_is_complete_and_consistent():
    names = [c.name for c in LIB]
    assert len(names) >= 50
    assert len(set(names)) == len(names), "duplicate catalog names"
    on_disk = {p.stem for p in CIRCUITS_DIR.glob("*.sp")}
    assert on_disk == set(names), f"files without catalog rows: {on_disk - set(names)}; rows without files: {set(names) - on_disk}"
    assert FAMILIES_REQUIRED <= set(families())
    for c in LIB:
        assert c.domain in {"analog", "digital", "mixed"}, c
        assert len(c.description) > 10, c
    domains = Counter(c.domain for c in LIB)
    assert domains["analog"] >= 10 and domains["digital"] >= 10 and domains["mixed"] >= 3
    # the downstream tasks need five delay lines and five op-amps
    assert len(circuit_library(family="delay_line")) >= 5
    assert len(circuit_library(family="opamp")) >= 5
    assert len(circuit_library(family="ota")) >= 4


def test_at_least_50_transistor_level_topologies():
    with_mosfets = [e.name for e in LIB if {"nmos", "pmos"} & set(e.circuit.kind_counts())]
    assert len(with_mosfets) >= 50, len(with_mosfets)


def test_model_cards_are_bsim4_45nm():
    text = (MODELS_DIR / "ptm45.lib").read_text().lower()
    c = circml.parse_netlist("* models\n.include ptm45.lib\n.end", filename=MODELS_DIR / "x.sp")
    assert c.models["nmos45"][0] == "nmos" and c.models["pmos45"][0] == "pmos"
    for name in ("nmos45", "pmos45"):
        params = dict(kv.split("=", 1) for kv in c.models[name][1].split())
        assert params["level"] in ("54", "14")          # BSIM4 in ngspice
        assert float(params["toxe"].replace("e", "e")) < 3e-9
    assert "ptm" in text  # cited


@pytest.mark.parametrize("entry", LIB, ids=[c.name for c in LIB])
def test_library_circuit_parses_and_round_trips(entry):
    c = entry.load()
    assert c.n_devices >= 3
    again = circml.parse_netlist(c.to_spice())
    assert again == c
    g = c.to_graph()
    assert g.num_nodes == c.n_nets + sum(v for k, v in c.kind_counts().items()
                                         if k in ("nmos", "pmos", "resistor", "capacitor", "inductor", "isource"))
    assert g.edge_index.max() < g.num_nodes


_NODE_LINE = re.compile(r"^\s+(\S+)\s+([-+0-9.eE]+)\s*$")


def _op_voltages(output: str):
    """Node voltages from ngspice's batch-mode .op table."""
    volts, on = {}, False
    for line in output.splitlines():
        if "Node" in line and "Voltage" in line:
            on = True
            continue
        if on:
            if "Source" in line and "Current" in line:
                break
            m = _NODE_LINE.match(line)
            if m and not m.group(1).startswith("-"):
                volts[m.group(1).lower()] = float(m.group(2))
    return volts


def _with_op(text: str) -> str:
    """The netlist with an .op card in place of its final .end."""
    lines = text.rstrip().splitlines()
    if lines[-1].strip().lower() == ".end":
        lines.pop()
    return "\n".join(lines + [".op", ".end"]) + "\n"


def _run_op(ngspice, path, cwd):
    r = subprocess.run([ngspice, "-b", str(path)], capture_output=True, text=True, cwd=cwd, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    low = out.lower()
    for bad in ("singular matrix", "timestep too small", "gmin stepping failed", "source stepping failed"):
        assert bad not in low, f"{bad!r} in ngspice output:\n{out[-2000:]}"
    assert not re.search(r"^\s*error\b", low, re.M), f"ngspice reported an error:\n{out[-2000:]}"
    return _op_voltages(out)


@pytest.mark.parametrize("entry", LIB, ids=[c.name for c in LIB])
def test_library_circuit_operating_point_in_ngspice(entry, ngspice, tmp_path):
    """Every library circuit runs .op in ngspice, and the flat netlist circml writes back gives
    the same node voltages as the original hierarchical file."""
    original = tmp_path / "original.sp"
    original.write_text(_with_op(entry.text().replace("../models/", f"{MODELS_DIR}/")))
    flat = tmp_path / "flat.sp"
    flat.write_text(_with_op(entry.load().to_spice()))
    v_orig = _run_op(ngspice, original, tmp_path)
    v_flat = _run_op(ngspice, flat, tmp_path)
    assert v_orig, "ngspice printed no operating point"
    assert set(v_orig) == set(v_flat)
    for node, v in v_orig.items():
        assert v_flat[node] == pytest.approx(v, abs=1e-6, rel=1e-6), node
    supplies = [v for n, v in v_orig.items() if n.startswith("vdd")]
    assert supplies and all(0.5 <= v <= 3.6 for v in supplies)
    assert all(np.isfinite(v) and -5 < v < 5 for v in v_orig.values())


def test_load_circuit_by_name_and_unknown_name():
    assert load_circuit(LIB[0].name) == LIB[0].load()
    with pytest.raises(KeyError, match="no library circuit"):
        load_circuit("no_such_circuit")
