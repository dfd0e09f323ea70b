* nor2: two-input static CMOS NOR gate (series PMOS pull-up, parallel NMOS pull-down)
.include ../models/ptm45.lib
.param wn=200n wp=800n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Va a 0 PULSE(0 1.0 100p 20p 20p 480p 1n)
Vb b 0 PULSE(0 1.0 100p 20p 20p 980p 2n)
Mpa pstack a vdd vdd pmos45 w={wp} l={lmin}
Mpb out b pstack vdd pmos45 w={wp} l={lmin}
Mna out a 0 0 nmos45 w={wn} l={lmin}
Mnb out b 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
