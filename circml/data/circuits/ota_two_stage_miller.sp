* ota_two_stage_miller: two-stage Miller-compensated OTA (NMOS-input 5T first stage, PMOS common-source second stage, Miller cap cc)
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=8u l_in=180n w_ld=8u l_ld=360n w_tail=8u l_tail=360n w_bd=8u
.param w_cs=32u l_cs=360n w_sink=16u l_sink=360n
.param ibias=20u cc=1p cl=500f vcm=0.6 vshift=0.1
Vdd vdd 0 DC 1.0
* ---- bias ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_bd} l={l_tail}
* ---- first stage: NMOS pair, PMOS mirror load (o1 is the high-impedance output) ----
M5 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 x inn tail 0 nmos45 w={w_in} l={l_in}
M2 o1 inp tail 0 nmos45 w={w_in} l={l_in}
M3 x x vdd vdd pmos45 w={w_ld} l={l_ld}
M4 o1 x vdd vdd pmos45 w={w_ld} l={l_ld}
* ---- second stage: PMOS common source with NMOS current sink ----
M6 out o1 vdd vdd pmos45 w={w_cs} l={l_cs}
M7 out vbn 0 0 nmos45 w={w_sink} l={l_sink}
* ---- Miller compensation and load ----
Cc o1 out {cc}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm, AC 1 on inp; DC-only servo with level shift
* (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
