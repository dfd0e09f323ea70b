* amp_cs_resistive: NMOS common-source amplifier with resistive drain load
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_in=2u l_in=180n rd=25k cl=50f vin_dc=0.5
Vdd vdd 0 DC 1.0
* input: DC bias plus small-signal AC stimulus
Vin in 0 DC {vin_dc} AC 1
M1 out in 0 0 nmos45 w={w_in} l={l_in}
Rd vdd out {rd}
Cl out 0 {cl}
.end
