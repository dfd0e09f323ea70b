* cm_simple_nmos: simple two-transistor NMOS current mirror sinking a copy of a 20 uA reference
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_ref=4u w_out=4u l_m=360n iref=20u vout=0.5
Vdd vdd 0 DC 1.0
* reference current pushed into the diode-connected device
Iref vdd ref DC {iref}
M1 ref ref 0 0 nmos45 w={w_ref} l={l_m}
* output device; Vout holds the output node (its current is the mirrored current)
M2 out ref 0 0 nmos45 w={w_out} l={l_m}
Vout out 0 DC {vout}
.end
