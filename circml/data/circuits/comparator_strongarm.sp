* comparator_strongarm: clocked StrongARM latch comparator with reset PMOS devices and output inverters
.include ../models/ptm45.lib
.param w_in=2u l_in=90n w_tail=2u w_lat_n=1u w_lat_p=1u w_rst=400n lmin=45n winv_n=200n winv_p=400n vcm=0.6 cl=2f
Vdd vdd 0 DC 1.0
Vclk clk 0 PULSE(0 1.0 500p 20p 20p 480p 1n)
* differential input: inn sits at the common mode, inp = inn + 20 mV sine
Vinn inn 0 DC {vcm}
Vdiff inp inn DC 0 SIN(0 20m 50meg)
* clocked tail and input pair
Mtail tail clk 0 0 nmos45 w={w_tail} l={lmin}
Min1 xp inp tail 0 nmos45 w={w_in} l={l_in}
Min2 xn inn tail 0 nmos45 w={w_in} l={l_in}
* cross-coupled NMOS and PMOS latch
Mln1 outn outp xp 0 nmos45 w={w_lat_n} l={lmin}
Mln2 outp outn xn 0 nmos45 w={w_lat_n} l={lmin}
Mlp1 outn outp vdd vdd pmos45 w={w_lat_p} l={lmin}
Mlp2 outp outn vdd vdd pmos45 w={w_lat_p} l={lmin}
* reset devices: precharge all four internal nodes to vdd while clk = 0
Mr1 outn clk vdd vdd pmos45 w={w_rst} l={lmin}
Mr2 outp clk vdd vdd pmos45 w={w_rst} l={lmin}
Mr3 xp clk vdd vdd pmos45 w={w_rst} l={lmin}
Mr4 xn clk vdd vdd pmos45 w={w_rst} l={lmin}
* output inverters: out = 1 when inp > inn during evaluation
Mpo1 out outn vdd vdd pmos45 w={winv_p} l={lmin}
Mno1 out outn 0 0 nmos45 w={winv_n} l={lmin}
Mpo2 out_n outp vdd vdd pmos45 w={winv_p} l={lmin}
Mno2 out_n outp 0 0 nmos45 w={winv_n} l={lmin}
Cl1 out 0 {cl}
Cl2 out_n 0 {cl}
.end
