* filter_gmc_biquad: second-order gm-C low-pass biquad built from two 5T OTA transconductors and two grounded capacitors
.include ../models/ptm45.lib
* ---- 5T OTA transconductor: out current = gm*(inp - inn); tail biased from the shared vbn ----
.subckt ota5t inp inn out vdd vbn w_in=8u l_in=180n w_ld=8u l_ld=360n w_tail=8u l_tail=360n
M5 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 x inp tail 0 nmos45 w={w_in} l={l_in}
M2 out inn tail 0 nmos45 w={w_in} l={l_in}
M3 x x vdd vdd pmos45 w={w_ld} l={l_ld}
M4 out x vdd vdd pmos45 w={w_ld} l={l_ld}
.ends
* ---- filter parameters: w0 = gm/sqrt(c1*c2), Q = sqrt(c2/c1) for equal gm ----
.param w_in=8u l_in=180n w_ld=8u l_ld=360n w_tail=8u l_tail=360n
.param ibias=20u c1=2p c2=1p vin_dc=0.6
Vdd vdd 0 DC 1.0
* ---- shared bias ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
* ---- two-integrator loop: OTA1 integrates (in - out) on c1, OTA2 integrates (v1 - out) on c2 ----
X1 in out v1 vdd vbn ota5t w_in={w_in} l_in={l_in} w_ld={w_ld} l_ld={l_ld} w_tail={w_tail} l_tail={l_tail}
C1 v1 0 {c1}
X2 v1 out out vdd vbn ota5t w_in={w_in} l_in={l_in} w_ld={w_ld} l_ld={l_ld} w_tail={w_tail} l_tail={l_tail}
C2 out 0 {c2}
Vin in 0 DC {vin_dc} AC 1
.end
