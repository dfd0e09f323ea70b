* aoi21: AND-OR-INVERT gate, out = not((a and b) or c), static CMOS
.include ../models/ptm45.lib
.param wn=400n wp=800n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Va a 0 PULSE(0 1.0 100p 20p 20p 480p 1n)
Vb b 0 PULSE(0 1.0 100p 20p 20p 980p 2n)
Vc c 0 PULSE(0 1.0 100p 20p 20p 1980p 4n)
* pull-up: (a || b) in series with c
Mpa pmid a vdd vdd pmos45 w={wp} l={lmin}
Mpb pmid b vdd vdd pmos45 w={wp} l={lmin}
Mpc out c pmid vdd pmos45 w={wp} l={lmin}
* pull-down: (a series b) in parallel with c
Mna out a nab 0 nmos45 w={wn} l={lmin}
Mnb nab b 0 0 nmos45 w={wn} l={lmin}
Mnc out c 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
