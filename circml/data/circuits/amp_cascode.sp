* amp_cascode: NMOS cascode gain stage with a PMOS cascode current-source load, self-biased by a large feedback resistor
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_in=2u l_in=360n w_nc=4u l_nc=180n w_pc=16u l_pc=180n w_ld=16u l_ld=360n
.param ibias=10u vb_nc=0.7 vb_pc=0.35 cl=50f rfb=1g cin=10u
Vdd vdd 0 DC 1.0
* cascode gate biases
Vbnc vbnc 0 DC {vb_nc}
Vbpc vbpc 0 DC {vb_pc}
* PMOS current-source load biased from a reference diode
Iref vbp 0 DC {ibias}
M5 vbp vbp vdd vdd pmos45 w={w_ld} l={l_ld}
M4 pc vbp vdd vdd pmos45 w={w_ld} l={l_ld}
M3 out vbpc pc vdd pmos45 w={w_pc} l={l_pc}
* NMOS input device and cascode
M2 out vbnc nc 0 nmos45 w={w_nc} l={l_nc}
M1 nc g 0 0 nmos45 w={w_in} l={l_in}
* DC self-bias (gate = output at DC); AC input through cin
Rfb out g {rfb}
Cin in g {cin}
Vin in 0 DC 0.45 AC 1
Cl out 0 {cl}
.end
