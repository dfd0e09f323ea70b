* xor2_static: 12-transistor static CMOS XOR gate with on-cell input inverters
.include ../models/ptm45.lib
.param wn=400n wp=800n winv_n=200n winv_p=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Va a 0 PULSE(0 1.0 100p 20p 20p 480p 1n)
Vb b 0 PULSE(0 1.0 100p 20p 20p 980p 2n)
* input inverters
Mpia a_n a vdd vdd pmos45 w={winv_p} l={lmin}
Mnia a_n a 0 0 nmos45 w={winv_n} l={lmin}
Mpib b_n b vdd vdd pmos45 w={winv_p} l={lmin}
Mnib b_n b 0 0 nmos45 w={winv_n} l={lmin}
* pull-up: (a || b) in series with (a_n || b_n)
Mp1 pmid a vdd vdd pmos45 w={wp} l={lmin}
Mp2 pmid b vdd vdd pmos45 w={wp} l={lmin}
Mp3 out a_n pmid vdd pmos45 w={wp} l={lmin}
Mp4 out b_n pmid vdd pmos45 w={wp} l={lmin}
* pull-down: (a series b) in parallel with (a_n series b_n)
Mn1 out a nab 0 nmos45 w={wn} l={lmin}
Mn2 nab b 0 0 nmos45 w={wn} l={lmin}
Mn3 out a_n nanbn 0 nmos45 w={wn} l={lmin}
Mn4 nanbn b_n 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
