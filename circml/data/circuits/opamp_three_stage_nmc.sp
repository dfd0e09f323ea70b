* opamp_three_stage_nmc: three-stage nested-Miller-compensated op-amp (5T input stage, non-inverting mirror second stage, PMOS common-source output stage)
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=32u l_in=180n w_ld1=8u l_ld1=360n w_tail=16u l_tail=360n w_bd=16u
.param w_g2=4u l_g2=360n w_ld2=8u l_ld2=360n w_sk2=8u
.param w_cs3=64u l_cs3=360n w_sk3=64u l_sk=360n
.param ibias=20u cm1=3p cm2=1p cl=2p vcm=0.5 vshift=0
Vdd vdd 0 DC 1.0
* ---- bias ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_bd} l={l_tail}
* ---- stage 1: NMOS pair with PMOS mirror load (inverting from inp to o1) ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 x inn tail 0 nmos45 w={w_in} l={l_in}
M2 o1 inp tail 0 nmos45 w={w_in} l={l_in}
M3 x x vdd vdd pmos45 w={w_ld1} l={l_ld1}
M4 o1 x vdd vdd pmos45 w={w_ld1} l={l_ld1}
* ---- stage 2: non-inverting gain stage (NMOS common source -> PMOS mirror -> o2) ----
M5 d2 o1 0 0 nmos45 w={w_g2} l={l_g2}
M6 d2 d2 vdd vdd pmos45 w={w_ld2} l={l_ld2}
M7 o2 d2 vdd vdd pmos45 w={w_ld2} l={l_ld2}
M8 o2 vbn 0 0 nmos45 w={w_sk2} l={l_sk}
* ---- stage 3: PMOS common-source output stage with NMOS current sink ----
M9 out o2 vdd vdd pmos45 w={w_cs3} l={l_cs3}
M10 out vbn 0 0 nmos45 w={w_sk3} l={l_sk}
* ---- nested Miller compensation: outer cm1 (out->o1), inner cm2 (out->o2) ----
Cm1 o1 out {cm1}
Cm2 o2 out {cm2}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm (mid-rail), AC 1 on inp; DC-only servo (rfb, cfb;
* corner ~1e-10 Hz) with optional level shift (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
