* dff_tspc: true single-phase clock (TSPC) positive-edge D flip-flop, nine transistors plus output inverter
.include ../models/ptm45.lib
.param wn=300n wp=600n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Vclk clk 0 PULSE(0 1.0 500p 20p 20p 480p 1n)
Vd d 0 PULSE(0 1.0 250p 20p 20p 1730p 3.5n)
* stage 1: p-type precharge latch, transparent while clk = 0 (x = not d)
Mp1 p1 d vdd vdd pmos45 w={wp} l={lmin}
Mp2 x clk p1 vdd pmos45 w={wp} l={lmin}
Mn3 x d 0 0 nmos45 w={wn} l={lmin}
* stage 2: n-type dynamic stage, precharges y while clk = 0, evaluates x on clk = 1
Mp4 y clk vdd vdd pmos45 w={wp} l={lmin}
Mn5 y x n2 0 nmos45 w={wn} l={lmin}
Mn6 n2 clk 0 0 nmos45 w={wn} l={lmin}
* stage 3: n-type latch, drives q_n while clk = 1
Mp7 q_n y vdd vdd pmos45 w={wp} l={lmin}
Mn8 q_n clk n3 0 nmos45 w={wn} l={lmin}
Mn9 n3 y 0 0 nmos45 w={wn} l={lmin}
* output inverter
Mpo q q_n vdd vdd pmos45 w={wp} l={lmin}
Mno q q_n 0 0 nmos45 w={wn} l={lmin}
Cl q 0 {cl}
.end
