* filter_sallen_key_lowpass: active-RC second-order Sallen-Key low-pass (unity-gain, Butterworth) around a two-stage Miller op-amp
.include ../models/ptm45.lib
* ---- two-stage Miller op-amp (NMOS input pair, PMOS CS output), tail biased from vbn ----
.subckt opamp2 inp inn out vdd vbn w_in=32u l_in=180n w_ld=8u l_ld=360n w_tail=16u l_tail=360n w_cs=32u l_cs=360n w_sk=32u cc=1p
M5 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 x inn tail 0 nmos45 w={w_in} l={l_in}
M2 o1 inp tail 0 nmos45 w={w_in} l={l_in}
M3 x x vdd vdd pmos45 w={w_ld} l={l_ld}
M4 o1 x vdd vdd pmos45 w={w_ld} l={l_ld}
M6 out o1 vdd vdd pmos45 w={w_cs} l={l_cs}
M7 out vbn 0 0 nmos45 w={w_sk} l={l_tail}
Cc o1 out {cc}
.ends
* ---- filter values: f0 = 1/(2*pi*r*sqrt(c1*c2)) ~ 1.1 MHz, Q = 0.5*sqrt(c1/c2) = 0.707 ----
.param r1=100k r2=100k c1=2p c2=1p ibias=20u cl=200f vin_dc=0.5
Vdd vdd 0 DC 1.0
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w=16u l=360n
* ---- Sallen-Key network: c1 feeds back from the output, c2 to ground at the op-amp input ----
Vin in 0 DC {vin_dc} AC 1
R1 in n1 {r1}
R2 n1 n2 {r2}
C1 n1 out {c1}
C2 n2 0 {c2}
* unity-gain buffer: inverting input tied to the output
X1 n2 out out vdd vbn opamp2
Cl out 0 {cl}
.end
