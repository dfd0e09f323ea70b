* cm_wide_swing_cascode: low-voltage (wide-swing) NMOS cascode mirror with a quarter-size diode generating the cascode bias
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_m=8u l_m=360n w_c=16u l_c=180n w_b=0.5u l_b=360n iref=20u ibias=10u vout=0.4
Vdd vdd 0 DC 1.0
* cascode bias: weak diode device (about W/4 of the mirror) -> vbc = Vth + 2*Vov
Ibias vdd vbc DC {ibias}
M5 vbc vbc 0 0 nmos45 w={w_b} l={l_b}
* reference branch: mirror-device gate tied to the top of the stack
Iref vdd ref DC {iref}
M3 ref vbc x1 0 nmos45 w={w_c} l={l_c}
M1 x1 ref 0 0 nmos45 w={w_m} l={l_m}
* output branch
M2 x2 ref 0 0 nmos45 w={w_m} l={l_m}
M4 out vbc x2 0 nmos45 w={w_c} l={l_c}
Vout out 0 DC {vout}
.end
