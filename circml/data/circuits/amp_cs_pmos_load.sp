* amp_cs_pmos_load: NMOS common-source amplifier with PMOS current-source (active) load, self-biased by a large feedback resistor
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_in=2u l_in=360n w_ld=8u l_ld=360n ibias=10u cl=50f rfb=1g cin=10u
Vdd vdd 0 DC 1.0
* PMOS load biased from a reference diode
Iref vbp 0 DC {ibias}
M3 vbp vbp vdd vdd pmos45 w={w_ld} l={l_ld}
M2 out vbp vdd vdd pmos45 w={w_ld} l={l_ld}
* input device; gate DC set equal to the output by rfb, AC signal coupled through cin
M1 out g 0 0 nmos45 w={w_in} l={l_in}
Rfb out g {rfb}
Cin in g {cin}
Vin in 0 DC 0.45 AC 1
Cl out 0 {cl}
.end
