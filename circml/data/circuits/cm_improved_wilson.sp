* cm_improved_wilson: four-transistor improved NMOS Wilson mirror with a diode that equalizes the mirror drain voltages
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_m=8u l_m=360n w_o=16u l_o=180n iref=20u vout=0.7
Vdd vdd 0 DC 1.0
Iref vdd a DC {iref}
* reference side: diode M4 (matched to M3) in series with M2
M4 a a d 0 nmos45 w={w_o} l={l_o}
M2 d b 0 0 nmos45 w={w_m} l={l_m}
* output side: M3 output device on top of diode M1
M3 out a b 0 nmos45 w={w_o} l={l_o}
M1 b b 0 0 nmos45 w={w_m} l={l_m}
Vout out 0 DC {vout}
.end
