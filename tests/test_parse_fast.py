"""The parallel netlist reader and graph builder against their plain serial references.

circml reads large netlists in chunks on OpenMP threads and builds the graph of a large
circuit in chunks of devices; ``reference=True`` in ``circml._core`` selects the plain serial
reader and builder. On generated netlists (with continuations, comments, subcircuits,
expressions, sources and odd spacing mixed into plain R/C/L/M cards, big enough to be split)
both must give the same circuit (to_spice, ids of nets and devices by first occurrence,
every array) and the same graph arrays, the same errors, and the same result with 1, 2 or
3 threads.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import circml
from circml import _core
from circml.circuit import Circuit

HEADER = [
    "* generated netlist for the fast reader ; with a semicolon",
    ".global vdd!",
    ".param wp=2u lmin=0.18u",
    ".model nch nmos level=1",
    ".model PCH pmos (level=1 vto=-0.5)",
    ".subckt inv a y vdd vss",
    "mp y a vdd vdd pch w={wp} l=lmin",
    "mn y a vss vss nch w=1u l=lmin",
    ".ends inv",
    "vdd vdd! 0 dc 1.8",
    "vin in 0 pulse(0 1.8 1n 1n 1n 5n 10n)",
]


def make_netlist(n: int, seed: int = 0, end: bool = True, newline: str = "\n") -> str:
    """n cards, mostly plain R/C/L/M (the fast reader's forms), a tenth of other kinds."""
    rng = random.Random(seed)
    nets = [f"n{i}" for i in range(max(4, n // 4))] + ["gnd", "0", "GND", "vdd!", "VDD"]
    lines = list(HEADER)
    for i in range(n):
        r = rng.random()
        a, b, c, d = (rng.choice(nets) for _ in range(4))
        if r < 0.35:
            lines.append(f"M{i} {a} {b} {c} {d} nch W={rng.randint(1, 99) / 10}u L=0.{rng.randint(1, 9)}U m={rng.randint(1, 4)}")
        elif r < 0.6:
            lines.append(f"m{i} {a} {b} {c} vdd! PCH w = {rng.randint(1, 99) / 10}u l={rng.randint(1, 9) / 10}u")
        elif r < 0.7:
            lines.append(f"R{i} {a} {b} {rng.randint(1, 999)}K")
        elif r < 0.78:
            lines.append(f"c{i} {a} 0 {rng.randint(1, 999)}fF ; trailing comment")
        elif r < 0.8:
            lines.append(f"L{i} {a} {b} 1n")
        elif r < 0.82:
            lines.append(f"x{i} {a} {b} vdd! 0 inv")
        elif r < 0.84:   # a card over three lines with comments between
            lines += [f"m{i} {a} {b}", f"+ {c} {d} nch w=1u", "*comment in between", "+ l=0.2u $ dollar comment"]
        elif r < 0.85:
            lines.append(f"r{i} {a} {b} {{wp*1k}}")
        elif r < 0.86:
            lines.append(f"v{i} {a} {b} dc {rng.randint(0, 5)}")
        elif r < 0.87:
            lines.append(f"c{i} {a} {b} c=1p")
        elif r < 0.88:
            lines.append(f"   r{i}   {a}\t{b}   10k   tc1=0.001")
        elif r < 0.89:
            lines += [f"* a comment {i}", ""]
        elif r < 0.9:
            lines.append(f"m{i} ({a} {b} {c} {d}) nch w=1u l=1u")
        elif r < 0.91:
            lines.append(f"e{i} {a} {b} {c} {d} 2.0")
        elif r < 0.92:
            lines.append(f"r{i} {a} {b} 1k m=2 params: x=1")
        else:
            lines.append(f"C{i} {a} {b} {rng.randint(1, 99)}p m=1")
    lines.append(".op")
    if end:
        lines += [".end", "r_after_end a b 1k"]
    return newline.join(lines) + newline


def flat_netlist(n: int, seed: int = 5) -> str:
    """Only the plain forms (each chunk is one run of them), with the usual case and unit mix."""
    rng = random.Random(seed)
    lines = ["* flat", ".model nch nmos", ".model pch pmos"]
    for i in range(n):
        a, b, c = (f"n{rng.randrange(max(4, n // 4))}" for _ in range(3))
        lines.append(rng.choice([f"M{i} {a} {b} {c} 0 nch w={i % 97 + 1}u l=0.18u m=2",
                                 f"m{i} {a} {b} {c} vdd PCH W=1.5U L=180n", f"R{i} {a} {b} {i % 13 + 1}.5k",
                                 f"c{i} {a} gnd {i % 7 + 1}f", f"l{i} {a} {b} 2n"]))
    return "\n".join(lines + [".end"]) + "\n"


def read_both(path: Path, **options):
    fast = Circuit(_core.read(os.fspath(path), **options))
    ref = Circuit(_core.read(os.fspath(path), reference=True, **options))
    return fast, ref


def assert_same_circuit(a: Circuit, b: Circuit):
    assert a.to_spice() == b.to_spice()
    ia, ib = _core.info(a._handle), _core.info(b._handle)
    assert ia.keys() == ib.keys()
    for k in ia:
        np.testing.assert_array_equal(ia[k], ib[k], err_msg=k)
    na, nb = _core.names(a._handle), _core.names(b._handle)
    for k in na:
        assert na[k] == nb[k], k   # nets and devices in the same order: ids by first occurrence


def assert_same_graphs(a: Circuit, b: Circuit, reference_builder: bool):
    for schema in ("dice", "extended"):
        for values in (False, True):
            ga = _core.graph_batch([a._handle, a._handle], None, schema=schema, value_features=values)
            gb = _core.graph_batch([b._handle, b._handle], None, schema=schema, value_features=values,
                                   reference=reference_builder)
            for k in ga:
                np.testing.assert_array_equal(ga[k], gb[k], err_msg=f"{schema} {values} {k}")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """About 3.5 MB and 70000 devices: read in chunks and built in chunks of devices."""
    path = tmp_path_factory.mktemp("fast") / "big.sp"
    path.write_text(make_netlist(80_000, seed=1))
    assert path.stat().st_size > 2 << 20
    return path


def test_fast_reader_matches_reference(big):
    fast, ref = read_both(big)
    assert fast.n_devices > 65536   # large enough for the graph builder to split it too
    assert_same_circuit(fast, ref)


def test_fast_graph_matches_reference(big):
    fast, ref = read_both(big)
    assert_same_graphs(fast, ref, reference_builder=True)


@pytest.mark.parametrize("variant", ["crlf", "no_end", "no_final_newline", "flat_only"])
def test_fast_reader_variants(tmp_path, variant):
    text = make_netlist(40_000, seed=2, end=variant != "no_end", newline="\r\n" if variant == "crlf" else "\n")
    if variant == "no_final_newline":
        text = text.rstrip("\n")
    if variant == "flat_only":
        text = flat_netlist(40_000)
    path = tmp_path / "v.sp"
    path.write_bytes(text.encode())
    fast, ref = read_both(path)
    assert fast.n_devices > 1000
    assert_same_circuit(fast, ref)


def test_fast_reader_state_lines_mid_file(tmp_path):
    """.include, .lib, .endl, .control and .end in the middle: the chunks stop there and the
    reference reads on."""
    (tmp_path / "models.inc").write_text(".model nx nmos level=1\nrinc incl 0 1k\n")
    (tmp_path / "lib.l").write_text(".lib tt\n.model px pmos level=1\n.endl tt\n")
    body = make_netlist(30_000, seed=3, end=False).splitlines()
    k = len(body) // 2
    lines = body[:k] + [".include models.inc", "mi1 a b c 0 nx w=1u l=1u", ".lib lib.l tt",
                        "mi2 a b c vdd! px", ".endl", "+ w=2u", ".control", "run", ".endc"] + body[k:] + [".end"]
    path = tmp_path / "state.sp"
    path.write_text("\n".join(lines) + "\n")
    fast, ref = read_both(path, allow_control=True)
    assert fast.n_devices > 20_000
    assert_same_circuit(fast, ref)


@pytest.mark.parametrize("error", ["duplicate", "duplicate_of_subckt_device", "unknown_model", "nul", "bad_value",
                                   "plus_first", "unknown_card"])
def test_fast_reader_errors_are_the_reference_errors(tmp_path, error):
    lines = make_netlist(30_000, seed=4, end=False).splitlines()
    at = len(lines) * 3 // 4
    inst = next(l.split()[0] for l in lines[len(HEADER):] if l.startswith("x"))   # its devices: m.<inst>.mn, ...
    bad = {"duplicate": "M5 a b c d nch w=1u", "duplicate_of_subckt_device": f"m.{inst}.mn a b c d nch",
           "unknown_model": "m9999999 a b c d nomodel w=1u", "nul": "r9999999 a b 1k\0",
           "bad_value": "r9999999 a b 1q2", "plus_first": None, "unknown_card": "z1 a b 1"}[error]
    if error == "plus_first":
        lines.insert(1, "+ w=1u")
    else:
        lines.insert(at, bad)
    path = tmp_path / "err.sp"
    path.write_bytes(("\n".join(lines) + "\n.end\n").encode())
    msgs = []
    for reference in (False, True):
        try:
            Circuit(_core.read(os.fspath(path), reference=reference))
            msgs.append(None)
        except circml.NetlistError as e:
            msgs.append((str(e), e.line, e.reason))
    assert msgs[0] == msgs[1]
    assert msgs[0] is not None


@pytest.mark.parametrize("where", ["early", "late", "adjacent"])
def test_fast_reader_duplicate_in_flat_netlist(tmp_path, where):
    """Device names after the last card for instantiate() are inserted in bulk, beside pass C."""
    lines = flat_netlist(40_000).splitlines()
    first = lines[100].split()[0]
    at = {"early": 200, "late": len(lines) - 10, "adjacent": 101}[where]
    lines.insert(at, f"{first.upper()} x y z 0 nch")
    path = tmp_path / "dup.sp"
    path.write_text("\n".join(lines) + "\n")
    msgs = []
    for reference in (False, True):
        with pytest.raises(circml.NetlistError) as e:
            Circuit(_core.read(os.fspath(path), reference=reference))
        msgs.append((str(e.value), e.value.line))
    assert msgs[0] == msgs[1]
    assert "duplicate device name" in msgs[0][0]


DIGEST = """
import hashlib, sys, numpy as np
from circml import _core
from circml.circuit import Circuit
c = Circuit(_core.read(sys.argv[1]))
h = hashlib.sha256(c.to_spice().encode())
n = _core.names(c._handle)
h.update("\\n".join(n["nets"] + n["devices"]).encode())
for k, v in sorted(_core.info(c._handle).items()):
    h.update(np.ascontiguousarray(v).tobytes())
g = _core.graph_batch([c._handle], None, schema="extended", value_features=True)
for k, v in sorted(g.items()):
    h.update(np.ascontiguousarray(v).tobytes())
print(h.hexdigest())
"""


def test_same_result_with_1_2_3_threads(big):
    digests = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        r = subprocess.run([sys.executable, "-c", DIGEST, os.fspath(big)], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        digests.add(r.stdout.strip())
    assert len(digests) == 1


def test_small_netlists_read_the_same(tmp_path):
    """Below the split size the fast reader still reads (one chunk): the library circuits agree."""
    from circml.datasets import CIRCUITS_DIR
    data_dir = Path(CIRCUITS_DIR).parent
    files = sorted(Path(CIRCUITS_DIR).glob("*.sp"))
    assert files
    for f in files:
        try:
            fast, ref = read_both(f, include_dirs=[data_dir])
        except circml.NetlistError:
            continue
        assert_same_circuit(fast, ref)
