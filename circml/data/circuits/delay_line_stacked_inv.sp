* delay_line_stacked_inv: delay line of stacked (three-high PMOS and NMOS) inverters giving large delay per stage
.include ../models/ptm45.lib
.param wn=200n wp=400n lst=90n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Vin in 0 PULSE(0 1.0 200p 20p 20p 1980p 4n)
.subckt stackinv in out vdd wn=200n wp=400n lch=90n
Mp1 p1 in vdd vdd pmos45 w={wp} l={lch}
Mp2 p2 in p1 vdd pmos45 w={wp} l={lch}
Mp3 out in p2 vdd pmos45 w={wp} l={lch}
Mn3 out in n2 0 nmos45 w={wn} l={lch}
Mn2 n2 in n1 0 nmos45 w={wn} l={lch}
Mn1 n1 in 0 0 nmos45 w={wn} l={lch}
.ends
X1 in d1 vdd stackinv wn={wn} wp={wp} lch={lst}
X2 d1 d2 vdd stackinv wn={wn} wp={wp} lch={lst}
X3 d2 d3 vdd stackinv wn={wn} wp={wp} lch={lst}
X4 d3 d4 vdd stackinv wn={wn} wp={wp} lch={lst}
* output restoring buffer (two plain inverters)
Mpo1 ob d4 vdd vdd pmos45 w={wp} l={lmin}
Mno1 ob d4 0 0 nmos45 w={wn} l={lmin}
Mpo2 out ob vdd vdd pmos45 w={wp} l={lmin}
Mno2 out ob 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
