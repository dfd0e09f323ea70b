* tristate_inverter: clocked-CMOS tristate inverter with stacked enable devices driving a leaky bus load
.include ../models/ptm45.lib
.param wn=400n wp=800n winv_n=200n winv_p=400n lmin=45n cl=5f rleak=1meg
Vdd vdd 0 DC 1.0
Vin in 0 PULSE(0 1.0 100p 20p 20p 480p 1n)
Ven en 0 PULSE(1.0 0 2100p 20p 20p 1980p 4n)
* enable inverter
Mpei en_n en vdd vdd pmos45 w={winv_p} l={lmin}
Mnei en_n en 0 0 nmos45 w={winv_n} l={lmin}
* stacked tristate inverter: data devices on the rails, enable devices at the output
Mpd pmid in vdd vdd pmos45 w={wp} l={lmin}
Mpe out en_n pmid vdd pmos45 w={wp} l={lmin}
Mne out en nmid 0 nmos45 w={wn} l={lmin}
Mnd nmid in 0 0 nmos45 w={wn} l={lmin}
* bus load: capacitance plus a large leakage resistor that defines the high-Z level
Cbus out 0 {cl}
Rleak out 0 {rleak}
.end
