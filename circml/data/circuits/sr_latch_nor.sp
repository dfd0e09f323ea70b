* sr_latch_nor: set-reset latch from two cross-coupled static CMOS NOR2 gates
.include ../models/ptm45.lib
.param wn=200n wp=800n lmin=45n cl=1f
Vdd vdd 0 DC 1.0
* r starts high so the initial state is defined, then s and r pulse alternately
Vr r 0 PULSE(1.0 0 200p 20p 20p 2780p 4n)
Vs s 0 PULSE(0 1.0 1000p 20p 20p 480p 4n)
.subckt nor2 a b out vdd wn=200n wp=800n lch=45n
Mpa pst a vdd vdd pmos45 w={wp} l={lch}
Mpb out b pst vdd pmos45 w={wp} l={lch}
Mna out a 0 0 nmos45 w={wn} l={lch}
Mnb out b 0 0 nmos45 w={wn} l={lch}
.ends
Xq r q_n q vdd nor2 wn={wn} wp={wp} lch={lmin}
Xqn s q q_n vdd nor2 wn={wn} wp={wp} lch={lmin}
Cq q 0 {cl}
Cqn q_n 0 {cl}
.end
