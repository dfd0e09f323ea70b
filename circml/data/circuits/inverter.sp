* inverter: static CMOS inverter with a 2 fF output load
.include ../models/ptm45.lib
.param wn=200n wp=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Vin in 0 PULSE(0 1.0 100p 20p 20p 480p 1n)
Mp out in vdd vdd pmos45 w={wp} l={lmin}
Mn out in 0 0 nmos45 w={wn} l={lmin}
Cl out 0 {cl}
.end
