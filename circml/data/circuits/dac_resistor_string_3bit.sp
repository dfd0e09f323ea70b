* dac_resistor_string_3bit: 3-bit resistor-string DAC with a binary tree of transmission-gate 2:1 multiplexers
.include ../models/ptm45.lib
.param runit=5k wn=300n wp=600n winv_n=200n winv_p=400n lmin=45n vref_val=0.8 cl=20f
Vdd vdd 0 DC 1.0
Vref vref 0 DC {vref_val}
* binary counter on the digital inputs (b0 = LSB)
Vb0 b0 0 PULSE(0 1.0 500p 20p 20p 980p 2n)
Vb1 b1 0 PULSE(0 1.0 1500p 20p 20p 1980p 4n)
Vb2 b2 0 PULSE(0 1.0 3500p 20p 20p 3980p 8n)
.subckt inv in out vdd wn=200n wp=400n lch=45n
Mp out in vdd vdd pmos45 w={wp} l={lch}
Mn out in 0 0 nmos45 w={wn} l={lch}
.ends
.subckt tg a b en en_n vdd wn=300n wp=600n lch=45n
Mn a en b 0 nmos45 w={wn} l={lch}
Mp a en_n b vdd pmos45 w={wp} l={lch}
.ends
* 2:1 TG multiplexer: y = a0 when s = 0, y = a1 when s = 1
.subckt mux2 a0 a1 y s s_n vdd wn=300n wp=600n lch=45n
Xt0 a0 y s_n s vdd tg wn={wn} wp={wp} lch={lch}
Xt1 a1 y s s_n vdd tg wn={wn} wp={wp} lch={lch}
.ends
Xi0 b0 b0_n vdd inv wn={winv_n} wp={winv_p} lch={lmin}
Xi1 b1 b1_n vdd inv wn={winv_n} wp={winv_p} lch={lmin}
Xi2 b2 b2_n vdd inv wn={winv_n} wp={winv_p} lch={lmin}
* resistor string: tap tk = k * vref / 8, tap t0 is ground
R8 vref t7 {runit}
R7 t7 t6 {runit}
R6 t6 t5 {runit}
R5 t5 t4 {runit}
R4 t4 t3 {runit}
R3 t3 t2 {runit}
R2 t2 t1 {runit}
R1 t1 0 {runit}
* level 1 (b0)
Xa0 0 t1 m0 b0 b0_n vdd mux2 wn={wn} wp={wp} lch={lmin}
Xa1 t2 t3 m1 b0 b0_n vdd mux2 wn={wn} wp={wp} lch={lmin}
Xa2 t4 t5 m2 b0 b0_n vdd mux2 wn={wn} wp={wp} lch={lmin}
Xa3 t6 t7 m3 b0 b0_n vdd mux2 wn={wn} wp={wp} lch={lmin}
* level 2 (b1)
Xb0 m0 m1 u0 b1 b1_n vdd mux2 wn={wn} wp={wp} lch={lmin}
Xb1 m2 m3 u1 b1 b1_n vdd mux2 wn={wn} wp={wp} lch={lmin}
* level 3 (b2)
Xc0 u0 u1 out b2 b2_n vdd mux2 wn={wn} wp={wp} lch={lmin}
Cl out 0 {cl}
.end
