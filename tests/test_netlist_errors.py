"""Malformed netlists: each kind fails with NetlistError (or UnsafeNetlistError) that names the
file, the exact line and the reason; and no input at all, random or mutated, gets anything
else out of the reader (another exception, a crash)."""
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circml import Circuit, NetlistError, UnsafeNetlistError, parse_netlist, read_netlist

M = ".model n nmos\n.model p pmos\n.model dd d\n.model qn npn\n"   # lines 2-5 after a title

# (id, netlist, options, exception, line, phrase in err.reason)
CASES = [
    ("mosfet_3_nets", "t\n" + M + "M1 d g s n\n", {}, NetlistError, 6, "needs 4 nets"),
    ("mosfet_too_many_nets", "t\n" + M + "M1 d g s b x n w=1u\n", {}, NetlistError, 6, "needs 4 nets"),
    ("unknown_model", "t\nR1 a 0 1\nM1 d g s b foo\n", {}, NetlistError, 3, "model 'foo' has no .model line"),
    ("model_of_wrong_type", "t\n" + M + "M1 d g s b dd\n", {}, NetlistError, 6, "expected nmos or pmos"),
    ("diode_with_mos_model", "t\n" + M + "D1 a k n\n", {}, NetlistError, 6, "expected d"),
    ("bjt_unknown_model", "t\nQ1 c b e qx\n", {}, NetlistError, 2, "model 'qx' has no .model line"),
    ("bjt_with_diode_model", "t\n" + M + "Q1 c b e dd\n", {}, NetlistError, 6, "expected npn or pnp"),
    ("r_without_value", "t\nR1 a b\n", {}, NetlistError, 2, "has no value"),
    ("c_with_one_net", "t\nC1 a\n", {}, NetlistError, 2, "needs two nets and a value"),
    ("bad_number", "t\nR1 a b 1.2.3k\n", {}, NetlistError, 2, "got '1.2.3k'"),
    ("number_out_of_range", "t\nR1 a b 1e999\n", {}, NetlistError, 2, "out of range"),
    ("bad_expression_syntax", "t\n\n\nR1 a b {1+*2}\n", {}, NetlistError, 4, "bad expression '{1+*2}'"),
    ("expression_to_infinity", "t\nR1 a b {1/0}\n", {}, NetlistError, 2, "evaluates to infinity"),
    ("unterminated_brace", "t\nR1 a b {1+2\n", {}, NetlistError, 2, "unterminated '{'"),
    ("unbalanced_close_brace", "t\nR1 a b 1}\n", {}, NetlistError, 2, "unbalanced '}'"),
    ("unterminated_quote", "t\nR1 a b 'rv*2\n", {}, NetlistError, 2, "unterminated quoted expression"),
    ("continuation_first", "t\n+ R1 a b 1\n", {}, NetlistError, 2, "continuation line"),
    ("continuation_after_comment_only", "t\n* c\n+ 1k\n", {}, NetlistError, 3, "no card before it"),
    ("unknown_subckt", "t\nX1 a b foo\n", {}, NetlistError, 2, "unknown subcircuit 'foo'"),
    ("port_count_mismatch", "t\n.subckt s a b\nR1 a b 1\n.ends\nX1 a s\n", {}, NetlistError, 5,
     "connects 1 net but subcircuit 's' has 2 ports"),
    ("duplicate_device", "t\nR1 a b 1\nC1 a b 1p\nr1 c d 2\n", {}, NetlistError, 4, "duplicate device name 'r1'"),
    ("duplicate_flat_device", "t\n.subckt s a\nR1 a 0 1\n.ends\nX1 a s\nR.X1.R1 a 0 1\n", {}, NetlistError, 6,
     "duplicate device name 'r.x1.r1'"),
    ("duplicate_model", "t\n.model n nmos\n.model N pmos\n", {}, NetlistError, 3, "model 'n' defined twice"),
    ("duplicate_subckt", "t\n.subckt s a\n.ends\n.subckt S b\n.ends\n", {}, NetlistError, 4,
     "subcircuit 's' defined twice"),
    ("subckt_without_ends", "t\nR0 a 0 1\n.subckt s a\nR1 a 0 1\n", {}, NetlistError, 3, "has no matching .ends"),
    ("ends_without_subckt", "t\nR1 a 0 1\n.ends\n", {}, NetlistError, 3, ".ends without a .subckt"),
    ("nested_subckt", "t\n.subckt s a\n.subckt q b\n.ends\n.ends\n", {}, NetlistError, 3, "nested .subckt"),
    ("recursive_subckt", "t\n.subckt s a\nX1 a s\n.ends\nX1 n s\n", {}, NetlistError, 3, "instantiates itself"),
    ("mutually_recursive_subckts", "t\n.subckt s a\nX1 a q\n.ends\n.subckt q a\nX1 a s\n.ends\nX1 n s\n", {},
     NetlistError, 6, "instantiates itself"),
    ("subckt_header_bad_param", "t\n.subckt s a w=\n.ends\n", {}, NetlistError, 2, "expected name=value"),
    ("x_without_subckt_name", "t\nX1\n", {}, NetlistError, 2, "needs its nets and a subcircuit name"),
    ("unknown_dot_command", "t\nR1 a 0 1\n.frobnicate 1 2\n", {}, NetlistError, 3, "unknown dot-command '.frobnicate'"),
    ("if_block", "t\n.if (1)\nR1 a 0 1\n.endif\n", {}, NetlistError, 2, ".if is not supported"),
    ("analysis_inside_subckt", "t\n.subckt s a\n.tran 1n 1u\n.ends\n", {}, NetlistError, 3, "inside a .subckt"),
    ("b_element", "t\nB1 a 0 V=v(b)*2\n", {}, NetlistError, 2, "behavioural sources (B)"),
    ("k_element", "t\nL1 a 0 1n\nL2 b 0 1n\nK1 L1 L2 0.9\n", {}, NetlistError, 4, "coupled inductors (K)"),
    ("j_element", "t\nJ1 d g s jmod\n", {}, NetlistError, 2, "JFETs (J)"),
    ("e_with_poly", "t\nE1 a 0 POLY(1) b 0 0 1\n", {}, NetlistError, 2, "the poly form is not supported"),
    ("g_with_value", "t\nG1 a 0 VALUE={v(b)*2}\n", {}, NetlistError, 2, "the value form is not supported"),
    ("e_wrong_arity", "t\nE1 a 0 b 2\n", {}, NetlistError, 2, "needs 4 nets (n+ n- nc+ nc-) and a gain"),
    ("f_sensing_not_a_v_source", "t\nF1 a 0 r1 2\n", {}, NetlistError, 2, "is not a voltage source name"),
    ("v_source_junk", "t\nV1 a 0 junk\n", {}, NetlistError, 2, "unexpected 'junk'"),
    ("v_source_dc_junk", "t\nV1 a 0 DC junk\n", {}, NetlistError, 2, "expected a number after 'dc'"),
    ("control_without_endc", "t\nR1 a 0 1\n.control\nrun\n", {"allow_control": True}, NetlistError, 3,
     "no matching .endc"),
    ("control_refused", "t\nR1 a 0 1\n\n.control\nrun\n.endc\n", {}, UnsafeNetlistError, 4, "refused by default"),
    ("missing_include_file", "t\nR1 a 0 1\n.include no_such_file_4711.lib\n", {}, NetlistError, 3,
     "cannot open include file 'no_such_file_4711.lib'"),
    ("include_without_name", "t\n.include\n", {}, NetlistError, 2, "needs a file name"),
    ("nul_byte", "t\nR1 a b 1\nR2 a\x00b 2\n", {}, NetlistError, 3, "NUL byte"),
    ("token_after_mosfet_params", "t\n" + M + "M1 d g s b n w=1u l=1u junk\n", {}, NetlistError, 6,
     "unexpected 'junk' in MOSFET 'm1'"),
    ("mosfet_param_without_value", "t\n" + M + "M1 d g s b n w= \n", {}, NetlistError, 6, "has no value"),
    ("param_without_equals", "t\n.param a 1\n", {}, NetlistError, 2, "expected name=value in .param, got 'a'"),
    ("param_empty", "t\n.param\n", {}, NetlistError, 2, ".param needs name=value"),
    ("param_missing_value", "t\n.param a= 1 =2\n", {}, NetlistError, 2, "parameter 'a' in .param has no value"),
    ("param_bad_name", "t\n.param 1a=2\n", {}, NetlistError, 2, "bad parameter name '1a'"),
    ("model_without_type", "t\n.model foo\n", {}, NetlistError, 2, ".model needs a name and a type"),
    ("equals_as_net", "t\nC= a b 1p\n", {}, NetlistError, 2, "'=' is not a net name"),
    ("wrapped_transistor_wrong_nets", "t\nXM1 d g s pdk_n w=1\n", {"model_map": {"pdk_n": "nmos"}}, NetlistError, 2,
     "needs 4 (drain gate source bulk)"),
    ("error_in_subckt_body", "t\n.subckt s a\nR1 a 0 1\nR2 a 0 1.2.3\n.ends\nX1 n s\n", {}, NetlistError, 4,
     "resistor 'r2'"),
    ("error_in_subckt_body_param", "t\n.subckt s a\n.param k={1+}\nR1 a 0 {k}\n.ends\nX1 n s\n", {}, NetlistError, 3,
     "bad expression"),
    ("unknown_model_in_subckt_body", "t\nR0 a 0 1\n.subckt s a\nM1 a a 0 0 zz\n.ends\nX1 n s\n", {}, NetlistError, 4,
     "model 'zz' has no .model line"),
]


@pytest.mark.parametrize("text, options, exc, line, phrase",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_netlist(text, options, exc, line, phrase):
    with pytest.raises(exc) as info:
        parse_netlist(text, **options)
    err = info.value
    assert type(err) is exc                 # NetlistError proper is not the Unsafe subclass
    assert err.line == line, err.reason
    assert err.file == "<string>"
    assert phrase in err.reason
    assert str(err).startswith(f"<string>:{line}: ")


def test_enough_distinct_kinds():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20
    assert len({c[5] for c in CASES}) >= 20      # distinct reasons, not one error twenty times


def test_error_names_the_file_it_was_given(tmp_path):
    p = tmp_path / "bench.sp"
    p.write_text("* bench\nR1 a 0 1\nR2 a 0 1.2.3\n")
    with pytest.raises(NetlistError) as e:
        read_netlist(p)
    assert e.value.file == str(p.resolve()) and e.value.line == 3 and "1.2.3" in e.value.reason
    with pytest.raises(NetlistError) as e:
        parse_netlist(p.read_text(), filename=p)
    assert e.value.file == str(p.resolve()) and e.value.line == 3


def test_error_inside_an_included_file_reports_that_file(tmp_path):
    (tmp_path / "lib").mkdir()
    inc = tmp_path / "lib" / "cells.lib"
    inc.write_text("* cells\n.model n nmos\n\n.subckt inv a y\nM1 y a 0 0 n\nM2 y a 0 0\n.ends\n")
    top = tmp_path / "top.sp"
    top.write_text("* top\n.include lib/cells.lib\nX1 in out inv\n.end\n")
    with pytest.raises(NetlistError) as e:
        read_netlist(top)
    # the subcircuit body card, in the included file, not the X card of top.sp
    assert e.value.file == str(inc.resolve())
    assert e.value.line == 6
    assert "MOSFET 'm2' needs 4 nets" in e.value.reason
    # an error while reading the included file's cards (stage one) is located the same way
    inc.write_text("* cells\n.model n nmos\n.if 1\n")
    with pytest.raises(NetlistError) as e:
        read_netlist(top)
    assert (e.value.file, e.value.line) == (str(inc.resolve()), 3)
    inc.write_text("+ continues nothing\n")
    with pytest.raises(NetlistError) as e:
        read_netlist(top)
    assert (e.value.file, e.value.line) == (str(inc.resolve()), 1) and "continuation" in e.value.reason


def test_missing_library_section_points_at_the_lib_line(tmp_path):
    (tmp_path / "c.lib").write_text(".lib tt\n.model n nmos\n.endl\n")
    top = tmp_path / "top.sp"
    top.write_text("* top\n\n.lib c.lib ss\n")
    with pytest.raises(NetlistError) as e:
        read_netlist(top)
    assert (e.value.file, e.value.line) == (str(top.resolve()), 3)
    assert "section 'ss' not found" in e.value.reason and "c.lib" in e.value.reason


def test_include_refusals_are_unsafe(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.lib").write_text(".model x nmos\n")
    top = tmp_path / "a" / "top.sp"
    top.write_text("* t\nR1 a 0 1\n.include ../b/x.lib\n")
    with pytest.raises(UnsafeNetlistError) as e:
        read_netlist(top)
    assert (e.value.file, e.value.line) == (str(top.resolve()), 3)
    assert "include_dirs" in e.value.reason
    # a symlink inside the allowed folder that points out of it is refused too
    (tmp_path / "a" / "link.lib").symlink_to(tmp_path / "b" / "x.lib")
    top.write_text("* t\n.include link.lib\n")
    with pytest.raises(UnsafeNetlistError):
        read_netlist(top)


def test_subcircuits_nested_too_deep():
    def chain(n):
        body = "".join(f".subckt s{i} a\nX1 a s{i + 1}\n.ends\n" for i in range(n))
        return "* chain\n" + body + f".subckt s{n} a\nR1 a 0 1\n.ends\nX1 n s0\n"
    assert parse_netlist(chain(60)).device_names == ["r" + ".x1" * 61 + ".r1"]
    with pytest.raises(NetlistError) as e:
        parse_netlist(chain(70))
    # the X card of s63 (line 3 + 3*63) would open the 65th level
    assert e.value.line == 192 and "nested deeper than 64" in e.value.reason


def test_include_cycle_is_an_error_not_a_hang(tmp_path):
    (tmp_path / "loop.lib").write_text("* loop\n.include loop.lib\n")
    top = tmp_path / "top.sp"
    top.write_text("* t\n.include loop.lib\n")
    with pytest.raises(NetlistError) as e:
        read_netlist(top)
    assert "nested deeper" in e.value.reason


# ---------------------------------------------------------------------------- never anything else

SEEDS = [
    """* seed 1
.param wn=1u wp={2*wn}
.model nch nmos level=54
.model pch pmos
.subckt inv in out vdd wn=1u
M1 out in 0 0 nch w={wn} l=45n
M2 out in vdd vdd pch w={wp} l=45n
.ends
X1 a b vdd inv wn=2u
X2 b c vdd inv
Vdd vdd 0 DC 1
Vin a 0 PULSE(0 1 0 1n 1n 5n 10n)
C1 c 0 10f
.end
""",
    """* seed 2
.model qn npn
.model dd d
.global vcc
R1 a b 1k ; comment
R2 a b
+ 2k $ comment
Q1 c b e qn 2
D1 a 0 dd
E1 o 0 a b 10
F1 o 0 v1 2
V1 in 0 DC 1 AC 1
I1 a 0 {1m*2}
.option reltol=1e-3
.end
""",
]

VOCAB = ["r1", "x9", "m7", "0", "gnd", "=", "{", "}", "{a*2}", "'a'", "(", ")", ",", "+", "*", ";", "$",
         ".subckt", ".ends", ".param", ".model", ".global", ".end", ".include", ".lib", ".control", ".endc",
         "nch", "pch", "qn", "dd", "1k", "1.2.3", "1e999", "params:", "dc", "ac", "pulse(", "w=1u", "\t", "\n"]


def _check_parse(data, **options):
    """Either a Circuit or a NetlistError; a Circuit writes and reads back as an equal one."""
    try:
        c = parse_netlist(data, **options)
    except NetlistError as e:          # UnsafeNetlistError is a subclass
        assert isinstance(e.line, int) and e.line >= 0
        assert isinstance(e.reason, str) and e.reason
        return None
    assert isinstance(c, Circuit)
    out = c.to_spice()
    assert isinstance(out, str)
    return c


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_never_escape(data):
    _check_parse(data)


SPICEY = st.text(alphabet=st.sampled_from(list("rcmlxqdvieghRCMX0123456789 .=+-*/{}()',;$\n\tkumnpfgabs_!")),
                 max_size=400)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(SPICEY)
def test_random_spice_like_text_never_escapes(text):
    c = _check_parse("* title\n" + text)
    if c is not None:
        assert parse_netlist(c.to_spice()) == c
        assert all(d.kind for d in c.devices)


def _mutate(text: str, rnd: random.Random, n_ops: int) -> str:
    lines = text.split("\n")
    for _ in range(n_ops):
        op = rnd.randrange(8)
        i = rnd.randrange(len(lines)) if lines else 0
        if op == 0 and lines:                               # delete a line
            del lines[i]
        elif op == 1 and lines:                             # duplicate a line
            lines.insert(i, lines[i])
        elif op == 2 and len(lines) > 1:                    # swap two lines
            j = rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif lines:
            toks = re.split(r"(\s+)", lines[i])
            words = [k for k, t in enumerate(toks) if t and not t.isspace()]
            if not words:
                continue
            k = rnd.choice(words)
            if op == 3:                                     # delete a token
                toks[k] = ""
            elif op == 4:                                   # duplicate a token
                toks[k] = toks[k] + " " + toks[k]
            elif op == 5:                                   # swap two tokens of the line
                k2 = rnd.choice(words)
                toks[k], toks[k2] = toks[k2], toks[k]
            elif op == 6:                                   # a token from elsewhere
                toks[k] = rnd.choice(VOCAB)
            else:                                           # cut a token short
                toks[k] = toks[k][: rnd.randrange(len(toks[k]) + 1)]
            lines[i] = "".join(toks)
    return "\n".join(lines)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(range(len(SEEDS))), rnd=st.randoms(use_true_random=False),
       n_ops=st.integers(min_value=1, max_value=6))
def test_mutated_netlists_never_escape(seed, rnd, n_ops):
    text = _mutate(SEEDS[seed], rnd, n_ops)
    c = _check_parse(text, allow_control=rnd.random() < 0.5)
    if c is not None:
        again = parse_netlist(c.to_spice(), allow_control=True)
        assert again == c, c.to_spice()


def test_seeds_are_valid():
    for s in SEEDS:
        c = parse_netlist(s)
        assert c.n_devices >= 6
