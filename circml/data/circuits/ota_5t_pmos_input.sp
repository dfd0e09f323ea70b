* ota_5t_pmos_input: five-transistor OTA with PMOS input pair, NMOS current-mirror load and PMOS tail current source
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=24u l_in=180n w_ld=3u l_ld=360n w_tail=24u l_tail=360n w_bd=24u
.param ibias=20u cl=200f vcm=0.35 vshift=-0.15
Vdd vdd 0 DC 1.0
* ---- bias: reference current pulled from the PMOS diode that sets the tail current ----
Iref vbp 0 DC {ibias}
M6 vbp vbp vdd vdd pmos45 w={w_bd} l={l_tail}
* ---- OTA core ----
M5 tail vbp vdd vdd pmos45 w={w_tail} l={l_tail}
M1 x inp tail vdd pmos45 w={w_in} l={l_in}
M2 out inn tail vdd pmos45 w={w_in} l={l_in}
M3 x x 0 0 nmos45 w={w_ld} l={l_ld}
M4 out x 0 0 nmos45 w={w_ld} l={l_ld}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm, AC 1 on inp; DC-only servo with level shift
* (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
