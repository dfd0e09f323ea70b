* opamp_folded_cascode_class_a: two-stage op-amp with an NMOS-input folded-cascode first stage and a Miller-compensated class-A PMOS common-source output stage
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=32u l_in=180n w_tail=16u l_tail=360n w_ps=16u l_ps=360n w_pc=16u l_pc=180n
.param w_nc=8u l_nc=180n w_nm=8u l_nm=360n w_cs=64u l_cs=360n w_sk=32u l_sk=360n
.param ibias=20u vb_pc=0.3 vb_nc=0.55 cc=1p rz=2k cl=1p vcm=0.5 vshift=0
Vdd vdd 0 DC 1.0
* ---- bias network ----
Iref vdd vbn DC {ibias}
Mb1 vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
Mb2 vbp vbn 0 0 nmos45 w={w_tail} l={l_tail}
Mb3 vbp vbp vdd vdd pmos45 w={w_ps} l={l_ps}
Vbpc vbpc 0 DC {vb_pc}
Vbnc vbnc 0 DC {vb_nc}
* ---- folded-cascode first stage (inverting from inp to o1) ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 f1 inn tail 0 nmos45 w={w_in} l={l_in}
M2 f2 inp tail 0 nmos45 w={w_in} l={l_in}
M3 f1 vbp vdd vdd pmos45 w={w_ps} l={l_ps}
M4 f2 vbp vdd vdd pmos45 w={w_ps} l={l_ps}
M5 x vbpc f1 vdd pmos45 w={w_pc} l={l_pc}
M6 o1 vbpc f2 vdd pmos45 w={w_pc} l={l_pc}
M7 x vbnc s1 0 nmos45 w={w_nc} l={l_nc}
M8 o1 vbnc s2 0 nmos45 w={w_nc} l={l_nc}
M9 s1 x 0 0 nmos45 w={w_nm} l={l_nm}
M10 s2 x 0 0 nmos45 w={w_nm} l={l_nm}
* ---- class-A output stage: PMOS common source, NMOS current sink ----
M11 out o1 vdd vdd pmos45 w={w_cs} l={l_cs}
M12 out vbn 0 0 nmos45 w={w_sk} l={l_sk}
* ---- Miller compensation with nulling resistor, and load ----
Rz o1 cz {rz}
Cc cz out {cc}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm (mid-rail), AC 1 on inp; DC-only servo (rfb, cfb;
* corner ~1e-10 Hz) with optional level shift (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
