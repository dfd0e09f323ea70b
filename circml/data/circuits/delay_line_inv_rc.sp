* delay_line_inv_rc: four-stage inverter delay line, each stage loaded by a series-R shunt-C RC section
.include ../models/ptm45.lib
.param wn=200n wp=400n lmin=45n rser=2k cshunt=10f cl=2f
Vdd vdd 0 DC 1.0
Vin in 0 PULSE(0 1.0 200p 20p 20p 1980p 4n)
.subckt inv in out vdd wn=200n wp=400n lch=45n
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
.ends
* delay stage: inverter followed by a series-R shunt-C section
.subckt rcstage in out vdd wn=200n wp=400n lch=45n rs=2k cs=10f
Xinv in drv vdd inv wn={wn} wp={wp} lch={lch}
Rs drv out {rs}
Cs out 0 {cs}
.ends
X1 in d1 vdd rcstage wn={wn} wp={wp} lch={lmin} rs={rser} cs={cshunt}
X2 d1 d2 vdd rcstage wn={wn} wp={wp} lch={lmin} rs={rser} cs={cshunt}
X3 d2 d3 vdd rcstage wn={wn} wp={wp} lch={lmin} rs={rser} cs={cshunt}
X4 d3 d4 vdd rcstage wn={wn} wp={wp} lch={lmin} rs={rser} cs={cshunt}
* output restoring buffer (two inverters keep the line non-inverting)
Mpo1 ob d4 vdd vdd pmos45 w={wp} l={lmin}
Mno1 ob d4 0 0 nmos45 w={wn} l={lmin}
Mpo2 out ob vdd vdd pmos45 w={wp} l={lmin}
Mno2 out ob 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
