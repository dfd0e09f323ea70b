* level_shifter_cross_coupled: 1.0 V to 1.8 V cross-coupled PMOS level shifter with differential NMOS pull-downs
.include ../models/ptm45.lib
* note: 45 nm devices on the 1.8 V rail are overstressed; acceptable for simulation studies
.param wn=800n wp=200n winv_n=200n winv_p=400n lmin=45n lh=90n cl=2f
Vdd vdd 0 DC 1.0
Vddh vddh 0 DC 1.8
Vin in 0 PULSE(0 1.0 200p 20p 20p 980p 2n)
* low-voltage input inverter provides the complementary drive
Mpi in_n in vdd vdd pmos45 w={winv_p} l={lmin}
Mni in_n in 0 0 nmos45 w={winv_n} l={lmin}
* differential pull-downs fighting the cross-coupled PMOS pair on vddh
Mn1 ls_n in 0 0 nmos45 w={wn} l={lh}
Mn2 ls in_n 0 0 nmos45 w={wn} l={lh}
Mp1 ls_n ls vddh vddh pmos45 w={wp} l={lh}
Mp2 ls ls_n vddh vddh pmos45 w={wp} l={lh}
* high-voltage output inverter, out follows in with a 1.8 V swing
Mpo out ls_n vddh vddh pmos45 w={winv_p} l={lh}
Mno out ls_n 0 0 nmos45 w={winv_n} l={lh}
Cl out 0 {cl}
.end
