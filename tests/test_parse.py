"""The SPICE reader: what a good netlist turns into, value by value, and the round trip
parse -> to_spice -> parse for hand-written netlists and the whole built-in library."""
import math

import pytest

import circml
from circml import Circuit, NetlistError, UnsafeNetlistError, parse_netlist, read_netlist
from circml.datasets import circuit_library

MODELS = ".model nch nmos level=54 vth0=0.4\n.model pch pmos level=54 vth0=-0.4\n"


def dev(c: Circuit, name: str):
    return c.device(name)


def one_value(text: str) -> float:
    """Value of R1 in a one-resistor netlist."""
    return parse_netlist(f"* t\nR1 a b {text}\n.end\n").device("r1").value


# ---------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("text, value", [
    ("1", 1.0), ("1f", 1e-15), ("1p", 1e-12), ("1n", 1e-9), ("1u", 1e-6), ("1m", 1e-3), ("1k", 1e3),
    ("1meg", 1e6), ("1g", 1e9), ("1t", 1e12), ("1mil", 25.4e-6), ("2.5MEG", 2.5e6), ("4.7K", 4.7e3),
    ("10uF", 1e-5), ("1kohm", 1e3), ("100nH", 1e-7), ("3.3V", 3.3), ("2ms", 2e-3), ("1e3", 1e3),
    ("1E-3", 1e-3), ("1.5e+3", 1.5e3), ("2e-3k", 2.0), (".5", 0.5), ("-1.5u", -1.5e-6), ("+3", 3.0),
    ("0.18u", 0.18e-6), ("12345678901234567890", 12345678901234567890.0),
])
def test_si_suffixes_units_and_exponents(text, value):
    assert one_value(text) == value


def test_long_numbers_are_still_numbers():
    assert one_value("0." + "0" * 100 + "15") == 1.5e-101
    assert one_value("1" + "0" * 120 + "k") == 1e123


def test_mega_versus_milli():
    # the classic SPICE trap: M is milli, MEG is mega
    assert one_value("1M") == 1e-3
    assert one_value("1Meg") == 1e6


# ---------------------------------------------------------------------------- parameters

def test_param_braced_and_bare_expressions():
    c = parse_netlist("""* params
.param a=2 b={a*3} c = a * 4 + 1 d=a*5 e='a/4'
.param f = max(a, 7) g={sqrt(16) + 2**3}
R1 x 0 {b}
R2 x 0 c
R3 x 0 {d+e}
C1 x 0 {f*1p}
.end
""")
    assert c.params == {"a": 2.0, "b": 6.0, "c": 9.0, "d": 10.0, "e": 0.5, "f": 7.0, "g": 12.0}
    assert dev(c, "r1").value == 6.0
    assert dev(c, "r2").value == 9.0            # a bare parameter name as the value
    assert dev(c, "r3").value == 10.5
    assert dev(c, "c1").value == pytest.approx(7e-12, rel=1e-15)
    assert dev(c, "r1").value_text is None      # evaluated: no text kept


def test_unknown_names_keep_the_text():
    c = parse_netlist("""* keep text
.param known=3 later={nothere*2} alias=later
R1 a 0 {unknown_r * 2}
M1 d g 0 0 nch w={wmystery} l={known*1u}
.model nch nmos
.end
""")
    assert c.params["known"] == 3.0
    assert c.params["later"] == "{nothere*2}"
    assert c.params["alias"] == "{later}"      # an unevaluable parameter is itself unknown
    r1 = dev(c, "r1")
    assert math.isnan(r1.value) and r1.value_text == "{unknown_r * 2}"
    m1 = dev(c, "m1")
    assert m1.params["w"] == "{wmystery}"
    assert m1.params["l"] == pytest.approx(3e-6)


# ---------------------------------------------------------------------------- hierarchy

HIER = MODELS + """
.subckt inv in out vdd vss wn=1u wp={2*wn}
M1 out in vss vss nch w={wn} l=45n
M2 out in vdd vdd pch w={wp} l=45n
R1 in n1 1k
.ends inv
.subckt buf a y vdd vss
X1 a n1 vdd vss inv wn=2u
X2 n1 y vdd vss inv
.ends
.subckt top i o vdd
Xb i o vdd 0 buf
.ends
X1 in out vdd top
.end
"""


def test_flattening_names_three_levels_deep():
    c = parse_netlist("* hier\n" + HIER)
    names = c.device_names
    assert names == ["m.x1.xb.x1.m1", "m.x1.xb.x1.m2", "r.x1.xb.x1.r1",
                     "m.x1.xb.x2.m1", "m.x1.xb.x2.m2", "r.x1.xb.x2.r1"]
    m1 = dev(c, "m.x1.xb.x1.m1")
    assert m1.kind == "nmos" and m1.model == "nch"
    # port a of buf -> i of top -> in at the top; the internal n1 of buf gets its path
    assert m1.nets == ("x1.xb.n1", "in", "0", "0")
    assert dev(c, "r.x1.xb.x1.r1").nets == ("in", "x1.xb.x1.n1")
    assert dev(c, "m.x1.xb.x2.m2").nets == ("out", "x1.xb.n1", "vdd", "vdd")
    assert set(c.nets) == {"in", "out", "vdd", "0", "x1.xb.n1", "x1.xb.x1.n1", "x1.xb.x2.n1"}
    assert m1.line == 6   # the body card it came from (title, 2 models, a blank, .subckt)


def test_instance_parameter_overrides_and_defaults():
    c = parse_netlist("* hier\n" + HIER)
    # X1 overrides wn=2u; wp defaults to {2*wn} evaluated with the override
    assert dev(c, "m.x1.xb.x1.m1").params == {"w": 2e-6, "l": 45e-9}
    assert dev(c, "m.x1.xb.x1.m2").params["w"] == 4e-6
    # X2 takes the defaults wn=1u, wp=2u
    assert dev(c, "m.x1.xb.x2.m1").params["w"] == 1e-6
    assert dev(c, "m.x1.xb.x2.m2").params["w"] == 2e-6


def test_subckt_params_keyword_local_params_and_global_params():
    c = parse_netlist("""* local params
.param scale=3
.subckt cell a b params: r0=1k
.param rl = r0 * scale rq={rl/4}
R1 a m {rl}
R2 m b {rq}
.ends
X1 p q cell
X2 q 0 cell params: r0=2k
.end
""")
    assert dev(c, "r.x1.r1").value == 3e3
    assert dev(c, "r.x1.r2").value == 750.0
    assert dev(c, "r.x2.r1").value == 6e3
    assert dev(c, "r.x2.r2").value == 1500.0


def test_unused_subckt_port_does_not_leave_a_dangling_net():
    c = parse_netlist("* t\n.subckt s a b unused\nR1 a b 1k\n.ends\nX1 n1 n2 n3 s\n.end\n")
    assert sorted(c.nets) == ["0", "n1", "n2"]
    assert parse_netlist(c.to_spice()) == c


def test_global_nets_are_not_renamed():
    c = parse_netlist("""* globals
.global vdd! VCC
.subckt s a
R1 a vdd! 1k
R2 a vcc 2k
R3 a local 3k
.ends
X1 n s
.end
""")
    assert c.global_nets == ["vdd!", "vcc"]
    assert dev(c, "r.x1.r1").nets == ("n", "vdd!")
    assert dev(c, "r.x1.r2").nets == ("n", "vcc")
    assert dev(c, "r.x1.r3").nets == ("n", "x1.local")


def test_gnd_is_ground():
    c = parse_netlist("* g\nR1 a GND 1k\n.subckt s p\nC1 p gnd 1p\n.ends\nX1 a s\n.end\n")
    assert dev(c, "r1").nets == ("a", "0")
    assert dev(c, "c.x1.c1").nets == ("a", "0")
    assert "gnd" not in c.nets


# ---------------------------------------------------------------------------- lexical

def test_continuations_and_comments():
    c = parse_netlist("""title line is not a card R9 a b 1
* a comment card
R1 a b 2k ; semicolon comment
R2 a b 3k $ ngspice comment
R3 a
+ b
* comments may sit between continuations
+ 4k m=2
R4 a b 5k; no space before the semicolon
C1 a b net$1 1p
.end
R5 after end is ignored
""")
    assert c.title == "title line is not a card R9 a b 1"
    assert c.device_names == ["r1", "r2", "r3", "r4", "c1"]
    assert [dev(c, n).value for n in ("r1", "r2", "r3", "r4")] == [2e3, 3e3, 4e3, 5e3]
    assert dev(c, "r3").params == {"m": 2.0}
    assert dev(c, "r3").line == 5
    # a '$' inside a word is part of the word (here a semiconductor capacitor's model name)
    assert dev(c, "c1").model == "net$1"


def test_case_insensitive():
    c = parse_netlist("* case\n.MODEL NCH NMOS VTH0=0.4\n.PARAM WW=2U\nM1 D G S B Nch W={ww} L=1U\nr1 D S 1K\n.END\n")
    m1 = dev(c, "M1")
    assert m1.name == "m1" and m1.model == "nch" and m1.nets == ("d", "g", "s", "b")
    assert m1.params == {"w": 2e-6, "l": 1e-6}
    assert c.models == {"nch": ("nmos", "vth0=0.4")}


# ---------------------------------------------------------------------------- models and devices

def test_model_types_resolve_device_kinds():
    c = parse_netlist("""* models
.model n1 NMOS (level=54
+ vth0=0.4)
.model p1 pmos
.model qn npn is=1e-16 bf=100
.model qp PNP
.model dd D is=1e-14
M1 d g s b n1 w=1u l=1u nf=2
M2 d g s b p1
Q1 c b e qn
Q2 c b e sub qp 2
Q3 c b e qn area=3
D1 a k dd
D2 a k dd 4
.end
""")
    assert {n: (t, p) for n, (t, p) in c.models.items()} == {
        "n1": ("nmos", "level=54 vth0=0.4"), "p1": ("pmos", ""), "qn": ("npn", "is=1e-16 bf=100"),
        "qp": ("pnp", ""), "dd": ("d", "is=1e-14")}
    assert [d.kind for d in c.devices] == ["nmos", "pmos", "npn", "pnp", "npn", "diode", "diode"]
    assert dev(c, "m1").params == {"w": 1e-6, "l": 1e-6, "nf": 2.0}
    assert dev(c, "q1").nets == ("c", "b", "e") and math.isnan(dev(c, "q1").value)
    assert dev(c, "q2").nets == ("c", "b", "e", "sub") and dev(c, "q2").value == 2.0
    assert dev(c, "q3").params == {"area": 3.0}
    assert dev(c, "d1").nets == ("a", "k") and math.isnan(dev(c, "d1").value)
    assert dev(c, "d2").value == 4.0


def test_model_map_for_models_without_model_lines():
    text = "* pdk\nM1 d g s b nfet_01v8 w=1 l=0.15\nM2 d g vdd vdd pfet_01v8 w=2 l=0.15\nQ1 c b e npn_pdk\nD1 a 0 dio\n.end\n"
    with pytest.raises(NetlistError) as e:
        parse_netlist(text)
    assert "model_map" in e.value.reason
    mm = {"nfet_01v8": "nmos", "pfet_01v8": "pmos", "npn_pdk": "npn", "dio": "d"}
    c = parse_netlist(text, model_map=mm)
    assert [d.kind for d in c.devices] == ["nmos", "pmos", "npn", "diode"]
    assert c.models == {}
    assert parse_netlist(c.to_spice(), model_map=mm) == c


def test_subcircuit_wrapped_transistor_through_model_map():
    mm = {"sky130_fd_pr__nfet_01v8": "nmos", "sky130_fd_pr__pfet_01v8": "pmos", "qwrap": "pnp"}
    c = parse_netlist("""* wrapped
.subckt inv a y vdd
XM1 y a 0 0 sky130_fd_pr__nfet_01v8 w=1 l=0.15
XM2 y a vdd vdd sky130_fd_pr__pfet_01v8 w=2 l=0.15 mult=2
.ends
X1 in out vdd inv
XQ1 c b e qwrap
.end
""", model_map=mm)
    n = dev(c, "x.x1.xm1")
    assert n.kind == "nmos" and n.model == "sky130_fd_pr__nfet_01v8"
    assert n.nets == ("out", "in", "0", "0") and n.params == {"w": 1.0, "l": 0.15}
    p = dev(c, "x.x1.xm2")
    assert p.kind == "pmos" and p.params == {"w": 2.0, "l": 0.15, "mult": 2.0}
    assert dev(c, "xq1").kind == "pnp" and dev(c, "xq1").nets == ("c", "b", "e")
    assert parse_netlist(c.to_spice(), model_map=mm) == c


def test_rlc_forms():
    c = parse_netlist("* rlc\nR1 a b r=2k\nC1 a b cmod 1p\nC2 a b cmod\nL1 a b 10n ic=1m\nR2 a b 1k tc1=0.01\n.end\n")
    assert dev(c, "r1").value == 2e3
    assert dev(c, "c1").model == "cmod" and dev(c, "c1").value == 1e-12
    assert dev(c, "c2").model == "cmod" and math.isnan(dev(c, "c2").value)
    assert dev(c, "l1").kind == "inductor" and dev(c, "l1").value == 1e-8 and dev(c, "l1").params == {"ic": 1e-3}
    assert dev(c, "r2").params == {"tc1": 0.01}


def test_sources_keep_their_spec_and_parse_the_dc_value():
    c = parse_netlist("""* sources
.param vcm=0.6
V1 in 0 DC 1.5 AC 1 SIN(0 1 1k)
V2 clk 0 PULSE(0 1.2 0 10p 10p 1n 2n)
V3 x 0 1.2
V4 y 0 AC 1 0
V5 z 0 DC {vcm} AC 1
I1 vdd 0 10u
I2 a 0 dc {2*vcm}
V6 w 0 PWL(0 0 1n {vcm})
V7 u 0 DC {undefined_v}
.end
""")
    v1 = dev(c, "v1")
    assert v1.kind == "vsource" and v1.value == 1.5 and v1.value_text == "dc 1.5 ac 1 sin(0 1 1k)"
    v2 = dev(c, "v2")
    assert math.isnan(v2.value) and v2.value_text == "pulse(0 1.2 0 10p 10p 1n 2n)"
    assert dev(c, "v3").value == 1.2 and dev(c, "v3").value_text == "1.2"
    assert math.isnan(dev(c, "v4").value) and dev(c, "v4").value_text == "ac 1 0"
    # expressions in a spec are replaced by their values so the flat netlist stands alone
    assert dev(c, "v5").value == 0.6 and dev(c, "v5").value_text == "dc 0.6 ac 1"
    assert dev(c, "i1").kind == "isource" and dev(c, "i1").value == 1e-5
    assert dev(c, "i2").value == 1.2 and dev(c, "i2").value_text == "dc 1.2"
    assert dev(c, "v6").value_text == "pwl(0 0 1n 0.6)"
    assert math.isnan(dev(c, "v7").value) and dev(c, "v7").value_text == "dc {undefined_v}"


def test_controlled_sources():
    c = parse_netlist("""* controlled
.param g0=2m
Vs a 0 DC 0
E1 o1 0 a b 10
G1 o2 0 a b {g0}
F1 o3 0 vs 2
H1 o4 0 Vs 1k
.subckt s p
Vsense p q 0
F2 q 0 vsense 3
.ends
X1 n s
.end
""")
    e1, g1, f1, h1 = (dev(c, n) for n in ("e1", "g1", "f1", "h1"))
    assert (e1.kind, e1.nets, e1.value) == ("vcvs", ("o1", "0", "a", "b"), 10.0)
    assert (g1.kind, g1.value) == ("vccs", 2e-3)
    assert (f1.kind, f1.nets, f1.control, f1.value) == ("cccs", ("o3", "0"), "vs", 2.0)
    assert (h1.kind, h1.control, h1.value) == ("ccvs", "vs", 1e3)
    # the sensing source of a flattened F is the flattened V
    assert dev(c, "f.x1.f2").control == "v.x1.vsense"
    assert "v.x1.vsense" in c.device_names


# ---------------------------------------------------------------------------- includes and libraries

def test_include_relative_to_the_including_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.lib").write_text("* models\n.model n1 nmos vth0=0.4\n.include p.lib\n")
    (tmp_path / "models" / "p.lib").write_text(".model p1 pmos\n")   # relative to m.lib, not to top.sp
    top = tmp_path / "top.sp"
    top.write_text("* top\n.include models/m.lib\nM1 d g 0 0 n1\nM2 d g vdd vdd p1\n.end\n")
    c = read_netlist(top)
    assert [d.kind for d in c.devices] == ["nmos", "pmos"]
    assert set(c.models) == {"n1", "p1"}
    # the same text parsed from a string anchored at the same file name
    assert parse_netlist(top.read_text(), filename=top) == c
    assert dev(c, "m1").file == str(top.resolve())


def test_include_outside_allowed_folders(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "far.lib").write_text(".model far nmos\n")
    top = tmp_path / "proj" / "top.sp"
    top.write_text("* top\n.include ../shared/far.lib\nM1 d g 0 0 far\n.end\n")
    with pytest.raises(UnsafeNetlistError) as e:
        read_netlist(top)
    assert e.value.line == 2 and "outside the allowed folders" in e.value.reason
    absolute = f"* top\n.include {tmp_path / 'shared' / 'far.lib'}\nM1 d g 0 0 far\n.end\n"
    with pytest.raises(UnsafeNetlistError):
        parse_netlist(absolute, filename=top)
    assert read_netlist(top, include_dirs=[tmp_path / "shared"]).device("m1").model == "far"
    assert read_netlist(top, allow_any_include=True).device("m1").kind == "nmos"
    assert parse_netlist(absolute, filename=top, allow_any_include=True).n_devices == 1


def test_lib_file_section(tmp_path):
    (tmp_path / "corners.lib").write_text(
        "* corners\n.lib tt\n.model nc nmos vth0=0.40\n.endl tt\n.lib ff\n.model nc nmos vth0=0.35\n.endl ff\n")
    top = tmp_path / "top.sp"
    top.write_text("* lib\n.lib corners.lib FF\nM1 d g 0 0 nc\n.end\n")
    c = read_netlist(top)
    assert c.models == {"nc": ("nmos", "vth0=0.35")}
    top.write_text("* lib\n.lib 'corners.lib' tt\nM1 d g 0 0 nc\n.end\n")
    assert read_netlist(top).models == {"nc": ("nmos", "vth0=0.40")}


# ---------------------------------------------------------------------------- control and directives

CONTROL = "* ctl\nR1 a 0 1k\nV1 a 0 1\n.control\nop\nprint v(a)\n.endc\n.end\n"


def test_control_refused_by_default():
    with pytest.raises(UnsafeNetlistError) as e:
        parse_netlist(CONTROL)
    assert e.value.line == 4 and "allow_control=True" in e.value.reason
    assert isinstance(e.value, NetlistError)   # a subclass: one except clause catches both


def test_control_kept_when_allowed():
    c = parse_netlist(CONTROL, allow_control=True)
    assert c.n_devices == 2
    out = c.to_spice()
    assert ".control\nop\nprint v(a)\n.endc\n" in out
    assert out.rstrip().endswith(".end")
    again = parse_netlist(out, allow_control=True)
    assert again == c and again.to_spice() == out


def test_kept_directives_are_written_back():
    c = parse_netlist("* dirs\nR1 a 0 1k\n.option reltol=1e-4\n.temp 27\n.tran 1n 100n\n.ac dec 10 1 1g\n.end\n")
    assert c.directives == [".option reltol=1e-4", ".temp 27", ".tran 1n 100n", ".ac dec 10 1 1g"]
    out = c.to_spice()
    for d in c.directives:
        assert d + "\n" in out
    assert parse_netlist(out).directives == c.directives


def test_param_overrides():
    text = "* bench\n.param w_in=1u rl=1k\nR1 a 0 {rl}\nM1 a g 0 0 nch w={w_in} l=1u\n.model nch nmos\n.end\n"
    c = parse_netlist(text, params={"W_IN": 3e-6, "rl": 2e3})
    assert dev(c, "m1").params["w"] == 3e-6 and dev(c, "r1").value == 2e3
    with pytest.raises(NetlistError) as e:
        parse_netlist(text, params={"nope": 1.0})
    assert "nope" in e.value.reason


def test_missing_top_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_netlist(tmp_path / "absent.sp")


# ---------------------------------------------------------------------------- round trip

ROUND_TRIP = {
    "divider": "* divider\nR1 in mid 1k\nR2 mid 0 2.2k\nV1 in 0 DC 1.8\n.end\n",
    "hierarchy": "* hier\n" + HIER,
    "params": """* params
.param a=2 b={a*3} c = a * 4 + 1 unk={zz*2}
R1 x 0 {b}
R2 x 0 {unk}
C1 x 0 {c*1f} m=2
.end
""",
    "devices": """* all kinds
.model qn npn is=1e-16
.model qp pnp
.model dd d is=1e-14 n=1.05
.model nch nmos level=54 vth0=0.4 k1=0.5 k2=0.01 u0=0.04 vsat=1e5 tox=1.2n xj=2e-8
+ nch=6e17 rdsw=150
R1 a b 1k
C1 a 0 10f
L1 a b 1n
D1 a 0 dd {undefined_area}
Q1 c b e qn
Q2 c b e s qp 1.5
M1 d g 0 0 nch w=1u l=100n
V1 in 0 DC 1 AC 1 PULSE(0 1 0 1n 1n 5n 10n)
I1 vdd 0 2u
E1 o 0 a b 10
G1 o 0 a b 1m
F1 o 0 v1 2
H1 o 0 v1 1k
.end
""",
    "directives": "* d\n.global vdd\nR1 vdd 0 1k\n.option reltol=1e-4\n.tran 1n 100n\n.end\n",
    "model_expr": "* m\n.model n1 nmos vth0={vt + 0.1} k1 = 0.5\nM1 d g s b n1\n.end\n",
    # long cards are wrapped, but never inside an expression
    "model_wrapped": "* m\n.model n1 nmos k1=1 k2=2 k3=3 k4=4 k5=5 vth0={vt  + 0.1} u0='a + b' k6=6 k7=7 k8=8\n"
                     "M1 d g s b n1\n.end\n",
    "subckt_sources": """* sources in a subcircuit
.subckt bias out params: v0=0.5
Vb out 0 DC {v0} AC 1
Ib out 0 {v0*1m}
.ends
X1 n1 bias
X2 n2 bias v0=0.7
.end
""",
    "tokens_glued": "* g\n.param a=2\nV1 x 0 PWL(0 {a}1 {a} 2)\n.end\n",
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_round_trip_hand_written(name):
    c = parse_netlist(ROUND_TRIP[name])
    assert c.n_devices >= 1
    out = c.to_spice()
    again = parse_netlist(out)
    assert again == c, out
    assert again.to_spice() == out      # writing is idempotent
    assert again.device_names == c.device_names
    for d1, d2 in zip(c.devices, again.devices):
        assert d1.nets == d2.nets and d1.params == d2.params


LIB = circuit_library()


@pytest.mark.parametrize("entry", LIB, ids=[e.name for e in LIB])
def test_round_trip_library(entry):
    c = entry.load()
    again = parse_netlist(c.to_spice())
    assert again == c
    assert again.kind_counts() == c.kind_counts()


def test_names_that_are_not_utf8_are_readable():
    """A Latin-1 byte in a title or net name must not make the circuit unreadable."""
    c = circml.parse_netlist(b"* caf\xe9 title\nR1 n\xb5 0 1k\n.end")
    assert c.title.startswith("* caf") and "\ufffd" in c.title
    assert c.nets[0].startswith("n") and c.devices[0].nets[1] == "0"
    assert circml.parse_netlist(c.to_spice()).n_devices == 1
