* cm_cascode_nmos: NMOS cascode current mirror built from two stacked diode-connected references
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_m=8u l_m=360n w_c=16u l_c=180n iref=20u vout=0.8
Vdd vdd 0 DC 1.0
Iref vdd refc DC {iref}
* reference stack: cascode diode M3 on top of mirror diode M1
M3 refc refc ref 0 nmos45 w={w_c} l={l_c}
M1 ref ref 0 0 nmos45 w={w_m} l={l_m}
* output stack: mirror device M2 with cascode M4
M2 mid ref 0 0 nmos45 w={w_m} l={l_m}
M4 out refc mid 0 nmos45 w={w_c} l={l_c}
Vout out 0 DC {vout}
.end
