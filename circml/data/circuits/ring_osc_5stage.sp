* ring_osc_5stage: five-stage ring oscillator built from an inverter stage subcircuit, with output buffer
.include ../models/ptm45.lib
.param wn=200n wp=400n lmin=45n cstage=1f cl=2f
Vdd vdd 0 DC 1.0
.subckt ringstage in out vdd wn=200n wp=400n lch=45n cs=1f
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
Cs out 0 {cs}
.ends
X1 r1 r2 vdd ringstage wn={wn} wp={wp} lch={lmin} cs={cstage}
X2 r2 r3 vdd ringstage wn={wn} wp={wp} lch={lmin} cs={cstage}
X3 r3 r4 vdd ringstage wn={wn} wp={wp} lch={lmin} cs={cstage}
X4 r4 r5 vdd ringstage wn={wn} wp={wp} lch={lmin} cs={cstage}
X5 r5 r1 vdd ringstage wn={wn} wp={wp} lch={lmin} cs={cstage}
* output buffer
Xbuf r5 out vdd ringstage wn={wn} wp={wp} lch={lmin} cs={cl}
* one-shot current kick that pushes the ring off its metastable operating point
Ikick r1 0 PULSE(0 20u 20p 10p 10p 30p 1)
.end
