* dac_r2r_3bit: 3-bit voltage-mode R-2R ladder DAC with CMOS inverter switches referenced to vref
.include ../models/ptm45.lib
.param runit=10k wn=400n wp=800n winv_n=200n winv_p=400n lmin=45n vref_val=0.8 cl=10f
Vdd vdd 0 DC 1.0
Vref vref 0 DC {vref_val}
* binary counter on the digital inputs (b0 = LSB)
Vb0 b0 0 PULSE(0 1.0 500p 20p 20p 980p 2n)
Vb1 b1 0 PULSE(0 1.0 1500p 20p 20p 1980p 4n)
Vb2 b2 0 PULSE(0 1.0 3500p 20p 20p 3980p 8n)
* logic-level inverters (vdd domain) produce the switch drive
Mpb0 b0_n b0 vdd vdd pmos45 w={winv_p} l={lmin}
Mnb0 b0_n b0 0 0 nmos45 w={winv_n} l={lmin}
Mpb1 b1_n b1 vdd vdd pmos45 w={winv_p} l={lmin}
Mnb1 b1_n b1 0 0 nmos45 w={winv_n} l={lmin}
Mpb2 b2_n b2 vdd vdd pmos45 w={winv_p} l={lmin}
Mnb2 b2_n b2 0 0 nmos45 w={winv_n} l={lmin}
* switch inverters powered from vref: leg node = vref when bit = 1, ground when bit = 0
Mps0 s0 b0_n vref vref pmos45 w={wp} l={lmin}
Mns0 s0 b0_n 0 0 nmos45 w={wn} l={lmin}
Mps1 s1 b1_n vref vref pmos45 w={wp} l={lmin}
Mns1 s1 b1_n 0 0 nmos45 w={wn} l={lmin}
Mps2 s2 b2_n vref vref pmos45 w={wp} l={lmin}
Mns2 s2 b2_n 0 0 nmos45 w={wn} l={lmin}
* R-2R ladder: out = vref * (b2/2 + b1/4 + b0/8)
Rterm n0 0 {2*runit}
R2r0 s0 n0 {2*runit}
Rr01 n0 n1 {runit}
R2r1 s1 n1 {2*runit}
Rr12 n1 out {runit}
R2r2 s2 out {2*runit}
Cl out 0 {cl}
.end
