* opamp_gain_boosted_telescopic: telescopic-cascode op-amp whose four cascodes are gain-boosted by common-source auxiliary amplifiers (regulated cascodes)
.include ../models/ptm45.lib
* ---- main-amplifier sizing / bias (W, L per matched group) ----
.param w_in=32u l_in=180n w_nc=16u l_nc=180n w_pc=32u l_pc=180n w_ld=8u l_ld=360n
.param w_tail=16u l_tail=360n ibias=20u cl=1p vcm=0.5 vshift=0
* ---- gain-boost auxiliary amplifiers: NMOS booster + PMOS load, PMOS booster + NMOS load ----
.param w_bn=20u l_bn=500n w_bp=40u l_bp=500n w_lp=2u w_ln=1u l_bl=1u iboost=1u
Vdd vdd 0 DC 1.0
* ---- bias: tail reference and booster-load references ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
Ibp vbpb 0 DC {iboost}
Mbp vbpb vbpb vdd vdd pmos45 w={w_lp} l={l_bl}
Ibn vdd vbnb DC {iboost}
Mbn vbnb vbnb 0 0 nmos45 w={w_ln} l={l_bl}
* ---- input pair and tail ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 n1 inp tail 0 nmos45 w={w_in} l={l_in}
M2 n2 inn tail 0 nmos45 w={w_in} l={l_in}
* ---- NMOS cascodes with their boosters (gates gn1, gn2) ----
M3 x gn1 n1 0 nmos45 w={w_nc} l={l_nc}
M4 out gn2 n2 0 nmos45 w={w_nc} l={l_nc}
Ma1 gn1 n1 0 0 nmos45 w={w_bn} l={l_bn}
Ma2 gn2 n2 0 0 nmos45 w={w_bn} l={l_bn}
Mal1 gn1 vbpb vdd vdd pmos45 w={w_lp} l={l_bl}
Mal2 gn2 vbpb vdd vdd pmos45 w={w_lp} l={l_bl}
* ---- PMOS cascodes with their boosters (gates gp1, gp2) ----
M5 x gp1 p1 vdd pmos45 w={w_pc} l={l_pc}
M6 out gp2 p2 vdd pmos45 w={w_pc} l={l_pc}
Mc1 gp1 p1 vdd vdd pmos45 w={w_bp} l={l_bp}
Mc2 gp2 p2 vdd vdd pmos45 w={w_bp} l={l_bp}
Mcl1 gp1 vbnb 0 0 nmos45 w={w_ln} l={l_bl}
Mcl2 gp2 vbnb 0 0 nmos45 w={w_ln} l={l_bl}
* ---- PMOS mirror load: gates tied to the left cascode drain x ----
M7 p1 x vdd vdd pmos45 w={w_ld} l={l_ld}
M8 p2 x vdd vdd pmos45 w={w_ld} l={l_ld}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm (mid-rail), AC 1 on inp; DC-only servo (rfb, cfb;
* corner ~1e-10 Hz) with optional level shift (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
