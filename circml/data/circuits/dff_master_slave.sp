* dff_master_slave: positive-edge master-slave D flip-flop of two transmission-gate latches (nested dff -> latch -> inv/tg subcircuits)
.include ../models/ptm45.lib
.param wn=200n wp=400n wtn=200n wtp=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
Vclk clk 0 PULSE(0 1.0 500p 20p 20p 480p 1n)
Vd d 0 PULSE(0 1.0 250p 20p 20p 1730p 3.5n)
.subckt inv in out vdd wn=200n wp=400n lch=45n
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
.ends
.subckt tg a b en en_n vdd wn=200n wp=400n lch=45n
Mn a en b 0 nmos45 w={wn} l={lch}
Mp a en_n b vdd pmos45 w={wp} l={lch}
.ends
* inverting TG latch: transparent when en = 1, qn = not d
.subckt latch d qn en en_n vdd wn=200n wp=400n wtn=200n wtp=400n lch=45n
Xtin d x en en_n vdd tg wn={wtn} wp={wtp} lch={lch}
Xi1 x qn vdd inv wn={wn} wp={wp} lch={lch}
Xi2 qn fb vdd inv wn={wn} wp={wp} lch={lch}
Xtfb fb x en_n en vdd tg wn={wtn} wp={wtp} lch={lch}
.ends
* master transparent while clk = 0, slave transparent while clk = 1
.subckt dff d clk q vdd wn=200n wp=400n wtn=200n wtp=400n lch=45n
Xck clk clk_n vdd inv wn={wn} wp={wp} lch={lch}
Xm d m clk_n clk vdd latch wn={wn} wp={wp} wtn={wtn} wtp={wtp} lch={lch}
Xs m q clk clk_n vdd latch wn={wn} wp={wp} wtn={wtn} wtp={wtp} lch={lch}
.ends
Xff d clk q vdd dff wn={wn} wp={wp} wtn={wtn} wtp={wtp} lch={lmin}
Cl q 0 {cl}
.end
