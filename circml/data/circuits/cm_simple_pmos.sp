* cm_simple_pmos: simple two-transistor PMOS current mirror sourcing a copy of a 20 uA reference
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_ref=12u w_out=12u l_m=360n iref=20u vout=0.5
Vdd vdd 0 DC 1.0
* reference current pulled out of the diode-connected PMOS
Iref ref 0 DC {iref}
M1 ref ref vdd vdd pmos45 w={w_ref} l={l_m}
* output device; Vout holds the output node
M2 out ref vdd vdd pmos45 w={w_out} l={l_m}
Vout out 0 DC {vout}
.end
