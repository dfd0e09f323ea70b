* pseudo_nmos_nor2: ratioed pseudo-NMOS two-input NOR gate with a grounded-gate PMOS load
.include ../models/ptm45.lib
.param wn=400n wload=120n lload=90n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Va a 0 PULSE(0 1.0 100p 20p 20p 480p 1n)
Vb b 0 PULSE(0 1.0 100p 20p 20p 980p 2n)
Mload out 0 vdd vdd pmos45 w={wload} l={lload}
Mna out a 0 0 nmos45 w={wn} l={lmin}
Mnb out b 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
