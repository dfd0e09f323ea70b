* delay_line_nand: gated delay line of four NAND2 stages sharing an enable input
.include ../models/ptm45.lib
.param wn=400n wp=400n lmin=45n cstage=2f cl=2f
Vdd vdd 0 DC 1.0
Ven en 0 DC 1.0
Vin in 0 PULSE(0 1.0 200p 20p 20p 1980p 4n)
.subckt nand2 a b out vdd wn=400n wp=400n lch=45n
Mpa out a vdd vdd pmos45 w={wp} l={lch}
Mpb out b vdd vdd pmos45 w={wp} l={lch}
Mna out a nst 0 nmos45 w={wn} l={lch}
Mnb nst b 0 0 nmos45 w={wn} l={lch}
.ends
X1 in en d1 vdd nand2 wn={wn} wp={wp} lch={lmin}
X2 d1 en d2 vdd nand2 wn={wn} wp={wp} lch={lmin}
X3 d2 en d3 vdd nand2 wn={wn} wp={wp} lch={lmin}
X4 d3 en out vdd nand2 wn={wn} wp={wp} lch={lmin}
C1 d1 0 {cstage}
C2 d2 0 {cstage}
C3 d3 0 {cstage}
Cl out 0 {cl}
.end
