* nand3: three-input static CMOS NAND gate with a three-high NMOS stack
.include ../models/ptm45.lib
.param wn=600n wp=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Va a 0 PULSE(0 1.0 100p 20p 20p 480p 1n)
Vb b 0 PULSE(0 1.0 100p 20p 20p 980p 2n)
Vc c 0 PULSE(0 1.0 100p 20p 20p 1980p 4n)
Mpa out a vdd vdd pmos45 w={wp} l={lmin}
Mpb out b vdd vdd pmos45 w={wp} l={lmin}
Mpc out c vdd vdd pmos45 w={wp} l={lmin}
Mna out a nst1 0 nmos45 w={wn} l={lmin}
Mnb nst1 b nst2 0 nmos45 w={wn} l={lmin}
Mnc nst2 c 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
