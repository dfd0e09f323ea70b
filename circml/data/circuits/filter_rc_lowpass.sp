* filter_rc_lowpass: passive second-order RC ladder low-pass filter driven by a voltage source and loaded by a small capacitor
.include ../models/ptm45.lib
* ---- component values (each section ~1.6 MHz; overall -3 dB near 0.6 MHz) ----
.param r1=10k c1=10p r2=10k c2=10p cload=10f
Vdd vdd 0 DC 1.0
Vin in 0 DC 0.5 AC 1
R1 in mid {r1}
C1 mid 0 {c1}
R2 mid out {r2}
C2 out 0 {c2}
Cload out 0 {cload}
.end
