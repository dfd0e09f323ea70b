* cm_wilson: three-transistor NMOS Wilson current mirror with series-feedback output device
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_m=8u l_m=360n w_o=16u l_o=180n iref=20u vout=0.7
Vdd vdd 0 DC 1.0
Iref vdd a DC {iref}
* M2 senses the output current mirrored by diode M1 and drives the gate of M3
M2 a b 0 0 nmos45 w={w_m} l={l_m}
M1 b b 0 0 nmos45 w={w_m} l={l_m}
M3 out a b 0 nmos45 w={w_o} l={l_o}
Vout out 0 DC {vout}
.end
