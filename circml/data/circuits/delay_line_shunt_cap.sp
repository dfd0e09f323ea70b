* delay_line_shunt_cap: inverter delay line whose stage outputs carry NMOS-switched shunt capacitors tuned by vctrl
.include ../models/ptm45.lib
.param wn=200n wp=400n lmin=45n wsw=400n csh=20f vctl=0.9 cl=2f
Vdd vdd 0 DC 1.0
Vctrl vctrl 0 DC {vctl}
Vin in 0 PULSE(0 1.0 200p 20p 20p 1980p 4n)
.subckt shstage in out vdd vctrl wn=200n wp=400n lch=45n wsw=400n csh=10f
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
* variable shunt load: the switch resistance (set by vctrl) decides how much of csh the node sees
Msw out vctrl cnode 0 nmos45 w={wsw} l={lch}
Csh cnode 0 {csh}
.ends
X1 in d1 vdd vctrl shstage wn={wn} wp={wp} lch={lmin} wsw={wsw} csh={csh}
X2 d1 d2 vdd vctrl shstage wn={wn} wp={wp} lch={lmin} wsw={wsw} csh={csh}
X3 d2 d3 vdd vctrl shstage wn={wn} wp={wp} lch={lmin} wsw={wsw} csh={csh}
X4 d3 out vdd vctrl shstage wn={wn} wp={wp} lch={lmin} wsw={wsw} csh={csh}
Cl out 0 {cl}
.end
