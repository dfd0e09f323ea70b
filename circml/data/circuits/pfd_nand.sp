* pfd_nand: tri-state phase-frequency detector of two resettable NAND-gate D flip-flops (D tied high) and a delayed NAND reset
.include ../models/ptm45.lib
.param wn=300n wp=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
* feedback clock lags the reference by 300 ps, so up pulses are wide and dn pulses are reset glitches
Vref ref 0 PULSE(0 1.0 500p 20p 20p 980p 2n)
Vfb fb 0 PULSE(0 1.0 800p 20p 20p 980p 2n)
.subckt inv in out vdd wn=200n wp=400n lch=45n
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
.ends
.subckt nand2 a b out vdd wn=300n wp=400n lch=45n
Mpa out a vdd vdd pmos45 w={wp} l={lch}
Mpb out b vdd vdd pmos45 w={wp} l={lch}
Mna out a nst 0 nmos45 w={wn} l={lch}
Mnb nst b 0 0 nmos45 w={wn} l={lch}
.ends
.subckt nand3 a b c out vdd wn=450n wp=400n lch=45n
Mpa out a vdd vdd pmos45 w={wp} l={lch}
Mpb out b vdd vdd pmos45 w={wp} l={lch}
Mpc out c vdd vdd pmos45 w={wp} l={lch}
Mna out a nst1 0 nmos45 w={wn} l={lch}
Mnb nst1 b nst2 0 nmos45 w={wn} l={lch}
Mnc nst2 c 0 0 nmos45 w={wn} l={lch}
.ends
* positive-edge D flip-flop with D = 1 and active-low clear (three cross-coupled NAND latches)
.subckt dffr clk clr_n q vdd wn=300n wp=400n lch=45n
X1 n4 n2 n1 vdd nand2 wn={wn} wp={wp} lch={lch}
X2 n1 clr_n clk n2 vdd nand3 wn={1.5*wn} wp={wp} lch={lch}
X3 n2 clk n4 n3 vdd nand3 wn={1.5*wn} wp={wp} lch={lch}
X4 n3 clr_n n4 vdd nand2 wn={wn} wp={wp} lch={lch}
X5 n2 q_n q vdd nand2 wn={wn} wp={wp} lch={lch}
X6 q clr_n n3 q_n vdd nand3 wn={1.5*wn} wp={wp} lch={lch}
.ends
Xfr ref clr_n up vdd dffr wn={wn} wp={wp} lch={lmin}
Xff fb clr_n dn vdd dffr wn={wn} wp={wp} lch={lmin}
* reset: clear both flops once up and dn are both high; two inverters add anti-dead-zone delay
Xrst up dn rst_n0 vdd nand2 wn={wn} wp={wp} lch={lmin}
Xd1 rst_n0 rst_d vdd inv wn={wn} wp={wp} lch={lmin}
Xd2 rst_d clr_n vdd inv wn={wn} wp={wp} lch={lmin}
Cup up 0 {cl}
Cdn dn 0 {cl}
.end
