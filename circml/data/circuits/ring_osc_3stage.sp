* ring_osc_3stage: three-stage CMOS inverter ring oscillator with output buffer and start-up kick
.include ../models/ptm45.lib
.param wn=200n wp=400n lmin=45n cstage=1f cl=2f
Vdd vdd 0 DC 1.0
Mp1 r2 r1 vdd vdd pmos45 w={wp} l={lmin}
Mn1 r2 r1 0 0 nmos45 w={wn} l={lmin}
Mp2 r3 r2 vdd vdd pmos45 w={wp} l={lmin}
Mn2 r3 r2 0 0 nmos45 w={wn} l={lmin}
Mp3 r1 r3 vdd vdd pmos45 w={wp} l={lmin}
Mn3 r1 r3 0 0 nmos45 w={wn} l={lmin}
C1 r1 0 {cstage}
C2 r2 0 {cstage}
C3 r3 0 {cstage}
* output buffer
Mpb out r3 vdd vdd pmos45 w={wp} l={lmin}
Mnb out r3 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
* one-shot current kick that pushes the ring off its metastable operating point
Ikick r1 0 PULSE(0 20u 20p 10p 10p 30p 1)
.end
