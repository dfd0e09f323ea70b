* d_latch_tg: level-sensitive D latch with transmission-gate input and feedback, built from inverter and TG subcircuits
.include ../models/ptm45.lib
.param wn=200n wp=400n wtn=200n wtp=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
* clk starts high (transparent) so the initial state is defined
Vclk clk 0 PULSE(1.0 0 500p 20p 20p 480p 1n)
Vd d 0 PULSE(0 1.0 250p 20p 20p 730p 1.5n)
.subckt inv in out vdd wn=200n wp=400n lch=45n
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
.ends
.subckt tg a b en en_n vdd wn=200n wp=400n lch=45n
Mn a en b 0 nmos45 w={wn} l={lch}
Mp a en_n b vdd pmos45 w={wp} l={lch}
.ends
Xck clk clk_n vdd inv wn={wn} wp={wp} lch={lmin}
Xtin d x clk clk_n vdd tg wn={wtn} wp={wtp} lch={lmin}
Xi1 x q_n vdd inv wn={wn} wp={wp} lch={lmin}
Xi2 q_n fb vdd inv wn={wn} wp={wp} lch={lmin}
Xtfb fb x clk_n clk vdd tg wn={wtn} wp={wtp} lch={lmin}
Xo q_n q vdd inv wn={wn} wp={wp} lch={lmin}
Cl q 0 {cl}
.end
