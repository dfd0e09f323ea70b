* tg_mux2: 2:1 multiplexer built from two CMOS transmission gates with a select inverter
.include ../models/ptm45.lib
.param wn=300n wp=600n lmin=45n winv_n=200n winv_p=400n cl=2f
Vdd vdd 0 DC 1.0
Va a 0 PULSE(0 1.0 100p 20p 20p 230p 500p)
Vb b 0 PULSE(0 1.0 100p 20p 20p 980p 2n)
Vsel sel 0 PULSE(0 1.0 1100p 20p 20p 1980p 4n)
* select inverter
Mpsi sel_n sel vdd vdd pmos45 w={winv_p} l={lmin}
Mnsi sel_n sel 0 0 nmos45 w={winv_n} l={lmin}
* TG passing a when sel = 0
Mnta a sel_n out 0 nmos45 w={wn} l={lmin}
Mpta a sel out vdd pmos45 w={wp} l={lmin}
* TG passing b when sel = 1
Mntb b sel out 0 nmos45 w={wn} l={lmin}
Mptb b sel_n out vdd pmos45 w={wp} l={lmin}
Cl out 0 {cl}
.end
