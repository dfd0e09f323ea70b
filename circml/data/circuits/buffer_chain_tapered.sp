* buffer_chain_tapered: four-stage tapered inverter chain (taper factor 4) driving a large capacitive load
.include ../models/ptm45.lib
.param w0=200n taper=4 lmin=45n cl=500f
Vdd vdd 0 DC 1.0
Vin in 0 PULSE(0 1.0 100p 20p 20p 980p 2n)
.subckt inv in out vdd wn=200n wp=400n lch=45n
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
.ends
X1 in n1 vdd inv wn={w0} wp={2*w0} lch={lmin}
X2 n1 n2 vdd inv wn={w0*taper} wp={2*w0*taper} lch={lmin}
X3 n2 n3 vdd inv wn={w0*taper*taper} wp={2*w0*taper*taper} lch={lmin}
X4 n3 out vdd inv wn={w0*taper*taper*taper} wp={2*w0*taper*taper*taper} lch={lmin}
Cl out 0 {cl}
.end
