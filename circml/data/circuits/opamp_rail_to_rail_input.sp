* opamp_rail_to_rail_input: rail-to-rail-input op-amp with complementary NMOS/PMOS input pairs summed in a folded-cascode output stage
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_inn=32u l_inn=180n w_inp=96u l_inp=180n w_tn=16u w_tp=48u l_t=360n
.param w_ps=48u l_ps=360n w_pc=16u l_pc=180n w_nc=16u l_nc=180n w_nm=16u l_nm=360n
.param ibias=20u vb_pc=0.3 vb_nc=0.55 cl=1p vcm=0.5 vshift=0
Vdd vdd 0 DC 1.0
* ---- bias network: NMOS reference diode, mirrored into a PMOS diode ----
Iref vdd vbn DC {ibias}
Mb1 vbn vbn 0 0 nmos45 w={w_tn} l={l_t}
Mb2 vbp vbn 0 0 nmos45 w={w_tn} l={l_t}
Mb3 vbp vbp vdd vdd pmos45 w={w_tp} l={l_t}
Vbpc vbpc 0 DC {vb_pc}
Vbnc vbnc 0 DC {vb_nc}
* ---- NMOS input pair (active for high common mode), folded into the PMOS side ----
Mtn tn vbn 0 0 nmos45 w={w_tn} l={l_t}
Mn1 fp1 inp tn 0 nmos45 w={w_inn} l={l_inn}
Mn2 fp2 inn tn 0 nmos45 w={w_inn} l={l_inn}
* ---- PMOS input pair (active for low common mode), folded into the NMOS side ----
Mtp tp vbp vdd vdd pmos45 w={w_tp} l={l_t}
Mp1 fn1 inp tp vdd pmos45 w={w_inp} l={l_inp}
Mp2 fn2 inn tp vdd pmos45 w={w_inp} l={l_inp}
* ---- summing folded cascode: PMOS sources + cascodes on top ----
Mt1 fp1 vbp vdd vdd pmos45 w={w_ps} l={l_ps}
Mt2 fp2 vbp vdd vdd pmos45 w={w_ps} l={l_ps}
Mc1 x vbpc fp1 vdd pmos45 w={w_pc} l={l_pc}
Mc2 out vbpc fp2 vdd pmos45 w={w_pc} l={l_pc}
* ---- NMOS cascodes + low-voltage cascode mirror at the bottom ----
Mc3 x vbnc fn1 0 nmos45 w={w_nc} l={l_nc}
Mc4 out vbnc fn2 0 nmos45 w={w_nc} l={l_nc}
Mm1 fn1 x 0 0 nmos45 w={w_nm} l={l_nm}
Mm2 fn2 x 0 0 nmos45 w={w_nm} l={l_nm}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm (mid-rail), AC 1 on inp; DC-only servo (rfb, cfb;
* corner ~1e-10 Hz) with optional level shift (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
