* schmitt_trigger: six-transistor CMOS Schmitt trigger inverter with feedback devices setting the hysteresis
.include ../models/ptm45.lib
.param wn=200n wp=400n wfn=200n wfp=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
* slow triangular input to expose the two switching thresholds
Vin in 0 PULSE(0 1.0 0 5n 5n 10p 10.01n)
* pull-down stack with feedback NMOS from vdd into the stack midpoint
Mn1 nmid in 0 0 nmos45 w={wn} l={lmin}
Mn2 out in nmid 0 nmos45 w={wn} l={lmin}
Mnf vdd out nmid 0 nmos45 w={wfn} l={lmin}
* pull-up stack with feedback PMOS from the stack midpoint to ground
Mp1 pmid in vdd vdd pmos45 w={wp} l={lmin}
Mp2 out in pmid vdd pmos45 w={wp} l={lmin}
Mpf 0 out pmid vdd pmos45 w={wfp} l={lmin}
Cl out 0 {cl}
.end
