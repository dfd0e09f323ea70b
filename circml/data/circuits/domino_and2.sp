* domino_and2: footed domino AND2 gate with clocked precharge, weak keeper and static output inverter
.include ../models/ptm45.lib
.param wn=400n wpre=400n wkeep=120n lkeep=90n winv_n=200n winv_p=400n lmin=45n cl=2f
Vdd vdd 0 DC 1.0
* clk high = evaluate, clk low = precharge; inputs change only during precharge
Vclk clk 0 PULSE(0 1.0 0 20p 20p 480p 1n)
Va a 0 PULSE(0 1.0 600p 20p 20p 980p 2n)
Vb b 0 PULSE(0 1.0 1600p 20p 20p 1980p 4n)
Mpre dyn clk vdd vdd pmos45 w={wpre} l={lmin}
Mkeep dyn out vdd vdd pmos45 w={wkeep} l={lkeep}
Mna dyn a nab 0 nmos45 w={wn} l={lmin}
Mnb nab b nfoot 0 nmos45 w={wn} l={lmin}
Mfoot nfoot clk 0 0 nmos45 w={wn} l={lmin}
Mpo out dyn vdd vdd pmos45 w={winv_p} l={lmin}
Mno out dyn 0 0 nmos45 w={winv_n} l={lmin}
Cl out 0 {cl}
.end
